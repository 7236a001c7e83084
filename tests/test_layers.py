"""course_lib.layers against PyTorch: forward and backward, float64, random shapes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import layers as L
from course_lib.validate import ShapeError

ATOL = 1e-12
sizes = st.integers(min_value=1, max_value=7)
seeds = st.integers(min_value=0, max_value=2**31 - 1)
shapes = st.lists(sizes, min_size=1, max_size=4).map(tuple)


def randn(*shape: int, gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale


def close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL, rtol: float = 1e-10) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


def torch_grads(f, inputs, dy):
    """Forward with autograd; returns (output, grads wrt inputs) for upstream gradient dy."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = f(*leaves)
    grads = torch.autograd.grad(out, leaves, grad_outputs=dy)
    return out.detach(), grads


# --- linear -----------------------------------------------------------------------------
@given(n=sizes, d_in=sizes, d_out=sizes, seed=seeds, bias=st.booleans())
def test_linear_forward_backward_match_torch(n, d_in, d_out, seed, bias):
    g = torch.Generator().manual_seed(seed)
    x, W, b = randn(n, d_in, gen=g), randn(d_out, d_in, gen=g), randn(d_out, gen=g)
    dy = randn(n, d_out, gen=g)
    if bias:
        ref, (gx, gW, gb) = torch_grads(torch.nn.functional.linear, [x, W, b], dy)
        close(L.linear_forward(x, W, b), ref)
    else:
        ref, (gx, gW) = torch_grads(torch.nn.functional.linear, [x, W], dy)
        close(L.linear_forward(x, W), ref)
        close(L.linear_forward(x, W, None), ref)
        gb = dy.sum(0)
    dx, dW, db = L.linear_backward(dy, x, W)
    close(dx, gx)
    close(dW, gW)
    close(db, gb)


def test_linear_matches_nn_linear_module():
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(3, 2).double()
    x = randn(5, 3, gen=g)
    close(L.linear_forward(x, lin.weight.detach(), lin.bias.detach()), lin(x).detach())


