"""The scalar autograd engine against torch.autograd (float64): values and gradients of
random expressions, reused nodes, accumulation over backward calls, deep graphs, errors."""

from __future__ import annotations

import ast
import inspect
import math
import sys

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from course_lib import engine, gradcheck, graph
from course_lib.engine import Value, topological_order, zero_grad

# Every op works on a Value and on a 0-d torch tensor alike; domains are kept valid
# (log of a positive number, division by something nonzero).
UNARY = {
    "neg": lambda a: -a,
    "exp": lambda a: a.exp(),
    "log": lambda a: (a * a + 0.5).log(),
    "tanh": lambda a: a.tanh(),
    "relu": lambda a: a.relu(),
    "sigmoid": lambda a: a.sigmoid(),
    "square": lambda a: a**2,
    "cube": lambda a: a**3,
    "sqrt": lambda a: (a * a + 1) ** 0.5,
    "inverse": lambda a: (a * a + 0.25) ** -1,
    "rsub": lambda a: 2.0 - a,
    "rdiv": lambda a: 3.0 / (a * a + 1),
    "radd": lambda a: 1.5 + a,
    "rmul": lambda a: -0.5 * a,
    "sub_const": lambda a: a - 0.75,
    "div_const": lambda a: a / 4.0,
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 0.5),
}

leaf_values = st.floats(-2.0, 2.0, allow_nan=False)
program = st.tuples(
    st.lists(leaf_values, min_size=1, max_size=4),
    st.lists(
        st.tuples(st.sampled_from(sorted(UNARY) + sorted(BINARY)), st.integers(0, 100), st.integers(0, 100)),
        min_size=1,
        max_size=12,
    ),
)


def run_program(prog, make_leaf):
    """Evaluate a random program; operands are picked from all nodes so far (reuse included)."""
    leaves_data, steps = prog
    leaves = [make_leaf(v) for v in leaves_data]
    pool = list(leaves)
    for op, i, j in steps:
        a, b = pool[i % len(pool)], pool[j % len(pool)]
        pool.append(UNARY[op](a) if op in UNARY else BINARY[op](a, b))
    return leaves, pool


def torch_leaf(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64, requires_grad=True)


def close(a: float, b: float, tol: float = 1e-9) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


@given(program)
def test_random_expressions_match_torch_autograd(prog):
    t_leaves, t_pool = run_program(prog, torch_leaf)
    assume(all(bool(torch.isfinite(t)) and abs(t.item()) < 1e6 for t in t_pool))
    t_pool[-1].backward()
    t_grads = [0.0 if t.grad is None else t.grad.item() for t in t_leaves]
    assume(all(math.isfinite(g) and abs(g) < 1e8 for g in t_grads))

    leaves, pool = run_program(prog, Value)
    pool[-1].backward()
    for ours, ref in zip(pool, t_pool):
        assert close(ours.data, ref.item(), 1e-12)
    for leaf, g in zip(leaves, t_grads):
        assert close(leaf.grad, g), (leaf.grad, g)


@given(program)
def test_every_inner_node_gets_dL_dnode(prog):
    """Inner gradients too: compare with torch's retain_grad on every node."""
    t_leaves, t_pool = run_program(prog, torch_leaf)
    assume(all(bool(torch.isfinite(t)) and abs(t.item()) < 1e6 for t in t_pool))
    for t in t_pool:
        if t.requires_grad and t.grad_fn is not None:
            t.retain_grad()
    t_pool[-1].backward()
    assume(all(t.grad is None or (bool(torch.isfinite(t.grad)) and abs(t.grad.item()) < 1e8) for t in t_pool))
    leaves, pool = run_program(prog, Value)
    pool[-1].backward()
    for ours, ref in zip(pool, t_pool):
        if ref.grad is not None:
            assert close(ours.grad, ref.grad.item()), (ours._op, ours.grad, ref.grad.item())


