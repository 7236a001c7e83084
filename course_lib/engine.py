"""A scalar autograd engine, small enough to read in one sitting (after micrograd).

A :class:`Value` wraps one Python float (``data``) and remembers the values it
was computed from (``_prev``), the operation (``_op``) and a closure
(``_backward``) that applies the chain rule for that operation: it adds
``local derivative * out.grad`` to the ``grad`` of each input. Calling
:meth:`Value.backward` on the final result visits the graph in reverse
topological order, so a node's ``grad`` is complete before it is passed on.

Gradients are *added* (``+=``): a value used twice (``x * x``, ``a + a``) gets the
sum of both contributions. Leaves keep accumulating over several ``backward``
calls, exactly as in PyTorch; reset them with :func:`zero_grad`.

Special values follow float64 arithmetic and PyTorch: NaN propagates (``relu`` too),
a result too large for a float is ``inf`` (``x * x`` and ``x ** 2`` alike), and
``d(x**0)/dx = 0``, ``d(x**0.5)/dx = inf`` at 0. Where PyTorch would return ``inf`` or
NaN for an undefined result, a few operations raise a clear error instead: division by
zero (or by a number below 5.6e-309, whose inverse overflows) and ``0 ** k`` with
``k < 0`` (ZeroDivisionError), a negative base with a fractional exponent and ``log`` of
``x <= 0`` (ValueError), ``exp`` beyond ``e^709`` (OverflowError). Two known differences
remain: division is ``a * b**-1``, so for ``|b| > 1e154`` (where ``b**-2`` underflows to
0) its gradient with respect to ``b`` is 0, or NaN if ``a`` is infinite, where PyTorch
computes ``-(a / b) / b``; and a fractional power of -0.0 is taken as of +0.0 (PyTorch
computes ``x ** 0.5`` as ``sqrt(x)``, whose gradient at -0.0 is -inf).
"""

from __future__ import annotations

import math
import sys
from numbers import Real
from typing import Callable, Iterable, List, Tuple, Union

Number = Union[int, float]


