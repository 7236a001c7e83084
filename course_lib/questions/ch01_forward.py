"""Questions of sheet 01_forward: a linear layer, ReLU, a stable sigmoid, a stable
softmax, the forward pass of an MLP, its parameter count, and a measurement of how
PyTorch's default initialisation shrinks activations from layer to layer.

Each question carries its typical mistakes (:class:`Misconception`) and two or three
hint tiers. Two references are private to this module because ``course_lib`` has no
such function: :func:`_count_parameters` and :func:`_variance_ratio`.
"""

from __future__ import annotations

import math
from typing import List, Sequence

import torch

from course_lib import layers
from course_lib.questions import Case, Misconception, Question, randn

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
    return [case(f"random shape {s}", *s) for s in _shapes(gen, 10, 3, hi=17)] + [
        case("square weights D_in = D_out = 5", 7, 5, 5),
        case("all square: N = D_in = D_out = 4", 4, 4, 4),
    ]


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
            case("square layers, sizes 4-4-4", 5, [4, 4, 4]),
        ]
    return [
        case(f"sizes {sizes}", int(torch.randint(1, 9, (1,), generator=gen)), sizes)
        for sizes in ([5, 7, 2], [1, 1], [6, 3, 6, 3], [2, 16, 16, 4], [8, 4, 2, 4, 8, 3], [3, 3, 3, 3])
    ]


# --- 01.6 counting parameters ---------------------------------------------------------------
def _count_parameters(sizes: Sequence[int]) -> int:
    """The number of weights and biases of an MLP with layer sizes ``[D_0, ..., D_L]``:
    ``sum over l of D_l * D_{l-1} + D_l``, the entries of ``W_l`` (D_l, D_{l-1}) and ``b_l`` (D_l,)."""
    return int(sum((d_in + 1) * d_out for d_in, d_out in zip(sizes[:-1], sizes[1:])))


def _count_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    if not hidden:
        return [
            Case("sizes [2, 4, 3, 2]", ([2, 4, 3, 2],)),
            Case("one layer, sizes [3, 2]", ([3, 2],)),
            Case("digits: sizes [64, 32, 10]", ([64, 32, 10],)),
            Case("the smallest net, sizes [1, 1]", ([1, 1],)),
            Case("deep and narrow, sizes [5, 10, 10, 10, 1]", ([5, 10, 10, 10, 1],)),
        ]
    cases = [Case("MNIST-sized, sizes [784, 128, 64, 10]", ([784, 128, 64, 10],))]
    for _ in range(6):
        depth = int(torch.randint(2, 7, (1,), generator=gen))
        sizes = torch.randint(1, 300, (depth,), generator=gen).tolist()
        cases.append(Case(f"sizes {sizes}", (sizes,)))
    return cases


# --- 01.7 how the default initialisation scales the variance ----------------------------------
WIDTH = 1000  # D: every layer's width in 01.7, and the batch size of the measurement


def _variance_ratio(relu: bool = True, std: bool = False, seed: int = 0) -> float:
    """Measure Var(Z_2) / Var(Z_1) in a two-layer MLP of width ``WIDTH`` with nn.Linear's
    default initialisation (weights and biases uniform in [-1/sqrt(D), 1/sqrt(D)]),
    ReLU between the layers (unless ``relu=False``), on ``WIDTH`` standard-normal inputs.
    With ``std=True`` the ratio of standard deviations. A fixed generator: reproducible."""
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(WIDTH)

    def uniform(*shape: int) -> torch.Tensor:
        return (torch.rand(shape, generator=gen, dtype=F64) * 2 - 1) * bound

    x = torch.randn(WIDTH, WIDTH, generator=gen, dtype=F64)
    z1 = x @ uniform(WIDTH, WIDTH).T + uniform(WIDTH)
    a1 = z1.clamp(min=0) if relu else z1
    z2 = a1 @ uniform(WIDTH, WIDTH).T + uniform(WIDTH)
    ratio = float(z2.var() / z1.var())
    return math.sqrt(ratio) if std else ratio


def _one_measurement(gen: torch.Generator, hidden: bool) -> List[Case]:
    return [Case("your measurement", ())]


def _as_float(func, case: Case) -> float:
    """Call a function that answers with a number and return that number as a Python float
    (a 0-d tensor is accepted; a tensor of several numbers raises a clear error)."""
    out = func(*case.args, **case.kwargs)
    if isinstance(out, torch.Tensor) and out.numel() != 1:
        raise ValueError(f"expected one number, got a tensor of shape {tuple(out.shape)}")
    return float(out)


