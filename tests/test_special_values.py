"""course_lib against PyTorch on special values and unusual dtypes.

Every from-scratch function of losses, layers, engine, conv, pool, optim, metrics and
gradcheck meets NaN, +-inf, -0.0, 1e300, 5e-324, empty and size-1 dimensions and every
integer dtype (strategies in ``tests/strategies.py``). Each must give what PyTorch gives
(the same values, NaN where PyTorch has NaN, infinities of the same sign), or refuse
with a clear error: an exception of the library's kind whose message starts with the
function's name. Metrics are compared with scikit-learn, their reference.

Sums are compared on inputs without huge finite values (``NO_HUGE``): there
1e300 + 5 - 1e300 depends on the order of the additions, not on the semantics.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Callable, Optional

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import note as hypothesis_note
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from course_lib import conv, layers, losses, metrics, optim, pool
from course_lib.engine import Value
from course_lib.gradcheck import GradcheckError, gradcheck, numerical_grad
from strategies import INT_DTYPES, SPECIAL, TORCH_CLASS_INDEX_DTYPES, float_tensors, floats, int_tensors, shapes

DT = torch.float64
NO_HUGE = (math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324)
REDUCTIONS = st.sampled_from(["mean", "sum", "none"])
aten = torch.ops.aten


class Refused(Exception):
    """What :func:`outcome` returns when a call raised."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


def note(text: str) -> None:
    """hypothesis.note inside a property test (shown for a failing example); nothing elsewhere."""
    if currently_in_test_context():
        hypothesis_note(text)


