"""Questions of chapter 03 · Backpropagation (sheet ``03_backprop``).

Each question carries its hint tiers and the typical mistakes (misconceptions)
that :func:`course_lib.check.check` recognises by name.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List

import torch

from course_lib import layers, losses
from course_lib.engine import Value
from course_lib.gradcheck import numerical_grad
from course_lib.questions import Case, Misconception, Question, randn

SHEET = "03_backprop"
F64 = torch.float64


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=F64))


def _require_value(name: str, out: Any) -> Value:
    if not isinstance(out, Value):
        raise TypeError(f"{name} should return a Value, got {type(out).__name__}")
    return out


# --- 03.1 a Value multiplication with its backward -----------------------------------
def _mul_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("a = 2, b = -3", (2.0, -3.0, False)),
        Case("a = 0 (zero factor)", (0.0, 4.0, False)),
        Case("x * x (the same Value twice)", (1.5, 1.5, True)),
        Case("a = -0.5, b = 0.25", (-0.5, 0.25, False)),
        Case("a = 1000, b = 0.001", (1000.0, 0.001, False)),
    ]
    if hidden:
        cases += [Case(f"random {i}", (_uniform(gen, -4, 4), _uniform(gen, -4, 4), False)) for i in range(6)]
        cases += [Case(f"random x * x {i}", (v, v, True)) for i, v in enumerate(_uniform(gen, -4, 4) for _ in range(3))]
    return cases


def _call_mul(func: Callable[..., Any], case: Case) -> Any:
    a_data, b_data, same = case.args
    a = Value(a_data, label="a")
    b = a if same else Value(b_data, label="b")
    out = _require_value("value_mul", func(a, b))
    loss = out * 1.5 + a  # out.grad = 1.5, and a is used twice
    loss.backward()
    return out.data, a.grad, b.grad


def _mul_with(rule: Callable[[Value, Value, Value], None]) -> Callable[[Value, Value], Value]:
    """A product whose backward step is ``rule(a, b, out)``."""

    def mul(a: Value, b: Value) -> Value:
        out = Value(a.data * b.data, (a, b), "*")
        out._backward = lambda: rule(a, b, out)
        return out

    return mul


def _mul_overwrite(a: Value, b: Value, out: Value) -> None:
    a.grad = b.data * out.grad
    b.grad = a.data * out.grad


def _mul_swap(a: Value, b: Value, out: Value) -> None:
    a.grad += a.data * out.grad
    b.grad += b.data * out.grad


def _mul_no_upstream(a: Value, b: Value, out: Value) -> None:
    a.grad += b.data
    b.grad += a.data


def _mul_cut(a: Value, b: Value) -> Value:
    return Value(a.data * b.data)


# --- 03.2 a Value tanh with its backward ---------------------------------------------
def _tanh_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [Case(f"a = {v:g}", (v,)) for v in (0.0, 0.5, -1.3, 4.0, -20.0)]
    if hidden:
        cases += [Case(f"random {i}", (_uniform(gen, -5, 5),)) for i in range(8)]
    return cases


def _call_tanh(func: Callable[..., Any], case: Case) -> Any:
    a = Value(case.args[0], label="a")
    t = _require_value("value_tanh", func(a))
    loss = t * -2.0 + a  # t.grad = -2, and a is used twice
    loss.backward()
    return t.data, a.grad


def _tanh_with(local: Callable[[float, float], float], accumulate: bool = True, upstream: bool = True) -> Callable[[Value], Value]:
    """tanh whose backward uses the local derivative ``local(a, t)``."""

    def tanh(a: Value) -> Value:
        t = math.tanh(a.data)
        out = Value(t, (a,), "tanh")

        def backward() -> None:
            step = local(a.data, t) * (out.grad if upstream else 1.0)
            a.grad = (a.grad if accumulate else 0.0) + step

        out._backward = backward
        return out

    return tanh


def _tanh_slope(a: float, t: float) -> float:
    return 1.0 - t * t


# --- 03.3 the backward pass of a linear layer ----------------------------------------
def _linear_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    shapes = [(4, 3, 2), (1, 3, 2), (5, 3, 3), (2, 1, 1), (3, 4, 6)]
    if hidden:
        shapes += [(8, 5, 7), (1, 1, 4), (6, 6, 6), (10, 2, 3), (3, 7, 1)]
    cases = []
    for n, d_in, d_out in shapes:
        args = (randn(gen, n, d_out), randn(gen, n, d_in), randn(gen, d_out, d_in))
        cases.append(Case(f"N={n}, D_in={d_in}, D_out={d_out}", args))
    return cases


# --- 03.4 numerical gradient ---------------------------------------------------------
FUNCTIONS: Dict[str, Callable[[torch.Tensor], Any]] = {
    "sum of cubes": lambda x: (x**3).sum(),
    "mean of exp": lambda x: x.exp().mean(),
    "log-sum-exp": lambda x: torch.logsumexp(x.reshape(-1), dim=0),
    "product of sines": lambda x: torch.sin(x).prod(),
    "Python float": lambda x: (x * x).sum().item() ** 0.5,
}


def _numgrad_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    spec = [
        ("sum of cubes", (3,), {}),
        ("mean of exp", (2, 3), {}),
        ("log-sum-exp", (4,), {"eps": 1e-4}),
        ("product of sines", (), {}),
        ("Python float", (1,), {}),
        ("Python float", (3,), {"eps": 1e-2}),
        ("sum of cubes", (2, 2), {"eps": 1e-2}),
    ]
    if hidden:
        spec += [
            ("mean of exp", (2, 2, 2), {}),
            ("log-sum-exp", (3, 2), {"eps": 1e-3}),
            ("product of sines", (5,), {"eps": 1e-2}),
            ("Python float", (2, 3), {"eps": 0.05}),
            ("sum of cubes", (), {"eps": 0.1}),
        ]
    return [Case(f"f = {name}, x{shape}" + (f", eps={kw['eps']:g}" if kw else ""), (name, randn(gen, *shape)), kw)
            for name, shape, kw in spec]


def _call_numgrad(func: Callable[..., Any], case: Case) -> Any:
    name, x = case.args
    return func(FUNCTIONS[name], x, **case.kwargs)


def _numgrad_with(forward_only: bool = False, halve: bool = True, fixed_eps: bool = False) -> Callable[..., torch.Tensor]:
    """Finite differences with the given mistakes."""

    def numgrad(f: Callable[[torch.Tensor], Any], x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        h = 1e-6 if fixed_eps else eps
        x = x.detach().to(F64)
        g = torch.zeros_like(x)
        f0 = float(f(x))
        for i in range(x.numel()):
            step = torch.zeros(x.numel(), dtype=F64)
            step[i] = h
            step = step.reshape(x.shape)
            low = f0 if forward_only else float(f(x - step))
            g.reshape(-1)[i] = (float(f(x + step)) - low) / (h if forward_only or not halve else 2 * h)
        return g

    return numgrad


def _numgrad_exact(f: Callable[[torch.Tensor], Any], x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    x = x.detach().to(F64).clone().requires_grad_(True)
    y = f(x)
    if not isinstance(y, torch.Tensor):
        raise TypeError("f returned a Python float: autograd cannot see through it")
    y.backward()
    return x.grad


# --- 03.5 softmax backward -----------------------------------------------------------
def _softmax_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    spec = [((2, 3), -1, 1.0), ((1, 5), -1, 1.0), ((4, 1), -1, 1.0), ((3, 4), 0, 1.0), ((2, 3), -1, 30.0), ((2, 3, 4), 1, 1.0)]
    if hidden:
        spec += [((6, 10), -1, 1.0), ((5,), 0, 2.0), ((2, 2, 3), -1, 1.0), ((3, 7), 1, 10.0), ((4, 3), 0, 1.0)]
    cases = []
    for shape, dim, scale in spec:
        y = layers.softmax(scale * randn(gen, *shape), dim=dim)
        label = f"y{shape}, dim={dim}" + (f", logits x{scale:g} (nearly one-hot)" if scale > 1 else "")
        cases.append(Case(label, (randn(gen, *shape), y), {"dim": dim}))
    return cases


def _softmax_own_only(dy: torch.Tensor, y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return dy * y * (1 - y)


def _softmax_last_dim(dy: torch.Tensor, y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return y * (dy - (dy * y).sum(dim=-1, keepdim=True))


def _softmax_no_outer_y(dy: torch.Tensor, y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return dy - (dy * y).sum(dim=dim, keepdim=True)


def _softmax_unweighted(dy: torch.Tensor, y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return y * (dy - dy.sum(dim=dim, keepdim=True))


# --- 03.6 debug a hand-written backward pass -----------------------------------------
def _mlp_grads(X: torch.Tensor, y: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor,
               b2: torch.Tensor, mean: bool = True, slope_from_output: bool = True):
    """Gradients (dW1, db1, dW2, db2) of the mean cross-entropy of ``tanh(X W1^T + b1) W2^T + b2``.

    X: (N, D), y: (N,) class indices, W1: (H, D), b1: (H,), W2: (C, H), b2: (C,).
    ``mean=False`` forgets the 1/N of the mean; ``slope_from_output=False`` takes tanh's
    slope as 1 - z**2 of the pre-activation z (the two bugs of the sheet's listing).
    """
    z = layers.linear_forward(X, W1, b1)  # (N, H)
    h = layers.tanh(z)  # (N, H)
    logits = layers.linear_forward(h, W2, b2)  # (N, C)
    dlogits = losses.cross_entropy_backward(logits, y, reduction="mean" if mean else "sum")  # (N, C)
    dh, dW2, db2 = layers.linear_backward(dlogits, h, W2)
    dz = layers.tanh_backward(dh, h) if slope_from_output else dh * (1.0 - z * z)
    _, dW1, db1 = layers.linear_backward(dz, X, W1)
    return dW1, db1, dW2, db2


def mlp_backward_reference(X: torch.Tensor, y: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor,
                           W2: torch.Tensor, b2: torch.Tensor):
    """The fixed listing of 03.6: (dW1 (H, D), db1 (H,), dW2 (C, H), db2 (C,)) of the mean
    cross-entropy of the two-layer tanh network, built from ``course_lib.layers`` and ``losses``."""
    return _mlp_grads(X, y, W1, b1, W2, b2)


def _mlp_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    spec = [(4, 2, 3, 2), (8, 3, 5, 3), (1, 2, 4, 3), (6, 4, 2, 4), (5, 1, 3, 2)]
    if hidden:
        spec += [(16, 5, 8, 4), (3, 3, 3, 3), (10, 2, 6, 5), (2, 6, 1, 2), (7, 4, 4, 3)]
    cases = []
    for n, d, h, c in spec:
        X = randn(gen, n, d)
        y = torch.randint(0, c, (n,), generator=gen)
        params = (randn(gen, h, d), 0.5 * randn(gen, h), randn(gen, c, h), 0.5 * randn(gen, c))
        cases.append(Case(f"N={n}, D={d}, H={h}, C={c}", (X, y, *params)))
    return cases


QUESTIONS = [
    Question(
        id="03.1", sheet=SHEET, title="Multiplication of Values with its backward", func_name="value_mul", points=2,
        reference=Value.__mul__, make_cases=_mul_cases, call=_call_mul, kind="implement",
        hints=(
            "Each input's gradient receives (local derivative) x (the output's gradient). For a product, the "
            "local derivative with respect to one factor is the other factor.",
            "All quantities are Python floats: the factors' .data, the output's .grad (filled in before your "
            "_backward runs) and the inputs' .grad. In x * x the two inputs are the same object.",
            "Create the output with the constructor Value(data, children, op); define an inner function with no "
            "arguments that accumulates into a.grad and b.grad, attach it as the output's _backward, return the output.",
        ),
        misconceptions=(
            Misconception(
                "assignment instead of accumulation",
                "A node can feed several others (x * x, or x used again later in the graph); its gradient is the "
                "SUM of the contributions along every path, so a backward step must add to what is already there.",
                _mul_with(_mul_overwrite),
            ),
            Misconception(
                "each factor's own value as its derivative",
                "The derivative of a * b with respect to a is how much the product changes per unit of a, which "
                "is the other factor, not a itself.",
                _mul_with(_mul_swap),
            ),
            Misconception(
                "local derivative without the upstream gradient",
                "The chain rule multiplies the local derivative by the gradient arriving from the output; without "
                "it the step only works when the product is the loss itself.",
                _mul_with(_mul_no_upstream),
            ),
            Misconception(
                "output not connected to its inputs",
                "Backpropagation walks the graph from the output to its children; a Value created without its "
                "inputs (and without a backward step) is a dead end, so no gradient reaches a or b through it.",
                _mul_cut,
            ),
        ),
    ),
    Question(
        id="03.2", sheet=SHEET, title="tanh of a Value with its backward", func_name="value_tanh", points=2,
        reference=Value.tanh, make_cases=_tanh_cases, call=_call_tanh, kind="derive",
        hints=(
            "Write tanh as a quotient of exponentials and differentiate it; the result can be expressed with "
            "tanh itself, which the forward pass has already computed.",
            "Everything is a Python float: the input's .data, the output value t, out.grad and a.grad. The local "
            "derivative is a float that stays between 0 and 1.",
            "Compute t with math.tanh in the forward pass and keep it in a variable the inner backward function can "
            "see; in that function add (local derivative written with t) times out.grad to a.grad.",
        ),
        misconceptions=(
            Misconception(
                "derivative written with the input",
                "The tidy form of tanh's derivative is a function of tanh's OUTPUT t; putting the input a in its "
                "place gives a different number (for |a| > 1 even a negative slope, although tanh only increases).",
                _tanh_with(lambda a, t: 1.0 - a * a),
            ),
            Misconception(
                "the sigmoid's derivative",
                "The logistic sigmoid's derivative, written with its output, has a form of its own; tanh is a "
                "rescaled sigmoid, and the rescaling changes the derivative's form.",
                _tanh_with(lambda a, t: t * (1.0 - t)),
            ),
            Misconception(
                "assignment instead of accumulation",
                "a may be used elsewhere in the graph (here it also enters the loss directly); its gradient is the "
                "sum over all paths, so the backward step must add to it.",
                _tanh_with(_tanh_slope, accumulate=False),
            ),
            Misconception(
                "local derivative without the upstream gradient",
                "The chain rule multiplies the local derivative by the gradient that arrives from the output; "
                "without it the step is only right when tanh's output is the loss itself.",
                _tanh_with(_tanh_slope, upstream=False),
            ),
        ),
    ),
    Question(
        id="03.3", sheet=SHEET, title="Backward pass of a linear layer", func_name="linear_backward", points=2,
        reference=layers.linear_backward, make_cases=_linear_cases, kind="derive",
        hints=(
            "Write one entry, Y[n, j] = sum over k of X[n, k] W[j, k] + b[j], and ask which entries of Y each "
            "X[n, k], W[j, k] and b[j] influences: the chain rule sums over exactly those.",
            "Each gradient has the shape of its tensor: dX (N, D_in), dW (D_out, D_in), db (D_out,). dY is "
            "(N, D_out); there is only one way to combine it with X or W into each of these shapes.",
            "Two matrix products (one with a transpose) and one reduction over the batch axis, dim 0.",
        ),
        misconceptions=(
            Misconception(
                "dW transposed",
                "A parameter's gradient has the shape of the parameter: W is (D_out, D_in), so its gradient must be "
                "too; the product in the other order gives the (D_in, D_out) transpose.",
                lambda dy, x, W: (dy @ W, x.T @ dy, dy.sum(0)),
            ),
            Misconception(
                "bias gradient not summed over the batch",
                "The same bias is added to every row of the batch, so every example contributes to its gradient; "
                "db has one entry per output unit, not one row per example.",
                lambda dy, x, W: (dy @ W, dy.T @ x, dy),
            ),
            Misconception(
                "bias gradient averaged over the batch",
                "The chain rule adds the contributions of all examples; any averaging is already inside dY (when the "
                "loss is a mean), so dividing again by N counts it twice.",
                lambda dy, x, W: (dy @ W, dy.T @ x, dy.mean(0)),
            ),
            Misconception(
                "bias gradient summed over the wrong axis",
                "The bias is shared across the examples (rows) of the batch, not across output units: the sum runs "
                "over the batch, and the result has one entry per output unit.",
                lambda dy, x, W: (dy @ W, dy.T @ x, dy.sum(1)),
            ),
        ),
    ),
    Question(
        id="03.4", sheet=SHEET, title="Numerical gradient by central differences", func_name="numerical_grad", points=2,
        reference=numerical_grad, make_cases=_numgrad_cases, call=_call_numgrad, atol=1e-9, rtol=1e-8,
        kind="implement",
        hints=(
            "Nudge one entry at a time, a little up and a little down, and see how much f changes; a symmetric "
            "difference cancels the first error term of a one-sided one.",
            "x can have any shape (even 0-d); the result has x's shape and dtype float64. f returns one number "
            "(a one-element tensor or a float). Two evaluations of f per entry.",
            "Loop over x.numel() entries of a float64 copy; through a flat view (reshape(-1) of a contiguous copy) "
            "set entry i to its old value plus and minus eps, call f each time, restore it, store the quotient.",
        ),
        misconceptions=(
            Misconception(
                "one-sided (forward) difference",
                "A one-sided difference is off by about eps/2 times the second derivative; the centred one cancels "
                "that term and is off only by a term of order eps squared.",
                _numgrad_with(forward_only=True),
            ),
            Misconception(
                "central difference over eps instead of 2 eps",
                "The two evaluation points are 2 eps apart; the slope is the rise over that whole distance, so "
                "dividing by eps doubles every estimate.",
                _numgrad_with(halve=False),
            ),
            Misconception(
                "autograd's exact gradient",
                "A numerical gradient is an independent estimate used to TEST an analytic one; taking autograd's "
                "gradient checks nothing, and it fails for an f that leaves the tensor world (a Python float).",
                _numgrad_exact,
            ),
            Misconception(
                "the step size eps ignored",
                "The check asks for a given eps; the truncation and rounding errors of a finite difference depend "
                "on it, so a fixed step answers a different question.",
                _numgrad_with(fixed_eps=True),
            ),
        ),
    ),
    Question(
        id="03.5", sheet=SHEET, title="Backward pass of softmax", func_name="softmax_backward", points=2,
        reference=layers.softmax_backward, make_cases=_softmax_cases, kind="derive",
        hints=(
            "Every output y_j depends on every input x_i of its slice (they share the denominator), so dx_i sums "
            "contributions from all outputs: find the partial derivative of y_j with respect to x_i first, "
            "separately for j = i and j != i.",
            "dy and y have the same shape (any rank); the slices run along `dim`. For one slice of length C the "
            "Jacobian is C x C, but the result never needs it: dx has the shape of dy.",
            "After simplifying, the answer needs one elementwise product, one sum along `dim` kept as a "
            "size-1 dimension (keepdim) so that it broadcasts back, and one more elementwise product.",
        ),
        misconceptions=(
            Misconception(
                "each output depends only on its own input",
                "Softmax normalises by a sum over the whole slice, so raising one input lowers every OTHER output; "
                "the off-diagonal entries of the Jacobian matter as much as the diagonal ones.",
                _softmax_own_only,
            ),
            Misconception(
                "the last dimension instead of `dim`",
                "The outputs are coupled only within a slice along the softmax's dimension; reducing over another "
                "axis mixes unrelated distributions.",
                _softmax_last_dim,
            ),
            Misconception(
                "the outer factor y dropped",
                "Every entry of the Jacobian carries the factor y_j (the derivative of an exponential is the "
                "exponential itself), so each component of dx is scaled by its own probability.",
                _softmax_no_outer_y,
            ),
            Misconception(
                "upstream gradients summed without the probabilities",
                "The coupling term is an average of the upstream gradients weighted by the probabilities, because "
                "each off-diagonal Jacobian entry contains y_j; a plain sum treats all outputs as equally likely.",
                _softmax_unweighted,
            ),
        ),
    ),
    Question(
        id="03.6", sheet=SHEET, title="Find and fix the bugs in a hand-written backward pass", func_name="mlp_backward",
        points=2, reference=mlp_backward_reference, make_cases=_mlp_cases, kind="debug",
        hints=(
            "Do not read the listing line by line first: compare each of its four gradients with a numerical "
            "gradient of the loss and see which are wrong, then look at the lines that produce them.",
            "A wrong dW2 and db2 means the error is at or before dlogits (the loss's gradient); a correct dW2 but "
            "wrong dW1 and db1 puts it between h and z. Try N = 1 as well: one of the bugs disappears there.",
            "Two lines are wrong: the one that turns p into the loss's gradient (how is the loss reduced over the "
            "batch?) and the one through tanh (which tensor does tanh's slope depend on?).",
        ),
        misconceptions=(
            Misconception(
                "the listing unchanged",
                "Both bugs are still there; a gradient check parameter by parameter shows which gradients are off, "
                "and by how much.",
                lambda X, y, W1, b1, W2, b2: _mlp_grads(X, y, W1, b1, W2, b2, mean=False, slope_from_output=False),
            ),
            Misconception(
                "sum instead of mean over the batch",
                "The loss is the mean over the N examples, so each example's gradient carries a factor 1/N; without "
                "it every gradient grows with the batch size and the learning rate would have to shrink with it.",
                lambda X, y, W1, b1, W2, b2: _mlp_grads(X, y, W1, b1, W2, b2, mean=False),
            ),
            Misconception(
                "tanh's slope from the pre-activation",
                "The slope of tanh is a function of its output h, which the forward pass kept; evaluating that "
                "formula at the input z gives a different number, negative whenever |z| > 1.",
                lambda X, y, W1, b1, W2, b2: _mlp_grads(X, y, W1, b1, W2, b2, slope_from_output=False),
            ),
        ),
    ),
]
