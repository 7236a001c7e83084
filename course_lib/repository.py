"""Where the course lives: one setting names the repository, everything else follows.

The repository's address is ``[project.urls] Repository`` in ``pyproject.toml``
(and the branch that badges point at is ``[tool.course] branch``, default
``main``). Colab and Binder badges, the setup cell that installs ``course_lib``
on Colab, and the links in ``README.md`` and ``docs/`` are generated from it:
:func:`stamp_text` rewrites every such link in a text, whatever repository it
named before, and :func:`stamp` does so for every file that carries them.
``course sync`` runs it before it regenerates the ``.ipynb`` files, so a fork
changes one line of ``pyproject.toml`` and runs ``make notebooks``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Union

from course_lib.notebook_files import NOTEBOOK_DIRS, write_atomic

PathLike = Union[str, Path]

_GITHUB = re.compile(r"^https://github\.com/(?P<owner>[A-Za-z0-9_.-]+)/(?P<name>[A-Za-z0-9_.-]+?)(?:\.git)?/?$")
# the three kinds of links, each with the owner/name (and branch) they name
_COLAB = re.compile(r"https://colab\.research\.google\.com/github/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/blob/[A-Za-z0-9_./-]+?/"
                    r"(?=(?:notebooks|solutions|exercises)/)")
_BINDER = re.compile(r"https://mybinder\.org/v2/gh/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+?(?=[?)\s\"'])")
_PIP = re.compile(r"git\+https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?(?=[\"'\s@]|\.git)")


class RepositoryError(ValueError):
    """``pyproject.toml`` does not name a usable repository."""


@dataclass(frozen=True)
class Repository:
    """A GitHub repository and the branch the badges open: ``owner/name`` at ``branch``."""

    owner: str
    name: str
    branch: str = "main"

    @property
    def url(self) -> str:
        return f"https://github.com/{self.owner}/{self.name}"

    def colab(self, notebook: str) -> str:
        """The Colab address of ``notebook`` (a path such as ``notebooks/01_forward.ipynb``)."""
        return f"https://colab.research.google.com/github/{self.owner}/{self.name}/blob/{self.branch}/{notebook}"

    def binder(self, notebook: str) -> str:
        """The Binder address that opens ``notebook`` in JupyterLab."""
        return f"https://mybinder.org/v2/gh/{self.owner}/{self.name}/{self.branch}?urlpath=lab/tree/{notebook}"

    @property
    def pip(self) -> str:
        """What ``pip install`` takes to install ``course_lib`` from the repository."""
        return f"git+{self.url}"


def _read_toml(path: Path) -> dict:
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.9/3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(path.read_text(encoding="utf-8"))


def read(root: PathLike = ".") -> Repository:
    """The repository named in ``root/pyproject.toml``; :class:`RepositoryError` if it is
    missing or not a ``https://github.com/OWNER/NAME`` address (Colab opens GitHub only)."""
    path = Path(root) / "pyproject.toml"
    try:
        config = _read_toml(path)
    except FileNotFoundError:
        raise RepositoryError(f"repository.read: expected {path}, found no such file") from None
    url = config.get("project", {}).get("urls", {}).get("Repository")
    match = _GITHUB.match(url or "")
    if not match:
        raise RepositoryError(f"repository.read: expected [project.urls] Repository = \"https://github.com/OWNER/NAME\" "
                              f"in {path}, got {url!r}")
    branch = str(config.get("tool", {}).get("course", {}).get("branch", "main"))
    if not re.fullmatch(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*", branch):
        raise RepositoryError(f"repository.read: expected a branch name in [tool.course] branch, got {branch!r}")
    return Repository(match["owner"], match["name"], branch)


def stamp_text(text: str, repo: Repository) -> str:
    """``text`` with every Colab badge, Binder badge and ``pip install git+…`` address
    pointing at ``repo`` (the notebook paths after them are kept)."""
    text = _COLAB.sub(f"https://colab.research.google.com/github/{repo.owner}/{repo.name}/blob/{repo.branch}/", text)
    text = _BINDER.sub(f"https://mybinder.org/v2/gh/{repo.owner}/{repo.name}/{repo.branch}", text)
    return _PIP.sub(repo.pip, text)


def stamped_files(root: PathLike = ".") -> List[Path]:
    """The files that carry repository links: README.md, docs/*.md and the notebook
    sources in notebooks/ and solutions/ (exercises/ are generated from solutions/)."""
    root = Path(root)
    files = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    files += sorted(p for d in NOTEBOOK_DIRS if d != "exercises" for p in (root / d).glob("*.py"))
    return [p for p in files if p.exists()]


def stale(root: PathLike = ".") -> List[Path]:
    """The files whose links do not point at the configured repository."""
    repo = read(root)
    return [p for p in stamped_files(root) if stamp_text(p.read_text(encoding="utf-8"), repo) != p.read_text(encoding="utf-8")]


def stamp(root: PathLike = ".") -> List[Path]:
    """Point every link at the configured repository (atomic writes); return the files changed."""
    repo = read(root)
    changed = []
    for path in stamped_files(root):
        text = path.read_text(encoding="utf-8")
        new = stamp_text(text, repo)
        if new != text:
            write_atomic(path, new)
            changed.append(path)
    return changed