def outcome(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as error:  # noqa: BLE001 - the tests look at what was raised
        return Refused(error)


def same(ours: Any, ref: Any, rtol: float = 1e-12, atol: float = 1e-12) -> None:
    """Equal values (tensors, floats or tuples of them): NaN where ref has NaN, the same infinities."""
    if isinstance(ref, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(ref), (ours, ref)
        for a, b in zip(ours, ref):
            same(a, b, rtol, atol)
        return
    if not isinstance(ref, torch.Tensor):
        ref, ours = torch.tensor(float(ref), dtype=DT), torch.tensor(float(ours), dtype=DT)
    assert isinstance(ours, torch.Tensor), type(ours)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    assert ours.dtype == ref.dtype, (ours.dtype, ref.dtype)
    torch.testing.assert_close(ours, ref, rtol=rtol, atol=atol, equal_nan=True)


def clear(name: str, error: BaseException) -> None:
    """A clear refusal: the library's kind of exception, its message naming the function."""
    assert isinstance(error, (ValueError, TypeError, ArithmeticError)), f"{name}: raw {type(error).__name__}: {error}"
    assert str(error).startswith(name), f"the message should start with {name!r}: {error}"


def agree(name: str, ours: Callable[[], Any], theirs: Callable[[], Any], *, refuse: bool = False,
          rtol: float = 1e-12, atol: float = 1e-12) -> str:
    """``ours()`` equals ``theirs()``; where PyTorch raises, ours must raise a clear error too.
    ``refuse=True``: ours is documented to refuse this input (and must, clearly)."""
    ref, got = outcome(theirs), outcome(ours)
    if refuse or isinstance(ref, Refused):
        note(f"torch: {ref!r}; ours: {got!r}")
        assert isinstance(got, Refused), f"{name} should refuse this input (torch: {ref}) but returned {got}"
        clear(name, got.error)
        return "refused"
    if isinstance(got, Refused):
        raise AssertionError(f"{name} raised where torch returned {ref}") from got.error
    same(got, ref, rtol, atol)
    return "same"


def autograd(f: Callable[..., torch.Tensor], inputs, grad_output: Optional[torch.Tensor] = None):
    """Torch's gradients of ``f(*inputs)`` for the upstream ``grad_output`` (default ones)."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = f(*leaves)
    g = torch.ones_like(out) if grad_output is None else grad_output
    grads = torch.autograd.grad(out, leaves, g, allow_unused=True)
    return tuple(torch.zeros_like(t) if d is None else d for t, d in zip(leaves, grads))


def pair(shape_strategy, **kw):
    """Two float64 tensors of one drawn shape."""
    return shape_strategy.flatmap(lambda s: st.tuples(float_tensors(s, **kw), float_tensors(s, **kw)))


def upstream(shape, reduction: str):
    """An upstream gradient for a loss: the loss's shape for 'none', a scalar otherwise."""
    return float_tensors(tuple(shape) if reduction == "none" else ())


# ======================================================================================
# losses
# ======================================================================================
@given(xy=pair(shapes(0, 3)), reduction=REDUCTIONS, data=st.data())
def test_mse_loss(xy, reduction, data):
    x, y = xy
    agree("mse_loss", lambda: losses.mse_loss(x, y, reduction), lambda: F.mse_loss(x, y, reduction=reduction))
    g = data.draw(upstream(x.shape, reduction))
    agree("mse_loss_backward", lambda: losses.mse_loss_backward(x, y, reduction, g),
          lambda: autograd(lambda a: F.mse_loss(a, y, reduction=reduction), [x], g)[0])


PROBABILITIES = (math.nan, 0.0, -0.0, 1.0, 5e-324, 1 - 2**-53, 0.5)


@given(shape=shapes(0, 3), reduction=REDUCTIONS, data=st.data())
def test_binary_cross_entropy(shape, reduction, data):
    p = data.draw(float_tensors(shape, ordinary=(0.0, 1.0), values=PROBABILITIES + (-0.5, 1.5, math.inf)))
    y = data.draw(float_tensors(shape, ordinary=(0.0, 1.0), values=(0.0, 1.0, math.nan, math.inf, -math.inf)))
    agree("binary_cross_entropy", lambda: losses.binary_cross_entropy(p, y, reduction),
          lambda: F.binary_cross_entropy(p, y, reduction=reduction))
    g = data.draw(upstream(shape, reduction))
    agree("binary_cross_entropy_backward", lambda: losses.binary_cross_entropy_backward(p, y, reduction, g),
          lambda: autograd(lambda a: F.binary_cross_entropy(a, y, reduction=reduction), [p], g)[0])


@given(xy=pair(shapes(0, 3)), reduction=REDUCTIONS, data=st.data())
def test_binary_cross_entropy_with_logits(xy, reduction, data):
    z, y = xy
    agree("binary_cross_entropy_with_logits", lambda: losses.binary_cross_entropy_with_logits(z, y, reduction),
          lambda: F.binary_cross_entropy_with_logits(z, y, reduction=reduction))
    g = data.draw(upstream(z.shape, reduction))
    agree("binary_cross_entropy_with_logits_backward",
          lambda: losses.binary_cross_entropy_with_logits_backward(z, y, reduction, g),
          lambda: autograd(lambda a: F.binary_cross_entropy_with_logits(a, y, reduction=reduction), [z], g)[0])


@given(n=st.integers(0, 3), c=st.integers(1, 3), reduction=REDUCTIONS, data=st.data())
def test_cross_entropy_class_indices_of_every_integer_dtype(n, c, reduction, data):
    z = data.draw(float_tensors((n, c), values=NO_HUGE))
    # mostly valid indices, sometimes out of range or negative (-100 is torch's ignore_index)
    target = data.draw(st.one_of(int_tensors((n,), min_value=0, max_value=c - 1),
                                 int_tensors((n,), min_value=-100, max_value=c + 1)))
    note(f"target {target.dtype} {target.tolist()}")
    t = target.to(torch.int64) if target.dtype in TORCH_CLASS_INDEX_DTYPES else target
    # documented refusal: -100, torch's default ignore_index (there is no ignore_index here)
    refuse = bool(n and target.dtype in TORCH_CLASS_INDEX_DTYPES and (t == -100).any())
    agree("cross_entropy", lambda: losses.cross_entropy(z, target, reduction),
          lambda: F.cross_entropy(z, target, reduction=reduction), refuse=refuse)
    g = data.draw(upstream((n,), reduction))
    agree("cross_entropy_backward", lambda: losses.cross_entropy_backward(z, target, reduction, g),
          lambda: autograd(lambda a: F.cross_entropy(a, target, reduction=reduction), [z], g)[0], refuse=refuse)


def test_cross_entropy_uint8_targets_with_n_equal_to_c():
    """uint8 indices used to be read as a boolean mask (N == C: a wrong loss, silently)."""
    z = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.0, 3.0]], dtype=DT)
    target = torch.tensor([1, 0, 2], dtype=torch.uint8)
    for reduction in ("mean", "none"):
        same(losses.cross_entropy(z, target, reduction), F.cross_entropy(z, target, reduction=reduction))
        same(losses.cross_entropy_backward(z, target, reduction),
             autograd(lambda a: F.cross_entropy(a, target, reduction=reduction), [z])[0])


