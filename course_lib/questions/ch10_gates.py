"""Questions of sheet 10_gates: one LSTM step, one GRU step in PyTorch's convention, the
parameter count of nn.LSTM / nn.GRU / nn.RNN, temperature sampling probabilities, and a
measurement: the forget-gate bias that keeps half of the cell-state gradient over 50 steps.

Each question carries its hint tiers and the typical mistakes (misconceptions) that
:func:`course_lib.check.check` recognises by name.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable, List, Optional

import torch

from course_lib import gates
from course_lib.text import temperature_probs
from course_lib.questions import Case, Misconception, Question, randn, rand

SHEET = "10_gates"
F64 = torch.float64


def _sizes(gen: torch.Generator, count: int) -> List[tuple]:
    """``count`` random (B, I, H) triples with sizes 1..5."""
    return [tuple(int(s) for s in torch.randint(1, 6, (3,), generator=gen)) for _ in range(count)]


def _cell_args(gen: torch.Generator, B: int, I: int, H: int, gates_: int, scale: float = 1.0,
               bias: bool = True, cell_state: bool = False) -> tuple:
    """Random inputs of one cell step: x (B, I), h (B, H)[, c (B, H)], W_ih (G*H, I), W_hh (G*H, H), b_ih, b_hh."""
    x, h = randn(gen, B, I), 0.9 * torch.tanh(randn(gen, B, H))
    state = (h, 2 * randn(gen, B, H)) if cell_state else (h,)
    W_ih, W_hh = randn(gen, gates_ * H, I, scale=scale), randn(gen, gates_ * H, H, scale=scale)
    b_ih, b_hh = (randn(gen, gates_ * H, scale=scale), randn(gen, gates_ * H, scale=scale)) if bias else (None, None)
    return (x, *state, W_ih, W_hh, b_ih, b_hh)


# --- 10.1 one LSTM step ------------------------------------------------------------------------
def _lstm_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("B=3, I=2, H=4", _cell_args(gen, 3, 2, 4, 4, cell_state=True)),
        Case("one unit: B=1, I=1, H=1", _cell_args(gen, 1, 1, 1, 4, cell_state=True)),
        Case("B=2, I=3, H=1", _cell_args(gen, 2, 3, 1, 4, cell_state=True)),
        Case("no biases (b_ih = b_hh = None), B=2, I=4, H=3", _cell_args(gen, 2, 4, 3, 4, bias=False, cell_state=True)),
        Case("large weights: saturated gates, B=4, I=3, H=2", _cell_args(gen, 4, 3, 2, 4, scale=4.0, cell_state=True)),
    ]
    if hidden:
        for i, (B, I, H) in enumerate(_sizes(gen, 7)):
            cases.append(Case(f"B={B}, I={I}, H={H}", _cell_args(gen, B, I, H, 4, scale=[0.5, 1.0, 2.0][i % 3],
                                                               bias=i != 3, cell_state=True)))
    return cases


def _lstm_variant(order: str = "ifgo", forget_on_candidate: bool = False, tanh_on_cell: bool = True,
                  old_cell: bool = False, candidate_sigmoid: bool = False) -> Callable[..., tuple]:
    """An LSTM step with the given mistakes (see the misconceptions of 10.1)."""
    def wrong(x, h, c, W_ih, W_hh, b_ih=None, b_hh=None):
        a = x @ W_ih.T + h @ W_hh.T
        if b_ih is not None:
            a = a + b_ih + b_hh
        blocks = dict(zip(order, a.chunk(4, dim=1)))
        i, f, o = (torch.sigmoid(blocks[k]) for k in "ifo")
        g = torch.sigmoid(blocks["g"]) if candidate_sigmoid else torch.tanh(blocks["g"])
        c_new = f * g + i * c if forget_on_candidate else f * c + i * g
        cell = c if old_cell else c_new
        return (o * torch.tanh(cell) if tanh_on_cell else o * cell), c_new
    return wrong


# --- 10.2 one GRU step -------------------------------------------------------------------------
def _gru_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("B=3, I=2, H=4", _cell_args(gen, 3, 2, 4, 3)),
        Case("one unit: B=1, I=1, H=1", _cell_args(gen, 1, 1, 1, 3)),
        Case("B=2, I=3, H=1", _cell_args(gen, 2, 3, 1, 3)),
        Case("no biases (b_ih = b_hh = None), B=2, I=4, H=3", _cell_args(gen, 2, 4, 3, 3, bias=False)),
        Case("large weights: saturated gates, B=4, I=3, H=2", _cell_args(gen, 4, 3, 2, 3, scale=4.0)),
    ]
    if hidden:
        for i, (B, I, H) in enumerate(_sizes(gen, 7)):
            cases.append(Case(f"B={B}, I={I}, H={H}", _cell_args(gen, B, I, H, 3, scale=[0.5, 1.0, 2.0][i % 3],
                                                               bias=i != 3)))
    return cases


def _gru_variant(order: str = "rzn", reset: str = "pytorch", swap_update: bool = False) -> Callable[..., torch.Tensor]:
    """A GRU step with the given mistakes (see the misconceptions of 10.2). ``reset``: "pytorch"
    r*(W_hn h + b_hn); "paper" W_hn (r*h) + b_hn; "bias outside" r*(W_hn h) + b_hn."""
    def wrong(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
        gi, gh = x @ W_ih.T, h @ W_hh.T  # (B, 3H) each
        H = h.shape[1]
        bi = b_ih if b_ih is not None else torch.zeros(3 * H, dtype=x.dtype)
        bh = b_hh if b_hh is not None else torch.zeros(3 * H, dtype=x.dtype)
        xi, hh = dict(zip(order, (gi + bi).chunk(3, dim=1))), dict(zip(order, gh.chunk(3, dim=1)))
        bhh = dict(zip(order, bh.chunk(3)))
        r = torch.sigmoid(xi["r"] + hh["r"] + bhh["r"])
        z = torch.sigmoid(xi["z"] + hh["z"] + bhh["z"])
        if reset == "pytorch":
            n = torch.tanh(xi["n"] + r * (hh["n"] + bhh["n"]))
        elif reset == "paper":
            W_hn = dict(zip(order, W_hh.chunk(3, dim=0)))["n"]
            n = torch.tanh(xi["n"] + (r * h) @ W_hn.T + bhh["n"])
        else:
            n = torch.tanh(xi["n"] + r * hh["n"] + bhh["n"])
        return z * n + (1 - z) * h if swap_update else (1 - z) * n + z * h
    return wrong


# --- 10.3 predict the parameter count ----------------------------------------------------------
CELLS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def parameter_count(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                    bidirectional: bool = False) -> int:
    """The reference of 10.3: the number of parameters of ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``
    (``cell`` "rnn", "lstm" or "gru") with these sizes and default biases, counted on torch's own
    module built on the ``meta`` device (no memory is allocated, nothing is initialised for real)."""
    if cell not in CELLS:
        raise ValueError(f"parameter_count: cell should be one of {sorted(CELLS)}, got {cell!r}")
    module = getattr(torch.nn, CELLS[cell])(input_size, hidden_size, num_layers=num_layers,
                                            bidirectional=bidirectional, device="meta")
    return sum(p.numel() for p in module.parameters())


def _count_call(func: Callable[..., Any], case: Case) -> float:
    """The student's count as a float, so that 1234 and 1234.0 count alike (1234.5 does not)."""
    return float(func(*case.args, **case.kwargs))


