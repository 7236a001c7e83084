"""Draw the computational graph of a :class:`~course_lib.engine.Value` with matplotlib.

Three separate pieces, so a widget can reuse them:

* :func:`layout_graph` places every value in a column by its distance from the
  output (inputs on the left, the output on the right) and orders each column to
  keep edges short. It returns plain positions, no drawing.
* :func:`backward_steps` replays the backward pass node by node: for each value,
  the terms ``grad(consumer) * d consumer / d value`` that the chain rule adds up.
* :func:`draw_graph` draws boxes (label, data, grad), operation nodes and arrows.

No graphviz: only matplotlib, imported when something is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from course_lib.engine import Value, topological_order

Point = Tuple[float, float]

#: horizontal distance between two value columns (the op node sits half-way)
COLUMN = 2.0
#: half width and half height of a value box, in data units
BOX_W, BOX_H = 0.72, 0.34


@dataclass
class GraphLayout:
    """Where each value and each operation node of a graph goes.

    ``nodes``: the values, inputs before outputs (topological order);
    ``pos[id(v)]``: centre of v's box; ``op_pos[id(v)]``: centre of the node of the
    operation that made v (inner values only); ``edges``: unique (input, output) pairs.
    """

    nodes: List[Value]
    pos: Dict[int, Point]
    op_pos: Dict[int, Point]
    edges: List[Tuple[Value, Value]]
    consumers: Dict[int, List[Value]] = field(default_factory=dict)

    @property
    def n_columns(self) -> int:
        return 1 + int(round(max(x for x, _ in self.pos.values()) / COLUMN)) if self.pos else 0

    @property
    def n_rows(self) -> int:
        counts: Dict[float, int] = {}
        for x, _ in self.pos.values():
            counts[x] = counts.get(x, 0) + 1
        return max(counts.values()) if counts else 0


def _unique(values: Iterable[Value]) -> List[Value]:
    seen, out = set(), []
    for v in values:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def layout_graph(root: Value) -> GraphLayout:
    """Positions for the graph of ``root``.

    Column of v = (longest path from v to ``root``) counted from the right, so every
    edge points right and an input sits just left of its first use. Within a column
    values are sorted by the mean height of their consumers and spaced 1 apart.
    """
    nodes = topological_order(root)
    index = {id(v): i for i, v in enumerate(nodes)}
    consumers: Dict[int, List[Value]] = {id(v): [] for v in nodes}
    edges: List[Tuple[Value, Value]] = []
    for v in nodes:
        for child in _unique(v._prev):
            consumers[id(child)].append(v)
            edges.append((child, v))
    level: Dict[int, int] = {id(root): 0}  # distance from the root, longest path
    for v in reversed(nodes):
        for child in v._prev:
            level[id(child)] = max(level.get(id(child), 0), level[id(v)] + 1)
    depth = max(level.values())
    columns: Dict[int, List[Value]] = {}
    for v in nodes:
        columns.setdefault(level[id(v)], []).append(v)
    pos: Dict[int, Point] = {}
    for lev in range(depth + 1):  # from the root leftwards: consumers are placed first
        col = columns.get(lev, [])
        want = {id(v): _mean([pos[id(c)][1] for c in consumers[id(v)]]) for v in col}
        col.sort(key=lambda v: (-want[id(v)], index[id(v)]))
        ys: List[float] = []
        for v in col:  # top to bottom, at least 1 apart
            y = want[id(v)]
            ys.append(y if not ys else min(y, ys[-1] - 1.0))
        shift = _mean(list(want.values())) - _mean(ys)
        for v, y in zip(col, ys):
            pos[id(v)] = (COLUMN * (depth - lev), y + shift)
    op_pos = {id(v): (pos[id(v)][0] - COLUMN / 2, pos[id(v)][1]) for v in nodes if v._prev}
    return GraphLayout(nodes, pos, op_pos, edges, consumers)


def _mean(xs: List[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


# --- the backward pass, step by step -------------------------------------------------
@dataclass
class BackwardStep:
    """One node of the backward pass: its final ``grad`` and the chain-rule terms that
    made it, ``grad = sum(consumer_grad * local)`` over ``terms`` (consumer, consumer_grad, local)."""

    node: Value
    grad: float
    terms: List[Tuple[Value, float, float]]


def local_derivatives(node: Value) -> Dict[int, float]:
    """``d node / d input`` for each distinct input, keyed by ``id(input)``.

    Found by running the node's own ``_backward`` with ``node.grad = 1`` (the chain
    rule is linear in ``node.grad``); every ``grad`` touched is restored afterwards.
    """
    inputs = _unique(node._prev)
    saved = [v.grad for v in inputs], node.grad
    try:
        for v in inputs:
            v.grad = 0.0
        node.grad = 1.0
        node._backward()
        return {id(v): v.grad for v in inputs}
    finally:
        for v, g in zip(inputs, saved[0]):
            v.grad = g
        node.grad = saved[1]


def backward_steps(root: Value) -> List[BackwardStep]:
    """The backward pass of ``root`` as a list of steps, outputs before inputs.

    The same order and arithmetic as :meth:`Value.backward`, but recorded instead of
    written into ``.grad`` (the graph is left unchanged).
    """
    order = topological_order(root)
    grads: Dict[int, float] = {id(root): 1.0}
    terms: Dict[int, List[Tuple[Value, float, float]]] = {id(v): [] for v in order}
    steps: List[BackwardStep] = []
    for v in reversed(order):
        g = grads.get(id(v), 0.0)
        steps.append(BackwardStep(v, g, terms[id(v)]))
        for child_id, local in local_derivatives(v).items():
            terms[child_id].append((v, g, local))
            grads[child_id] = grads.get(child_id, 0.0) + g * local
    return steps


# --- drawing ------------------------------------------------------------------------
def fmt(x: float) -> str:
    """A number in at most 7 characters' worth of precision, for node boxes."""
    return f"{x:.4f}" if abs(x) < 1e4 else f"{x:.3e}"