@given(n=st.integers(0, 3), c=st.integers(1, 3), reduction=REDUCTIONS, data=st.data())
def test_cross_entropy_probability_targets(n, c, reduction, data):
    z = data.draw(float_tensors((n, c), values=NO_HUGE))
    y = data.draw(float_tensors((n, c), ordinary=(0.0, 1.0), values=NO_HUGE))
    agree("cross_entropy", lambda: losses.cross_entropy(z, y, reduction), lambda: F.cross_entropy(z, y, reduction=reduction))
    g = data.draw(upstream((n,), reduction))
    agree("cross_entropy_backward", lambda: losses.cross_entropy_backward(z, y, reduction, g),
          lambda: autograd(lambda a: F.cross_entropy(a, y, reduction=reduction), [z], g)[0])


@given(c=st.integers(1, 4), data=st.data())
def test_cross_entropy_refuses_float_and_bool_class_indices(c, data):
    z = data.draw(float_tensors((2, c)))
    for target in (torch.tensor([0.0, 1.0], dtype=DT), torch.tensor([True, False])):
        assert isinstance(outcome(lambda: F.cross_entropy(z, target)), Refused)
        agree("cross_entropy", lambda: losses.cross_entropy(z, target), lambda: F.cross_entropy(z, target))


@given(n=st.integers(0, 4), c=st.integers(1, 4), data=st.data())
def test_one_hot_of_every_integer_dtype(n, c, data):
    target = data.draw(int_tensors((n,), min_value=-2, max_value=c))
    note(f"target {target.dtype} {target.tolist()}")
    ours = outcome(lambda: losses.one_hot(target, c))
    if target.dtype == torch.int64:  # the one dtype F.one_hot takes
        agree("one_hot", lambda: losses.one_hot(target, c), lambda: F.one_hot(target, c).to(DT))
    elif isinstance(ours, Refused):
        clear("one_hot", ours.error)
    else:  # any other integer dtype: the values torch gives for the same indices as int64
        same(ours, F.one_hot(target.to(torch.int64), c).to(DT))


# ======================================================================================
# layers
# ======================================================================================
@given(n=st.integers(0, 3), d_in=st.integers(0, 3), d_out=st.integers(0, 3), bias=st.booleans(), data=st.data())
def test_linear_forward_and_backward(n, d_in, d_out, bias, data):
    x = data.draw(float_tensors((n, d_in), values=NO_HUGE))
    W = data.draw(float_tensors((d_out, d_in), values=NO_HUGE))
    b = data.draw(float_tensors((d_out,), values=NO_HUGE)) if bias else None
    agree("linear_forward", lambda: layers.linear_forward(x, W, b), lambda: F.linear(x, W, b))
    dy = data.draw(float_tensors((n, d_out), values=NO_HUGE))
    ref = autograd(lambda a, w, c: F.linear(a, w, c), [x, W, torch.zeros(d_out, dtype=DT) if b is None else b], dy)
    agree("linear_backward", lambda: layers.linear_backward(dy, x, W), lambda: ref)


@given(xs=pair(shapes(0, 3)))
def test_relu(xs):
    x, dy = xs
    agree("relu", lambda: layers.relu(x), lambda: torch.relu(x))
    agree("relu_backward", lambda: layers.relu_backward(dy, x), lambda: aten.threshold_backward(dy, x, 0))
    agree("relu_backward", lambda: layers.relu_backward(dy, x), lambda: autograd(torch.relu, [x], dy)[0])


def test_relu_propagates_nan_forward_and_backward():
    x = torch.tensor([math.nan, -1.0, 2.0], dtype=DT)
    assert torch.isnan(layers.relu(x)[0])
    assert layers.relu_backward(torch.ones(3, dtype=DT), x).tolist() == [1.0, 0.0, 1.0]  # torch: 1 at NaN


@given(xs=pair(shapes(0, 3)))
def test_sigmoid_and_tanh(xs):
    x, dy = xs
    for name, ours, theirs, grad in (("sigmoid", layers.sigmoid, torch.sigmoid, aten.sigmoid_backward),
                                     ("tanh", layers.tanh, torch.tanh, aten.tanh_backward)):
        agree(name, lambda: ours(x), lambda: theirs(x), rtol=1e-14, atol=1e-15)
        y = theirs(x)
        back = getattr(layers, f"{name}_backward")
        agree(f"{name}_backward", lambda: back(dy, y), lambda: grad(dy, y))