def _count_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("nn.LSTM(10, 20)", ("lstm", 10, 20)),
        Case("nn.GRU(10, 20)", ("gru", 10, 20)),
        Case("nn.LSTM(1, 1): one unit", ("lstm", 1, 1)),
        Case("nn.RNN(6, 7, num_layers=2)", ("rnn", 6, 7), {"num_layers": 2}),
        Case("nn.LSTM(3, 5, num_layers=3)", ("lstm", 3, 5), {"num_layers": 3}),
        Case("nn.GRU(8, 4, num_layers=2, bidirectional=True)", ("gru", 8, 4), {"num_layers": 2, "bidirectional": True}),
        Case("nn.LSTM(128, 256, num_layers=2, bidirectional=True)", ("lstm", 128, 256), {"num_layers": 2, "bidirectional": True}),
    ]
    if hidden:
        for i in range(10):
            cell = ("lstm", "gru", "rnn")[i % 3]
            I, H = (int(s) for s in torch.randint(1, 300, (2,), generator=gen))
            kw = {"num_layers": 1 + i % 4, "bidirectional": i % 2 == 1}
            cases.append(Case(f"nn.{CELLS[cell]}({I}, {H}, num_layers={kw['num_layers']}, bidirectional={kw['bidirectional']})",
                              (cell, I, H), kw))
    return cases