def test_linear_known_values():
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    W = torch.tensor([[1.0, 0.0], [0.5, -1.0], [2.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64)
    close(L.linear_forward(x, W, b), torch.tensor([[1.0, -0.5, 7.0]], dtype=torch.float64))


# --- elementwise activations --------------------------------------------------------------
ACTS = [
    (L.relu, lambda dy, x, y: L.relu_backward(dy, x), torch.relu),
    (L.sigmoid, lambda dy, x, y: L.sigmoid_backward(dy, y), torch.sigmoid),
    (L.tanh, lambda dy, x, y: L.tanh_backward(dy, y), torch.tanh),
]


@pytest.mark.parametrize("ours, ours_back, ref_fn", ACTS, ids=["relu", "sigmoid", "tanh"])
@given(shape=shapes, seed=seeds, scale=st.sampled_from([1e-6, 1.0, 5.0, 40.0]))
def test_activation_forward_backward_match_torch(ours, ours_back, ref_fn, shape, seed, scale):
    g = torch.Generator().manual_seed(seed)
    x, dy = randn(*shape, gen=g, scale=scale), randn(*shape, gen=g)
    ref, (gx,) = torch_grads(ref_fn, [x], dy)
    y = ours(x)
    close(y, ref, atol=1e-15, rtol=1e-13)
    close(ours_back(dy, x, y), gx, atol=1e-14, rtol=1e-12)


@pytest.mark.parametrize("ours, ref_fn", [(L.relu, torch.relu), (L.sigmoid, torch.sigmoid), (L.tanh, torch.tanh)])
def test_activation_extremes_are_finite(ours, ref_fn):
    x = torch.tensor([-1e300, -1000.0, -710.0, -40.0, -1e-300, 0.0, 1e-300, 40.0, 710.0, 1000.0, 1e300], dtype=torch.float64)
    y = ours(x)
    assert torch.isfinite(y).all()
    close(y, ref_fn(x), atol=1e-300, rtol=1e-14)


def test_relu_backward_is_zero_at_zero_like_torch():
    x = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    dy = torch.ones(3, dtype=torch.float64)
    _, (gx,) = torch_grads(torch.relu, [x], dy)
    close(L.relu_backward(dy, x), gx)
    assert L.relu_backward(dy, x).tolist() == [0.0, 0.0, 1.0]


def test_activations_keep_float32():
    x = torch.randn(4, 3)
    for f in (L.relu, L.sigmoid, L.tanh, L.softmax, L.log_softmax):
        assert f(x).dtype == torch.float32


# --- softmax and log-softmax -----------------------------------------------------------------
@given(shape=shapes, seed=seeds, scale=st.sampled_from([1.0, 10.0, 1000.0]), data=st.data())
def test_softmax_forward_backward_match_torch(shape, seed, scale, data):
    dim = data.draw(st.integers(min_value=-len(shape), max_value=len(shape) - 1), label="dim")
    g = torch.Generator().manual_seed(seed)
    x, dy = randn(*shape, gen=g, scale=scale), randn(*shape, gen=g)
    ref, (gx,) = torch_grads(lambda t: torch.softmax(t, dim), [x], dy)
    y = L.softmax(x, dim=dim)
    assert torch.isfinite(y).all()
    close(y, ref, atol=1e-14)
    close(L.softmax_backward(dy, y, dim=dim), gx, atol=1e-13)


@given(shape=shapes, seed=seeds, scale=st.sampled_from([1.0, 10.0, 1000.0]), data=st.data())
def test_log_softmax_forward_backward_match_torch(shape, seed, scale, data):
    dim = data.draw(st.integers(min_value=-len(shape), max_value=len(shape) - 1), label="dim")
    g = torch.Generator().manual_seed(seed)
    x, dy = randn(*shape, gen=g, scale=scale), randn(*shape, gen=g)
    ref, (gx,) = torch_grads(lambda t: torch.log_softmax(t, dim), [x], dy)
    y = L.log_softmax(x, dim=dim)
    assert torch.isfinite(y).all()
    close(y, ref, atol=1e-12 * scale)
    close(L.log_softmax_backward(dy, y, dim=dim), gx, atol=1e-13)
    close(L.logsumexp(x, dim=dim), torch.logsumexp(x, dim=dim), atol=1e-12 * scale)


def test_softmax_of_huge_logits_is_finite_and_exact():
    x = torch.tensor([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0, 999.0]], dtype=torch.float64)
    y, ly = L.softmax(x), L.log_softmax(x)
    assert torch.isfinite(y).all() and torch.isfinite(ly).all()
    close(y, torch.softmax(x, -1), atol=1e-15)
    close(ly, torch.log_softmax(x, -1), atol=1e-12)
    close(y.sum(-1), torch.ones(3, dtype=torch.float64))
    # the naive formula overflows on exactly these logits: the test would notice a regression
    naive = torch.exp(x) / torch.exp(x).sum(-1, keepdim=True)
    assert torch.isnan(naive).any()


def test_softmax_is_shift_invariant():
    g = torch.Generator().manual_seed(3)
    x = randn(4, 5, gen=g)
    close(L.softmax(x + 123.0), L.softmax(x), atol=1e-14)


# --- MLP -------------------------------------------------------------------------------------
@given(
    layer_sizes=st.lists(sizes, min_size=2, max_size=5),
    n=sizes,
    seed=seeds,
    activation=st.sampled_from(L.ACTIVATIONS),
)
def test_mlp_forward_matches_nn_sequential(layer_sizes, n, seed, activation):
    g = torch.Generator().manual_seed(seed)
    params = L.init_mlp(layer_sizes, generator=g)
    x = randn(n, layer_sizes[0], gen=g)
    modules = []
    act_module = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh}[activation]
    for i, (W, b) in enumerate(params):
        lin = torch.nn.Linear(W.shape[1], W.shape[0]).double()
        with torch.no_grad():
            lin.weight.copy_(W)
            lin.bias.copy_(b)
        modules.append(lin)
        if i < len(params) - 1:
            modules.append(act_module())
    net = torch.nn.Sequential(*modules)
    outs = L.mlp_forward(x, params, activation=activation)
    assert len(outs) == 2 * len(params)
    assert outs[0] is x
    # every intermediate equals the output of the matching prefix of nn.Sequential
    for k in range(1, len(outs)):
        close(outs[k], net[:k](x).detach(), atol=1e-13)
    assert [tuple(o.shape) for o in outs[1::2]] == [(n, d) for d in layer_sizes[1:]]