@given(shape=shapes(1, 3), data=st.data(), keepdim=st.booleans())
def test_softmax_family(shape, data, keepdim):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(float_tensors(shape, values=NO_HUGE))
    dy = data.draw(float_tensors(shape, values=NO_HUGE))
    agree("softmax", lambda: layers.softmax(x, dim), lambda: torch.softmax(x, dim))
    agree("log_softmax", lambda: layers.log_softmax(x, dim), lambda: torch.log_softmax(x, dim))
    agree("logsumexp", lambda: layers.logsumexp(x, dim, keepdim), lambda: torch.logsumexp(x, dim, keepdim))
    y, ly = torch.softmax(x, dim), torch.log_softmax(x, dim)
    agree("softmax_backward", lambda: layers.softmax_backward(dy, y, dim),
          lambda: aten._softmax_backward_data(dy, y, dim, DT))
    agree("log_softmax_backward", lambda: layers.log_softmax_backward(dy, ly, dim),
          lambda: aten._log_softmax_backward_data(dy, ly, dim, DT))


def test_logsumexp_of_masked_and_infinite_rows():
    inf, nan = math.inf, math.nan
    x = torch.tensor([[-inf, -inf, -inf], [1.0, inf, 2.0], [inf, inf, 0.0], [-inf, inf, 0.0], [inf, nan, 0.0], [-inf, 0.0, 1.0]], dtype=DT)
    out = layers.logsumexp(x)
    same(out, torch.logsumexp(x, -1))
    assert out[0] == -inf and out[1] == inf  # a fully masked row, a row with +inf


@given(n=st.integers(0, 2), sizes=st.lists(st.integers(1, 3), min_size=2, max_size=3),
       act=st.sampled_from(layers.ACTIVATIONS), data=st.data())
def test_mlp_forward(n, sizes, act, data):
    x = data.draw(float_tensors((n, sizes[0]), values=NO_HUGE))
    params = [(data.draw(float_tensors((o, i), values=NO_HUGE)), data.draw(float_tensors((o,), values=NO_HUGE)))
              for i, o in zip(sizes[:-1], sizes[1:])]

    def reference():
        outs, a = [x], x
        for l, (W, b) in enumerate(params, start=1):
            z = F.linear(a, W, b)
            outs.append(z)
            if l < len(params):
                a = getattr(torch, act)(z)
                outs.append(a)
        return outs

    agree("mlp_forward", lambda: layers.mlp_forward(x, params, act), reference)


FLOAT_FUNCTIONS = {
    "relu": (layers.relu, torch.relu), "sigmoid": (layers.sigmoid, torch.sigmoid), "tanh": (layers.tanh, torch.tanh),
    "softmax": (layers.softmax, lambda x: torch.softmax(x, -1)), "log_softmax": (layers.log_softmax, lambda x: torch.log_softmax(x, -1)),
    "logsumexp": (layers.logsumexp, lambda x: torch.logsumexp(x, -1)),
    "mse_loss": (lambda x: losses.mse_loss(x, x), lambda x: F.mse_loss(x, x)),
}


@pytest.mark.parametrize("name", sorted(FLOAT_FUNCTIONS))
@given(x=int_tensors(shapes(1, 2, 1, 3), min_value=-3, max_value=3))
def test_integer_tensors_where_floats_are_expected(name, x):
    """torch computes some of these in integers (relu of an int tensor is an int tensor) and
    refuses others; ours asks for floating point, always clearly."""
    ours, theirs = FLOAT_FUNCTIONS[name]
    agree(name, lambda: ours(x), lambda: theirs(x), refuse=True)


# ======================================================================================
# engine: Value against 0-d float64 tensors
# ======================================================================================
def value_vs_torch(op: Callable, *numbers: float):
    """(result, grads) of ``op`` on Values and on torch scalars, or Refused."""

    def ours():
        vs = [Value(a) for a in numbers]
        out = op(*vs)
        out.backward()
        return out.data, *[v.grad for v in vs]

    def theirs():
        ts = [torch.tensor(a, dtype=DT, requires_grad=True) for a in numbers]
        out = op(*ts)
        grads = torch.autograd.grad(out, ts, allow_unused=True)
        return out.item(), *[0.0 if g is None else g.item() for g in grads]

    return ours, theirs


