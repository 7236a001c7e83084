"""How far the from-scratch layers of chapters 08–13 are from PyTorch; write the `equivalence`
section of docs/benchmarks.md.

    python tools/bench_equivalence.py               # writes docs/benchmarks.md
    python tools/bench_equivalence.py --no-write    # print the section only
    python tools/bench_equivalence.py --configs 5   # fewer random configurations

For each function, ``--configs`` random configurations (seeded; every size drawn from small
ranges that include 1: batch 1, sequence length 1, hidden size 1...) in float64. The forward
error is the largest absolute difference of the outputs; the backward error the largest over
every gradient (inputs, weights, initial states), from the same upstream gradient: autograd
through our functions against autograd through torch's modules, and, for the hand-written
backward passes (``rnn.bptt``, ``norm.batch_norm_backward``, ``norm.layer_norm_backward``),
the hand-written gradient against autograd. The tests (tests/test_rnn.py, test_gates.py,
test_norm.py, test_regularize.py) assert the same on hypothesis shapes; this table reports
the sizes.

Exit status: 0 when every error is at most ``--tolerance`` (default 1e-10), 1 otherwise (the
section is still written), 2 on usage error.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench  # noqa: E402  (section writer shared with tools/bench.py)

from course_lib import attention, gates, norm, regularize, rnn, transformer  # noqa: E402

SECTION = "equivalence"
F64 = torch.float64
Row = Tuple[str, str, float, float]  # ours, reference, forward error, backward error


def _err(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return max((float((x - y).detach().abs().max()) if x.numel() else 0.0) for x, y in zip(a, b))


def _grads(out: torch.Tensor, leaves: List[torch.Tensor], up: torch.Tensor) -> List[torch.Tensor]:
    return list(torch.autograd.grad(out, leaves, up, allow_unused=False))


def _sizes(g: torch.Generator, *ranges: Tuple[int, int]) -> List[int]:
    return [int(torch.randint(lo, hi + 1, (1,), generator=g)) for lo, hi in ranges]


def recurrent(kind: str, g: torch.Generator) -> Tuple[float, float]:
    """One random configuration of ``kind`` in {rnn, lstm, gru} against torch's module."""
    T, B, I, H, L = _sizes(g, (1, 6), (1, 4), (1, 5), (1, 5), (1, 2))
    batch_first = bool(torch.randint(0, 2, (1,), generator=g))
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](
        I, H, num_layers=L, batch_first=batch_first).double()
    params = dict(module.named_parameters())
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=F64, generator=g, requires_grad=True)
    h0 = torch.randn(L, B, H, dtype=F64, generator=g, requires_grad=True)
    c0 = torch.randn(L, B, H, dtype=F64, generator=g, requires_grad=True)
    if kind == "lstm":
        ours, (h_ours, c_ours) = gates.lstm(x, params, (h0, c0), num_layers=L, batch_first=batch_first)
        ref, (h_ref, c_ref) = module(x, (h0, c0))
        outs, refs, leaves = [ours, h_ours, c_ours], [ref, h_ref, c_ref], [x, h0, c0, *params.values()]
    else:
        fn = rnn.rnn if kind == "rnn" else gates.gru
        ours, h_ours = fn(x, params, h0, num_layers=L, batch_first=batch_first)
        ref, h_ref = module(x, h0)
        outs, refs, leaves = [ours, h_ours], [ref, h_ref], [x, h0, *params.values()]
    forward = _err(outs, refs)
    ups = [torch.randn(o.shape, dtype=F64, generator=g) for o in outs]
    loss_ours = sum((o * u).sum() for o, u in zip(outs, ups))
    loss_ref = sum((o * u).sum() for o, u in zip(refs, ups))
    backward = _err(torch.autograd.grad(loss_ours, leaves), torch.autograd.grad(loss_ref, leaves))
    return forward, backward


