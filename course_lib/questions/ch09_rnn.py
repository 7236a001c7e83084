"""Questions of chapter 09 · Recurrent networks and backpropagation through time (sheet
``09_rnn``): one step of a vanilla RNN, a layer over a sequence (``batch_first`` both ways),
the gradient of two unrolled steps derived by hand, debugging the talent article's RNN for
batches larger than one, predicting how fast a gradient shrinks through a linear recurrence,
and predicting the parameter count of a stacked ``nn.RNN``. Each question carries its typical
mistakes (misconceptions) and two or three hint tiers."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from course_lib import rnn
from course_lib.questions import Case, Misconception, Question, randn

SHEET = "09_rnn"
F64 = torch.float64


def _params(W_ih: torch.Tensor, W_hh: torch.Tensor, b_ih: Optional[torch.Tensor], b_hh: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
    """One layer's weights under nn.RNN's names (biases left out when None)."""
    params = {"weight_ih_l0": W_ih, "weight_hh_l0": W_hh}
    if b_ih is not None:
        params["bias_ih_l0"] = b_ih
    if b_hh is not None:
        params["bias_hh_l0"] = b_hh
    return params


def _weights(gen: torch.Generator, I: int, H: int, scale: float = 0.6) -> Tuple[torch.Tensor, ...]:
    """W_ih (H, I), W_hh (H, H), b_ih (H,), b_hh (H,), float64, of moderate size."""
    return randn(gen, H, I, scale=scale), randn(gen, H, H, scale=scale), randn(gen, H, scale=0.5), randn(gen, H, scale=0.5)


# --- 09.1 one RNN step ------------------------------------------------------------------------
def _step_case(gen: torch.Generator, label: str, B: int, I: int, H: int, scale: float = 1.0) -> Case:
    W_ih, W_hh, b_ih, b_hh = _weights(gen, I, H)
    return Case(label, (randn(gen, B, I, scale=scale), randn(gen, B, H, scale=0.8), W_ih, W_hh, b_ih, b_hh))


def _step_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        _step_case(gen, "batch 2, input 3, hidden 4", 2, 3, 4),
        _step_case(gen, "batch 1, input 5, hidden 2", 1, 5, 2),
        _step_case(gen, "hidden size 1, batch 4, input 3", 4, 3, 1),
        _step_case(gen, "input size = hidden size = 3 (square W_ih)", 3, 3, 3),
        _step_case(gen, "large inputs: tanh saturates", 2, 2, 3, scale=6.0),
        _step_case(gen, "input size 1, batch 3, hidden 2", 3, 1, 2),
    ]
    if hidden:
        for i in range(8):
            B, I, H = (int(v) for v in torch.randint(1, 7, (3,), generator=gen))
            if i % 3 == 0:
                I = H  # square W_ih: transposition mistakes run without an error
            cases.append(_step_case(gen, f"batch {B}, input {I}, hidden {H}", B, I, H, scale=[1.0, 3.0][i % 2]))
    return cases


def _step_no_b_hh(x, h, W_ih, W_hh, b_ih, b_hh):
    return torch.tanh(x @ W_ih.T + b_ih + h @ W_hh.T)


def _step_no_tanh(x, h, W_ih, W_hh, b_ih, b_hh):
    return x @ W_ih.T + b_ih + h @ W_hh.T + b_hh


def _step_not_transposed(x, h, W_ih, W_hh, b_ih, b_hh):
    return torch.tanh(x @ W_ih + b_ih + h @ W_hh + b_hh)  # raises unless W_ih happens to be square


def _step_W_hh_not_transposed(x, h, W_ih, W_hh, b_ih, b_hh):
    return torch.tanh(x @ W_ih.T + b_ih + h @ W_hh + b_hh)


# --- 09.2 an RNN layer over a sequence ------------------------------------------------------------
def rnn_layer_reference(x: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor,
                        h0: Optional[torch.Tensor] = None, batch_first: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """One tanh layer as ``nn.RNN(I, H, batch_first=batch_first)``: x (T, B, I) or (B, T, I),
    h0 (1, B, H) or None -> (output (T, B, H) or (B, T, H), h_n (1, B, H)); :func:`course_lib.rnn.rnn`."""
    return rnn.rnn(x, _params(W_ih, W_hh, b_ih, b_hh), h0=h0, batch_first=batch_first)


def _layer_case(gen: torch.Generator, label: str, B: int, T: int, I: int, H: int, batch_first: bool, with_h0: bool) -> Case:
    W_ih, W_hh, b_ih, b_hh = _weights(gen, I, H)
    x = randn(gen, *((B, T, I) if batch_first else (T, B, I)))
    kwargs: Dict[str, Any] = {"batch_first": batch_first}
    if with_h0:
        kwargs["h0"] = randn(gen, 1, B, H, scale=0.8)
    return Case(label, (x, W_ih, W_hh, b_ih, b_hh), kwargs)


def _layer_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        _layer_case(gen, "time-first x (T=3, B=2, I=4), hidden 5, h0 given", 2, 3, 4, 5, False, True),
        _layer_case(gen, "batch_first x (B=2, T=4, I=3), hidden 5, no h0", 2, 4, 3, 5, True, False),
        _layer_case(gen, "batch_first x (B=4, T=3, I=2), hidden 3, h0 given", 4, 3, 2, 3, True, True),
        _layer_case(gen, "time-first x (T=5, B=1, I=2), hidden 3, no h0 (batch 1)", 1, 5, 2, 3, False, False),
        _layer_case(gen, "batch_first x (B=3, T=1, I=2): sequence length 1, h0 given", 3, 1, 2, 4, True, True),
        _layer_case(gen, "batch_first x (B=3, T=3, I=1), hidden 1, h0 given", 3, 3, 1, 1, True, True),
        _layer_case(gen, "batch_first x (B=2, T=6, I=3), hidden 2, no h0", 2, 6, 3, 2, True, False),
    ]
    if hidden:
        for i in range(10):
            B, T, I, H = (int(v) for v in torch.randint(1, 7, (4,), generator=gen))
            bf, with_h0 = i % 2 == 0, i % 3 != 0
            layout = f"(B={B}, T={T}, I={I})" if bf else f"(T={T}, B={B}, I={I})"
            cases.append(_layer_case(gen, f"{'batch_first' if bf else 'time-first'} x {layout}, hidden {H}, "
                                          f"{'h0 given' if with_h0 else 'no h0'}", B, T, I, H, bf, with_h0))
    return cases


def _layer_axes_swapped(x, W_ih, W_hh, b_ih, b_hh, h0=None, batch_first=False):
    """Reads batch_first the wrong way round (raises where h0's batch does not fit that reading)."""
    return rnn_layer_reference(x, W_ih, W_hh, b_ih, b_hh, h0=h0, batch_first=not batch_first)


def _layer_last_state_only(x, W_ih, W_hh, b_ih, b_hh, h0=None, batch_first=False):
    _, h_n = rnn_layer_reference(x, W_ih, W_hh, b_ih, b_hh, h0=h0, batch_first=batch_first)
    return h_n[0], h_n


def _layer_state_not_carried(x, W_ih, W_hh, b_ih, b_hh, h0=None, batch_first=False):
    seq = x.transpose(0, 1) if batch_first else x
    start = torch.zeros(seq.shape[1], W_hh.shape[0], dtype=x.dtype) if h0 is None else h0[0]
    outs = torch.stack([rnn.rnn_cell(seq[t], start, W_ih, W_hh, b_ih, b_hh) for t in range(seq.shape[0])])
    return (outs.transpose(0, 1) if batch_first else outs), outs[-1:]


def _layer_h_n_batch_first(x, W_ih, W_hh, b_ih, b_hh, h0=None, batch_first=False):
    output, h_n = rnn_layer_reference(x, W_ih, W_hh, b_ih, b_hh, h0=h0, batch_first=batch_first)
    return output, (h_n.transpose(0, 1) if batch_first else h_n)


# --- 09.3 BPTT through two steps ---------------------------------------------------------------
def bptt_two_steps_reference(x: torch.Tensor, h0: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor, b: torch.Tensor,
                             G: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """x (2, B, I), h0 (B, H), W_ih (H, I), W_hh (H, H), b (H,), G (B, H); the loss is
    L = sum(G * h_2) with h_t = tanh(x_t W_ih^T + h_{t-1} W_hh^T + b). Returns (dL/dW_hh (H, H),
    dL/dh0 (B, H)) from :func:`course_lib.rnn.bptt`, written by hand without autograd."""
    hs = rnn.rnn_forward_states(x, W_ih, W_hh, b, h0)
    grads = rnn.bptt(x, hs, torch.zeros_like(hs[1:]), W_ih, W_hh, dh_n=G)
    return grads["dW_hh"], grads["dh0"]  # type: ignore[return-value]


def _bptt_case(gen: torch.Generator, label: str, B: int, I: int, H: int, scale: float = 0.7) -> Case:
    W_ih, W_hh = randn(gen, H, I, scale=scale), randn(gen, H, H, scale=scale)
    return Case(label, (randn(gen, 2, B, I), randn(gen, B, H, scale=0.8), W_ih, W_hh, randn(gen, H, scale=0.3), randn(gen, B, H)))


def _bptt_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        _bptt_case(gen, "batch 2, input 3, hidden 4", 2, 3, 4),
        _bptt_case(gen, "batch 1, input 2, hidden 3", 1, 2, 3),
        _bptt_case(gen, "batch 5, input 1, hidden 2", 5, 1, 2),
        _bptt_case(gen, "hidden size 1, batch 3, input 2", 3, 2, 1),
        _bptt_case(gen, "larger weights: tanh near saturation", 2, 3, 3, scale=1.5),
    ]
    if hidden:
        for i in range(8):
            B, I, H = (int(v) for v in torch.randint(1, 6, (3,), generator=gen))
            cases.append(_bptt_case(gen, f"batch {B}, input {I}, hidden {H}", B, I, H, scale=[0.5, 1.0][i % 2]))
    return cases


def _bptt_variant(*, derivative: str = "1 - h^2", both_steps: bool = True, transpose_dW: bool = False
                  ) -> Callable[..., Tuple[torch.Tensor, torch.Tensor]]:
    """The two-step backward pass with one mistake (see the misconceptions of 09.3)."""

    def local(h: torch.Tensor) -> torch.Tensor:
        return {"1 - h^2": 1 - h * h, "none": torch.ones_like(h), "1 - h": 1 - h}[derivative]

    def backward(x, h0, W_ih, W_hh, b, G):
        h1 = torch.tanh(x[0] @ W_ih.T + h0 @ W_hh.T + b)
        h2 = torch.tanh(x[1] @ W_ih.T + h1 @ W_hh.T + b)
        da2 = G * local(h2)
        da1 = (da2 @ W_hh) * local(h1)
        outer = (lambda a, h: h.T @ a) if transpose_dW else (lambda a, h: a.T @ h)
        dW_hh = outer(da2, h1) + (outer(da1, h0) if both_steps else 0)
        return dW_hh, da1 @ W_hh

    return backward


# --- 09.4 debug the talent article's RNN --------------------------------------------------------
LISTING_NAMES = ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0", "fc.weight", "fc.bias")
"""The parameters of the talent article's network: an nn.RNN called ``rnn`` and an nn.Linear called ``fc``."""


class ArticleRNNFixed(nn.Module):
    """The talent article's RNN (section 4.3) repaired: ``hidden_size`` stored and ``h0`` built
    for the input's batch size, dtype and device. x (B, T, input_size) -> (B, output_size)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.rnn = nn.RNN(input_size, hidden_size, num_layers=1, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = torch.zeros(1, x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
        out, _ = self.rnn(x, h0)
        return self.fc(out[:, -1, :])


def _call_rnn_net(func: Callable[..., Any], case: Case) -> Tuple[torch.Tensor, torch.Tensor]:
    """Build the student's network, set its parameters (by the listing's names) to seeded float64
    values, run it on two batches (B, T, I) one after the other; return both outputs."""
    I, H, O, B, T, seed = case.args
    model = func(I, H, O)
    if not isinstance(model, nn.Module):
        raise TypeError(f"make_rnn_net should return a torch.nn.Module, got {type(model).__name__}")
    names = sorted(name for name, _ in model.named_parameters())
    if names != sorted(LISTING_NAMES):
        raise ValueError(f"make_rnn_net: keep the listing's layers (self.rnn = nn.RNN(...), self.fc = nn.Linear(...)); "
                         f"expected the parameters {sorted(LISTING_NAMES)}, got {names}")
    model = model.double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=F64))
        first, second = (torch.randn(B, T, I, generator=gen, dtype=F64) for _ in range(2))
        return model(first), model(second)


def _net_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(I: int, H: int, O: int, B: int, T: int, note: str = "") -> Case:
        return Case(f"input {I}, hidden {H}, output {O}; batches ({B}, {T}, {I}){note}", (I, H, O, B, T, int(torch.randint(0, 10**6, (1,), generator=gen))))

    cases = [
        case(3, 5, 2, 4, 6),
        case(2, 4, 3, 1, 5, " (batch 1, where the listing's h0 fits)"),
        case(3, 4, 2, 8, 1, " (sequence length 1)"),
        case(2, 1, 2, 3, 4, " (hidden size 1)"),
        case(100, 50, 10, 16, 5, " (the listing's sizes)"),
    ]
    if hidden:
        for _ in range(7):
            I, H, O, B, T = (int(v) for v in torch.randint(1, 9, (5,), generator=gen))
            cases.append(case(I, H, O, B + 1, T))
    return cases


class _NetTimeFirst(ArticleRNNFixed):
    """batch_first left out: the batch is read as the time axis and the time steps as sequences."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__(input_size, hidden_size, output_size)
        self.rnn = nn.RNN(input_size, hidden_size, num_layers=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x, torch.zeros(1, x.shape[1], self.hidden_size, dtype=x.dtype))
        return self.fc(out[:, -1, :])


