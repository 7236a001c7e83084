"""course_lib.position: the sinusoidal table against the paper's formula, RoPE against
torch.onnx.ops.rotary_embedding in both layouts (forward; backward against the inverse rotation), the relative-position
property of RoPE scores, the permutation between the layouts, errors, and the explorer."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import position
from course_lib.validate import ShapeError

DT = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)
onnx_ops = pytest.importorskip("torch.onnx.ops")


# --- sinusoidal ---------------------------------------------------------------------------------
@given(T=st.integers(0, 6), E=st.integers(1, 9), base=st.sampled_from([10.0, 100.0, 10000.0]))
def test_sinusoidal_matches_the_papers_formula(T, E, base):
    pe = position.sinusoidal_encoding(T, E, base=base, dtype=DT)
    assert pe.shape == (T, E) and pe.dtype == DT
    for p in range(T):
        for j in range(E):
            angle = p / base ** (2 * (j // 2) / E)
            want = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert abs(pe[p, j].item() - want) < 1e-12


def test_sinusoidal_dtype_and_errors():
    assert position.sinusoidal_encoding(3, 4).dtype == torch.float32
    with pytest.raises(ValueError, match="sinusoidal_encoding: E should be an int >= 1, got 0"):
        position.sinusoidal_encoding(3, 0)
    with pytest.raises(ValueError, match="sinusoidal_encoding: base should be a finite number > 1"):
        position.sinusoidal_encoding(3, 4, base=1.0)
    with pytest.raises(ShapeError, match="sinusoidal_encoding: dtype should be a floating dtype"):
        position.sinusoidal_encoding(3, 4, dtype=torch.int64)


# --- RoPE against ONNX's RotaryEmbedding ----------------------------------------------------------
@settings(max_examples=10)
@given(B=st.integers(1, 2), h=st.integers(1, 2), T=st.integers(1, 5), half=st.integers(1, 3),
       interleaved=st.booleans(), offset=st.integers(0, 7), seed=st.integers(0, 2**31 - 1))
def test_rope_matches_onnx_rotary_embedding_forward_and_backward(B, h, T, half, interleaved, offset, seed):
    d = 2 * half
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, h, T, d, generator=gen, dtype=DT, requires_grad=True)
    pos = torch.arange(offset, offset + T).expand(B, T)
    cos, sin = position.rope_angles(torch.arange(offset + T), d)  # caches (max_pos, d/2)
    ref = onnx_ops.rotary_embedding(x, cos, sin, pos, interleaved=interleaved)
    ours = position.rope(x, positions=pos[:, None, :], interleaved=interleaved)
    torch.testing.assert_close(ours, ref, **TOL)
    # the ONNX op has no autograd formula; RoPE is a rotation, so the gradient of <rope(x), up> is the
    # inverse rotation of up: the ONNX op with the sine negated
    up = torch.randn(ours.shape, generator=gen, dtype=DT)
    g, = torch.autograd.grad((ours * up).sum(), x)
    torch.testing.assert_close(g, onnx_ops.rotary_embedding(up, cos, -sin, pos, interleaved=interleaved), **TOL)


@given(m=st.integers(0, 50), n=st.integers(0, 50), shift=st.integers(0, 1000), interleaved=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_rope_scores_depend_only_on_the_offset(m, n, shift, interleaved, seed):
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 1, 8, generator=gen, dtype=DT)

    def score(a, b):
        qa = position.rope(q, torch.tensor([a]), interleaved=interleaved)
        kb = position.rope(k, torch.tensor([b]), interleaved=interleaved)
        return (qa * kb).sum().item()

    assert abs(score(m, n) - score(m + shift, n + shift)) < 1e-9 * (1 + abs(score(m, n)))


def test_rope_preserves_norms_and_position_zero_is_identity():
    x = torch.randn(3, 6, 4, dtype=DT)
    torch.testing.assert_close(position.rope(x).norm(dim=-1), x.norm(dim=-1), **TOL)
    torch.testing.assert_close(position.rope(x)[:, 0], x[:, 0], rtol=0, atol=0)


def test_layouts_differ_by_a_permutation():
    d = 6
    x = torch.randn(2, 5, d, dtype=DT)
    perm = position.interleave_permutation(d)
    inv = torch.argsort(perm)
    torch.testing.assert_close(position.rope(x[..., perm], interleaved=True)[..., inv], position.rope(x), **TOL)
    assert (position.rope(x, interleaved=True) - position.rope(x)).abs().max() > 1e-3  # not the same function


def test_rope_special_values_and_float32():
    x = torch.tensor([[[math.nan, 1.0], [math.inf, 0.0]]], dtype=DT)
    cos, sin = position.rope_angles(torch.arange(2), 2)
    ref = onnx_ops.rotary_embedding(x[None], cos, sin, torch.arange(2)[None])[0]
    torch.testing.assert_close(position.rope(x), ref, equal_nan=True, rtol=0, atol=0)
    x32 = torch.randn(4, 8)
    assert position.rope(x32).dtype == torch.float32


def test_rope_errors():
    with pytest.raises(ShapeError, match="rope: x should be a floating-point tensor, got dtype torch.int64"):
        position.rope(torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"rope: the last dim d of x should be even and > 0 .* got shape \(3, 5\)"):
        position.rope(torch.ones(3, 5))
    with pytest.raises(ShapeError, match=r"rope: x should have shape \(\.\.\., T, d\), got \(4,\)"):
        position.rope(torch.ones(4))
    with pytest.raises(ShapeError, match=r"rope: positions should have shape \(\.\.\., T\) with T=3"):
        position.rope(torch.ones(3, 4), positions=torch.arange(4))
    with pytest.raises(ShapeError, match="rope_angles: positions should be an integer or floating tensor"):
        position.rope(torch.ones(2, 4), positions=torch.ones(2, dtype=torch.bool))


def test_cosine_similarity_matrix():
    P = torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 2.0]], dtype=DT)
    S = position.cosine_similarity_matrix(P)
    assert S[0, 0] == 1 and S[1, 1] == 0 and abs(S[0, 2].item() - 1 / math.sqrt(2)) < 1e-15


# --- the explorer -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def explorer():
    from course_lib.widgets.position import PositionExplorer

    return PositionExplorer()


def test_explorer_every_control_redraws(explorer):
    assert "OK" in explorer.self_check()
    for encoding in ("sinusoidal", "RoPE", "learned"):
        explorer.set_state(encoding=encoding, base=10000.0, position=5)
        for name in ("position", "base", "encoding"):
            before = explorer.image.value
            explorer.step(name)
            if encoding == "learned" and name == "base":  # a learned table has no base: nothing to redraw
                assert explorer.image.value == before
            else:
                assert explorer.image.value != before, (encoding, name)
            if name == "base":
                explorer.controls["encoding"].value = encoding  # so that the next step leaves this encoding


def test_explorer_curves_depend_on_the_offset_only(explorer):
    """For sinusoidal and RoPE the similarity of m and n is a function of n - m (the lecture's claim)."""
    for encoding in ("sinusoidal", "RoPE"):
        S = explorer.similarity[encoding, 10000.0]
        for j in range(-5, 6):
            diag = torch.diagonal(S, offset=j)
            assert (diag - diag[0]).abs().max() < 1e-10
    with pytest.raises(ValueError, match="PositionExplorer: E should be an even int >= 2, got 5"):
        type(explorer)(E=5)