def bptt_by_hand(g: torch.Generator) -> Tuple[float, float]:
    """``rnn.bptt`` (no autograd) against autograd through ``rnn.rnn`` (one tanh layer)."""
    T, B, I, H = _sizes(g, (1, 8), (1, 4), (1, 5), (1, 5))
    W_ih = torch.randn(H, I, dtype=F64, generator=g, requires_grad=True)
    W_hh = (0.5 * torch.randn(H, H, dtype=F64, generator=g)).requires_grad_()
    x = torch.randn(T, B, I, dtype=F64, generator=g, requires_grad=True)
    h0 = torch.randn(1, B, H, dtype=F64, generator=g, requires_grad=True)
    params = {"weight_ih_l0": W_ih, "weight_hh_l0": W_hh}
    out, _ = rnn.rnn(x, params, h0)
    dout = torch.randn(T, B, H, dtype=F64, generator=g)
    auto = torch.autograd.grad((out * dout).sum(), [W_ih, W_hh, x, h0])
    hs = torch.cat([h0.detach(), out.detach()], dim=0)
    hand = rnn.bptt(x.detach(), hs, dout, W_ih.detach(), W_hh.detach())
    mine = [hand["dW_ih"], hand["dW_hh"], hand["dx"], hand["dh0"]]
    return 0.0, _err(mine, [a.reshape(m.shape) for a, m in zip(auto, mine)])


def batch_norm(g: torch.Generator) -> Tuple[float, float]:
    N, C, S = _sizes(g, (2, 6), (1, 4), (0, 2))
    shape = (N, C) + (3,) * S
    x = torch.randn(shape, dtype=F64, generator=g, requires_grad=True)
    w = torch.randn(C, dtype=F64, generator=g, requires_grad=True)
    b = torch.randn(C, dtype=F64, generator=g, requires_grad=True)
    rm_o, rv_o = torch.zeros(C, dtype=F64), torch.ones(C, dtype=F64)
    rm_r, rv_r = rm_o.clone(), rv_o.clone()
    y = norm.batch_norm(x, rm_o, rv_o, w, b, training=True)
    y_ref = torch.nn.functional.batch_norm(x, rm_r, rv_r, w, b, training=True)
    y_eval = norm.batch_norm(x, rm_o, rv_o, w, b, training=False)
    y_eval_ref = torch.nn.functional.batch_norm(x, rm_r, rv_r, w, b, training=False)
    forward = _err([y, rm_o, rv_o, y_eval], [y_ref, rm_r, rv_r, y_eval_ref])
    dy = torch.randn(shape, dtype=F64, generator=g)
    auto = torch.autograd.grad(y_ref, [x, w, b], dy)
    hand = norm.batch_norm_backward(dy, x.detach(), w.detach())
    return forward, _err(list(hand), list(auto))


def layer_norm(g: torch.Generator) -> Tuple[float, float]:
    B, D, E = _sizes(g, (1, 4), (1, 6), (1, 3))
    x = torch.randn(B, E, D, dtype=F64, generator=g, requires_grad=True)
    w = torch.randn(D, dtype=F64, generator=g, requires_grad=True)
    b = torch.randn(D, dtype=F64, generator=g, requires_grad=True)
    y = norm.layer_norm(x, (D,), w, b)
    y_ref = torch.nn.functional.layer_norm(x, (D,), w, b)
    dy = torch.randn(y.shape, dtype=F64, generator=g)
    auto = torch.autograd.grad(y_ref, [x, w, b], dy)
    hand = norm.layer_norm_backward(dy, x.detach(), (D,), w.detach())
    return _err([y], [y_ref]), _err(list(hand), list(auto))


def dropout(g: torch.Generator) -> Tuple[float, float]:
    N, D = _sizes(g, (1, 5), (1, 8))
    p = float(torch.rand(1, generator=g)) * 0.9
    x = torch.randn(N, D, dtype=F64, generator=g, requires_grad=True)
    seed = int(torch.randint(0, 2**31, (1,), generator=g))
    torch.manual_seed(seed)
    y_ref = torch.nn.functional.dropout(x, p, training=True)
    torch.manual_seed(seed)
    mask = torch.nn.functional.dropout(torch.ones_like(x), p, training=True) != 0  # torch's own mask
    y = regularize.dropout(x, p, mask=mask)
    dy = torch.randn(N, D, dtype=F64, generator=g)
    return _err([y], [y_ref]), _err(torch.autograd.grad(y, [x], dy), torch.autograd.grad(y_ref, [x], dy))