class _NetLayerAxisKept(ArticleRNNFixed):
    """The classifier applied to h_n (1, B, H), the layer axis kept."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h_n = self.rnn(x, torch.zeros(1, x.shape[0], self.hidden_size, dtype=x.dtype))
        return self.fc(h_n)


class _NetStateCarried(ArticleRNNFixed):
    """The state of the previous batch reused as h0 of the next one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = getattr(self, "state", None)
        if h is None or h.shape[1] != x.shape[0]:
            h = torch.zeros(1, x.shape[0], self.hidden_size, dtype=x.dtype)
        out, h_n = self.rnn(x, h)
        self.state = h_n.detach()
        return self.fc(out[:, -1, :])


# --- 09.5 predict: how fast a gradient shrinks through a linear recurrence -----------------------
def gradient_ratio_reference(r: float, k: int) -> float:
    """||dL/dh_{t-k}|| / ||dL/dh_t|| for the linear recurrence h_t = W_hh h_{t-1} + W_ih x_t with
    W_hh = r Q, Q orthogonal: each step back multiplies by W_hh^T, which scales every vector's norm by r."""
    return float(r) ** k


def _ratio_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    pairs = [(0.9, 1), (0.9, 10), (0.5, 3), (1.0, 50), (1.1, 20), (0.8, 0)]
    if hidden:
        pairs += [(0.95, 40), (1.5, 5), (0.3, 2), (2.0, 10), (0.99, 100), (1.0, 0), (0.7, 1)]
    return [Case(f"r = {r}, k = {k} steps back", (r, k)) for r, k in pairs]


