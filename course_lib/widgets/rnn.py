"""Explorer of chapter 09: how the gradient flows back through time in a vanilla RNN and an LSTM.

:class:`GradientFlowExplorer` plots ``||dL/dh_t||`` over t (log scale) for a loss on the last
state h_T only, for a tanh RNN (left) and an LSTM (right) with the same hidden size, input
sequence and recurrent-weight scale. The recurrent matrix is ``W_hh = rho * Q`` with Q
orthogonal (:func:`course_lib.rnn.recurrent_matrix`), so its spectral radius and its spectral
norm both equal rho; the LSTM uses such a block for each of its four gates. Sliders: rho,
the sequence length T and the LSTM's forget-gate bias.

Everything is computed at construction (one pass vmapped over all radii and forget biases,
all lengths at once: batch element k carries the loss of length T_k), so a step only redraws.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Tuple

import torch

from course_lib import rnn as R
from course_lib.widgets.base import Explorer

F64 = torch.float64


def weights(hidden: int, inputs: int, max_length: int, seed: int) -> Tuple[torch.Tensor, ...]:
    """The explorer's input sequence x (T, 1, I) and weights: RNN W_ih (H, I) and orthogonal
    Q (H, H) (W_hh = rho Q); LSTM W_ih (4H, I) and Q4 (4H, H), one orthogonal block per gate."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(max_length, 1, inputs, generator=gen, dtype=F64)
    W_ih = torch.randn(hidden, inputs, generator=gen, dtype=F64) / inputs**0.5
    Q = R.recurrent_matrix(hidden, 1.0, generator=gen)
    W_ih4 = torch.randn(4 * hidden, inputs, generator=gen, dtype=F64) / inputs**0.5
    Q4 = torch.cat([R.recurrent_matrix(hidden, 1.0, generator=gen) for _ in range(4)])
    return x, W_ih, Q, W_ih4, Q4


@functools.lru_cache(maxsize=4)
def _measure(hidden: int, inputs: int, max_length: int, length_step: int, seed: int,
             radii: Tuple[float, ...], forget_biases: Tuple[float, ...]) -> Tuple[torch.Tensor, torch.Tensor]:
    """``||dL/dh_t||`` for every radius (and forget bias), every length T_k and every t.

    One input sequence x (T_max, I) is copied into a batch of K = len(lengths) rows; row k
    carries the loss ``v . h_{T_k}`` (``||v|| = 1``). One backward pass then gives, in row k,
    dL/dh_t for the length T_k. The radii (and forget biases) are a further batch dimension
    through ``torch.func.vmap`` over the library's own functions: :func:`course_lib.rnn.bptt`
    for the RNN, autograd through :func:`course_lib.gates.lstm_cell` for the LSTM.
    Returns RNN norms (R, K, T_max) and LSTM norms (R, F, K, T_max), zero after T_k.
    """
    from torch.func import vmap

    from course_lib.gates import lstm_cell

    lengths = range(length_step, max_length + 1, length_step)
    K, H, T = len(lengths), hidden, max_length
    x1, W_ih, Q, W_ih4, Q4 = weights(hidden, inputs, max_length, seed)
    x = x1.expand(-1, K, -1)  # (T, K, I)
    dout = torch.zeros(T, K, H, dtype=F64)
    for k, L in enumerate(lengths):
        dout[L - 1, k] = H**-0.5
    rho = torch.tensor(radii, dtype=F64)

    def rnn_dh(W_hh: torch.Tensor) -> torch.Tensor:
        hs = R.rnn_forward_states(x, W_ih, W_hh)
        return torch.stack(R.bptt(x, hs, dout, W_ih, W_hh)["dh"])  # (T, K, H)

    with torch.no_grad():
        rnn_norms = vmap(rnn_dh)(rho[:, None, None] * Q).norm(dim=-1).transpose(1, 2)  # (R, K, T)
    nR, nF = len(radii), len(forget_biases)
    W4 = (rho[:, None, None, None] * Q4).expand(nR, nF, 4 * H, H).reshape(nR * nF, 4 * H, H)
    b = torch.zeros(nR, nF, 4 * H, dtype=F64)
    b[:, :, H:2 * H] = torch.tensor(forget_biases, dtype=F64)[None, :, None]
    b = b.reshape(nR * nF, 4 * H)
    cell = vmap(lstm_cell, in_dims=(None, 0, 0, None, 0, 0, None))
    h = torch.zeros(nR * nF, K, H, dtype=F64, requires_grad=True)
    c = torch.zeros(nR * nF, K, H, dtype=F64)
    hs: List[torch.Tensor] = []
    for t in range(T):
        h, c = cell(x[t], h, c, W_ih4, W4, b, None)
        hs.append(h)
    grads = torch.autograd.grad((torch.stack(hs, 1) * dout).sum(), hs)
    lstm_norms = torch.stack(grads, -1).norm(dim=2).reshape(nR, nF, K, T)  # (R, F, K, T)
    return rnn_norms, lstm_norms.detach()


