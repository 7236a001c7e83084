"""Questions of chapter 03 · Backpropagation (sheet ``03_backprop``)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import torch

from course_lib import layers
from course_lib.engine import Value
from course_lib.gradcheck import numerical_grad
from course_lib.questions import Case, Question, randn

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
        ("sum of cubes", (2, 2), {"eps": 1e-2}),
    ]
    if hidden:
        spec += [
            ("mean of exp", (2, 2, 2), {}),
            ("log-sum-exp", (3, 2), {"eps": 1e-3}),
            ("product of sines", (5,), {"eps": 1e-2}),
            ("Python float", (2, 3), {}),
            ("sum of cubes", (), {"eps": 0.1}),
        ]
    return [Case(f"f = {name}, x{shape}" + (f", eps={kw['eps']:g}" if kw else ""), (name, randn(gen, *shape)), kw)
            for name, shape, kw in spec]


def _call_numgrad(func: Callable[..., Any], case: Case) -> Any:
    name, x = case.args
    return func(FUNCTIONS[name], x, **case.kwargs)


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


QUESTIONS = [
    Question(
        id="03.1", sheet=SHEET, title="Multiplication of Values with its backward", func_name="value_mul", points=2,
        reference=Value.__mul__, make_cases=_mul_cases, call=_call_mul,
        hint="out = Value(a.data * b.data, (a, b), '*'); in out._backward add (+=) b.data * out.grad to a.grad "
        "and a.data * out.grad to b.grad. Use += so that x * x gets both contributions.",
    ),
    Question(
        id="03.2", sheet=SHEET, title="tanh of a Value with its backward", func_name="value_tanh", points=2,
        reference=Value.tanh, make_cases=_tanh_cases, call=_call_tanh,
        hint="t = math.tanh(a.data); the local derivative is 1 - t**2 (of the OUTPUT t), "
        "multiplied by out.grad and added (+=) to a.grad.",
    ),
    Question(
        id="03.3", sheet=SHEET, title="Backward pass of a linear layer", func_name="linear_backward", points=2,
        reference=layers.linear_backward, make_cases=_linear_cases,
        hint="For y = x W^T + b: dx = dy W (N, D_in), dW = dy^T x (D_out, D_in) and db = dy summed over "
        "the batch (D_out,). Check every result's shape against the parameter it belongs to.",
    ),
    Question(
        id="03.4", sheet=SHEET, title="Numerical gradient by central differences", func_name="numerical_grad", points=2,
        reference=numerical_grad, make_cases=_numgrad_cases, call=_call_numgrad, atol=1e-9, rtol=1e-8,
        hint="For each entry i: (f(x + eps e_i) - f(x - eps e_i)) / (2 eps), with the eps you are given; "
        "return a float64 tensor shaped like x, and leave x unchanged.",
    ),
    Question(
        id="03.5", sheet=SHEET, title="Backward pass of softmax", func_name="softmax_backward", points=2,
        reference=layers.softmax_backward, make_cases=_softmax_cases,
        hint="dx = y * (dy - sum(dy * y)) with the sum along `dim` (keepdim=True): every output of the "
        "softmax depends on every input, not only its own.",
    ),
]