def _count_variant(blocks: Optional[dict] = None, biases: int = 2, later_input: str = "H * directions",
                   directions_counted: bool = True) -> Callable[..., int]:
    """A closed-form count with the given mistakes (see the misconceptions of 10.3)."""
    blocks = blocks or {"rnn": 1, "gru": 3, "lstm": 4}

    def wrong(cell, input_size, hidden_size, num_layers=1, bidirectional=False):
        G, H = blocks[cell], hidden_size
        D = 2 if bidirectional and directions_counted else 1
        later = {"H * directions": H * (2 if bidirectional else 1), "H": H, "input_size": input_size}[later_input]
        total = 0
        for layer in range(num_layers):
            width = input_size if layer == 0 else later
            total += D * (G * H * (width + H) + biases * G * H)
        return total
    return wrong


# --- 10.4 temperature ----------------------------------------------------------------------------
def _temperature_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("V=5, T=1 (the model's own distribution)", (randn(gen, 5), 1.0)),
        Case("V=5, T=0.5 (sharper)", (randn(gen, 5, scale=2.0), 0.5)),
        Case("a batch of 3 rows, V=6, T=2 (flatter)", (randn(gen, 3, 6, scale=2.0), 2.0)),
        Case("2 rows, V=4, T=0.05: logits / T up to 1000 (overflow?)",
             (torch.tensor([[50.0, 10.0, -3.0, 0.0], [1.0, 2.0, 3.0, 4.0]], dtype=F64), 0.05)),
        Case("V=1: one token", (randn(gen, 1), 0.7)),
        Case("4 rows, V=3, T=100 (nearly uniform)", (randn(gen, 4, 3, scale=3.0), 100.0)),
    ]
    if hidden:
        for i in range(8):
            shape = (int(torch.randint(1, 5, (1,), generator=gen)), int(torch.randint(2, 30, (1,), generator=gen)))
            T = float(10 ** (2 * float(rand(gen, 1)) - 1.3))
            scale = 40.0 if i % 4 == 0 else 3.0
            cases.append(Case(f"logits {shape}, scale {scale:g}, T={T:.3g}", (randn(gen, *shape, scale=scale), T)))
    return cases


def _temperature_times(logits, temperature):
    return torch.softmax(logits * temperature, dim=-1)


def _temperature_after(logits, temperature):
    return torch.softmax(logits, dim=-1) / temperature


def _temperature_unstable(logits, temperature):
    e = torch.exp(logits / temperature)
    return e / e.sum(dim=-1, keepdim=True)


def _temperature_first_axis(logits, temperature):
    return torch.softmax(logits / temperature, dim=0)


# --- 10.5 the forget-gate bias that keeps half of the gradient ------------------------------------
FORGET_STEPS = 50
"""T, the length of the sequence in question 10.5."""
FORGET_FRACTION = 0.5
"""The fraction of the cell-state gradient dc_T/dc_0 to keep over FORGET_STEPS steps in 10.5."""
FORGET_PARAMS = {
    "weight_ih_l0": ((0.5,), (2.0,), (1.0,), (0.5,)),
    "weight_hh_l0": ((0.1,), (-0.1,), (0.2,), (0.1,)),
    "bias_ih_l0": (0.1, 0.0, 0.2, 0.5),
    "bias_hh_l0": (-0.2, 0.5, 0.1, 0.5),
}
"""The parameters of the one-unit nn.LSTM(1, 1) of question 10.5, named like torch's (rows i, f, g, o)."""


def forget_inputs() -> torch.Tensor:
    """The input sequence of 10.5: x_t = sin(t) for t = 0 .. T-1, shape (T, 1), float64."""
    return torch.sin(torch.arange(FORGET_STEPS, dtype=F64))[:, None]


def forget_params(b: float, both: bool = True) -> dict:
    """FORGET_PARAMS as float64 tensors with the forget-gate entry (row 1 of 4) of bias_ih_l0 set to
    ``b``, and of bias_hh_l0 too when ``both``."""
    params = {k: torch.tensor(v, dtype=F64) for k, v in FORGET_PARAMS.items()}
    params["bias_ih_l0"][1] = b
    if both:
        params["bias_hh_l0"][1] = b
    return params