# --- typical mistakes ---------------------------------------------------------------------------
def _mlp_relu_on_logits(x, params):
    outs, a = [x], x
    for W, b in params:
        z = a @ W.T + b
        a = torch.relu(z)
        outs += [z, a]
    return outs  # also appends ReLU(z_L) at the end


def _mlp_relu_everywhere(x, params):
    outs, a = [x], x
    for i, (W, b) in enumerate(params):
        z = a @ W.T + b
        outs.append(torch.relu(z) if i == len(params) - 1 else z)
        if i < len(params) - 1:
            a = torch.relu(z)
            outs.append(a)
    return outs


def _mlp_logits_only(x, params):
    a = x
    for i, (W, b) in enumerate(params):
        a = a @ W.T + b
        if i < len(params) - 1:
            a = torch.relu(a)
    return a


def _mlp_no_transpose(x, params):
    outs, a = [x], x
    for i, (W, b) in enumerate(params):
        z = a @ W + b
        outs.append(z)
        if i < len(params) - 1:
            a = torch.relu(z)
            outs.append(a)
    return outs


_SCALE_IDEA = ("The weights of one layer are a linear map: each output is a sum of D_in products, "
               "so its variance depends on D_in times the variance of one weight.")

QUESTIONS = [
    Question(
        id="01.1",
        sheet=SHEET,
        title="A linear layer",
        func_name="linear_forward",
        points=2,
        reference=layers.linear_forward,
        make_cases=_linear_cases,
        hints=(
            "Each of the N examples is multiplied by the same weights, and each output neuron j has its own "
            "row of W and its own bias b_j, added to every example.",
            "x is (N, D_in) and W is (D_out, D_in), one row per output neuron as in nn.Linear: to contract over "
            "D_in the weights must be transposed, giving (N, D_out); b has shape (D_out,).",
            "A matrix product with the transpose of W (the .T attribute), then + b: broadcasting adds b to every row.",
        ),
        misconceptions=(
            Misconception(
                "no transpose",
                "W stores one row per output neuron, shape (D_out, D_in); multiplying by W itself contracts the "
                "wrong axis, which only runs at all when W is square, and then mixes the wrong weights.",
                lambda x, W, b: x @ W + b,
            ),
            Misconception(
                "forgot the bias",
                "A layer is affine, not linear: every output neuron adds its own offset b_j, without which every "
                "decision boundary would have to pass through the origin.",
                lambda x, W, b: x @ W.T,
            ),
            Misconception(
                "column-vector convention (W x + b)",
                "Textbooks often write y = W x + b for one example as a column; with a batch stored as rows of x "
                "the result must keep one row per example, shape (N, D_out), not (D_out, N).",
                lambda x, W, b: W @ x.T + b[:, None],
            ),
        ),
    ),
    Question(
        id="01.2",
        sheet=SHEET,
        title="ReLU",
        func_name="relu",
        points=1,
        reference=layers.relu,
        make_cases=_relu_cases,
        hints=(
            "ReLU is applied to every entry on its own: a positive entry passes unchanged, anything else becomes zero.",
            "The output has exactly the shape and the dtype of x (one case is float32); the values are the "
            "entries themselves, not a 0/1 mask.",
            "One elementwise call does it: a clamp with a lower bound, or a where on the condition x > 0 "
            "with zeros of x's dtype.",
        ),
        misconceptions=(
            Misconception(
                "returns the 0/1 mask (the derivative)",
                "The indicator [x > 0] is the derivative of ReLU, used in the backward pass; the function itself "
                "passes the positive values through unchanged.",
                lambda x: (x > 0).to(x.dtype),
            ),
            Misconception(
                "clamps the wrong side",
                "ReLU keeps the positive part of its input, max(0, x); keeping the negative part, min(0, x), "
                "is a different function.",
                lambda x: x.clamp(max=0),
            ),
            Misconception(
                "leaky ReLU",
                "Leaky ReLU lets a small slope through for negative inputs; plain ReLU is exactly zero there, "
                "which is what makes units 'dead' for some inputs.",
                lambda x: torch.where(x > 0, x, 0.01 * x),
            ),
            Misconception(
                "converts to float64",
                "An activation must keep its input's dtype: a float32 network that silently turns into float64 "
                "doubles its memory and no longer matches its own parameters' dtype.",
                lambda x: x.double().clamp(min=0),
            ),
        ),
    ),
    Question(
        id="01.3",
        sheet=SHEET,
        title="A numerically stable sigmoid",
        func_name="sigmoid",
        points=2,
        reference=layers.sigmoid,
        make_cases=_sigmoid_cases,
        hints=(
            "exp of a large positive number overflows to inf, and inf / inf is NaN; exp of a large negative "
            "number only underflows to 0, which is harmless. Arrange the formula so that every exponent is <= 0.",
            "With e = exp(-|x|), which lies in (0, 1] for every x, the sigmoid can be written as one fraction "
            "in e for x >= 0 and another for x < 0 (multiply top and bottom of 1 / (1 + exp(-x)) by exp(x)).",
            "Compute e once from the absolute value, then pick between the two fractions elementwise with "
            "torch.where on the sign of x.",
        ),
        misconceptions=(
            Misconception(
                "exp(x) / (1 + exp(x)) overflows",
                "The two textbook forms of the sigmoid are equal in exact arithmetic, but exp(x) is inf in float64 "
                "for x > 709.78, and inf / inf is NaN: the form must never exponentiate a large positive number.",
                lambda x: torch.exp(x) / (1 + torch.exp(x)),
            ),
            Misconception(
                "sign error",
                "The sigmoid increases with x, from 0 far left to 1 far right: exp(+x) in the denominator gives "
                "sigmoid(-x), the probability of the other class.",
                lambda x: 1 / (1 + torch.exp(x)),
            ),
            Misconception(
                "tanh instead",
                "tanh is a rescaled sigmoid, 2 sigmoid(2x) - 1, with range (-1, 1); the sigmoid has range (0, 1) "
                "and is 1/2 at 0, so it can be read as a probability.",
                lambda x: torch.tanh(x),
            ),
        ),
    ),
    Question(
        id="01.4",
        sheet=SHEET,
        title="A numerically stable softmax",
        func_name="softmax",
        points=2,
        reference=layers.softmax,
        make_cases=_softmax_cases,
        hints=(
            "Softmax does not change when the same constant is subtracted from every logit of one row; choose "
            "the constant so that no exponent is positive.",
            "For input (..., C) the constant is one number per row, the row's maximum, kept with shape (..., 1) "
            "so it broadcasts against the row; the sum in the denominator is per row too.",
            "Reduce along the last axis (dim=-1) with keepdim=True, both for the maximum (.values of .max) and "
            "for the sum.",
        ),
        misconceptions=(
            Misconception(
                "no max subtraction",
                "exp of a logit of 1000 overflows to inf and the ratio becomes NaN; the result is the same after "
                "shifting each row by a constant, so shift it so that every exponent is <= 0.",
                lambda z: torch.exp(z) / torch.exp(z).sum(-1, keepdim=True),
            ),
            Misconception(
                "global max instead of per row",
                "The shift must be a constant within each row; one maximum for the whole batch leaves rows far "
                "below it with exponents so negative that all of their entries underflow to 0, giving 0 / 0.",
                lambda z: torch.exp(z - z.max()) / torch.exp(z - z.max()).sum(-1, keepdim=True),
            ),
            Misconception(
                "normalised over the wrong axis",
                "Each example's probabilities are over its C classes, the last axis; normalising over the batch "
                "axis makes each class's column sum to 1 instead of each example's row.",
                lambda z: torch.softmax(z, dim=0),
            ),
            Misconception(
                "forgot to normalise",
                "Exponentials are positive but do not sum to 1; dividing by their sum over the classes is what "
                "turns them into a probability distribution.",
                lambda z: torch.exp(z - z.max(-1, keepdim=True).values),
            ),
        ),
    ),
    Question(
        id="01.5",
        sheet=SHEET,
        title="The forward pass of an MLP",
        func_name="mlp_forward",
        points=3,
        reference=layers.mlp_forward,
        make_cases=_mlp_cases,
        hints=(
            "An MLP repeats 'linear layer, then activation', except after the last layer, whose outputs are "
            "the logits; the backward pass will need every intermediate result, so keep them all.",
            "With L layers the list has 2L tensors: the input, then (Z_l, A_l) for each hidden layer, then Z_L. "
            "Z_l and A_l both have shape (N, D_l).",
            "Loop over the (W, b) pairs with their index; append Z every time, and apply ReLU and append A only "
            "when the index is not the last one.",
        ),
        misconceptions=(
            Misconception(
                "ReLU on the logits too",
                "The last layer's outputs are logits, scores that may be negative; a ReLU there would clip every "
                "negative score to 0 and the softmax could no longer tell those classes apart.",
                _mlp_relu_everywhere,
            ),
            Misconception(
                "keeps the last activation in the list",
                "There is no activation after the last layer, so there is no A_L to keep: the list ends with the "
                "logits Z_L and has 2L entries.",
                _mlp_relu_on_logits,
            ),
            Misconception(
                "returns only the logits",
                "The forward pass here records every intermediate result, because the backward pass of the next "
                "chapters needs each layer's input and pre-activation, not only the network's output.",
                _mlp_logits_only,
            ),
            Misconception(
                "no transpose",
                "Each W_l stores one row per output unit, shape (D_l, D_{l-1}); multiplying by W_l itself uses the "
                "wrong weights, and only runs at all when the layer is square.",
                _mlp_no_transpose,
            ),
        ),
    ),
    Question(
        id="01.6",
        sheet=SHEET,
        title="How many parameters?",
        func_name="count_parameters",
        kind="derive",
        points=1,
        reference=_count_parameters,
        make_cases=_count_cases,
        hints=(
            "Every parameter sits in some layer's weight matrix or bias vector; count the entries of each and "
            "add over the layers.",
            "Layer l maps D_{l-1} inputs to D_l outputs: its W_l has shape (D_l, D_{l-1}) and its b_l shape "
            "(D_l,). A list of L + 1 sizes describes L layers.",
            "Walk over consecutive pairs of sizes (zip the list with itself shifted by one) and add up each "
            "layer's weights plus biases; return a Python int.",
        ),
        misconceptions=(
            Misconception(
                "forgets the biases",
                "Each output unit of a layer has its own bias besides its weights, and biases are trained like "
                "weights, so they are parameters too.",
                lambda sizes: int(sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))),
            ),
            Misconception(
                "one bias per input instead of per output",
                "A bias is added to each output of a layer, after the weighted sum, so a layer has as many biases "
                "as it has outputs, not as it has inputs.",
                lambda sizes: int(sum(a * (b + 1) for a, b in zip(sizes[:-1], sizes[1:]))),
            ),
            Misconception(
                "counts the input as a layer",
                "The input layer holds the data, not parameters: only the L layers that transform it have weights "
                "and biases, so the input size contributes no bias of its own.",
                lambda sizes: _count_parameters(sizes) + int(sizes[0]),
            ),
        ),
    ),
    Question(
        id="01.7",
        sheet=SHEET,
        title="Measure it: does the default initialisation keep the scale?",
        func_name="variance_ratio",
        kind="investigate",
        points=2,
        reference=_variance_ratio,
        make_cases=_one_measurement,
        call=_as_float,
        atol=0.015,  # seeds move the measurement by about 0.004; the misconceptions lie >= 0.16 away
        rtol=0.0,
        hints=(
            _SCALE_IDEA + " The ReLU in between changes what the second layer receives.",
            "Build two nn.Linear(1000, 1000) layers (default initialisation), a batch X of shape (1000, 1000) "
            "from torch.randn, Z_1 from X, A_1 = ReLU(Z_1), Z_2 from A_1; compare the variances of all entries "
            "of Z_2 and Z_1.",
            "Work under torch.no_grad(); .var() of a tensor takes all of its entries; return float(...) of the "
            "ratio of the two variances (not of their standard deviations).",
        ),
        misconceptions=(
            Misconception(
                "assumes the default initialisation preserves the variance",
                "nn.Linear draws weights from U(-1/sqrt(D), 1/sqrt(D)), whose variance is 1/(3D), so each layer "
                "multiplies the variance by about D * 1/(3D) = 1/3 before any activation: it does not keep the scale.",
                lambda: 1.0,
            ),
            Misconception(
                "only the ReLU halves the variance",
                "The ReLU halves the second moment that reaches the next layer, but the weights shrink it as well: "
                "their variance 1/(3D) is three times too small to keep the scale even without an activation.",
                lambda: 0.5,
            ),
            Misconception(
                "measured without the ReLU",
                "Without the activation each layer scales the variance by about 1/3; the ReLU zeroes the negative "
                "half of the pre-activations, so the second layer receives only half of the second moment.",
                lambda: _variance_ratio(relu=False),
            ),
            Misconception(
                "ratio of standard deviations",
                "The question asks how the variance changes; a ratio of standard deviations is its square root, "
                "a different number, which hides how fast the scale decays over many layers.",
                lambda: _variance_ratio(std=True),
            ),
        ),
    ),
]
