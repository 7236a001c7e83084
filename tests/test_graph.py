"""Graph layout and drawing, the recorded backward pass, and the backprop explorer."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from course_lib.engine import Value
from course_lib.graph import COLUMN, backward_steps, draw_graph, layout_graph, local_derivatives


def random_expression(seed: int, n_ops: int = 10) -> tuple[list[Value], Value]:
    rng = random.Random(seed)
    leaves = [Value(rng.uniform(-2, 2), label=f"x{i}") for i in range(rng.randint(1, 4))]
    pool = list(leaves)
    ops = [
        lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b,
        lambda a, b: a.tanh(), lambda a, b: a.sigmoid(), lambda a, b: a**2, lambda a, b: (a * a + 1).log(),
    ]
    for _ in range(n_ops):
        pool.append(rng.choice(ops)(rng.choice(pool), rng.choice(pool)))
    return leaves, pool[-1]


@given(st.integers(0, 10**6))
def test_layout_edges_point_right_and_nodes_do_not_overlap(seed):
    _, root = random_expression(seed)
    lay = layout_graph(root)
    assert len(lay.pos) == len(lay.nodes)
    points = list(lay.pos.values())
    assert len(set(points)) == len(points)
    for child, parent in lay.edges:
        assert lay.pos[id(child)][0] < lay.pos[id(parent)][0]
        assert lay.pos[id(child)][0] < lay.op_pos[id(parent)][0] < lay.pos[id(parent)][0]
    assert lay.pos[id(root)][0] == max(x for x, _ in points)
    for x, y in points:  # same column -> at least 1 apart
        same = sorted(y2 for x2, y2 in points if x2 == x)
        assert all(b - a >= 1.0 - 1e-9 for a, b in zip(same, same[1:]))


@given(st.integers(0, 10**6))
def test_backward_steps_reproduce_backward(seed):
    _, root = random_expression(seed)
    steps = backward_steps(root)
    assert all(v.grad == 0.0 for v in (s.node for s in steps))  # the graph is left untouched
    root.backward()
    assert steps[0].node is root and steps[0].grad == 1.0 and steps[0].terms == []
    seen = set()
    for s in steps:
        for consumer, g, local in s.terms:
            assert id(consumer) in seen  # every consumer is finished before its inputs
        seen.add(id(s.node))
        assert s.grad == pytest.approx(s.node.grad, rel=1e-12, abs=1e-12)
        assert s.grad == pytest.approx(sum(g * loc for _, g, loc in s.terms) if s.terms else 1.0, rel=1e-12, abs=1e-12)


def test_local_derivatives_and_restored_grads():
    x, y = Value(3.0), Value(-2.0)
    x.grad, y.grad = 0.25, 0.5
    m = x * y
    m.grad = 7.0
    assert local_derivatives(m) == {id(x): -2.0, id(y): 3.0}
    assert (x.grad, y.grad, m.grad) == (0.25, 0.5, 7.0)
    sq = x * x
    assert local_derivatives(sq) == {id(x): 6.0}  # both factors: 2x
    assert local_derivatives(x) == {}


def test_layout_of_the_neuron():
    x1, w1, b = Value(1.0, label="x1"), Value(2.0, label="w1"), Value(0.5, label="b")
    o = (x1 * w1 + b).tanh()
    lay = layout_graph(o)
    assert lay.n_columns == 4
    assert lay.pos[id(b)][0] == COLUMN  # placed just before its first use, not with x1, w1
    assert lay.pos[id(x1)][0] == lay.pos[id(w1)][0] == 0.0


def test_draw_graph_on_given_axes():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x, y = Value(1.5, label="x"), Value(-2.0, label="y")
    f = x * y + x
    f.label = "f"
    L = f * f
    L.backward()
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    drawn = draw_graph(L, ax=ax, highlight=f)
    fig.canvas.draw()
    assert set(drawn.boxes) == {id(v) for v in drawn.layout.nodes}
    assert drawn.grad_texts[id(x)].get_text() == "grad 3.0000"
    assert drawn.boxes[id(f)].get_facecolor() != drawn.boxes[id(x)].get_facecolor()
    assert any(t.get_text() == "f = -1.5000" for t in ax.texts)


# --- the explorer ----------------------------------------------------------------------
def test_explorer_walks_the_backward_pass():
    from course_lib.widgets.backprop import BackpropExplorer

    ex = BackpropExplorer()
    assert set(ex.shown_grads.values()) == {"grad ?"} and ex.current is None
    n = ex.controls["step"].max
    assert n == len(ex.steps) == 10
    frames = []
    for k in range(1, n + 1):
        ex.set_state(step=k)
        frames.append(ex.image.value)
        assert ex.current is ex.steps[k - 1]
        assert sum(v != "grad ?" for v in ex.shown_grads.values()) == k
    assert len(set(frames)) == n  # every step draws something new
    ex.root.backward()
    for v in ex.layout.nodes:
        assert ex.shown_grads[v.label] == f"grad {v.grad:.4f}"
    assert "chain rule" in ex.info.get_text()


def test_explorer_switches_expression_and_clamps_the_step():
    from course_lib.widgets.backprop import EXPRESSIONS, BackpropExplorer

    ex = BackpropExplorer()
    ex.set_state(step=9)
    frames = ex.frames
    ex.set_state(expression=list(EXPRESSIONS)[1])
    assert ex.frames == frames + 1  # one render, not two
    assert ex.controls["step"].max == len(ex.steps) == 5
    assert ex.state()["step"] == 5 and ex.current is ex.steps[-1]
    assert ex.current.node.label == "x" and len(ex.current.terms) == 2  # x feeds two operations
    assert "summed over its consumers" in ex.info.get_text()
    assert "2·f" in ex.explain(2)  # f * f: the local derivative is 2f
    with pytest.raises(ValueError, match="unknown expression"):
        BackpropExplorer("nope")
