"""The three dependency files agree: requirements/lock.txt (what CI tests),
environment.yml (Binder/conda) and pyproject.toml (loose ranges for Colab)."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import lock  # noqa: E402


def lock_pins() -> dict[str, str]:
    return {canonicalize_name(k): v for k, v in lock.read_lock(ROOT / "requirements" / "lock.txt").items()}


def env_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = {}
    for line in pip_section:
        if line.startswith("-"):
            continue
        name, _, version = line.partition("==")
        assert version, f"environment.yml: {line!r} is not pinned with =="
        pins[canonicalize_name(name)] = version
    return pins


def pyproject_requirements() -> list[Requirement]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = data["project"]["dependencies"] + [r for group in data["project"]["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in reqs]


def test_lock_pins_torch_cpu_build_version():
    assert lock_pins()["torch"] == "2.13.0"


def test_environment_yml_has_exactly_the_lock_pins():
    assert env_pins() == lock_pins()


def test_environment_yml_is_cpu_only_python_311():
    text = (ROOT / "environment.yml").read_text()
    assert "python=3.11" in text
    assert re.search(r"--extra-index-url \S+/whl/cpu", text), "environment.yml must take the CPU-only PyTorch build"


def test_every_pyproject_dependency_is_locked_within_its_range():
    pins = lock_pins()
    for req in pyproject_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements/lock.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"lock pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}"


def test_colab_keeps_its_own_torch_and_ipywidgets_7():
    reqs = {canonicalize_name(r.name): r for r in pyproject_requirements()}
    assert reqs["torch"].specifier.contains("2.5.1"), "pyproject must accept an older torch (Colab's)"
    assert reqs["ipywidgets"].specifier.contains("7.7.1"), "pyproject must accept ipywidgets 7.x (Colab's)"


def test_installed_versions_match_the_lock():
    from importlib.metadata import PackageNotFoundError, version

    wrong = []
    for name, pinned in lock_pins().items():
        try:
            got = version(name).split("+")[0]
        except PackageNotFoundError:
            wrong.append(f"{name} missing")
            continue
        if got != pinned:
            wrong.append(f"{name} {got} != {pinned}")
    assert not wrong, "environment differs from requirements/lock.txt: " + ", ".join(wrong)
