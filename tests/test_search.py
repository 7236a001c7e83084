"""course_lib.search: cosine similarity and top-k against PyTorch, the passages of the course, the index."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from course_lib import search


def _pair(seed: int, n: int, m: int, e: int):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, e, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(m, e, generator=g, dtype=torch.float64, requires_grad=True))


@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.integers(1, 5), st.integers(1, 6))
def test_cosine_matches_torch_forward_and_backward(seed, n, m, e):
    a, b = _pair(seed, n, m, e)
    ours = search.cosine_similarity(a, b)
    ref = F.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1)
    assert ours.shape == (n, m)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    w = torch.randn(n, m, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    ga = torch.autograd.grad((ours * w).sum(), (a, b))
    gr = torch.autograd.grad((ref * w).sum(), (a, b))
    for x, y in zip(ga, gr):
        torch.testing.assert_close(x, y, atol=1e-12, rtol=0)


def test_cosine_zero_row_and_special_values_like_torch():
    a = torch.tensor([[0.0, 0.0], [1.0, 2.0], [math.nan, 1.0]], dtype=torch.float64)
    b = torch.tensor([[3.0, -1.0], [0.0, 0.0]], dtype=torch.float64)
    ours = search.cosine_similarity(a, b)
    ref = F.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1)
    torch.testing.assert_close(ours, ref, equal_nan=True)
    assert ours[0].tolist() == [0.0, 0.0]     # a zero vector: 0, not NaN
    assert ours[2].isnan().all()               # NaN propagates as in the reference


def test_cosine_refuses_bad_input():
    with pytest.raises(ValueError, match=r"cosine_similarity: expected a and b with the same width E, got 3 and 2"):
        search.cosine_similarity(torch.ones(2, 3), torch.ones(2, 2))
    with pytest.raises(ValueError, match=r"cosine_similarity\(a\): expected a 2-d tensor.*got shape \(3,\)"):
        search.cosine_similarity(torch.ones(3), torch.ones(2, 3))
    with pytest.raises(TypeError, match=r"cosine_similarity\(b\): expected a floating-point tensor, got dtype torch.int64"):
        search.cosine_similarity(torch.ones(2, 3), torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"cosine_similarity\(a\): expected a torch.Tensor, got list"):
        search.cosine_similarity([[1.0]], torch.ones(1, 1))


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=12, unique=True), st.integers(1, 15))
def test_top_k_matches_torch_topk(values, k):
    scores = torch.tensor(values, dtype=torch.float64)
    ours = search.top_k(scores, k)
    ref = torch.topk(scores, min(k, len(values)))
    assert ours.tolist() == ref.indices.tolist()


def test_top_k_ties_keep_order_and_refusals():
    assert search.top_k(torch.tensor([1.0, 3.0, 3.0, 1.0, -math.inf, math.inf]), 4).tolist() == [5, 1, 2, 0]
    assert search.top_k(torch.tensor([2, 7, 7]), 2).tolist() == [1, 2]       # integers are fine
    with pytest.raises(ValueError, match=r"top_k: expected k as an int >= 1, got 0"):
        search.top_k(torch.ones(3), 0)
    with pytest.raises(ValueError, match=r"top_k: expected scores without NaN"):
        search.top_k(torch.tensor([1.0, math.nan]), 1)
    with pytest.raises(ValueError, match=r"top_k: expected scores as a 1-d tensor \(P,\), got \(2, 2\)"):
        search.top_k(torch.ones(2, 2), 1)


def test_passages_from_glossary_and_summaries(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "docs" / "glossary.md").write_text(
        "# Glossary\n\n## 11 · Attention\n\n| English | 中文 | Meaning |\n|---|---|---|\n"
        "| query | 查询 | the vector a position **asks** with |\n| key | 键 | what `a position` offers |\n",
        encoding="utf-8")
    (tmp_path / "notebooks" / "11_attention.py").write_text(
        "# %% [markdown]\n# ## 2. Not a summary\n#\n# * not this\n\n# %% [markdown]\n# ## Summary\n#\n"
        "# * First bullet,\n#   continued.\n# - Second bullet.\n#\n# A closing paragraph.\n#\n# ## Exercises\n#\n"
        "# * not this either\n\n# %%\nprint(1)\n", encoding="utf-8")
    ps = search.course_passages(tmp_path)
    assert [(p.text, p.source) for p in ps] == [
        ("query: the vector a position asks with", "docs/glossary.md · 11 · Attention"),
        ("key: what a position offers", "docs/glossary.md · 11 · Attention"),
        ("First bullet, continued.", "notebooks/11_attention.py · Summary"),
        ("Second bullet.", "notebooks/11_attention.py · Summary"),
    ]
    assert [p.source for p in search.course_passages(tmp_path, summaries=())] == ["docs/glossary.md · 11 · Attention"] * 2
    assert len(search.course_passages(tmp_path, summaries=[11])) == 4
    assert len(search.course_passages(tmp_path, summaries=[12])) == 2
    with pytest.raises(TypeError, match="course_passages: expected summaries as chapter numbers"):
        search.course_passages(tmp_path, summaries="11")
    with pytest.raises(FileNotFoundError, match="course_passages: expected .*glossary.md to exist"):
        search.course_passages(tmp_path / "nowhere")


def test_course_root_env_names_a_clone(tmp_path, monkeypatch):
    """COURSE_ROOT (set by chapter 17's Colab cell) replaces the folder beside course_lib."""
    monkeypatch.setenv("COURSE_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="course_root: expected docs/glossary.md and notebooks/ in .*COURSE_ROOT"):
        search.course_root()
    (tmp_path / "docs").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "docs" / "glossary.md").write_text("| query | 查询 | what a position asks with |\n", encoding="utf-8")
    assert search.course_root() == tmp_path
    assert [p.text for p in search.course_passages()] == ["query: what a position asks with"]


def test_the_course_has_passages_from_every_lecture():
    ps = search.course_passages()
    sources = {p.source for p in ps}
    assert sum(p.source.startswith("docs/glossary.md") for p in ps) >= 100
    assert {f"notebooks/{n}.py · Summary" for n in ("01_forward", "11_attention", "13_gpt")} <= sources
    assert all(p.text and "**" not in p.text and "<" + "a href" not in p.text for p in ps)
    assert len(sources) >= 15   # the glossary chapters and 14 lectures at least


def _bag_of_words(texts):
    """A stand-in encoder: counts of 64 hashed lower-case words (deterministic, no model)."""
    out = torch.zeros(len(texts), 64)
    for i, t in enumerate(texts):
        for w in t.lower().replace(":", " ").replace(".", " ").split():
            out[i, sum(map(ord, w)) % 64] += 1.0
    return out


def test_index_ranks_the_passage_itself_first_and_matches_a_brute_force_ranking():
    ps = [search.Passage(t, f"s{i}") for i, t in enumerate(
        ["layer norm: normalise each row", "attention weights sum to one", "a convolution slides a kernel",
         "dropout zeroes random units", "the kernel of a convolution is learned"])]
    index = search.SearchIndex(_bag_of_words, ps, batch_size=2)
    assert index.embeddings.shape == (5, 64) and len(index) == 5
    hits = index.search("a convolution slides a kernel", k=3)
    assert hits[0][1:] == ("a convolution slides a kernel", "s2") and hits[0][0] == pytest.approx(1.0)
    q = _bag_of_words(["the kernel of a convolution"])[0]
    brute = sorted(((float(F.cosine_similarity(q, _bag_of_words([p.text])[0], dim=0)), p.text, p.source) for p in ps),
                   key=lambda h: -h[0])
    got = index.search("the kernel of a convolution", k=5)
    assert [h[1] for h in got] == [h[1] for h in brute]
    assert [h[0] for h in got] == pytest.approx([h[0] for h in brute], abs=1e-6)
    assert len(index.search("dropout", k=50)) == 5
    with pytest.raises(ValueError, match=r"SearchIndex.search: expected a non-empty str query, got ''"):
        index.search("", k=1)
    with pytest.raises(ValueError, match=r"SearchIndex: expected a non-empty sequence of Passage"):
        search.SearchIndex(_bag_of_words, [])
    with pytest.raises(ValueError, match=r"SearchIndex: encode should return \(1, E\), got shape \(64,\)"):
        search.SearchIndex(lambda texts: torch.ones(64), ps[:1])
