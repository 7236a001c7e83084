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


def test_layers_module_imports_nothing_heavy():
    """Module-level imports of course_lib.layers (and of what it imports) are light:
    no matplotlib, no ipywidgets, no side effects at import time."""
    import ast
    import inspect

    from course_lib import validate

    for module in (L, validate):
        tree = ast.parse(inspect.getsource(module))
        names = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names.add((node.module or "").split(".")[0])
        assert names <= {"__future__", "typing", "torch", "course_lib"}, (module.__name__, names)


# --- the chapter's explorer (course_lib.widgets.forward) -----------------------------------------
@pytest.fixture(scope="module")
def explorer():
    from course_lib.widgets.forward import ForwardExplorer

    return ForwardExplorer()


def test_explorer_weights_solve_the_circle_task():
    from course_lib.widgets.forward import TRAINED_2432, circle_task

    x, y = circle_task(n=2000, seed=1)  # fresh points, not the ones it was fitted to
    for activation, pairs in TRAINED_2432.items():
        params = [(torch.tensor(W, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)) for W, b in pairs]
        accuracy = (L.mlp_forward(x, params, activation)[-1].argmax(dim=1) == y).double().mean()
        assert accuracy > 0.95, (activation, float(accuracy))


def test_explorer_shows_the_numbers_of_the_forward_pass(explorer):
    explorer.set_state(x1=-0.7, x2=1.2, activation="tanh", layer=1)
    W, b = explorer.params[0]
    x = torch.tensor([[-0.7, 1.2]], dtype=torch.float64)
    z = x @ W.T + b  # computed independently of course_lib
    torch.testing.assert_close(explorer.values[1], z)
    text = explorer.step_lines(1, "tanh")
    assert "W1: (4, 2)   x: (2,)   b1: (4,)   ->   z1: (4,)" in text
    for v in z[0].tolist() + torch.tanh(z[0]).tolist():
        assert f"[{v:+.2f}]" in text
    logits = explorer.values[-1][0]
    last = explorer.step_lines(3, "tanh")
    for v in torch.softmax(logits, dim=0).tolist():
        assert f"[{v:+.2f}]" in last


def test_explorer_cached_backgrounds_give_the_same_picture(explorer):
    explorer.set_state(x1=0.4, x2=-1.1, activation="sigmoid", layer=2)
    before = explorer.image.value
    for layer in (0, 1, 3):  # visit other layers (other cached backgrounds) and come back
        explorer.set_state(layer=layer)
    explorer.set_state(activation="relu")
    explorer.set_state(activation="sigmoid", layer=2)
    assert explorer.image.value == before
    explorer._backgrounds.clear()  # the same state drawn from scratch
    explorer.invalidate()
    explorer.update()
    assert explorer.image.value == before
    assert "OK" in explorer.self_check() and "OK" in explorer.self_check("x1")


def test_number_format_is_always_five_characters():
    from course_lib.widgets.forward import _fmt

    for v in (0.0, -0.004, 1.234, -9.999, 12.345, -99.96, 123.4, -5000.0, 1e6, -1e6):
        assert len(_fmt(v)) == 5, (v, _fmt(v))


def test_trained_mlp_lowers_the_loss():
    from course_lib.widgets.forward import circle_task, trained_mlp

    x, y = circle_task()
    start = L.init_mlp([2, 3, 2], generator=torch.Generator().manual_seed(0))
    fitted = trained_mlp([2, 3, 2], "tanh", steps=15)
    assert [(tuple(W.shape), tuple(b.shape)) for W, b in fitted] == [((3, 2), (3,)), ((2, 3), (2,))]
    loss = [torch.nn.functional.cross_entropy(L.mlp_forward(x, p, "tanh")[-1], y) for p in (start, fitted)]
    assert loss[1] < loss[0] - 0.05
