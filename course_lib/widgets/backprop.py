"""Walk the backward pass of a small scalar graph, one node at a time.

The graph of an expression (a neuron ``o = tanh(x1 w1 + x2 w2 + b)``, or an
expression that reuses a value) is drawn once. The ``step`` slider runs the
backward pass in reverse topological order: step 1 seeds ``grad(o) = 1``, each
further step finishes one node, highlighted in orange, with the local
derivative(s) and the chain-rule product that gave its ``grad``; its consumers
are outlined in blue. Nodes not reached yet show ``grad ?``.

The state is inspectable from Python: ``explorer.steps`` (the recorded
:class:`~course_lib.graph.BackwardStep` list), ``explorer.current`` (the step
shown) and ``explorer.shown_grads`` (label -> text in the box).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from course_lib.engine import Value
from course_lib.graph import BOX_H, BOX_W, BackwardStep, backward_steps, draw_graph, fmt, layout_graph
from course_lib.widgets.base import Explorer


def _label(v: Value, name: str) -> Value:
    v.label = name
    return v


def neuron() -> Value:
    """``o = tanh(x1*w1 + x2*w2 + b)`` with fixed numbers; returns ``o``."""
    x1, w1 = Value(2.0, label="x1"), Value(-1.5, label="w1")
    x2, w2 = Value(0.5, label="x2"), Value(1.0, label="w2")
    b = Value(3.2, label="b")
    x1w1 = _label(x1 * w1, "x1w1")
    x2w2 = _label(x2 * w2, "x2w2")
    s = _label(x1w1 + x2w2, "s")
    n = _label(s + b, "n")
    return _label(n.tanh(), "o")


def reused() -> Value:
    """``L = f * f`` with ``f = x*y + x``: ``x`` feeds two operations, ``f`` one op twice."""
    x, y = Value(1.5, label="x"), Value(-2.0, label="y")
    q = _label(x * y, "q")
    f = _label(q + x, "f")
    return _label(f * f, "L")


EXPRESSIONS: Dict[str, Callable[[], Value]] = {
    "neuron: o = tanh(x1·w1 + x2·w2 + b)": neuron,
    "reuse: L = f·f, f = x·y + x": reused,
}


def local_rule(node: Value, child: Value) -> str:
    """The symbolic local derivative d node / d child, e.g. ``'w1'`` for x1*w1."""
    name = lambda v: v.label or fmt(v.data)  # noqa: E731
    op, ins = node._op, node._prev
    if op == "+":
        return "1 + 1" if ins[0] is ins[1] else "1"
    if op == "*":
        if ins[0] is ins[1]:
            return f"2·{name(child)}"
        return name(ins[1] if ins[0] is child else ins[0])
    if op == "tanh":
        return f"1 − {name(node)}²"
    if op == "exp":
        return name(node)
    if op == "sigmoid":
        return f"{name(node)}·(1 − {name(node)})"
    if op == "relu":
        return f"[{name(child)} > 0]"
    if op == "log":
        return f"1/{name(child)}"
    if op.startswith("**"):
        k = float(op[2:])
        return f"{k:g}·{name(child)}^{k - 1:g}"
    return "?"


def _paren(x: float) -> str:
    return fmt(x) if x >= 0 else f"({fmt(x)})"


class BackpropExplorer(Explorer):
    """Step through the backward pass of a small expression, node by node."""

    figsize = (10.5, 4.4)
    check_control = "step"
    N_OUTLINES = 3  # outlines for consumers; enough for the expressions here

    def __init__(self, expression: Optional[str] = None) -> None:
        self._initial = expression or next(iter(EXPRESSIONS))
        if self._initial not in EXPRESSIONS:
            raise ValueError(f"BackpropExplorer: unknown expression {expression!r}; choose one of {list(EXPRESSIONS)}")
        super().__init__()

    # --- building ---------------------------------------------------------------------
    def build(self, fig: Any) -> None:
        self.ax = fig.add_axes([0.005, 0.25, 0.99, 0.74])
        fig.text(0.988, 0.215, "orange: the node this step finishes\nblue dashed: the nodes that use it", va="top", ha="right",
                 fontsize=9, color="#4b5563", linespacing=1.4)
        self.info = fig.text(0.012, 0.215, "", va="top", ha="left", fontsize=10, linespacing=1.5)
        self._frames: Dict[Tuple[str, int], bytes] = {}
        self._setup(self._initial)

    def _setup(self, expression: str) -> None:
        """(Re)draw the graph of ``expression`` and create the artists that change per step."""
        from matplotlib.patches import FancyBboxPatch

        self.expression = expression
        self.root = EXPRESSIONS[expression]()
        self.layout = layout_graph(self.root)
        self.steps: List[BackwardStep] = backward_steps(self.root)
        self.ax.clear()
        drawn = draw_graph(self.root, ax=self.ax, show_grad=False, layout=self.layout)
        self.grad_texts = drawn.grad_texts
        for lim, get, span in ((self.ax.set_xlim, self.ax.get_xlim, 9.8), (self.ax.set_ylim, self.ax.get_ylim, 4.2)):
            lo, hi = get()  # the same scale for every expression: at least `span` data units
            mid, half = (lo + hi) / 2, max(hi - lo, span) / 2
            lim(mid - half, mid + half)

        def outline(color: str, style: str, width: float) -> Any:
            patch = FancyBboxPatch(
                (0, 0), 2 * BOX_W, 2 * BOX_H, boxstyle="round,pad=0.03,rounding_size=0.1",
                fill=False, edgecolor=color, linewidth=width, linestyle=style, zorder=5,
            )
            self.ax.add_patch(patch)
            return patch

        self.current_box = outline("#ea580c", "solid", 3.0)
        self.consumer_boxes = [outline("#2563eb", "dashed", 2.0) for _ in range(self.N_OUTLINES)]
        self.dynamic = [*self.grad_texts.values(), self.current_box, *self.consumer_boxes, self.info]
        self.invalidate()

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        return {
            "step": widgets.IntSlider(value=0, min=0, max=len(self.steps), description="backward step", continuous_update=True,
                                      style={"description_width": "initial"}, layout=widgets.Layout(width="520px")),
            "expression": widgets.Dropdown(options=list(EXPRESSIONS), value=self.expression, description="expression",
                                           layout=widgets.Layout(width="520px")),
        }

    def layout_controls(self) -> List[Any]:
        return [self.controls["expression"], self.controls["step"]]

    # --- one frame --------------------------------------------------------------------
    def _place(self, patch: Any, v: Optional[Value]) -> None:
        if v is None:
            patch.set_edgecolor("none")
            return
        x, y = self.layout.pos[id(v)]
        patch.set_x(x - BOX_W)
        patch.set_y(y - BOX_H)
        patch.set_edgecolor("#ea580c" if patch is self.current_box else "#2563eb")

    def render(self, step: int, expression: str) -> None:
        if expression != self.expression:
            self._setup(expression)
            slider = self.controls["step"]
            slider.unobserve(self._on_change, names="value")  # a clamped value must not re-render
            try:
                slider.max = len(self.steps)
            finally:
                slider.observe(self._on_change, names="value")
            step = slider.value
        step = max(0, min(step, len(self.steps)))
        self._key = (expression, step)
        done = {id(s.node): s for s in self.steps[:step]}
        self.shown_grads: Dict[str, str] = {}
        for v in self.layout.nodes:
            text = f"grad {fmt(done[id(v)].grad)}" if id(v) in done else "grad ?"
            self.grad_texts[id(v)].set_text(text)
            self.shown_grads[v.label or str(id(v))] = text
        self.current: Optional[BackwardStep] = self.steps[step - 1] if step else None
        self._place(self.current_box, self.current.node if self.current else None)
        consumers = [t[0] for t in self.current.terms] if self.current else []
        for i, patch in enumerate(self.consumer_boxes):
            self._place(patch, consumers[i] if i < len(consumers) else None)
        self.info.set_text(self.explain(step))

    def png(self) -> bytes:
        """The PNG of the current frame. There are only ``len(steps) + 1`` frames per
        expression, so each is drawn once (~40 ms of text) and then reused."""
        if self._key not in self._frames:
            self._frames[self._key] = super().png()
        return self._frames[self._key]

    def explain(self, step: int) -> str:
        """The text under the graph for ``step`` (0 = before the backward pass)."""
        n = len(self.steps)
        if step == 0:
            return (f"Forward pass done: every box shows its value. Backward pass: 0 of {n} nodes.\n"
                    "Move the slider: each step finishes one node, from the output back to the inputs\n"
                    "(reverse topological order), using grad(v) = Σ over consumers c of grad(c) · ∂c/∂v.")
        s = self.steps[step - 1]
        v = s.node.label
        head = f"Step {step} of {n}: node {v}" + (" (an input: a leaf of the graph)" if not s.node._prev else "")
        if not s.terms:
            return head + f"\nThe seed: grad({v}) = ∂{v}/∂{v} = 1.\nEvery other gradient is built from this one by the chain rule."
        locals_ = ";   ".join(f"∂{c.label}/∂{v} = {local_rule(c, s.node)} = {fmt(loc)}" for c, _, loc in s.terms)
        products = " + ".join(f"{_paren(g)} × {_paren(loc)}" for _, g, loc in s.terms)
        names = " + ".join(f"grad({c.label})·∂{c.label}/∂{v}" for c, _, _ in s.terms)
        note = "   (summed over its consumers)" if len(s.terms) > 1 else ""
        return (f"{head}\nlocal derivative{'s' if len(s.terms) > 1 else ''}: {locals_}\n"
                f"chain rule: grad({v}) = {names} = {products} = {fmt(s.grad)}{note}")