BINARY = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y, "/": lambda x, y: x / y}
EXPONENTS = (0, 0.0, 0.25, 0.5, 1, 1.5, 2, 2.5, 3, -0.5, -1, -2, -3)
UNARY = ("exp", "log", "tanh", "relu", "sigmoid", "neg")
GRID = SPECIAL + (1.0, -2.5, 710.0)  # every special value, plus ordinary ones and exp's overflow


def check_binary(a: float, b: float, op: str) -> None:
    if op == "/" and math.isfinite(b) and abs(b) > 1e150:
        # a / b is a * b**-1 (chapter 03): d/db = -b**-2 * a, and b**-2 underflows to 0 here,
        # so 0 * inf gives NaN where torch computes -(a / b) / b; documented in the engine
        return
    ours, theirs = value_vs_torch(BINARY[op], a, b)
    # x / 0 and x / 5e-324 (whose inverse overflows) are refused with a ZeroDivisionError
    agree("Value", ours, theirs, refuse=op == "/" and abs(b) < 1 / sys.float_info.max)


def check_pow(a: float, k: float) -> None:
    ours, theirs = value_vs_torch(lambda x: x**k, a)
    # documented refusals: 0 ** negative (torch: inf) and negative ** fraction (torch: NaN)
    refuse = (a == 0 and k < 0) or (a < 0 and not float(k).is_integer())
    agree("Value ** k", ours, theirs, refuse=refuse)


def check_unary(a: float, fn: str) -> None:
    op = (lambda x: -x) if fn == "neg" else (lambda x: getattr(x, fn)())
    ours, theirs = value_vs_torch(op, a)
    # documented refusals: log of x <= 0 (torch: -inf or NaN), exp overflowing a float (torch: inf)
    refuse = (fn == "log" and a <= 0) or (fn == "exp" and math.isfinite(a) and a > math.log(sys.float_info.max))
    agree("Value.log" if fn == "log" else "Value.exp" if fn == "exp" else "Value", ours, theirs, refuse=refuse)


def zero_base_with_fraction(a: float, k: float) -> bool:
    """torch computes x ** 0.5 as sqrt(x) and sqrt(-0.0) = -0.0, so its gradient there is -inf;
    the engine follows pow, for which the sign of a zero base does not matter: not compared."""
    return a == 0 and math.copysign(1.0, a) < 0 and not float(k).is_integer()


@pytest.mark.parametrize("op", sorted(BINARY))
def test_value_binary_operations_on_every_pair_of_special_values(op):
    for a in GRID:
        for b in GRID:
            check_binary(a, b, op)


@pytest.mark.parametrize("k", EXPONENTS)
def test_value_pow_of_every_special_value(k):
    for a in GRID:
        if not zero_base_with_fraction(a, k):
            check_pow(a, k)


@pytest.mark.parametrize("fn", UNARY)
def test_value_unary_functions_of_every_special_value(fn):
    for a in GRID:
        check_unary(a, fn)


@given(a=floats(), b=floats(), op=st.sampled_from(sorted(BINARY)), k=st.sampled_from(EXPONENTS), fn=st.sampled_from(UNARY))
def test_value_operations_on_random_numbers(a, b, op, k, fn):
    check_binary(a, b, op)
    if not zero_base_with_fraction(a, k):
        check_pow(a, k)
    check_unary(a, fn)


def test_value_pow_at_zero_and_overflow():
    for k, grad in ((0, 0.0), (0.5, math.inf), (1, 1.0), (2, 0.0)):
        x = Value(0.0)
        (x**k).backward()
        assert x.grad == grad, (k, x.grad)
    big = Value(1e200)
    y = big**2
    y.backward()
    assert y.data == math.inf and (big * big).data == math.inf and big.grad == 2e200