def node_text(v: Value) -> str:
    """First line of a node's box: ``label = data``."""
    return f"{v.label} = {fmt(v.data)}" if v.label else f"{fmt(v.data)}"


@dataclass
class GraphArtists:
    """What :func:`draw_graph` drew, keyed by ``id(value)``, for later in-place updates."""

    ax: Any
    layout: GraphLayout
    boxes: Dict[int, Any]
    grad_texts: Dict[int, Any]


LEAF_COLOR, INNER_COLOR, HIGHLIGHT_COLOR = "#dbeafe", "#f3f4f6", "#fde68a"


def draw_graph(
    root: Value,
    ax: Any = None,
    highlight: Union[Value, Iterable[Value], None] = None,
    show_grad: bool = True,
    layout: Optional[GraphLayout] = None,
) -> GraphArtists:
    """Draw the graph of ``root``: one box per value (label, data and grad), one round
    node per operation, arrows from inputs to outputs.

    ``highlight``: value(s) drawn in yellow. ``ax``: a matplotlib Axes (default: a new
    pyplot figure sized to the graph). Returns the artists for in-place updates.
    """
    from matplotlib.patches import FancyBboxPatch

    layout = layout or layout_graph(root)
    if ax is None:
        import matplotlib.pyplot as plt

        width = max(5.0, 2.3 * layout.n_columns)
        height = max(2.0, 0.95 * layout.n_rows + 0.4)
        _, ax = plt.subplots(figsize=(width, height))
    marked = {id(v) for v in ([highlight] if isinstance(highlight, Value) else list(highlight or []))}
    ax.set_axis_off()
    xs = [x for x, _ in layout.pos.values()]
    ys = [y for _, y in layout.pos.values()]
    ax.set_xlim(min(xs) - BOX_W - 0.1, max(xs) + BOX_W + 0.1)
    ax.set_ylim(min(ys) - BOX_H - 0.15, max(ys) + BOX_H + 0.15)

    boxes, grad_texts, op_texts = {}, {}, {}
    for v in layout.nodes:
        x, y = layout.pos[id(v)]
        color = HIGHLIGHT_COLOR if id(v) in marked else (INNER_COLOR if v._prev else LEAF_COLOR)
        box = FancyBboxPatch(
            (x - BOX_W, y - BOX_H), 2 * BOX_W, 2 * BOX_H, boxstyle="round,pad=0,rounding_size=0.08",
            facecolor=color, edgecolor="#374151", linewidth=1.0, zorder=2,
        )
        ax.add_patch(box)
        boxes[id(v)] = box
        ax.text(x, y + 0.4 * BOX_H, node_text(v), ha="center", va="center", fontsize=9, zorder=3, fontweight="bold")
        grad_texts[id(v)] = ax.text(
            x, y - 0.4 * BOX_H, f"grad {fmt(v.grad)}" if show_grad else "", ha="center", va="center",
            fontsize=9, color="#b91c1c", zorder=3,
        )
        if v._prev:
            ox, oy = layout.op_pos[id(v)]
            op_texts[id(v)] = ax.annotate(
                v._op, xy=(x - BOX_W, y), xytext=(ox, oy), ha="center", va="center", fontsize=9, zorder=4,
                bbox=dict(boxstyle="circle,pad=0.25", facecolor="white", edgecolor="#374151"),
                arrowprops=dict(arrowstyle="-|>", color="#374151", shrinkA=0, shrinkB=0, lw=1.0),
            )
    for child, parent in layout.edges:
        cx, cy = layout.pos[id(child)]
        ox, oy = layout.op_pos[id(parent)]
        skips = ox - cx > COLUMN  # passes another column: bend it around the boxes there
        bend = 0.0 if not skips else (-0.35 if oy <= cy else 0.35)
        ax.annotate(
            "", xy=(ox, oy), xytext=(cx + BOX_W, cy), zorder=1,
            arrowprops=dict(
                arrowstyle="-|>", color="#6b7280", shrinkA=0, shrinkB=0, lw=1.0,
                patchB=op_texts[id(parent)].get_bbox_patch(), connectionstyle=f"arc3,rad={bend}",
            ),
        )
    return GraphArtists(ax, layout, boxes, grad_texts)