def cell_gradient(b: float, both: bool = True) -> float:
    """dc_T/dc_0 of the LSTM of 10.5 (h_0 = c_0 = 0, inputs :func:`forget_inputs`), measured by
    autograd through :func:`course_lib.gates.lstm`, with forget biases set by :func:`forget_params`."""
    c0 = torch.zeros(1, 1, dtype=F64, requires_grad=True)
    _, (_, c_T) = gates.lstm(forget_inputs(), forget_params(b, both), (torch.zeros(1, 1, dtype=F64), c0))
    (grad,) = torch.autograd.grad(c_T.sum(), c0)
    return float(grad)


def _bisect(increasing: Callable[[float], float], target: float, low: float = -5.0, high: float = 15.0) -> float:
    """The x in [low, high] where the increasing function crosses ``target``, by 30 halvings
    (to 2e-8 on the default interval: far inside the question's 1%)."""
    for _ in range(30):
        mid = (low + high) / 2
        low, high = (mid, high) if increasing(mid) < target else (low, mid)
    return (low + high) / 2


@lru_cache(maxsize=None)
def forget_bias_reference() -> float:
    """The reference of 10.5: the value b of both forget-gate biases at which dc_T/dc_0 = 1/2
    (dc_T/dc_0 increases with b on [-5, 15]; tests/test_questions_ch10.py checks it)."""
    return _bisect(cell_gradient, FORGET_FRACTION)


@lru_cache(maxsize=None)
def _forget_one_bias() -> float:
    return _bisect(lambda b: cell_gradient(b, both=False), FORGET_FRACTION)


def _forget_constant_gate() -> float:
    """sigma(2b)^T = 1/2 solved for b: as if the forget gate saw neither x_t nor h_{t-1}."""
    per_step = FORGET_FRACTION ** (1 / FORGET_STEPS)
    return math.log(per_step / (1 - per_step)) / 2


def _forget_per_step() -> float:
    """sigma(2b) = 1/2 solved for b: half of the gradient kept per step, not over T steps."""
    return 0.0


def _number_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    return [Case("the LSTM of the sheet", ())]


def _number_call(func: Callable[..., Any], case: Case) -> float:
    """A measured answer: any real number (a float, an int, a one-element tensor)."""
    return float(func())