def clipping(g: torch.Generator) -> Tuple[float, float]:
    n, = _sizes(g, (1, 4))
    grads = [torch.randn(*_sizes(g, (1, 4), (1, 4)), dtype=F64, generator=g) * 3 for _ in range(n)]
    max_norm = float(torch.rand(1, generator=g)) * 4 + 0.1
    norm_type = [1.0, 2.0, float("inf")][int(torch.randint(0, 3, (1,), generator=g))]
    clipped, total = regularize.clip_grad_norm(grads, max_norm, norm_type)
    params = [torch.zeros_like(t, requires_grad=True) for t in grads]
    for p_, t in zip(params, grads):
        p_.grad = t.clone()
    total_ref = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
    return _err(clipped + [torch.tensor(total, dtype=F64)], [p_.grad for p_ in params] + [total_ref]), 0.0


def sdpa(g: torch.Generator) -> Tuple[float, float]:
    """``attention.scaled_dot_product_attention`` with a boolean mask (True = takes part, no fully
    masked row) against ``F.scaled_dot_product_attention``."""
    B, h, L, S, d = _sizes(g, (1, 3), (1, 3), (1, 5), (1, 5), (1, 6))
    q = torch.randn(B, h, L, d, dtype=F64, generator=g, requires_grad=True)
    k = torch.randn(B, h, S, d, dtype=F64, generator=g, requires_grad=True)
    v = torch.randn(B, h, S, d, dtype=F64, generator=g, requires_grad=True)
    mask = torch.rand(L, S, generator=g) < 0.7
    mask[:, 0] = True  # every query sees at least one key
    out, _ = attention.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    up = torch.randn(out.shape, dtype=F64, generator=g)
    return _err([out], [ref]), _err(torch.autograd.grad(out, [q, k, v], up), torch.autograd.grad(ref, [q, k, v], up))


def mha(g: torch.Generator) -> Tuple[float, float]:
    """``attention.multi_head_attention`` (padding and attention masks, head-averaged weights) against
    ``nn.MultiheadAttention`` with its own weights."""
    B, h, d, L, S = _sizes(g, (1, 3), (1, 3), (1, 3), (1, 5), (1, 5))
    E = h * d
    batch_first = bool(torch.randint(0, 2, (1,), generator=g))
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    module = torch.nn.MultiheadAttention(E, h, batch_first=batch_first).double()
    params = attention.mha_params(module)
    shape = (lambda n: (B, n, E)) if batch_first else (lambda n: (n, B, E))
    query = torch.randn(shape(L), dtype=F64, generator=g, requires_grad=True)
    key = torch.randn(shape(S), dtype=F64, generator=g, requires_grad=True)
    value = torch.randn(shape(S), dtype=F64, generator=g, requires_grad=True)
    padding = torch.rand(B, S, generator=g) < 0.3
    padding[:, 0] = False  # True = masked (nn.MultiheadAttention's polarity); key 0 always visible
    out, w = attention.multi_head_attention(query, key, value, params, h, key_padding_mask=padding,
                                            batch_first=batch_first)
    ref, w_ref = module(query, key, value, key_padding_mask=padding)
    up = torch.randn(out.shape, dtype=F64, generator=g)
    leaves = [query, key, value, *module.parameters()]
    return _err([out, w], [ref, w_ref]), _err(torch.autograd.grad(out, leaves, up), torch.autograd.grad(ref, leaves, up))


def encoder(g: torch.Generator) -> Tuple[float, float]:
    """``transformer.encoder_layer`` (norm_first both ways, relu and gelu) against
    ``nn.TransformerEncoderLayer`` (dropout 0) with its own weights."""
    B, h, d, T = _sizes(g, (1, 3), (1, 2), (1, 3), (1, 5))
    E = h * d
    norm_first = bool(torch.randint(0, 2, (1,), generator=g))
    activation = ["relu", "gelu"][int(torch.randint(0, 2, (1,), generator=g))]
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    module = torch.nn.TransformerEncoderLayer(E, h, dim_feedforward=2 * E, dropout=0.0, activation=activation,
                                              norm_first=norm_first, batch_first=True).double().eval()
    params = dict(module.named_parameters())
    x = torch.randn(B, T, E, dtype=F64, generator=g, requires_grad=True)
    out = transformer.encoder_layer(x, params, h, norm_first=norm_first, activation=activation, batch_first=True)
    ref = module(x)
    up = torch.randn(out.shape, dtype=F64, generator=g)
    leaves = [x, *module.parameters()]
    return _err([out], [ref]), _err(torch.autograd.grad(out, leaves, up), torch.autograd.grad(ref, leaves, up))