def _ratio_call(func: Callable[..., Any], case: Case) -> float:
    """The predicted ratio as a float (a float, an int or a one-element tensor is accepted)."""
    return float(func(*case.args))


# --- 09.6 predict: the parameters of a stacked nn.RNN ------------------------------------------
def rnn_param_count_reference(input_size: int, hidden_size: int, num_layers: int, bias: bool = True) -> int:
    """The number of parameters of ``nn.RNN(input_size, hidden_size, num_layers, bias=bias)``,
    counted on the meta device (no memory used)."""
    module = nn.RNN(input_size, hidden_size, num_layers=num_layers, bias=bias, device="meta")
    return sum(p.numel() for p in module.parameters())


def _count_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    sizes = [(3, 5, 2, True), (10, 20, 1, True), (1, 1, 3, True), (7, 4, 2, False), (100, 50, 2, True), (8, 16, 4, False)]
    if hidden:
        sizes += [(int(i), int(h), int(n), bool(k % 2)) for k, (i, h, n) in
                  enumerate(zip(torch.randint(1, 300, (6,), generator=gen), torch.randint(1, 300, (6,), generator=gen),
                                torch.randint(1, 6, (6,), generator=gen)))]
    return [Case(f"nn.RNN({i}, {h}, num_layers={n}, bias={b})", (i, h, n), {"bias": b}) for i, h, n, b in sizes]


