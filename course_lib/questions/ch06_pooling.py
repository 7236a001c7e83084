"""Questions of sheet 06_pooling: max and average pooling, forward and backward, and a predicted
flattened size, each with its typical mistakes (misconceptions) and hint tiers.

Every case uses ints for ``kernel_size``, ``stride`` and ``padding`` and float64
tensors ``x`` of shape (N, C, H, W). The edge cases: ``stride`` left at its
default (= kernel_size), overlapping windows (stride < kernel), skipped inputs
(stride > kernel), non-square inputs whose size is not a multiple of the stride,
padding (-inf for max, 0 for average), and ties (integer-valued inputs). 06.5 takes an
image size (height, width) and returns a number.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

from course_lib import conv, pool
from course_lib.questions import Case, Misconception, Question, randn

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


# --- 06.5 predict a flattened size ------------------------------------------------------
def _lenet_features(height: int, width: int) -> int:
    """The reference of 06.5: how many numbers the talent article's CNN flattens for a
    (3, height, width) image: Conv2d(3, 6, 5) -> 2x2 max pooling (stride 2) -> Conv2d(6, 16, 5)
    -> 2x2 max pooling -> flatten, i.e. 16 * H' * W'."""
    sizes = []
    for n in (height, width):
        for _ in range(2):
            n = conv.conv_output_size(n, 5)  # 5 x 5 convolution, no padding, stride 1
            n = conv.conv_output_size(n, 2, stride=2)  # 2 x 2 pooling, stride 2
        sizes.append(n)
    return 16 * sizes[0] * sizes[1]


def _number_call(func: Callable[..., Any], case: Case) -> float:
    """The student's number as a float, so that 400 and 400.0 count alike (400.5 does not)."""
    return float(func(*case.args, **case.kwargs))


def _lenet_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    sizes = [((32, 32), "32x32, the size the talent article's network was written for"),
             ((28, 28), "28x28 (MNIST's size, in colour)"), ((33, 33), "33x33: odd sizes along the way"),
             ((64, 48), "64x48, not square"), ((16, 16), "16x16, the smallest size the network accepts"),
             ((37, 30), "37x30")]
    cases = [Case(label, hw) for hw, label in sizes]
    if hidden:
        for _ in range(12):
            hw = (int(torch.randint(16, 120, (1,), generator=gen)), int(torch.randint(16, 120, (1,), generator=gen)))
            cases.append(Case(f"{hw[0]}x{hw[1]}", hw))
    return cases


# --- typical mistakes, each computing the wrong variant with the reference's signature -------
INF = float("inf")


def _stride(k: int, stride: Optional[int]) -> int:
    return k if stride is None else stride


def _max_stride_1(x, kernel_size, stride=None, padding=0):
    return pool.max_pool2d(x, kernel_size, 1 if stride is None else stride, padding)


def _max_average(x, kernel_size, stride=None, padding=0):
    return pool.avg_pool2d(x, kernel_size, stride, padding)


def _max_zero_padding(x, kernel_size, stride=None, padding=0):
    p = padding
    return pool.max_pool2d(F.pad(x, (p, p, p, p)), kernel_size, _stride(kernel_size, stride))


def _max_no_plus_one(x, kernel_size, stride=None, padding=0):
    return pool.max_pool2d(x, kernel_size, stride, padding)[:, :, :-1, :-1]