QUESTIONS = [
    Question(
        id="10.1", sheet=SHEET, title="One LSTM step", func_name="lstm_step", points=2,
        reference=gates.lstm_cell, make_cases=_lstm_cases, kind="implement",
        hints=(
            "Three gates in (0, 1) decide how much of the old cell state to keep, how much of the new candidate "
            "to write and how much of the squashed cell to show; the candidate itself lies in (-1, 1).",
            "Both matmuls give (B, 4H); their sum (plus both biases) splits along dim 1 into four (B, H) blocks "
            "in PyTorch's order i, f, g, o. Every product afterwards is elementwise.",
            "Compute the new cell state first from c, the gates and the candidate, then the new hidden state "
            "from it; return the pair (h_new, c_new). Treat b_ih = b_hh = None as zero biases.",
        ),
        misconceptions=(
            Misconception(
                "forget gate applied to the candidate",
                "The forget gate decides how much of the OLD cell state survives; the input gate scales the new "
                "candidate. Swapping them keeps the new information at the forget gate's rate and the memory at the "
                "input gate's, so the additive memory path is gated by the wrong signal.",
                _lstm_variant(forget_on_candidate=True),
            ),
            Misconception(
                "gate order i, f, o, g",
                "PyTorch stacks the four blocks of weight_ih and weight_hh as input, forget, candidate (g), output; "
                "reading the third block as the output gate puts a sigmoid on the candidate's weights and a tanh "
                "on the output gate's.",
                _lstm_variant(order="ifog"),
            ),
            Misconception(
                "h = o * c without tanh",
                "The cell state is an unbounded running sum; the hidden state shows a squashed copy of it, in "
                "(-1, 1), scaled by the output gate.",
                _lstm_variant(tanh_on_cell=False),
            ),
            Misconception(
                "h from the old cell state",
                "The hidden state of step t reads the cell state of the same step, after the forget and input "
                "gates have updated it, not the one carried in from step t - 1.",
                _lstm_variant(old_cell=True),
            ),
            Misconception(
                "sigmoid on the candidate",
                "The candidate is a proposed new content, which must be able to lower a cell value as well as "
                "raise it: it lies in (-1, 1), while the gates, being fractions, lie in (0, 1).",
                _lstm_variant(candidate_sigmoid=True),
            ),
        ),
    ),
    Question(
        id="10.2", sheet=SHEET, title="One GRU step, PyTorch's convention", func_name="gru_step", points=2,
        reference=gates.gru_cell, make_cases=_gru_cases, kind="implement",
        hints=(
            "Two gates: the reset gate decides how much of the previous state the candidate may use, and the "
            "update gate interpolates between keeping the previous state and taking the candidate.",
            "x W_ih^T and h W_hh^T are (B, 3H) each; split both into the blocks r, z, n (in this order) and keep "
            "the hidden part of n separate from the input part, because only the hidden part is reset.",
            "Add each block's bias before anything multiplies it; the reset gate multiplies the whole hidden block "
            "of n, its bias included. In the final mix the weight z belongs to the previous state.",
        ),
        misconceptions=(
            Misconception(
                "Cho's reset placement (the paper's GRU)",
                "The original paper resets the state before the hidden matmul, W_hn (r * h); PyTorch resets after "
                "it, r * (W_hn h + b_hn). Both are GRUs, but with the same weights they give different numbers, "
                "and this question asks for PyTorch's.",
                _gru_variant(reset="paper"),
            ),
            Misconception(
                "update gate's roles swapped",
                "In PyTorch's convention z is the fraction of the previous state that is kept: z near 1 copies "
                "h forward unchanged, the path along which gradients survive. Giving z to the candidate reverses "
                "the meaning of every update gate.",
                _gru_variant(swap_update=True),
            ),
            Misconception(
                "hidden bias b_hn outside the reset",
                "PyTorch resets the whole hidden contribution to the candidate, its bias b_hn included; a bias "
                "added after the reset still reaches the candidate when the reset gate is closed.",
                _gru_variant(reset="bias outside"),
            ),
            Misconception(
                "gate order z, r, n",
                "PyTorch stacks the blocks of weight_ih and weight_hh as reset, update, new (r, z, n); reading the "
                "first block as the update gate exchanges the two gates' weights.",
                _gru_variant(order="zrn"),
            ),
        ),
    ),
    Question(
        id="10.3", sheet=SHEET, title="Predict the parameter count of nn.LSTM and nn.GRU", func_name="rnn_parameter_count",
        points=2, reference=parameter_count, make_cases=_count_cases, call=_count_call, kind="predict",
        hints=(
            "Count per layer and per direction: every block of the cell (a gate or the candidate) has a weight "
            "matrix for the layer's input, one for the hidden state and its biases; then add up the layers.",
            "For G blocks and hidden size H a layer stores weight_ih (G*H, its input width), weight_hh (G*H, H) "
            "and two bias vectors of G*H. G is 1 for nn.RNN, 3 for nn.GRU, 4 for nn.LSTM. Which width does "
            "layer 2 read, and what changes when the layer below is bidirectional?",
            "Loop over the layers: the first reads input_size, each later one the output of the layer below, "
            "which concatenates both directions' hidden states; multiply each layer's count by the number of "
            "directions.",
        ),
        misconceptions=(
            Misconception(
                "one bias vector instead of two",
                "PyTorch's recurrent layers keep two bias vectors per layer, b_ih and b_hh, although only their "
                "sum matters to the output; both are parameters and both are counted.",
                _count_variant(biases=1),
            ),
            Misconception(
                "the candidate not counted (3 blocks for the LSTM)",
                "The LSTM has three gates and the candidate g, four blocks of weights; the GRU two gates and the "
                "candidate n, three blocks. The candidate has its own weights like every gate.",
                _count_variant(blocks={"rnn": 1, "gru": 2, "lstm": 3}),
            ),
            Misconception(
                "later layers read input_size",
                "Only the first layer reads the input; every later layer reads the hidden states of the layer "
                "below, so its input weights have the hidden size as their width.",
                _count_variant(later_input="input_size"),
            ),
            Misconception(
                "a bidirectional layer's output counted as H wide",
                "A bidirectional layer concatenates the forward and the backward hidden states, so the layer "
                "above reads 2H numbers per step and its input weights are twice as wide.",
                _count_variant(later_input="H"),
            ),
            Misconception(
                "the backward direction not counted",
                "A bidirectional layer is two independent recurrent layers, one per reading direction, each with "
                "its own weights and biases (the names ending in _reverse).",
                _count_variant(directions_counted=False),
            ),
        ),
    ),
    Question(
        id="10.4", sheet=SHEET, title="Sampling probabilities at a temperature", func_name="temperature_probs",
        points=1, reference=temperature_probs, make_cases=_temperature_cases, kind="implement",
        hints=(
            "The temperature rescales the logits before they become probabilities: below 1 it stretches their "
            "differences (sharper), above 1 it shrinks them (flatter); the result is still a distribution.",
            "logits has shape (..., V): one distribution over the V tokens per row, along the last axis, of "
            "the same shape. At T = 0.05 the rescaled logits reach 1000, and exp(1000) overflows float64.",
            "A constant subtracted from every rescaled logit of a row cancels between numerator and denominator. "
            "Which constant keeps every exponent at or below 0? Normalise along the last axis (dim=-1).",
        ),
        misconceptions=(
            Misconception(
                "temperature multiplies the logits",
                "Dividing by T is what makes low temperatures sharp: multiplying would make T = 0.5 flatter and "
                "T = 2 sharper, the opposite of what the word means.",
                _temperature_times,
            ),
            Misconception(
                "temperature applied after the softmax",
                "The temperature acts on the logits; dividing probabilities by T changes neither their ratios "
                "nor which token is likely, and the result no longer sums to 1.",
                _temperature_after,
            ),
            Misconception(
                "exp without subtracting the maximum",
                "At low temperature the rescaled logits become large, and exp overflows to inf beyond about 709 "
                "in float64; inf / inf is NaN. Shifting every logit of a row by the same amount leaves the "
                "softmax unchanged and keeps exp finite.",
                _temperature_unstable,
            ),
            Misconception(
                "softmax over the first axis",
                "Each row of a batch is its own distribution over the vocabulary, so the probabilities sum to 1 "
                "along the last axis; normalising across the rows mixes different sequences.",
                _temperature_first_axis,
            ),
        ),
    ),
    Question(
        id="10.5", sheet=SHEET, title="Measure the forget-gate bias that keeps half the gradient",
        func_name="forget_bias_for_half", points=2, reference=forget_bias_reference, make_cases=_number_cases,
        call=_number_call, kind="investigate", atol=0.0, rtol=0.01,
        hints=(
            "Experiment: for one value of the bias, run the LSTM over the 50 inputs and let autograd give the "
            "gradient of the last cell state with respect to the first; it grows with the bias, so search for "
            "the value where it crosses 1/2.",
            "The forget gate is block 1 of 4 (order i, f, g, o); with one unit that is entry 1 of each bias "
            "vector, and the question sets it in bias_ih_l0 and in bias_hh_l0. c_0 (shape (1, 1) for one layer "
            "of an unbatched sequence) needs requires_grad=True.",
            "Bisection between a bias that keeps less than half (e.g. 0) and one that keeps more (e.g. 10); about "
            "20 halvings give 1%. Then compare your number with what constant forget gates, sigma(2b)^50 = 1/2, "
            "would predict.",
        ),
        misconceptions=(
            Misconception(
                "only one of the two biases set",
                "nn.LSTM adds two bias vectors, b_ih and b_hh, to every gate's pre-activation; the forget gate "
                "sees their sum, so setting the forget entry of only one of them needs a much larger value for "
                "the same effect.",
                _forget_one_bias,
            ),
            Misconception(
                "forget gates treated as constant",
                "The forget gate also sees x_t and h_{t-1} through its weights, so it changes from step to step; "
                "the gradient is the product of the actual gates (plus the paths through h), not of sigma(2b) "
                "taken 50 times.",
                _forget_constant_gate,
            ),
            Misconception(
                "half of the gradient kept per step",
                "The gradient through the cell state is multiplied by a forget gate at every step, so over 50 steps "
                "the fractions multiply; keeping half per step leaves about 1e-15 after 50 steps.",
                _forget_per_step,
            ),
        ),
    ),
]