class Value:
    """One scalar node of a computational graph: ``data``, ``grad`` and how it was made."""

    def __init__(self, data: Number, _children: Tuple["Value", ...] = (), _op: str = "", label: str = "") -> None:
        if isinstance(data, Value) or not isinstance(data, Real):
            raise TypeError(f"Value: data should be a real number (int or float), got {type(data).__name__}")
        self.data = float(data)
        self.grad = 0.0  # dL/d(this value), filled in by backward()
        self._backward: Callable[[], None] = lambda: None
        self._prev: Tuple[Value, ...] = tuple(_children)
        self._op = _op
        self.label = label

    def __repr__(self) -> str:
        name = f"{self.label}: " if self.label else ""
        return f"Value({name}data={self.data:.4g}, grad={self.grad:.4g})"

    # --- binary operations ------------------------------------------------------------
    def __add__(self, other: Union["Value", Number]) -> "Value":
        other = _as_value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:  # d(a+b)/da = 1, d(a+b)/db = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Union["Value", Number]) -> "Value":
        other = _as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:  # d(ab)/da = b, d(ab)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, k: Number) -> "Value":
        """x ** k for a constant k. As in PyTorch: ``inf`` where the result is too large for a
        float; the derivative ``k x^(k-1)`` is 0 for k = 0 and ``inf`` at x = 0 for 0 < k < 1."""
        if isinstance(k, Value) or not isinstance(k, Real):
            raise TypeError(f"Value ** k: the exponent k should be an int or float, got {type(k).__name__} (use exp/log for x ** y)")
        k = float(k)
        if self.data == 0.0 and k < 0:
            raise ZeroDivisionError(f"Value ** k: 0 ** {k:g} is undefined (division by zero; PyTorch would give inf)")
        if self.data < 0.0 and not k.is_integer():
            raise ValueError(f"Value ** k: a negative base ({self.data:g}) needs an integer exponent, got {k:g} (PyTorch would give NaN)")
        out = Value(_power(self.data, k), (self,), f"**{k:g}")

        def _backward() -> None:  # d(x^k)/dx = k x^(k-1); x^0 = 1 is a constant: derivative 0
            if k != 0:
                self.grad += k * _power(self.data, k - 1) * out.grad

        out._backward = _backward
        return out

    def __neg__(self) -> "Value":
        return self * -1

    def __sub__(self, other: Union["Value", Number]) -> "Value":
        return self + (-_as_value(other))

    def __truediv__(self, other: Union["Value", Number]) -> "Value":
        other = _as_value(other)
        if other.data == 0.0:
            raise ZeroDivisionError(f"Value /: division by zero ({self.data:g} / 0; PyTorch would give inf or NaN)")
        if abs(other.data) < 1 / sys.float_info.max:  # a / b is a * b**-1, and b**-1 would be inf
            raise ZeroDivisionError(f"Value /: 1 / {other.data:g} is too large for a float, so a / b = a * b**-1 cannot be formed")
        return self * other**-1

    def __radd__(self, other: Number) -> "Value":  # 2 + x
        return self + other

    def __rmul__(self, other: Number) -> "Value":  # 2 * x
        return self * other

    def __rsub__(self, other: Number) -> "Value":  # 2 - x
        return _as_value(other) - self

    def __rtruediv__(self, other: Number) -> "Value":  # 2 / x
        return _as_value(other) / self

    # --- unary functions --------------------------------------------------------------
    def _unary(self, data: float, op: str, local: float) -> "Value":
        """A new node ``op(self)`` whose derivative with respect to ``self`` is ``local``."""
        out = Value(data, (self,), op)

        def _backward() -> None:
            self.grad += local * out.grad

        out._backward = _backward
        return out

    def exp(self) -> "Value":
        """e^x; its derivative is e^x itself."""
        try:
            e = math.exp(self.data)
        except OverflowError:
            raise OverflowError(f"Value.exp: e^{self.data:g} is too large for a float (the limit is about e^709)") from None
        return self._unary(e, "exp", e)

    def log(self) -> "Value":
        """Natural logarithm; d log(x)/dx = 1/x. Only for x > 0."""
        if self.data <= 0.0:
            raise ValueError(f"Value.log: the logarithm needs a positive number, got {self.data:g}")
        return self._unary(math.log(self.data), "log", 1.0 / self.data)

    def tanh(self) -> "Value":
        """tanh(x); d tanh(x)/dx = 1 - tanh(x)^2."""
        t = math.tanh(self.data)
        return self._unary(t, "tanh", 1.0 - t * t)

    def relu(self) -> "Value":
        """max(0, x); derivative 0 for x <= 0, else 1 (0 at x = 0, as in PyTorch).

        NaN stays NaN and its derivative is 1 (``NaN <= 0`` is false), as in PyTorch;
        Python's ``max(0.0, nan)`` would return 0.0 and hide the NaN.
        """
        x = self.data
        return self._unary(0.0 if x < 0 else x, "relu", 0.0 if x <= 0 else 1.0)

    def sigmoid(self) -> "Value":
        """1 / (1 + e^-x), computed without overflow; derivative s (1 - s)."""
        if self.data >= 0:
            s = 1.0 / (1.0 + math.exp(-self.data))
        else:
            e = math.exp(self.data)
            s = e / (1.0 + e)
        return self._unary(s, "sigmoid", s * (1.0 - s))

    # --- the backward pass ------------------------------------------------------------
    def backward(self) -> None:
        """Fill in ``grad = d self / d v`` for every value ``v`` this one depends on.

        Inner nodes are reset first; leaves accumulate (``+=``) like PyTorch's ``.grad``.
        """
        order = topological_order(self)
        for v in order:
            if v._prev:
                v.grad = 0.0
        self.grad += 1.0  # d self / d self = 1: the seed of the chain rule
        for v in reversed(order):  # outputs before inputs
            v._backward()


def _power(x: float, k: float) -> float:
    """``x ** k`` with IEEE (and PyTorch) results where Python raises: a result too large
    for a float, or 0 to a negative power, is ``inf`` (``-inf`` for a negative base and an
    odd integer k)."""
    try:
        return x**k
    except (OverflowError, ZeroDivisionError):
        odd = k.is_integer() and k % 2 == 1
        return -math.inf if odd and math.copysign(1.0, x) < 0 else math.inf


def _as_value(x: Union[Value, Number]) -> Value:
    return x if isinstance(x, Value) else Value(x)


def topological_order(root: Value) -> List[Value]:
    """Every value ``root`` depends on, each listed after all of its inputs (root last).

    An explicit stack instead of recursion, so graphs thousands of operations deep work.
    """
    order: List[Value] = []
    visited = set()
    stack: List[Tuple[Value, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)  # all its inputs are already in `order`
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for child in reversed(node._prev):  # reversed: the first input is visited first
            if id(child) not in visited:
                stack.append((child, False))
    return order


def zero_grad(values: Iterable[Value]) -> None:
    """Set ``grad = 0`` on each value (call it before the next ``backward``)."""
    for v in values:
        v.grad = 0.0