def _max_backward_variant(kind: str) -> Callable[..., torch.Tensor]:
    """Max-pooling backward with one typical mistake ``kind``."""
    def wrong(grad_out, x, kernel_size, stride=None, padding=0):
        k, p = kernel_size, padding
        s = _stride(k, stride)
        N, C, H, W = x.shape
        Ho, Wo = grad_out.shape[2:]
        xp = F.pad(x, (p, p, p, p), value=-INF)
        grad = torch.zeros_like(xp)
        for i in range(Ho):
            for j in range(Wo):
                rows, cols = slice(i * s, i * s + k), slice(j * s, j * s + k)
                g = grad_out[:, :, i, j, None, None]
                if kind == "every element of the window":
                    grad[:, :, rows, cols] += g.expand(N, C, k, k)
                    continue
                flat = xp[:, :, rows, cols].reshape(N, C, k * k)
                if kind == "every tied maximum":
                    mask = (flat == flat.amax(dim=2, keepdim=True)).to(x.dtype)
                else:
                    if kind == "last maximum for ties":
                        pick = k * k - 1 - flat.flip(2).argmax(dim=2, keepdim=True)
                    else:
                        pick = flat.argmax(dim=2, keepdim=True)
                    mask = torch.zeros_like(flat).scatter_(2, pick, 1.0)
                routed = mask.reshape(N, C, k, k) * g
                if kind == "overwrite instead of add":
                    grad[:, :, rows, cols] = torch.where(routed != 0, routed, grad[:, :, rows, cols])
                else:
                    grad[:, :, rows, cols] += routed
        if kind == "padding not cut off":
            return grad
        return grad[:, :, p:p + H, p:p + W]
    return wrong