# ======================================================================================
# conv
# ======================================================================================
@st.composite
def conv_case(draw, values=NO_HUGE):
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    hw = tuple(max(1, di * (ki - 1) + 1 - 2 * pi) + draw(st.integers(0, 2)) for ki, pi, di in zip(k, p, d))
    n = draw(st.integers(1, 2))
    x = draw(float_tensors((n, c_in, *hw), values=values))
    w = draw(float_tensors((c_out, c_in // groups, *k), values=values))
    b = draw(st.one_of(st.none(), float_tensors((c_out,), values=values)))
    return x, w, b, dict(stride=s, padding=p, dilation=d, groups=groups)


@given(case=conv_case())
def test_conv2d_forward(case):
    x, w, b, hyper = case
    for name in ("conv2d", "conv2d_naive"):
        agree(name, lambda: getattr(conv, name)(x, w, b, **hyper), lambda: F.conv2d(x, w, b, **hyper), atol=1e-11)


@given(case=conv_case(), data=st.data())
def test_conv2d_backward(case, data):
    x, w, b, hyper = case
    out_shape = F.conv2d(x, w, b, **hyper).shape
    g = data.draw(float_tensors(tuple(out_shape), values=NO_HUGE))
    gx, gw = autograd(lambda a, c: F.conv2d(a, c, None, **hyper), [x, w], g)
    kw = {k: v for k, v in hyper.items()}
    agree("conv2d_grad_input", lambda: conv.conv2d_grad_input(g, w, tuple(x.shape[2:]), **kw), lambda: gx, atol=1e-11)
    agree("conv2d_grad_weight", lambda: conv.conv2d_grad_weight(g, x, tuple(w.shape[2:]), **kw), lambda: gw, atol=1e-11)
    agree("conv2d_backward", lambda: conv.conv2d_backward(g, x, w, **kw), lambda: (gx, gw, g.sum(dim=(0, 2, 3))), atol=1e-11)


@given(case=conv_case(), data=st.data())
def test_conv2d_module_forward_and_backward(case, data):
    x, w, b, hyper = case
    layer = conv.Conv2d(x.shape[1], w.shape[0], tuple(w.shape[2:]), bias=b is not None, **hyper)
    with torch.no_grad():
        layer.weight.data = w.clone()
        if b is not None:
            layer.bias.data = b.clone()
    xl = x.clone().requires_grad_(True)
    y = layer(xl)
    g = data.draw(float_tensors(tuple(y.shape), values=NO_HUGE))
    y.backward(g)
    ref = autograd(lambda a, c, bb: F.conv2d(a, c, bb, **hyper), [x, w, torch.zeros(w.shape[0], dtype=DT) if b is None else b], g)
    same((y.detach(), xl.grad, layer.weight.grad), (F.conv2d(x, w, b, **hyper), ref[0], ref[1]), atol=1e-11)
    if b is not None:
        same(layer.bias.grad, ref[2], atol=1e-11)


@given(image=float_tensors(shapes(2, 2, 1, 4), values=NO_HUGE), kernel=float_tensors(shapes(2, 2, 1, 3), values=NO_HUGE))
def test_correlate2d_and_convolve2d(image, kernel):
    fits = kernel.shape[0] <= image.shape[0] and kernel.shape[1] <= image.shape[1]
    agree("correlate2d", lambda: conv.correlate2d(image, kernel),
          lambda: F.conv2d(image[None, None], kernel[None, None])[0, 0], refuse=not fits)
    agree("correlate2d", lambda: conv.convolve2d(image, kernel),
          lambda: F.conv2d(image[None, None], kernel.flip(0, 1)[None, None])[0, 0], refuse=not fits)


@given(case=conv_case(values=SPECIAL))
def test_im2col_and_col2im(case):
    x, w, _, hyper = case
    k, geo = tuple(w.shape[2:]), {key: hyper[key] for key in ("stride", "padding", "dilation")}
    cols = F.unfold(x, k, **geo)
    agree("im2col", lambda: conv.im2col(x, k, **geo), lambda: cols)
    agree("col2im", lambda: conv.col2im(cols, tuple(x.shape[2:]), k, **geo), lambda: F.fold(cols, tuple(x.shape[2:]), k, **geo))


@given(x=float_tensors(shapes(2, 4, 0, 3)), ph=st.integers(0, 2), pw=st.integers(0, 2), value=floats())
def test_pad2d(x, ph, pw, value):
    agree("pad2d", lambda: conv.pad2d(x, (ph, pw), value), lambda: F.pad(x, (pw, pw, ph, ph), value=value))


# ======================================================================================
# pool
# ======================================================================================
@st.composite
def pool_case(draw, values=SPECIAL):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    hw = tuple(max(1, ki - 2 * pi) + draw(st.integers(0, 2)) for ki, pi in zip(k, p))
    lead = draw(st.sampled_from([(1,), (2,), (1, 2), (2, 1)]))
    x = draw(float_tensors((*lead, *hw), values=values))
    return x, dict(kernel_size=k, stride=s, padding=p)


@given(case=pool_case(), data=st.data())
def test_max_pool2d(case, data):
    x, geo = case
    agree("max_pool2d", lambda: pool.max_pool2d(x, **geo, return_indices=True),
          lambda: F.max_pool2d(x, **geo, return_indices=True))
    g = data.draw(float_tensors(tuple(F.max_pool2d(x, **geo).shape), values=NO_HUGE))
    agree("max_pool2d_backward", lambda: pool.max_pool2d_backward(g, x, **geo),
          lambda: autograd(lambda a: F.max_pool2d(a, **geo), [x], g)[0])


def test_max_pool2d_window_with_nan_points_where_torch_does():
    x = torch.tensor([[[[1.0, math.nan], [math.nan, 0.0]]]], dtype=DT)
    y, idx = pool.max_pool2d(x, 2, return_indices=True)
    y_ref, idx_ref = F.max_pool2d(x, 2, return_indices=True)
    same((y, idx), (y_ref, idx_ref))


@given(case=pool_case(values=NO_HUGE), count_include_pad=st.booleans(), data=st.data())
def test_avg_pool2d(case, count_include_pad, data):
    x, geo = case
    agree("avg_pool2d", lambda: pool.avg_pool2d(x, **geo, count_include_pad=count_include_pad),
          lambda: F.avg_pool2d(x, **geo, count_include_pad=count_include_pad))
    g = data.draw(float_tensors(tuple(F.avg_pool2d(x, **geo).shape), values=NO_HUGE))
    agree("avg_pool2d_backward", lambda: pool.avg_pool2d_backward(g, x, **geo, count_include_pad=count_include_pad),
          lambda: autograd(lambda a: F.avg_pool2d(a, **geo, count_include_pad=count_include_pad), [x], g)[0])
    x4 = x if x.dim() == 4 else x[None]
    agree("global_avg_pool2d", lambda: pool.global_avg_pool2d(x4), lambda: F.adaptive_avg_pool2d(x4, 1)[..., 0, 0])


# ======================================================================================
# optim: one step against torch.optim
# ======================================================================================
def torch_step(make, param: torch.Tensor, grads, **hyper):
    """The parameter after one step per gradient of the optimiser class ``make``, and its state."""
    p = param.clone().requires_grad_(True)
    opt = make([p], **hyper)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    return p.detach(), opt.state[p]


@given(pg=pair(shapes(0, 2)), momentum=st.sampled_from([0.0, 0.9]), weight_decay=st.sampled_from([0.0, 0.1]),
       nesterov=st.booleans())
def test_sgd_step(pg, momentum, weight_decay, nesterov):
    param, grad = pg
    nesterov = nesterov and momentum > 0
    hyper = dict(lr=0.1, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    ref, state = torch_step(torch.optim.SGD, param, [grad, grad], **hyper)

    def ours():
        p, buf = optim.sgd_step(param, grad, None, **hyper)
        return optim.sgd_step(p, grad, buf, **hyper)[0]

    agree("sgd_step", ours, lambda: ref)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns on inf - inf; torch does not
@given(pg=pair(shapes(0, 2)))
def test_gd_step(pg):
    param, grad = pg
    ref, _ = torch_step(torch.optim.SGD, param, [grad], lr=0.1)
    agree("gd_step", lambda: optim.gd_step(param, grad, 0.1), lambda: ref)
    agree("gd_step", lambda: torch.as_tensor(np.asarray(optim.gd_step(param.numpy(), grad.numpy(), 0.1))), lambda: ref)


@given(pg=pair(shapes(0, 2)), amsgrad=st.booleans(), weight_decay=st.sampled_from([0.0, 0.1]))
def test_adam_step(pg, amsgrad, weight_decay):
    param, grad = pg
    hyper = dict(lr=0.01, weight_decay=weight_decay)
    ref, _ = torch_step(torch.optim.Adam, param, [grad, grad * 0.5], amsgrad=amsgrad, **hyper)

    def ours():
        p, m, v, vmax = param, torch.zeros_like(param), torch.zeros_like(param), torch.zeros_like(param)
        for t, g in enumerate([grad, grad * 0.5], start=1):
            if amsgrad:
                p, m, v, vmax = optim.amsgrad_step(p, g, m, v, vmax, t, **hyper)
            else:
                p, m, v = optim.adam_step(p, g, m, v, t, **hyper)
        return p

    agree("amsgrad_step" if amsgrad else "adam_step", ours, lambda: ref, rtol=1e-10, atol=1e-12)


@given(pg=pair(shapes(0, 2)), which=st.sampled_from(["SGD", "Nesterov", "Adam", "AMSGrad"]))
def test_optimizer_classes(pg, which):
    param, grad = pg
    make, hyper = {"SGD": ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
                   "Nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                   "Adam": ("Adam", dict(lr=0.01, weight_decay=0.1)),
                   "AMSGrad": ("Adam", dict(lr=0.01, amsgrad=True))}[which]
    ref, _ = torch_step(getattr(torch.optim, make), param, [grad, grad * 0.5], **hyper)
    ours, _ = torch_step(getattr(optim, make), param, [grad, grad * 0.5], **hyper)
    same(ours, ref, rtol=1e-10, atol=1e-12)


# ======================================================================================
# metrics: integer labels of every dtype, against scikit-learn
# ======================================================================================
@pytest.mark.filterwarnings("ignore::UserWarning")  # scikit-learn's, about a single label
@given(n=st.integers(0, 6), data=st.data())
def test_metrics_with_labels_of_every_integer_dtype(n, data):
    from sklearn import metrics as skm

    dtype = data.draw(st.sampled_from(INT_DTYPES))
    lo = data.draw(st.sampled_from([0, 0, 0, -1]))
    y_true = data.draw(int_tensors((n,), dtypes=[dtype], min_value=lo, max_value=3))
    y_pred = data.draw(int_tensors((n,), dtypes=[dtype], min_value=lo, max_value=3))
    note(f"{dtype}: {y_true.tolist()} {y_pred.tolist()}")
    # refused, clearly: no samples, negative labels (scikit-learn takes any label; here labels are 0..K-1)
    refuse = n == 0 or bool(min(y_true.tolist() + y_pred.tolist()) < 0)
    t, p = y_true.numpy().astype(np.int64), y_pred.numpy().astype(np.int64)
    k = max(t.tolist() + p.tolist(), default=0) + 1
    labels = list(range(k))
    agree("confusion_matrix", lambda: metrics.confusion_matrix(y_true, y_pred),
          lambda: torch.from_numpy(skm.confusion_matrix(t, p, labels=labels)).to(torch.int64), refuse=refuse)
    agree("accuracy", lambda: metrics.accuracy(y_true, y_pred), lambda: skm.accuracy_score(t, p), refuse=refuse)
    for average in (None, "macro", "micro", "weighted"):
        agree("precision_recall_f1", lambda: metrics.precision_recall_f1(y_true, y_pred, average=average),
              lambda: tuple(torch.as_tensor(v, dtype=DT) if average is None else float(v) for v in
                            skm.precision_recall_fscore_support(t, p, labels=labels, average=average, zero_division=0.0)[:3]),
              refuse=refuse, rtol=1e-12, atol=1e-15)
    if not refuse:  # the text report of any dtype is the one of the same labels as int64
        assert metrics.classification_report(y_true, y_pred) == metrics.classification_report(
            torch.from_numpy(t), torch.from_numpy(p))


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")  # scikit-learn's
@given(n=st.integers(0, 5), data=st.data())
def test_precision_recall_curve(n, data):
    from sklearn import metrics as skm

    y = data.draw(int_tensors((n,), min_value=0, max_value=1))
    scores = data.draw(float_tensors((n,)))
    finite = bool(torch.isfinite(scores).all())
    # refused, clearly: no samples, non-finite scores (scikit-learn refuses them as well)
    agree("precision_recall_curve", lambda: metrics.precision_recall_curve(y, scores),
          lambda: tuple(torch.from_numpy(a.copy()) for a in skm.precision_recall_curve(y.numpy().astype(np.int64), scores.numpy())),
          refuse=n == 0 or not finite)


# ======================================================================================
# gradcheck: a non-finite gradient never passes
# ======================================================================================
@given(x=float_tensors(shapes(1, 2, 0, 3)))
def test_gradcheck_never_passes_non_finite_gradients(x):
    def f(t):
        return (t * t).sum()

    analytic = 2 * x
    numeric = numerical_grad(f, x)
    result = outcome(lambda: gradcheck(f, x, analytic))
    if not (torch.isfinite(analytic).all() and torch.isfinite(numeric).all()):
        assert isinstance(result, Refused) and isinstance(result.error, GradcheckError), result
    else:  # finite gradients of x**2 agree; an empty input has nothing to compare
        assert result == 0.0 if x.numel() == 0 else not isinstance(result, Refused), result