def test_neuron_matches_torch():
    x1, w1, x2, w2, b = (Value(v) for v in (2.0, -3.0, 0.0, 1.0, 6.8813735870195432))
    o = (x1 * w1 + x2 * w2 + b).tanh()
    o.backward()
    t = [torch_leaf(v) for v in (2.0, -3.0, 0.0, 1.0, 6.8813735870195432)]
    to = torch.tanh(t[0] * t[1] + t[2] * t[3] + t[4])
    to.backward()
    assert close(o.data, to.item(), 1e-14)
    for ours, ref in zip((x1, w1, x2, w2, b), t):
        assert close(ours.grad, ref.grad.item(), 1e-14)


def test_reused_nodes_accumulate():
    x = Value(3.0)
    y = x * x  # dy/dx = 2x
    y.backward()
    assert x.grad == 6.0
    a = Value(-1.25)
    (a + a).backward()
    assert a.grad == 2.0
    c = Value(0.5)
    d = c * c * c + c  # 3c^2 + 1
    d.backward()
    assert math.isclose(c.grad, 3 * 0.25 + 1)


def test_backward_twice_accumulates_like_torch_and_zero_grad_resets():
    x, y = Value(1.5), Value(-2.0)
    loss = (x * y + x).tanh()
    loss.backward()
    first = (x.grad, y.grad)
    loss.backward()  # leaves accumulate, inner nodes are recomputed
    tx, ty = torch_leaf(1.5), torch_leaf(-2.0)
    tl = torch.tanh(tx * ty + tx)
    tl.backward(retain_graph=True)
    tl.backward()
    assert close(x.grad, tx.grad.item(), 1e-14) and close(y.grad, ty.grad.item(), 1e-14)
    assert close(x.grad, 2 * first[0], 1e-14)
    zero_grad([x, y])
    assert (x.grad, y.grad) == (0.0, 0.0)
    loss.backward()
    assert (x.grad, y.grad) == first


def test_deep_chain_has_no_recursion_limit():
    x = Value(0.5)
    y = x
    for _ in range(3_000):  # 9,000 nodes: far deeper than Python's recursion limit
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0
    assert len(topological_order(y)) > 3 * sys.getrecursionlimit()


def test_topological_order_lists_inputs_before_outputs():
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    e = d * c
    order = topological_order(e)
    pos = {id(v): i for i, v in enumerate(order)}
    assert len(order) == len({id(v) for v in order}) == 5
    for v in order:
        for child in v._prev:
            assert pos[id(child)] < pos[id(v)]
    assert order[-1] is e


def test_backward_of_a_leaf_is_one():
    x = Value(4.0)
    x.backward()
    assert x.grad == 1.0


def test_special_values():
    assert Value(-1000.0).sigmoid().data == 0.0  # no overflow
    assert Value(1000.0).sigmoid().data == 1.0
    r = Value(0.0)
    r.relu().backward()
    assert r.grad == 0.0  # as in PyTorch
    t = Value(30.0)
    t.tanh().backward()
    assert t.grad == 0.0


def test_clear_errors():
    with pytest.raises(ValueError, match="positive"):
        Value(0.0).log()
    with pytest.raises(ValueError, match="positive"):
        Value(-2.0).log()
    with pytest.raises(TypeError, match="exponent"):
        Value(2.0) ** Value(3.0)
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        Value(1.0) / Value(0.0)
    with pytest.raises(ZeroDivisionError):
        1.0 / Value(0.0)
    with pytest.raises(ValueError, match="negative base"):
        Value(-8.0) ** (1 / 3)
    with pytest.raises(OverflowError, match="too large"):
        Value(710.0).exp()
    with pytest.raises(TypeError, match="real number"):
        Value("3")
    with pytest.raises(TypeError, match="real number"):
        Value(Value(1.0))
    with pytest.raises(TypeError):
        Value(1.0) + "a"


def test_repr_and_labels():
    v = Value(2.0, label="w")
    assert repr(v) == "Value(w: data=2, grad=0)"
    assert (v * 3)._op == "*" and (v**2)._op == "**2" and v.tanh()._op == "tanh"


def test_chapter_modules_import_no_plotting_library_at_import_time():
    """Module-level imports only (matplotlib/ipywidgets are imported inside functions)."""
    for module in (engine, gradcheck, graph):
        tree = ast.parse(inspect.getsource(module))
        names = [a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] in ("matplotlib", "ipywidgets", "IPython")], module.__name__
        assert not [n for n in names if n.startswith("course_lib.widgets")], module.__name__
