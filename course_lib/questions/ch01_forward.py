"""Questions of sheet 01_forward: a linear layer, ReLU, a stable sigmoid, a stable
softmax and the forward pass of an MLP."""

from __future__ import annotations

from typing import List

import torch

from course_lib import layers
from course_lib.questions import Case, Question, randn

SHEET = "01_forward"
F64 = torch.float64


def _shapes(gen: torch.Generator, count: int, dims: int, hi: int = 9) -> List[List[int]]:
    return [torch.randint(1, hi, (dims,), generator=gen).tolist() for _ in range(count)]


# --- 01.1 linear layer ----------------------------------------------------------------
def _linear_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(label: str, n: int, d_in: int, d_out: int, zero_bias: bool = False) -> Case:
        x, W = randn(gen, n, d_in), randn(gen, d_out, d_in)
        b = torch.zeros(d_out, dtype=F64) if zero_bias else randn(gen, d_out)
        return Case(label, (x, W, b))

    if not hidden:
        return [
            case("N=4, D_in=3, D_out=2", 4, 3, 2),
            case("square weights D_in = D_out = 3", 5, 3, 3),
            case("one example (N=1)", 1, 4, 3),
            case("one input feature (D_in=1)", 3, 1, 2),
            case("one output (D_out=1)", 6, 2, 1),
            case("zero bias", 2, 3, 4, zero_bias=True),
        ]
    return [case(f"random shape {s}", *s) for s in _shapes(gen, 10, 3, hi=17)]


# --- 01.2 ReLU ----------------------------------------------------------------------------
def _relu_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    if not hidden:
        return [
            Case("a vector with exact zeros", (torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], dtype=F64),)),
            Case("a (4, 3) matrix", (randn(gen, 4, 3),)),
            Case("all negative", (-randn(gen, 6).abs() - 0.1,)),
            Case("a single number, shape (1,)", (torch.tensor([3.0], dtype=F64),)),
            Case("a 3-D tensor (2, 3, 4)", (randn(gen, 2, 3, 4),)),
            Case("float32 input keeps float32", (randn(gen, 3, 5, dtype=torch.float32),)),
        ]
    return [Case(f"random shape {s}", (randn(gen, *s, scale=3.0),)) for s in _shapes(gen, 8, 2)] + [
        Case("float32 3-D", (randn(gen, 2, 2, 3, dtype=torch.float32),))
    ]


# --- 01.3 sigmoid -------------------------------------------------------------------------
def _sigmoid_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    if not hidden:
        return [
            Case("small values", (torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], dtype=F64),)),
            Case("a (3, 4) matrix", (randn(gen, 3, 4, scale=3.0),)),
            Case("large positive values (exp(x) overflows)", (torch.tensor([40.0, 200.0, 709.0, 710.0, 1000.0], dtype=F64),)),
            Case("large negative values (exp(-x) overflows)", (torch.tensor([-1000.0, -710.0, -709.0, -200.0, -40.0], dtype=F64),)),
            Case("tiny values around 0", (torch.tensor([[-1e-12, 0.0, 1e-12], [-1e-300, 1e-300, 0.5]], dtype=F64),)),
        ]
    return [Case(f"random shape {s}", (randn(gen, *s, scale=50.0),)) for s in _shapes(gen, 8, 2)] + [
        Case("mixed huge values", (torch.tensor([[-1e4, 1e4], [-800.0, 800.0]], dtype=F64),))
    ]