class GradientFlowExplorer(Explorer):
    """``||dL/dh_t||`` for t = 1..T, vanilla RNN vs LSTM, as the spectral radius of W_hh varies.

    ``L = v . h_T`` with ``||v|| = 1``, so the curves end at 1 at t = T. The dashed line on the
    left is the bound ``rho^(T - t)``, valid because ``|tanh'| <= 1`` and ``||W_hh||_2 = rho``.
    """

    figsize = (9.0, 3.3)
    check_control = "radius"
    RADII = tuple(round(0.5 + 0.1 * k, 1) for k in range(16))  # 0.5 .. 2.0
    FORGET_BIASES = (0.0, 1.0, 3.0)

    def __init__(self, hidden: int = 16, inputs: int = 4, max_length: int = 150, length_step: int = 10,
                 seed: int = 0) -> None:
        self.hidden, self.max_length, self.length_step = hidden, max_length, length_step
        self.lengths = list(range(length_step, max_length + 1, length_step))
        rnn_norms, lstm_norms = _measure(hidden, inputs, max_length, length_step, seed, self.RADII, self.FORGET_BIASES)
        self.table: Dict[Any, torch.Tensor] = {}
        for i, radius in enumerate(self.RADII):
            self.table[("rnn", radius)] = rnn_norms[i]
            for j, fb in enumerate(self.FORGET_BIASES):
                self.table[("lstm", radius, fb)] = lstm_norms[i, j]
        super().__init__()

    def curves(self, radius: float, length: int, forget_bias: float = 1.0) -> Dict[str, torch.Tensor]:
        """``{"rnn": (T,), "lstm": (T,)}``: ||dL/dh_t|| for t = 1..T = ``length`` (a multiple of
        ``length_step``), ``radius`` in :attr:`RADII`, ``forget_bias`` in :attr:`FORGET_BIASES`."""
        radius = round(float(radius), 1)
        if radius not in self.RADII or length not in self.lengths or forget_bias not in self.FORGET_BIASES:
            raise ValueError(f"GradientFlowExplorer.curves: radius in {self.RADII}, length in {self.lengths} and "
                             f"forget_bias in {self.FORGET_BIASES} expected, got {radius!r}, {length!r}, {forget_bias!r}")
        k = self.lengths.index(length)
        return {"rnn": self.table[("rnn", radius)][k, :length],
                "lstm": self.table[("lstm", radius, forget_bias)][k, :length]}

    # --- the figure -----------------------------------------------------------------------
    def build(self, fig: Any) -> None:
        grid = fig.add_gridspec(1, 2, left=0.08, right=0.98, top=0.86, bottom=0.15, wspace=0.18)
        self.axes = [fig.add_subplot(grid[0, k]) for k in range(2)]
        titles = ["vanilla RNN (tanh)", "LSTM (same rho per gate block)"]
        for ax, title in zip(self.axes, titles):
            ax.set_yscale("log")
            ax.set_xlim(0, self.max_length + 1)
            ax.set_ylim(1e-30, 1e8)
            ax.set_xlabel("time step t")
            ax.set_title(title, fontsize=10)
            ax.grid(True, alpha=0.3)
        self.axes[0].set_ylabel("||dL/dh_t||")
        (self.line_rnn,) = self.axes[0].plot([], [], color="C0", lw=2)
        (self.line_bound,) = self.axes[0].plot([], [], color="k", ls="--", lw=1, label="bound rho^(T-t)")
        (self.line_lstm,) = self.axes[1].plot([], [], color="C1", lw=2)
        self.axes[0].legend(loc="lower right", fontsize=8)
        self.text_rnn = self.axes[0].text(0.03, 0.95, "", transform=self.axes[0].transAxes, va="top", fontsize=9)
        self.text_lstm = self.axes[1].text(0.03, 0.95, "", transform=self.axes[1].transAxes, va="top", fontsize=9)
        self.dynamic = [self.line_rnn, self.line_bound, self.line_lstm, self.text_rnn, self.text_lstm]

    def make_controls(self) -> Dict[str, Any]:
        import ipywidgets as widgets

        return {
            "radius": widgets.FloatSlider(value=0.9, min=self.RADII[0], max=self.RADII[-1], step=0.1,
                                          description="rho(W_hh)", readout_format=".1f"),
            "length": widgets.IntSlider(value=100, min=self.lengths[0], max=self.lengths[-1],
                                        step=self.length_step, description="length T"),
            "forget_bias": widgets.Dropdown(options=list(self.FORGET_BIASES), value=1.0,
                                            description="LSTM b_f"),
        }

    def render(self, radius: float, length: int, forget_bias: float) -> None:
        radius = round(float(radius), 1)
        cur = self.curves(radius, length, forget_bias)
        t = torch.arange(1, length + 1)
        floor = 1e-300  # log axis: keep exact zeros (underflow) drawable
        self.line_rnn.set_data(t.numpy(), cur["rnn"].clamp_min(floor).numpy())
        self.line_bound.set_data(t.numpy(), (radius ** (length - t).double()).clamp_min(floor).numpy())
        self.line_lstm.set_data(t.numpy(), cur["lstm"].clamp_min(floor).numpy())
        self.text_rnn.set_text(f"t=1: {float(cur['rnn'][0]):.1e}")
        self.text_lstm.set_text(f"t=1: {float(cur['lstm'][0]):.1e}")
