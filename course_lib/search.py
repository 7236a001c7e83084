"""Semantic search over text the course itself wrote (chapter 17).

The passages are the entries of ``docs/glossary.md`` (one per term: ``"term: meaning"``) and the
bullet points of the "Summary" section of every lecture ``notebooks/NN_*.py``, each with its
source (file and chapter). An *encoder* turns texts into unit vectors, e.g.
:class:`course_lib.minilm.SentenceEncoder`'s ``encode``; any callable
``encode(list[str]) -> Tensor (N, E)`` works, so the search can be tested without the model.

Retrieval is written plainly:

* :func:`cosine_similarity` — ``S[i, j] = a_i · b_j / (‖a_i‖ ‖b_j‖)`` for ``a`` (N, E), ``b`` (M, E);
* :func:`top_k` — the indices of the ``k`` largest scores, best first, ties by position;
* :class:`SearchIndex` — the passages' embeddings (P, E), computed once, and
  :meth:`SearchIndex.search` ``(query, k) -> [(score, text, source), ...]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

Encoder = Callable[[List[str]], Tensor]
Hit = Tuple[float, str, str]


@dataclass(frozen=True)
class Passage:
    """One searchable text and where it comes from (e.g. ``"docs/glossary.md · 11 · Attention"``)."""

    text: str
    source: str


def course_root() -> Path:
    """The repository folder holding ``docs/`` and ``notebooks/`` (the parent of ``course_lib``).

    The environment variable ``COURSE_ROOT``, when set, names it instead (chapter 17's Colab cell sets it
    to a clone). Raises ``FileNotFoundError`` when they are absent (``course_lib`` installed without the
    repository, as on Colab): clone the repository and set ``COURSE_ROOT`` or pass ``root=`` to
    :func:`course_passages`.
    """
    import os

    env = os.environ.get("COURSE_ROOT")
    root = Path(env) if env else Path(__file__).resolve().parents[1]
    if not (root / "docs" / "glossary.md").is_file() or not (root / "notebooks").is_dir():
        raise FileNotFoundError(
            f"course_root: expected docs/glossary.md and notebooks/ in {root}, found neither or one; "
            "course_lib is installed without the course repository: clone it and set COURSE_ROOT=<its folder> "
            "or pass root=<its folder>")
    return root


_CELL = re.compile(r"<[^>]+>")


def _plain(text: str) -> str:
    """Markdown to plain text: drop ``**``, backticks, HTML tags and repeated spaces."""
    text = _CELL.sub("", text).replace("**", "").replace("`", "")
    return re.sub(r"\s+", " ", text).strip()


def glossary_passages(path: Union[str, Path]) -> List[Passage]:
    """One passage per glossary row ``| English | 中文 | Meaning |``: text ``"English: Meaning"``
    (the model reads English; the Chinese name stays in the glossary), source
    ``"docs/glossary.md · <chapter heading>"``. The header and ``|---|`` rows are skipped."""
    chapter, out = "", []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            chapter = line[3:].strip()
        elif line.startswith("|") and not line.startswith("|-") and not line.startswith("| English"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 3 and cells[0] and cells[-1]:
                out.append(Passage(f"{_plain(cells[0])}: {_plain(cells[-1])}",
                                   f"docs/glossary.md · {chapter}" if chapter else "docs/glossary.md"))
    return out


def summary_passages(path: Union[str, Path]) -> List[Passage]:
    """One passage per bullet (``*`` or ``-``) of the ``## Summary`` markdown section of a py:percent lecture
    (continuation lines joined), source ``"notebooks/<file> · Summary"``."""
    path = Path(path)
    bullets: List[str] = []
    inside = open_bullet = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# ## "):
            inside, open_bullet = line.strip() == "# ## Summary", False
            continue
        if not inside or not line.startswith("#"):      # a code cell ends the markdown cell
            inside = open_bullet = False
            continue
        body = line[1:].strip()
        if body.startswith(("* ", "- ")):
            bullets.append(body[2:])
            open_bullet = True
        elif body and open_bullet:
            bullets[-1] += " " + body
        else:                                           # a blank line or a paragraph closes it
            open_bullet = False
    return [Passage(_plain(b), f"notebooks/{path.name} · Summary") for b in bullets if _plain(b)]


def course_passages(root: Optional[Union[str, Path]] = None,
                    summaries: Optional[Sequence[int]] = None) -> List[Passage]:
    """The glossary entries and the summary bullets of the lectures ``notebooks/[0-9][0-9]_*.py``,
    in file order: of every lecture, or only of the chapters numbered in ``summaries`` (e.g.
    ``(11, 12, 13)``; ``()`` for the glossary alone). ``root`` defaults to :func:`course_root`."""
    root = course_root() if root is None else Path(root)
    glossary = root / "docs" / "glossary.md"
    if not glossary.is_file():
        raise FileNotFoundError(f"course_passages: expected {glossary} to exist, it does not")
    if summaries is not None and (isinstance(summaries, (str, bytes))
                                  or not all(isinstance(c, int) and not isinstance(c, bool) for c in summaries)):
        raise TypeError(f"course_passages: expected summaries as chapter numbers (ints) or None, got {summaries!r}")
    passages = glossary_passages(glossary)
    for nb in sorted((root / "notebooks").glob("[0-9][0-9]_*.py")):
        if summaries is None or int(nb.name[:2]) in summaries:
            passages += summary_passages(nb)
    return passages


def _matrix(name: str, x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name}: expected a 2-d tensor (rows, E), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    return x


def cosine_similarity(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """``S = (a / ‖a‖) (b / ‖b‖)ᵀ``: ``a`` (N, E), ``b`` (M, E) -> (N, M).

    Each row norm is clamped at ``eps`` from below, as in ``F.cosine_similarity``, so a zero row
    gives similarity 0 instead of NaN."""
    _matrix("cosine_similarity(a)", a)
    _matrix("cosine_similarity(b)", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"cosine_similarity: expected a and b with the same width E, got {a.shape[1]} and {b.shape[1]}")
    a = a / a.norm(dim=1, keepdim=True).clamp_min(eps)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(eps)
    return a @ b.T


def top_k(scores: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` largest of ``scores`` (P,), best first; equal scores keep their order
    (stable sort). ``k`` larger than P returns all P. NaN scores are refused."""
    if not isinstance(scores, Tensor) or scores.dim() != 1:
        raise ValueError(f"top_k: expected scores as a 1-d tensor (P,), got "
                         f"{tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k: expected k as an int >= 1, got {k!r}")
    if scores.is_floating_point() and bool(scores.isnan().any()):
        raise ValueError("top_k: expected scores without NaN, got NaN")
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[:k]