# --- 01.4 softmax -------------------------------------------------------------------------
def _softmax_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    if not hidden:
        return [
            Case("logits (4, 3)", (randn(gen, 4, 3),)),
            Case("one example, shape (5,)", (randn(gen, 5),)),
            Case("one class, shape (3, 1)", (randn(gen, 3, 1),)),
            Case("equal logits", (torch.full((2, 4), 7.0, dtype=F64),)),
            Case(
                "logits of +-1000 (exp overflows without the max trick)",
                (torch.tensor([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -999.0], [1000.0, 1000.0, 999.0]], dtype=F64),),
            ),
            Case("a 3-D batch (2, 3, 4): softmax over the last axis", (randn(gen, 2, 3, 4, scale=2.0),)),
        ]
    return [Case(f"random shape {s}", (randn(gen, *s, scale=30.0),)) for s in _shapes(gen, 8, 2)] + [
        Case("rows far apart", (torch.tensor([[5000.0, 4990.0], [-5000.0, -4999.0]], dtype=F64),))
    ]


# --- 01.5 MLP forward ----------------------------------------------------------------------
def _mlp_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(label: str, n: int, sizes: List[int]) -> Case:
        params = layers.init_mlp(sizes, generator=gen)
        params = [(W * 2.0, b) for W, b in params]  # a wider spread: negative logits and dead units occur
        return Case(label, (randn(gen, n, sizes[0]), params))

    if not hidden:
        return [
            case("sizes 2-4-3-2, N=5", 5, [2, 4, 3, 2]),
            case("one layer only (no hidden layer), sizes 3-2", 4, [3, 2]),
            case("one hidden layer, sizes 4-8-3", 6, [4, 8, 3]),
            case("one example (N=1), sizes 2-3-3-2", 1, [2, 3, 3, 2]),
            case("a deeper net, sizes 3-5-5-5-1", 3, [3, 5, 5, 5, 1]),
        ]
    return [
        case(f"sizes {sizes}", int(torch.randint(1, 9, (1,), generator=gen)), sizes)
        for sizes in ([5, 7, 2], [1, 1], [6, 3, 6, 3], [2, 16, 16, 4], [8, 4, 2, 4, 8, 3])
    ]


QUESTIONS = [
    Question(
        id="01.1",
        sheet=SHEET,
        title="A linear layer",
        func_name="linear_forward",
        points=2,
        reference=layers.linear_forward,
        make_cases=_linear_cases,
        hint="x is (N, D_in) and W is (D_out, D_in) as in nn.Linear, so the product is x @ W.T, "
        "giving (N, D_out); then add b (D_out,), which broadcasts over the N rows.",
    ),
    Question(
        id="01.2",
        sheet=SHEET,
        title="ReLU",
        func_name="relu",
        points=1,
        reference=layers.relu,
        make_cases=_relu_cases,
        hint="ReLU keeps positive entries and replaces the others by 0: torch.where(x > 0, x, 0) or "
        "x.clamp(min=0). Return a tensor of the same shape and dtype as x (not a 0/1 mask).",
    ),
    Question(
        id="01.3",
        sheet=SHEET,
        title="A numerically stable sigmoid",
        func_name="sigmoid",
        points=2,
        reference=layers.sigmoid,
        make_cases=_sigmoid_cases,
        hint="sigmoid(x) = 1 / (1 + exp(-x)). Never evaluate exp of a large positive number: with "
        "e = exp(-|x|) use 1 / (1 + e) where x >= 0 and e / (1 + e) where x < 0.",
    ),
    Question(
        id="01.4",
        sheet=SHEET,
        title="A numerically stable softmax",
        func_name="softmax",
        points=2,
        reference=layers.softmax,
        make_cases=_softmax_cases,
        hint="Work along the last axis (dim=-1, keepdim=True). Subtract each row's own maximum "
        "before exp (the result is unchanged, the exponents are <= 0), then divide by the row sum.",
    ),
    Question(
        id="01.5",
        sheet=SHEET,
        title="The forward pass of an MLP",
        func_name="mlp_forward",
        points=3,
        reference=layers.mlp_forward,
        make_cases=_mlp_cases,
        hint="Return [x, z1, a1, ..., z_L]: for each (W, b) compute z = a @ W.T + b and append it; "
        "apply ReLU (and append the result) after every layer except the last one.",
    ),
]