CHECKS: Dict[str, Tuple[str, Callable[[torch.Generator], Tuple[float, float]]]] = {
    "`rnn.rnn`": ("`nn.RNN` (autograd through both)", lambda g: recurrent("rnn", g)),
    "`rnn.bptt` (by hand)": ("autograd through `rnn.rnn`", bptt_by_hand),
    "`gates.lstm`": ("`nn.LSTM` (autograd through both)", lambda g: recurrent("lstm", g)),
    "`gates.gru`": ("`nn.GRU` (autograd through both)", lambda g: recurrent("gru", g)),
    "`norm.batch_norm` + `batch_norm_backward`": ("`F.batch_norm` (train and eval, running stats) + autograd", batch_norm),
    "`norm.layer_norm` + `layer_norm_backward`": ("`F.layer_norm` + autograd", layer_norm),
    "`regularize.dropout` (torch's mask)": ("`F.dropout`, same seed", dropout),
    "`regularize.clip_grad_norm`": ("`clip_grad_norm_` (norms 1, 2, inf)", clipping),
    "`attention.scaled_dot_product_attention`": ("`F.scaled_dot_product_attention`, boolean mask", sdpa),
    "`attention.multi_head_attention`": ("`nn.MultiheadAttention` (key padding mask, averaged weights)", mha),
    "`transformer.encoder_layer`": ("`nn.TransformerEncoderLayer` (pre/post-norm, relu/gelu)", encoder),
}


def measure(configs: int, seed: int) -> List[Row]:
    rows = []
    for name, (ref, check) in CHECKS.items():
        g = torch.Generator().manual_seed(seed)
        results = [check(g) for _ in range(configs)]
        rows.append((name, ref, max(r[0] for r in results), max(r[1] for r in results)))
    return rows


def section(rows: List[Row], configs: int, tolerance: float, argv: Sequence[str]) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cli = " ".join(["python tools/bench_equivalence.py", *argv])
    ok = all(max(f, b) <= tolerance for _, _, f, b in rows)
    lines = [
        "## From scratch vs PyTorch (chapters 08–13)",
        "",
        f"`{cli}` on {now}, torch {torch.__version__}: the largest absolute difference over {configs} random "
        "float64 configurations per row (sizes include 1: batch, sequence length, hidden size; 1–2 layers, "
        "`batch_first` both ways). Backward: every gradient (inputs, weights, initial states) for a random "
        f"upstream gradient; \"–\" where the function has none. Target <= {tolerance:g}: {'OK' if ok else 'OVER'}.",
        "",
        "| ours | reference | forward max error | backward max error |",
        "|---|---|---:|---:|",
    ]
    for name, ref, f, b in rows:
        back = "–" if name.startswith("`regularize.clip") else f"{b:.1e}"
        fwd = "–" if name.startswith("`rnn.bptt") else f"{f:.1e}"
        lines.append(f"| {name} | {ref} | {fwd} | {back} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=50, help="random configurations per function (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the configurations (default 0)")
    parser.add_argument("--tolerance", type=float, default=1e-10, help="largest error allowed (default 1e-10)")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "benchmarks.md", help="file to write the section into")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write the report")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.configs < 1 or not args.tolerance > 0:
        parser.error("--configs must be >= 1 and --tolerance > 0")
    rows = measure(args.configs, args.seed)
    body = section(rows, args.configs, args.tolerance, argv)
    print(body)
    if not args.no_write:
        bench.write_sections(args.report, {SECTION: body})
    return 0 if all(max(f, b) <= args.tolerance for _, _, f, b in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