def test_init_mlp_shapes_bounds_and_reproducibility():
    params = L.init_mlp([4, 16, 3], generator=torch.Generator().manual_seed(0))
    assert [(tuple(W.shape), tuple(b.shape)) for W, b in params] == [((16, 4), (16,)), ((3, 16), (3,))]
    for (W, b), fan_in in zip(params, [4, 16]):
        assert W.dtype == torch.float64
        bound = fan_in**-0.5
        assert W.abs().max() <= bound and b.abs().max() <= bound
        assert W.abs().max() > 0.5 * bound  # actually spread over the range
    again = L.init_mlp([4, 16, 3], generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(W, W2) and torch.equal(b, b2) for (W, b), (W2, b2) in zip(params, again))
    assert L.init_mlp([2, 3], dtype=torch.float32)[0][0].dtype == torch.float32
    with pytest.raises(ValueError):
        L.init_mlp([3])


# --- bad input ---------------------------------------------------------------------------------
def test_linear_forward_wrong_shapes_raise_named_errors():
    x = torch.zeros(5, 3, dtype=torch.float64)
    with pytest.raises(ShapeError, match=r"linear_forward: W should have shape \(D_out, D_in\), got \(3, 4\)"):
        L.linear_forward(x, torch.zeros(3, 4, dtype=torch.float64))
    with pytest.raises(ShapeError, match=r"linear_forward: x should have 2 dimension\(s\).*got 1: shape \(3,\)"):
        L.linear_forward(torch.zeros(3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ShapeError, match=r"linear_forward: b should have shape \(D_out,\), got \(3,\)"):
        L.linear_forward(x, torch.zeros(2, 3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ShapeError, match="linear_forward: x should be a floating-point tensor"):
        L.linear_forward(torch.zeros(5, 3, dtype=torch.long), torch.zeros(2, 3))
    with pytest.raises(ShapeError, match="linear_forward: all tensors should have the same dtype"):
        L.linear_forward(x, torch.zeros(2, 3, dtype=torch.float32))
    with pytest.raises(ShapeError, match="linear_forward: x should be a torch.Tensor, got list"):
        L.linear_forward([[1.0, 2.0, 3.0]], torch.zeros(2, 3))


def test_backward_and_softmax_bad_input():
    x, W = torch.zeros(5, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ShapeError, match=r"linear_backward: dy should have shape \(N, D_out\), got \(5, 3\)"):
        L.linear_backward(torch.zeros(5, 3, dtype=torch.float64), x, W)
    with pytest.raises(ShapeError, match=r"sigmoid_backward: dy and y should have the same shape, got \(2,\) and \(3,\)"):
        L.sigmoid_backward(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ShapeError, match=r"softmax: dim=2 is out of range for a tensor of shape \(2, 3\)"):
        L.softmax(torch.zeros(2, 3), dim=2)
    with pytest.raises(ShapeError, match="relu: x should be a floating-point tensor"):
        L.relu(torch.arange(3))


def test_mlp_forward_bad_input():
    params = L.init_mlp([3, 4, 2])
    with pytest.raises(ShapeError, match=r"mlp_forward: W_1 should have shape \(D_l, D_prev\), got \(4, 3\)"):
        L.mlp_forward(torch.zeros(5, 2, dtype=torch.float64), params)
    bad = [params[0], (params[1][0], torch.zeros(3, dtype=torch.float64))]
    with pytest.raises(ShapeError, match=r"mlp_forward: b_2 should have shape \(D_l,\), got \(3,\)"):
        L.mlp_forward(torch.zeros(5, 3, dtype=torch.float64), bad)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        L.mlp_forward(torch.zeros(5, 3, dtype=torch.float64), params, activation="gelu")
    with pytest.raises(ShapeError, match="at least one"):
        L.mlp_forward(torch.zeros(5, 3, dtype=torch.float64), [])


def test_import_does_not_load_matplotlib():
    import subprocess
    import sys

    code = "import sys, course_lib.layers; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