class SearchIndex:
    """Passages embedded once; :meth:`search` ranks them by cosine similarity to a query.

    ``encode(list[str]) -> (N, E)``; ``embeddings`` is (P, E) float32, one row per passage. The
    passages are encoded in order of length, ``batch_size`` at a time (16: on one CPU thread,
    batches of 32 long passages were ~1.5x slower per token than 16, the (B, h, T, T) attention
    weights no longer fitting in cache).
    """

    def __init__(self, encode: Encoder, passages: Sequence[Passage], batch_size: int = 16) -> None:
        if not callable(encode):
            raise TypeError(f"SearchIndex: expected encode to be callable, got {type(encode).__name__}")
        passages = list(passages)
        if not passages or not all(isinstance(p, Passage) for p in passages):
            raise ValueError("SearchIndex: expected a non-empty sequence of Passage, got "
                             f"{len(passages)} items of types {sorted({type(p).__name__ for p in passages})}")
        self.encode, self.passages = encode, passages
        # encode in order of length: batches of similar lengths carry little padding
        order = sorted(range(len(passages)), key=lambda i: len(passages[i].text))
        rows: List[Tensor] = []
        for s in range(0, len(order), batch_size):
            rows.append(self._encode([passages[i].text for i in order[s:s + batch_size]]))
        emb = torch.cat(rows).float()
        self.embeddings = torch.empty_like(emb)
        self.embeddings[torch.tensor(order)] = emb

    def _encode(self, texts: List[str]) -> Tensor:
        out = self.encode(texts)
        out = torch.as_tensor(out)
        if out.dim() != 2 or out.shape[0] != len(texts):
            raise ValueError(f"SearchIndex: encode should return ({len(texts)}, E), got shape {tuple(out.shape)}")
        return out

    def __len__(self) -> int:
        return len(self.passages)

    def scores(self, query: str) -> Tensor:
        """Cosine similarity of ``query`` to every passage: (P,)."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"SearchIndex.search: expected a non-empty str query, got {query!r}")
        q = self._encode([query]).float()
        return cosine_similarity(q, self.embeddings)[0]

    def search(self, query: str, k: int = 5) -> List[Hit]:
        """The ``k`` passages most similar to ``query``: ``[(score, text, source), ...]``, best first."""
        scores = self.scores(query)
        return [(float(scores[i]), self.passages[i].text, self.passages[i].source) for i in top_k(scores, k).tolist()]


_DEFAULT: List[SearchIndex] = []


def default_index() -> SearchIndex:
    """The course's passages embedded with the MiniLM encoder (built on first use, then kept)."""
    if not _DEFAULT:
        from course_lib.minilm import SentenceEncoder

        encoder = SentenceEncoder.load()
        _DEFAULT.append(SearchIndex(encoder.encode, course_passages()))
    return _DEFAULT[0]


def search(query: str, k: int = 5, index: Optional[SearchIndex] = None) -> List[Hit]:
    """``[(score, text, source), ...]``: the ``k`` course passages closest to ``query`` (best first),
    in ``index`` or the :func:`default_index`."""
    return (default_index() if index is None else index).search(query, k)