def _avg_stride_1(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    return pool.avg_pool2d(x, kernel_size, 1 if stride is None else stride, padding, count_include_pad)


def _avg_real_only(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    return pool.avg_pool2d(x, kernel_size, stride, padding, False)


def _avg_always_k2(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    return pool.avg_pool2d(x, kernel_size, stride, padding, True)


def _avg_ceil(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Output size rounded up: the extra last windows hang over the padded input and average what they cover."""
    k, p = kernel_size, padding
    s = _stride(k, stride)
    H, W = x.shape[2:]
    Ho, Wo = -(-(H + 2 * p - k) // s) + 1, -(-(W + 2 * p - k) // s) + 1
    xp = F.pad(x, (p, p + s, p, p + s))  # room for the extra windows, zeros
    return xp.unfold(2, k, s).unfold(3, k, s)[:, :, :Ho, :Wo].mean(dim=(-2, -1))


def _divisors(x: torch.Tensor, k: int, s: int, p: int, count_include_pad: bool) -> torch.Tensor:
    """(H_out, W_out): k*k, or the number of real elements of each window."""
    ones = torch.ones(1, 1, *x.shape[2:], dtype=x.dtype)
    counts = pool.avg_pool2d(ones, k, s, p, True)[0, 0] * (k * k)
    return torch.full_like(counts, float(k * k)) if count_include_pad else counts


def _avgb_no_divide(grad_out, x, kernel_size, stride=None, padding=0, count_include_pad=True):
    k = kernel_size
    return pool.avg_pool2d_backward(grad_out * k * k, x, k, stride, padding, True)


def _avgb_always_k2(grad_out, x, kernel_size, stride=None, padding=0, count_include_pad=True):
    return pool.avg_pool2d_backward(grad_out, x, kernel_size, stride, padding, True)


def _avgb_overwrite(grad_out, x, kernel_size, stride=None, padding=0, count_include_pad=True):
    k, p = kernel_size, padding
    s = _stride(k, stride)
    N, C, H, W = x.shape
    Ho, Wo = grad_out.shape[2:]
    grad = torch.zeros(N, C, H + 2 * p, W + 2 * p, dtype=x.dtype)
    divisor = _divisors(x, k, s, p, count_include_pad)
    for i in range(Ho):
        for j in range(Wo):
            grad[:, :, i * s:i * s + k, j * s:j * s + k] = (grad_out[:, :, i, j] / divisor[i, j])[:, :, None, None]
    return grad[:, :, p:p + H, p:p + W]


def _avgb_stride_1(grad_out, x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Windows placed one pixel apart although grad_out came from the (default) stride k."""
    k, p = kernel_size, padding
    s = 1 if stride is None else stride
    N, C, H, W = x.shape
    Ho, Wo = grad_out.shape[2:]
    grad = torch.zeros(N, C, H + 2 * p, W + 2 * p, dtype=x.dtype)
    divisor = _divisors(x, k, s, p, count_include_pad)
    for i in range(Ho):
        for j in range(Wo):
            grad[:, :, i * s:i * s + k, j * s:j * s + k] += (grad_out[:, :, i, j] / divisor[i, j])[:, :, None, None]
    return grad[:, :, p:p + H, p:p + W]


def _lenet_variant(conv_loss: int, pool_round_up: bool = False, channels: int = 16) -> Callable[[int, int], int]:
    """The flattened size if each convolution removed ``conv_loss`` pixels per axis, pooling
    rounded up (``pool_round_up``) and the last layer had ``channels`` channels."""
    def wrong(height, width):
        sizes = []
        for n in (height, width):
            for _ in range(2):
                n = n - conv_loss
                n = -(-n // 2) if pool_round_up else n // 2
            sizes.append(n)
        return channels * sizes[0] * sizes[1]
    return wrong


WHY_DEFAULT_STRIDE = ("When no stride is given, PyTorch's pooling moves the window by its own size, so the windows "
                      "tile the input without overlapping; a stride of 1 would make them overlap.")
WHY_ADD = ("An element inside several overlapping windows influences every one of their outputs, and the chain rule "
           "sums over all those paths; writing each window's share replaces the shares before it.")

QUESTIONS = [
    Question(
        id="06.1", sheet=SHEET, title="Max pooling, forward", func_name="max_pool2d", points=2,
        reference=pool.max_pool2d, make_cases=_max_cases,
        hints=(
            "Each output is the largest value of one window of the padded input, and the padding must never be "
            "that largest value. Read the docstring's default for the stride.",
            "The padded input is (N, C, H + 2p, W + 2p); window (i, j) is (N, C, k, k) and starts at row i*s, column "
            "j*s; the output (N, C, H_out, W_out) has the sizes given above the question.",
            "Fill the padded tensor with minus infinity before copying x into its middle, then reduce each window over "
            "its last two axes with a maximum (amax accepts a tuple of dims).",
        ),
        misconceptions=(
            Misconception("stride defaults to 1", WHY_DEFAULT_STRIDE, _max_stride_1),
            Misconception("average instead of max", "Max pooling keeps the strongest response in each window (is the "
                          "feature present anywhere here?); an average dilutes it with its weaker neighbours.", _max_average),
            Misconception("pads with 0 instead of -inf", "Padding must never be chosen as the maximum: next to the "
                          "border, a window of negative values would report the padding's 0, a value the image does not "
                          "contain.", _max_zero_padding),
            Misconception("output size without the + 1", "The number of windows is the number of moves the window "
                          "can make plus its first position.", _max_no_plus_one),
        ),
    ),
    Question(
        id="06.2", sheet=SHEET, title="Max pooling, backward", func_name="max_pool2d_backward", points=2,
        reference=pool.max_pool2d_backward, make_cases=_max_backward_cases, kind="derive",
        hints=(
            "Nudge one input element a little: which outputs change, and by how much? Only a window's maximum moves "
            "that window's output; every other element of the window leaves it unchanged.",
            "grad_out is (N, C, H_out, W_out) and the result has x's shape (N, C, H, W). Work in the padded frame "
            "(N, C, H + 2p, W + 2p), padded as in the forward pass, and cut it back at the end. Flattened, a window "
            "is (N, C, k*k).",
            "argmax over the flattened window gives the first maximum; scatter the window's upstream gradient into "
            "that position of a zero window and add (+=) the result into the gradient at the window's place.",
        ),
        misconceptions=(
            Misconception("every element of the window", "Only the maximum influenced the output: changing any other "
                          "element of the window a little leaves y unchanged, so its gradient is zero.",
                          _max_backward_variant("every element of the window")),
            Misconception("overwrite instead of add", WHY_ADD, _max_backward_variant("overwrite instead of add")),
            Misconception("last maximum for ties", "Where elements tie, the maximum has no derivative and any choice "
                          "is a convention; PyTorch's, which this sheet follows, is the first maximum in row-major "
                          "order, not the last.", _max_backward_variant("last maximum for ties")),
            Misconception("every tied maximum", "The output is a single value; handing its gradient to every tied "
                          "element counts it several times, as if the output grew with each of them at once.",
                          _max_backward_variant("every tied maximum")),
            Misconception("padding not cut off", "The padded border is not an input: nothing upstream receives its "
                          "gradient, and the result must have x's shape.", _max_backward_variant("padding not cut off")),
        ),
    ),
    Question(
        id="06.3", sheet=SHEET, title="Average pooling, forward", func_name="avg_pool2d", points=2,
        reference=pool.avg_pool2d, make_cases=_avg_cases,
        hints=(
            "Each output is the sum of one window of the zero-padded input divided by a count; the two settings of "
            "count_include_pad differ only in that count.",
            "Window (i, j) is (N, C, k, k), starting at row i*s, column j*s of the padded (N, C, H + 2p, W + 2p) "
            "input. The count is k*k, or the number of window positions that lie on the real image.",
            "Pad a plane of ones the same way as x: the sum of a window of it counts that window's real elements.",
        ),
        misconceptions=(
            Misconception("divides by the real elements even with count_include_pad=True", "With "
                          "count_include_pad=True the padding zeros count as members of every window, so each window, "
                          "border windows included, is divided by k*k.", _avg_real_only),
            Misconception("always divides by k*k", "With count_include_pad=False the padding is not part of the "
                          "average: a border window averages only the real elements it covers.", _avg_always_k2),
            Misconception("output size rounded up", "A window that would reach past the padded input is not computed: "
                          "the leftover rows and columns are never read, so the output size rounds down.", _avg_ceil),
            Misconception("stride defaults to 1", WHY_DEFAULT_STRIDE, _avg_stride_1),
        ),
    ),
    Question(
        id="06.4", sheet=SHEET, title="Average pooling, backward", func_name="avg_pool2d_backward", points=2,
        reference=pool.avg_pool2d_backward, make_cases=_avg_backward_cases, kind="derive",
        hints=(
            "An average is linear: each element of a window enters its output with the same weight, one over the "
            "window's count. That weight is also the element's share of the window's upstream gradient.",
            "grad_out is (N, C, H_out, W_out); the result has x's shape. Work in the padded frame (N, C, H + 2p, "
            "W + 2p) and cut it back at the end; only x's shape matters, not its values.",
            "For each window, divide grad_out[:, :, i, j] by that window's count and add (+=) it, broadcast over the "
            "k x k block, at the window's place.",
        ),
        misconceptions=(
            Misconception("forgets to divide", "The average scales every element by one over the window's count before "
                          "summing, so each element's share of the upstream gradient carries the same factor.",
                          _avgb_no_divide),
            Misconception("always divides by k*k", "With count_include_pad=False a border window averages fewer "
                          "elements, so each of them has a larger share: one over the number of real elements.",
                          _avgb_always_k2),
            Misconception("overwrite instead of add", WHY_ADD, _avgb_overwrite),
            Misconception("stride defaults to 1", WHY_DEFAULT_STRIDE, _avgb_stride_1),
        ),
    ),
    Question(
        id="06.5", sheet=SHEET, title="Predict the flattened size of a CNN", func_name="lenet_features", points=2,
        reference=_lenet_features, make_cases=_lenet_cases, call=_number_call, kind="predict",
        hints=(
            "Follow one axis through the four layers, with the output-size rule of chapter 05 for each; height and "
            "width do not interact. Flattening multiplies what is left.",
            "The convolutions have 5x5 kernels, stride 1 and no padding; the pooling layers have 2x2 windows and "
            "stride 2. The last convolution has 16 output channels, and each of them keeps its own map.",
            "Per axis: a kernel of k pixels fits in one position more than the size minus k; a 2x2 pool with stride "
            "2 keeps the floor of half the size. Return channels times height times width.",
        ),
        misconceptions=(
            Misconception("convolutions keep the size", "Only padding keeps a convolution's output as large as its "
                          "input; these convolutions have none, so each loses rows and columns at the borders.",
                          _lenet_variant(0)),
            Misconception("a k x k kernel removes k pixels", "A kernel of k pixels fits in one position more than the "
                          "input size minus k: the first position counts too.", _lenet_variant(5)),
            Misconception("pooling rounds up", "A 2x2 window moved 2 pixels at a time cannot cover the last row of an "
                          "odd-sized map; that row is never read, so pooling rounds down.", _lenet_variant(4, True)),
            Misconception("channels forgotten", "Flattening keeps every channel's map: the linear layer receives "
                          "channels times height times width numbers.", _lenet_variant(4, channels=1)),
        ),
    ),
]
