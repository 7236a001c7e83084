"""Questions of sheet 06_pooling: max and average pooling, forward and backward.

Every case uses ints for ``kernel_size``, ``stride`` and ``padding`` and float64
tensors ``x`` of shape (N, C, H, W). The edge cases: ``stride`` left at its
default (= kernel_size), overlapping windows (stride < kernel), skipped inputs
(stride > kernel), non-square inputs whose size is not a multiple of the stride,
padding (-inf for max, 0 for average), and ties (integer-valued inputs).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

from course_lib import pool
from course_lib.questions import Case, Question, randn

SHEET = "06_pooling"
F64 = torch.float64


def _ints(gen: torch.Generator, *shape: int, high: int = 3) -> torch.Tensor:
    """Small integers 0..high-1 as float64: many ties."""
    return torch.randint(0, high, shape, generator=gen).to(F64)


def _kwargs(stride: Optional[int], padding: int, **extra: Any) -> Dict[str, Any]:
    """Keyword arguments, leaving out the defaults (so the student's defaults are used)."""
    kw: Dict[str, Any] = dict(extra)
    if stride is not None:
        kw["stride"] = stride
    if padding:
        kw["padding"] = padding
    return kw


def _label(k: int, stride: Optional[int], padding: int, what: str = "") -> str:
    s = "default (= k)" if stride is None else stride
    return f"kernel_size={k}, stride={s}, padding={padding}" + (f": {what}" if what else "")


def _random_setups(gen: torch.Generator, count: int) -> List[tuple]:
    """(x, k, stride, padding) with random shapes and settings, half of them integer-valued."""
    out = []
    for n in range(count):
        k = int(torch.randint(1, 5, (1,), generator=gen))
        p = int(torch.randint(0, k // 2 + 1, (1,), generator=gen))
        stride = None if n % 3 == 0 else int(torch.randint(1, 5, (1,), generator=gen))
        H, W = (int(torch.randint(max(1, k - 2 * p), 10, (1,), generator=gen)) for _ in range(2))
        shape = (int(torch.randint(1, 4, (1,), generator=gen)), int(torch.randint(1, 4, (1,), generator=gen)), H, W)
        x = _ints(gen, *shape) if n % 2 else randn(gen, *shape)
        out.append((x, k, stride, p))
    return out


def _grad_out(gen: torch.Generator, x: torch.Tensor, k: int, stride: Optional[int], padding: int) -> torch.Tensor:
    """A random upstream gradient of the pooled output's shape."""
    return randn(gen, *pool.max_pool2d(x, k, stride, padding).shape)


def _bump(gen: torch.Generator, shape: tuple, at: tuple) -> torch.Tensor:
    """Random values with one clearly largest element, the maximum of every window that holds it."""
    x = randn(gen, *shape)
    x[(slice(None), slice(None), *at)] = 10.0
    return x


# --- 06.1 max pooling forward ----------------------------------------------------------
def _max_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(x: torch.Tensor, k: int, stride: Optional[int] = None, padding: int = 0, what: str = "") -> Case:
        return Case(_label(k, stride, padding, what), (x, k), _kwargs(stride, padding))

    cases = [
        case(randn(gen, 1, 1, 4, 4), 2, what="stride defaults to kernel_size"),
        case(randn(gen, 2, 3, 6, 5), 2, 2, what="batch and channels, W not a multiple of 2"),
        case(randn(gen, 1, 2, 5, 5), 3, 1, what="overlapping windows"),
        case(-1 - randn(gen, 1, 2, 5, 6).abs(), 3, 2, 1, what="all values negative: padding must not win"),
        case(_ints(gen, 2, 1, 5, 4), 2, 1, what="integer values: ties"),
        case(randn(gen, 1, 1, 7, 8), 2, 3, what="stride 3 > kernel 2: some inputs are skipped"),
    ]
    if hidden:
        cases += [case(x, k, s, p) for x, k, s, p in _random_setups(gen, 10)]
    return cases


# --- 06.2 max pooling backward ---------------------------------------------------------
def _max_backward_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(x: torch.Tensor, k: int, stride: Optional[int] = None, padding: int = 0, what: str = "") -> Case:
        g = _grad_out(gen, x, k, stride, padding)
        return Case(_label(k, stride, padding, what), (g, x, k), _kwargs(stride, padding))

    cases = [
        case(randn(gen, 1, 1, 4, 4), 2, what="non-overlapping windows"),
        case(_bump(gen, (1, 2, 5, 5), (2, 2)), 3, 1, what="overlapping: x[..., 2, 2] is the max of all 9 windows"),
        case(torch.ones(1, 1, 4, 4, dtype=F64), 2, 1, what="ties: all values equal"),
        case(_ints(gen, 2, 2, 5, 5), 2, 1, what="ties and overlaps: integer values"),
        case(-1 - randn(gen, 1, 2, 5, 6).abs(), 3, 2, 1, what="padding, all values negative"),
        case(randn(gen, 1, 1, 7, 8), 2, 3, what="stride 3 > kernel 2"),
    ]
    if hidden:
        cases += [case(x, k, s, p) for x, k, s, p in _random_setups(gen, 10)]
    return cases


# --- 06.3 average pooling forward ------------------------------------------------------
def _avg_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(x: torch.Tensor, k: int, stride: Optional[int] = None, padding: int = 0, include: Optional[bool] = None,
             what: str = "") -> Case:
        kw = _kwargs(stride, padding) if include is None else _kwargs(stride, padding, count_include_pad=include)
        label = _label(k, stride, padding, what)
        return Case(label if include is None else f"{label} (count_include_pad={include})", (x, k), kw)

    cases = [
        case(randn(gen, 1, 1, 4, 4), 2, what="stride defaults to kernel_size"),
        case(randn(gen, 2, 3, 6, 5), 3, 2, what="(6 - 3) / 2 and (5 - 3) / 2 are rounded down"),
        case(randn(gen, 1, 2, 5, 5), 3, 1, 1, True, "padding counts in the divisor"),
        case(randn(gen, 1, 2, 5, 6), 3, 2, 1, False, "only real elements count"),
        case(randn(gen, 1, 2, 5, 7), 2, 1, what="overlapping windows"),
        case(randn(gen, 1, 1, 8, 7), 2, 3, what="stride 3 > kernel 2"),
    ]
    if hidden:
        cases += [case(x, k, s, p, bool(n % 2)) for n, (x, k, s, p) in enumerate(_random_setups(gen, 10))]
    return cases


# --- 06.4 average pooling backward -----------------------------------------------------
def _avg_backward_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(x: torch.Tensor, k: int, stride: Optional[int] = None, padding: int = 0, include: Optional[bool] = None,
             what: str = "") -> Case:
        g = _grad_out(gen, x, k, stride, padding)
        kw = _kwargs(stride, padding) if include is None else _kwargs(stride, padding, count_include_pad=include)
        label = _label(k, stride, padding, what)
        return Case(label if include is None else f"{label} (count_include_pad={include})", (g, x, k), kw)

    cases = [
        case(randn(gen, 1, 1, 4, 4), 2, what="non-overlapping windows"),
        case(randn(gen, 2, 2, 5, 5), 3, 1, what="overlapping windows: contributions add up"),
        case(randn(gen, 1, 2, 5, 5), 3, 1, 1, True, "padding counts in the divisor"),
        case(randn(gen, 1, 2, 5, 6), 3, 2, 1, False, "only real elements count"),
        case(randn(gen, 1, 1, 8, 7), 2, 3, what="stride 3 > kernel 2: skipped inputs get 0"),
    ]
    if hidden:
        cases += [case(x, k, s, p, bool(n % 2)) for n, (x, k, s, p) in enumerate(_random_setups(gen, 10))]
    return cases


QUESTIONS = [
    Question(
        id="06.1", sheet=SHEET, title="Max pooling, forward", func_name="max_pool2d", points=2,
        reference=pool.max_pool2d, make_cases=_max_cases,
        hint="stride defaults to kernel_size (not 1). H_out = (H + 2*padding - k) // stride + 1. Pad with -inf "
        "(not 0), then take the max over each k x k window starting at row i*stride, column j*stride.",
    ),
    Question(
        id="06.2", sheet=SHEET, title="Max pooling, backward", func_name="max_pool2d_backward", points=2,
        reference=pool.max_pool2d_backward, make_cases=_max_backward_cases,
        hint="Each window sends its whole grad_out[n, c, i, j] to one element: its maximum, the FIRST one in "
        "row-major order when there are ties (torch.argmax on the flattened window). The other elements get 0. "
        "Windows overlap: add (+=), do not overwrite. Cut the padding off at the end.",
    ),
    Question(
        id="06.3", sheet=SHEET, title="Average pooling, forward", func_name="avg_pool2d", points=2,
        reference=pool.avg_pool2d, make_cases=_avg_cases,
        hint="H_out = (H + 2*padding - k) // stride + 1 (rounded down). Pad with 0. With count_include_pad=True "
        "divide every window's sum by k*k, padding included; with False by the number of real elements in it.",
    ),
    Question(
        id="06.4", sheet=SHEET, title="Average pooling, backward", func_name="avg_pool2d_backward", points=2,
        reference=pool.avg_pool2d_backward, make_cases=_avg_backward_cases,
        hint="Every element of window (i, j) gets grad_out[n, c, i, j] divided by that window's divisor (k*k, or "
        "its number of real elements when count_include_pad=False). Overlapping windows add up (+=); cut the "
        "padding off at the end.",
    ),
]