def _count_one_bias(input_size, hidden_size, num_layers, bias=True):
    first = hidden_size * (input_size + hidden_size + int(bias))
    return first + (num_layers - 1) * hidden_size * (2 * hidden_size + int(bias))


def _count_all_layers_read_input(input_size, hidden_size, num_layers, bias=True):
    return num_layers * hidden_size * (input_size + hidden_size + 2 * int(bias))


def _count_bias_ignored(input_size, hidden_size, num_layers, bias=True):
    return rnn_param_count_reference(input_size, hidden_size, num_layers, bias=True)


def _count_no_recurrent(input_size, hidden_size, num_layers, bias=True):
    first = hidden_size * (input_size + 2 * int(bias))
    return first + (num_layers - 1) * hidden_size * (hidden_size + 2 * int(bias))


QUESTIONS = [
    Question(
        id="09.1", sheet=SHEET, title="One step of a vanilla RNN", func_name="rnn_step", points=1,
        reference=rnn.rnn_cell, make_cases=_step_cases, kind="implement",
        hints=(
            "The new state mixes two things, the current input and the previous state, each through its own weight "
            "matrix and its own bias, and squashes the sum into (-1, 1).",
            "x is (B, I) and h is (B, H), but W_ih is stored as (H, I) and W_hh as (H, H), PyTorch's (out, in) "
            "layout, as in nn.Linear: which orientation turns a (B, I) batch into a (B, H) one? Both biases are (H,) "
            "and broadcast over the batch. The result is (B, H).",
            "Two matrix products with transposed weights, two bias vectors, one torch.tanh around the whole sum; "
            "a square W_ih (I = H) runs without an error in either orientation, so only the values can tell.",
        ),
        misconceptions=(
            Misconception("b_hh left out",
                          "PyTorch's RNN has two bias vectors, one for the input path and one for the recurrent "
                          "path; they are redundant in exact arithmetic, but both are parameters of nn.RNN and both "
                          "enter the sum.", _step_no_b_hh),
            Misconception("tanh left out",
                          "Without the nonlinearity the recurrence is linear: nothing bounds the state, and however "
                          "many steps it runs, the network computes only a linear function of its inputs.", _step_no_tanh),
            Misconception("weights not transposed",
                          "PyTorch stores a weight as (out_features, in_features), so a batch of row vectors "
                          "multiplies the transpose; with I different from H the untransposed product fails, with "
                          "I = H it silently computes something else.", _step_not_transposed),
            Misconception("W_hh not transposed",
                          "W_hh is square, so the untransposed product has the right shape, but it mixes the state's "
                          "units the other way round: entry (i, j) of W_hh is the weight from unit j to unit i.",
                          _step_W_hh_not_transposed),
        ),
    ),
    Question(
        id="09.2", sheet=SHEET, title="An RNN layer over a sequence (batch_first both ways)", func_name="rnn_layer",
        points=2, reference=rnn_layer_reference, make_cases=_layer_cases, kind="implement",
        hints=(
            "One cell, applied at every time step with the same weights; the state each step produces is the one "
            "the next step starts from. The output collects every step's state; h_n is the last one.",
            "With batch_first=False x is (T, B, I) and the output (T, B, H); with batch_first=True both are "
            "batch-major, (B, T, I) and (B, T, H). h0 and h_n are (1, B, H) either way, as in nn.RNN; a missing h0 "
            "means zeros of that shape.",
            "Bring x to (T, B, I) first (a transpose of the first two dimensions when batch_first), loop over "
            "dimension 0 with your rnn_step, torch.stack the states along a new dimension 0, and transpose back at "
            "the end only if batch_first.",
        ),
        misconceptions=(
            Misconception("time and batch axes swapped",
                          "batch_first=True means dimension 0 is the batch and dimension 1 is time; read the other way "
                          "round, the loop runs over the samples and every time step becomes a separate sequence.",
                          _layer_axes_swapped),
            Misconception("only the last state returned as the output",
                          "The output of an RNN layer is the whole sequence of states, one per time step (what a "
                          "per-step loss or the next layer needs); the last state alone is h_n.", _layer_last_state_only),
            Misconception("state not carried between steps",
                          "The recurrence is what makes the network remember: each step must start from the state the "
                          "previous step produced, not from h0 again, or every output depends on one input only.",
                          _layer_state_not_carried),
            Misconception("h_n made batch-first",
                          "batch_first changes the layout of the input and the output only; nn.RNN returns h_n as "
                          "(num_layers, B, H) in both modes, the same layout as the h0 it accepts.",
                          _layer_h_n_batch_first),
        ),
    ),
    Question(
        id="09.3", sheet=SHEET, title="Backpropagation through two steps, by hand", func_name="bptt_two_steps",
        points=2, reference=bptt_two_steps_reference, make_cases=_bptt_cases, kind="derive",
        hints=(
            "W_hh is used twice, in step 1 and in step 2, so its gradient is a sum of two terms; h0 reaches the loss "
            "only through h_1. Walk backwards: from dL/dh_2 to the pre-activation of step 2, from there to h_1 (and to "
            "W_hh), then through step 1 to h0 (and to W_hh again).",
            "Every gradient has the shape of what it is the gradient of: dL/dh_t and dL/da_t are (B, H), dL/dW_hh is "
            "(H, H) and sums over the batch. The derivative of tanh is best written with its output h = tanh(a).",
            "Recompute h_1 and h_2 first. Each step is chapter 03's linear layer (with h_{t-1} as its input and W_hh "
            "as its weight) followed by tanh: reuse that layer's two backward rules at each step, multiply by the "
            "tanh derivative before them, and add up what W_hh receives from the two steps.",
        ),
        misconceptions=(
            Misconception("tanh derivative forgotten",
                          "The chain rule passes through every function of the forward pass, including the "
                          "elementwise tanh: its derivative, between 0 and 1, scales the gradient at every step.",
                          _bptt_variant(derivative="none")),
            Misconception("1 - h instead of 1 - h^2",
                          "The derivative of tanh(a) is 1 - tanh(a)^2, written with the output h as 1 - h^2; 1 - h "
                          "is not even symmetric in h, while tanh's derivative is.", _bptt_variant(derivative="1 - h")),
            Misconception("only the direct path of the last step",
                          "W_hh is shared by both steps, so the loss depends on it through step 2 directly and through "
                          "h_1 in step 1: its gradient is the sum over all the steps that use it.",
                          _bptt_variant(both_steps=False)),
            Misconception("weight gradient transposed",
                          "The gradient of a (H, H) matrix has entry (i, j) = dL/dW_hh[i, j], where unit i receives "
                          "from unit j: the pre-activation gradient indexes the rows and the previous state the columns.",
                          _bptt_variant(transpose_dW=True)),
        ),
    ),
    Question(
        id="09.4", sheet=SHEET, title="Debug the talent article's RNN for batches larger than one",
        func_name="make_rnn_net", points=2, reference=ArticleRNNFixed, make_cases=_net_cases, call=_call_rnn_net,
        kind="debug",
        hints=(
            "Run the listing on a batch of 4 sequences and read the two errors one at a time: which attribute does "
            "forward read that __init__ never sets, and which size of h0 does nn.RNN expect for this input?",
            "With batch_first=True the input is (B, T, I) and the output (B, T, H); h0 is (num_layers, B, H) in both "
            "layouts; the classifier reads the state after the last time step, (B, H), and returns (B, O). The check "
            "runs in float64 and calls your network twice.",
            "Store the hidden size in __init__; in forward, size h0 from the batch dimension of x and give it x's "
            "dtype and device (or pass no h0 at all: nn.RNN then starts from zeros of the right shape).",
        ),
        misconceptions=(
            Misconception("batch_first dropped",
                          "Without batch_first=True nn.RNN reads dimension 0 as time: the samples of the batch become "
                          "the time steps of one sequence and each time step a separate sequence, so the output mixes "
                          "different samples.", _NetTimeFirst),
            Misconception("h_n used with its layer axis",
                          "h_n is (num_layers, B, H), one state per layer: the classifier of the last state needs the "
                          "(B, H) slice of the last layer, or the output gains a leading axis of size num_layers.",
                          _NetLayerAxisKept),
            Misconception("state carried across batches",
                          "The batches are independent sequences: each must start from the zero state, and a state "
                          "kept from the previous call makes the output depend on what the network saw before.",
                          _NetStateCarried),
        ),
    ),
    Question(
        id="09.5", sheet=SHEET, title="Predict how fast the gradient shrinks through time", func_name="gradient_ratio",
        points=1, reference=gradient_ratio_reference, make_cases=_ratio_cases, call=_ratio_call, kind="predict",
        rtol=1e-6,
        hints=(
            "Go back one step at a time: how does dL/dh_{t-1} follow from dL/dh_t in a linear recurrence, and what "
            "does multiplying by an orthogonal matrix do to a vector's length?",
            "dL/dh_t is a vector of H numbers (a row per sample); one step back multiplies it by the (H, H) matrix "
            "W_hh = r Q (transposed). k steps back apply k such factors. The answer depends on r and k only.",
            "An orthogonal Q only rotates or reflects: ||v Q|| = ||v|| for every row vector v. Take the norm of one "
            "step back, v -> v (r Q), then chain k such steps.",
        ),
        misconceptions=(
            Misconception("one factor too many",
                          "Going from h_t back to h_{t-k} crosses k transitions, one Jacobian each; counting the k + 1 "
                          "states instead of the k steps between them adds a factor.",
                          lambda r, k: float(r) ** (k + 1)),
            Misconception("the factors add up",
                          "Backpropagation multiplies the Jacobians of successive steps (the chain rule), it does not "
                          "add them: the factor compounds, geometrically, not linearly in k.",
                          lambda r, k: float(r) * k),
            Misconception("the squared norm",
                          "The question asks for the ratio of norms; r^2 per step is the ratio of squared norms "
                          "(sums of squares), which shrinks twice as fast on a log scale.",
                          lambda r, k: float(r) ** (2 * k)),
        ),
    ),
    Question(
        id="09.6", sheet=SHEET, title="Predict the parameter count of a stacked nn.RNN", func_name="rnn_param_count",
        points=1, reference=rnn_param_count_reference, make_cases=_count_cases, kind="predict",
        hints=(
            "List the tensors of one layer (nn.RNN names them weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0), "
            "then ask what changes for the second layer: what are its inputs?",
            "Layer 0: W_ih (H, I), W_hh (H, H) and two biases (H,) each; layer k > 0 reads the (B, H) outputs of "
            "layer k - 1, so its W_ih is (H, H). bias=False removes both biases of every layer.",
            "Write the count of layer 0 and of one later layer as products of I and H, then add num_layers - 1 "
            "copies of the second; a Python int is the answer.",
        ),
        misconceptions=(
            Misconception("one bias vector per layer",
                          "nn.RNN keeps two bias vectors per layer, b_ih and b_hh; only their sum enters the "
                          "computation, but both are parameters and both are counted.", _count_one_bias),
            Misconception("every layer reads the input",
                          "Only the first layer sees the input of size I; each later layer reads the H-dimensional "
                          "outputs of the layer below, so its input weights are (H, H).", _count_all_layers_read_input),
            Misconception("bias=False ignored",
                          "With bias=False nn.RNN creates no bias tensors at all, in any layer: the count loses "
                          "2 H per layer.", _count_bias_ignored),
            Misconception("recurrent weights left out",
                          "Each layer has its own square W_hh, the weights that carry the state from one step to the "
                          "next; it is what makes the layer recurrent, and it holds H * H parameters per layer.",
                          _count_no_recurrent),
        ),
    ),
]
