"""One setting names the repository: pyproject's [project.urls] Repository. Every badge,
Binder link and Colab setup cell agrees with it, and a fork changes that one line."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import assign, repository
from course_lib.repository import Repository, RepositoryError

ROOT = Path(__file__).resolve().parents[1]
# the links that must name the course itself (other github.com links are citations)
LINK = re.compile(r"(?:https://colab\.research\.google\.com/github|https://mybinder\.org/v2/gh|git\+https://github\.com)/"
                  r"([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)")


def test_everything_points_at_the_configured_repository():
    repo = repository.read(ROOT)
    assert repository.stale(ROOT) == [], "run `course links` (or `make notebooks`)"
    for path in repository.stamped_files(ROOT) + sorted((ROOT / "exercises").glob("*.py")):
        for owner_name in LINK.findall(path.read_text(encoding="utf-8")):
            assert owner_name == f"{repo.owner}/{repo.name}", f"{path.name} links to {owner_name}"


def test_readme_opens_every_lecture_on_colab_and_binder():
    repo = repository.read(ROOT)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        path = f"notebooks/{nb.name}"
        assert repo.colab(path) in readme and repo.binder(path) in readme, f"README lacks the badges of {path}"


def _fork(tmp_path: Path, url: str, branch: str | None = None) -> Path:
    """A copy of the course's linked files with pyproject naming ``url``."""
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("docs", "notebooks", "solutions"):
        (tmp_path / folder).mkdir()
        for p in (ROOT / folder).iterdir():
            if p.suffix in (".py", ".md"):
                shutil.copy(p, tmp_path / folder / p.name)
    (tmp_path / "exercises").mkdir()
    toml = (tmp_path / "pyproject.toml").read_text()
    toml = re.sub(r'Repository = "[^"]*"', f'Repository = "{url}"', toml)
    if branch:
        toml += f'\n[tool.course]\nbranch = "{branch}"\n'
    (tmp_path / "pyproject.toml").write_text(toml)
    return tmp_path


def test_a_fork_changes_one_line_and_every_link_follows(tmp_path):
    original = repository.read(ROOT)
    root = _fork(tmp_path, "https://github.com/a-teacher/dl-course-2027", branch="spring")
    fork = repository.read(root)
    assert fork == Repository("a-teacher", "dl-course-2027", "spring")
    assert len(repository.stale(root)) >= 10
    changed = repository.stamp(root)
    assert len(changed) >= 10 and repository.stale(root) == [] and repository.stamp(root) == []  # idempotent
    assign.assign(root)  # student sheets inherit the links of the solution sheets
    for path in repository.stamped_files(root) + sorted((root / "exercises").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert f"{original.owner}/{original.name}" not in text, path.name
    lecture = (root / "notebooks" / "01_forward.py").read_text()
    assert fork.colab("notebooks/01_forward.ipynb") in lecture
    assert f'"install --quiet {fork.pip}"' in lecture
    readme = (root / "README.md").read_text()
    assert fork.binder("notebooks/07_cnn.ipynb") in readme
    assert "https://colab.research.google.com/assets/colab-badge.svg" in readme  # badge images untouched


def test_stamp_text_keeps_paths_and_leaves_other_links_alone():
    repo = Repository("me", "mine", "dev")
    text = ('[x](https://colab.research.google.com/github/old/name/blob/main/solutions/02_losses.ipynb) '
            '[b](https://mybinder.org/v2/gh/old/name/main?urlpath=lab/tree/notebooks/00_how_to_use.ipynb) '
            '"install --quiet git+https://github.com/old/name" https://github.com/pytorch/pytorch/issues/1')
    out = repository.stamp_text(text, repo)
    assert "https://colab.research.google.com/github/me/mine/blob/dev/solutions/02_losses.ipynb" in out
    assert "https://mybinder.org/v2/gh/me/mine/dev?urlpath=lab/tree/notebooks/00_how_to_use.ipynb" in out
    assert '"install --quiet git+https://github.com/me/mine"' in out
    assert "https://github.com/pytorch/pytorch/issues/1" in out and "old/name" not in out


@pytest.mark.parametrize("url", ["https://gitlab.com/a/b", "github.com/a/b", "", "https://github.com/a"])
def test_a_repository_colab_cannot_open_is_refused_clearly(tmp_path, url):
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "x"\n[project.urls]\nRepository = "{url}"\n')
    with pytest.raises(RepositoryError, match=r"repository.read: expected \[project.urls\] Repository"):
        repository.read(tmp_path)
    with pytest.raises(RepositoryError, match="found no such file"):
        repository.read(tmp_path / "missing")


def test_cli_links_check_and_write(tmp_path):
    def course(*args):
        return subprocess.run([sys.executable, "-m", "course_lib.cli", "links", *args], capture_output=True, text=True)

    assert course("--help").returncode == 0
    assert course("--check", "--root", str(ROOT)).returncode == 0
    root = _fork(tmp_path, "https://github.com/a-teacher/course")
    stale = course("--check", "--root", str(root))
    assert stale.returncode == 1 and "stale:" in stale.stdout and "run `course links`" in stale.stderr
    wrote = course("--root", str(root))
    assert wrote.returncode == 0 and "https://github.com/a-teacher/course" in wrote.stdout
    assert course("--check", "--root", str(root)).returncode == 0
    (root / "pyproject.toml").write_text('[project.urls]\nRepository = "nope"\n')
    assert course("--root", str(root)).returncode == 2
