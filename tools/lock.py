"""Regenerate requirements/lock.txt from the current virtual environment and
environment.yml from the lock, so the pins live in one place.

    python tools/lock.py            # lock from .venv, then environment.yml
    python tools/lock.py --env-only # environment.yml from the existing lock

tests/test_dependencies.py fails when the lock, environment.yml and
pyproject.toml disagree.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
ENV = ROOT / "environment.yml"
LOCK_HEADER = """# Exact versions CI tests (Python 3.11, CPU). Regenerate with `python tools/lock.py`;
# pyproject.toml keeps loose ranges, environment.yml repeats these pins (a test checks all three agree).
"""
ENV_HEADER = """# Binder / conda environment: Python 3.11, CPU-only PyTorch, the versions CI tests
# (generated from requirements/lock.txt by `python tools/lock.py --env-only`; do not edit by hand).
name: nn-course
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
      - --extra-index-url https://download.pytorch.org/whl/cpu
"""


def read_lock(path: Path = LOCK) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    return pins


def write_lock(python: str) -> None:
    frozen = subprocess.run([python, "-m", "pip", "freeze", "--exclude-editable"], check=True, capture_output=True, text=True).stdout
    lines = []
    for line in frozen.splitlines():
        if "==" not in line or line.lower().startswith("course-lib"):
            continue
        name, _, version = line.partition("==")
        lines.append(f"{name}=={version.split('+')[0]}")  # 2.13.0+cpu -> 2.13.0
    LOCK.write_text(LOCK_HEADER + "\n".join(sorted(lines, key=str.lower)) + "\n")


def write_env() -> None:
    pins = read_lock()
    body = "".join(f"      - {name}=={version}\n" for name, version in sorted(pins.items()))
    ENV.write_text(ENV_HEADER + body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-only", action="store_true", help="only regenerate environment.yml from the lock")
    parser.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"), help="interpreter whose packages to lock")
    args = parser.parse_args()
    if not args.env_only:
        write_lock(args.python)
    write_env()
    print(f"wrote {LOCK.relative_to(ROOT)} and {ENV.relative_to(ROOT)}" if not args.env_only else f"wrote {ENV.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
