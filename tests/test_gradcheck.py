"""Finite differences: numerical_grad matches torch.autograd; gradcheck accepts right
gradients and rejects wrong ones with a message naming the input and the entry."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import layers
from course_lib.gradcheck import GradcheckError, gradcheck, numerical_grad
from course_lib.validate import ShapeError

F64 = torch.float64
FUNCTIONS = {
    "cubic": lambda x: (x**3 - 2 * x).sum(),
    "exp-sin": lambda x: (torch.exp(0.3 * x) * torch.sin(x)).mean(),
    "logsumexp": lambda x: torch.logsumexp(x.reshape(-1), dim=0),
    "tanh-norm": lambda x: torch.tanh(x).pow(2).sum().sqrt(),
}
shapes = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)


def autograd(f, x):
    x = x.detach().clone().requires_grad_(True)
    f(x).backward()
    return x.grad


@given(st.sampled_from(sorted(FUNCTIONS)), shapes, st.integers(0, 2**31 - 1))
def test_numerical_grad_matches_autograd(name, shape, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=F64)
    x_before = x.clone()
    num = numerical_grad(FUNCTIONS[name], x)
    assert num.shape == x.shape and num.dtype == F64
    torch.testing.assert_close(num, autograd(FUNCTIONS[name], x), atol=1e-7, rtol=1e-6)
    assert torch.equal(x, x_before)  # x left unchanged


def test_central_differences_are_second_order():
    """Halving eps divides the error of the central difference by ~4."""
    f = lambda x: torch.sin(3 * x).sum()  # noqa: E731
    x = torch.tensor([0.7], dtype=F64)
    exact = 3 * torch.cos(torch.tensor(2.1, dtype=F64))
    e1 = (numerical_grad(f, x, eps=1e-2) - exact).abs().item()
    e2 = (numerical_grad(f, x, eps=5e-3) - exact).abs().item()
    assert 3.5 < e1 / e2 < 4.5


def test_numerical_grad_accepts_python_float_and_float32():
    x = torch.tensor([1.0, -2.0], dtype=torch.float32)
    g = numerical_grad(lambda t: float((t * t).sum()), x)
    assert g.dtype == F64
    torch.testing.assert_close(g, torch.tensor([2.0, -4.0], dtype=F64), atol=1e-6, rtol=0)


def _linear_relu_loss(x, W, b, T):
    return 0.5 * ((layers.relu(layers.linear_forward(x, W, b)) - T) ** 2).sum()


def _linear_relu_grads(x, W, b, T):
    z = layers.linear_forward(x, W, b)
    dz = layers.relu_backward(layers.relu(z) - T, z)
    return layers.linear_backward(dz, x, W)


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_gradcheck_accepts_correct_gradients(n, d_in, d_out, seed):
    gen = torch.Generator().manual_seed(seed)
    x, W, b, T = (torch.randn(*s, generator=gen, dtype=F64) for s in ((n, d_in), (d_out, d_in), (d_out,), (n, d_out)))
    grads = _linear_relu_grads(x, W, b, T)
    err = gradcheck(lambda x, W, b: _linear_relu_loss(x, W, b, T), [x, W, b], list(grads))
    assert 0.0 <= err < 1e-5


def test_gradcheck_rejects_wrong_gradients():
    gen = torch.Generator().manual_seed(0)
    x, W, b, T = (torch.randn(*s, generator=gen, dtype=F64) for s in ((5, 3), (3, 3), (3,), (5, 3)))
    f = lambda x, W, b: _linear_relu_loss(x, W, b, T)  # noqa: E731
    dx, dW, db = _linear_relu_grads(x, W, b, T)
    with pytest.raises(GradcheckError, match=r"input 1 \(shape \(3, 3\)\) is wrong at index"):
        gradcheck(f, [x, W, b], [dx, dW.T, db])  # transposed weight gradient (square W)
    with pytest.raises(GradcheckError, match="input 2"):
        gradcheck(f, [x, W, b], [dx, dW, db / 5])  # mean instead of sum over the batch
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(f, [x, W, b], [dx * 1.001, dW, db])  # off by 0.1 %
    # the ReLU mask forgotten: dz = relu(z) - T instead of (relu(z) - T) * [z > 0]
    z = layers.linear_forward(x, W, b)
    wrong = layers.linear_backward(layers.relu(z) - T, x, W)
    assert bool((z <= 0).any())
    with pytest.raises(GradcheckError):
        gradcheck(f, [x, W, b], list(wrong))
    with pytest.raises(GradcheckError):
        gradcheck(f, [x, W, b], [dx, dW, torch.full_like(db, float("nan"))])


def test_gradcheck_single_tensor_and_scalar_input():
    x = torch.tensor(0.3, dtype=F64)
    err = gradcheck(lambda t: torch.exp(t), x, torch.exp(x))
    assert err < 1e-8
    with pytest.raises(GradcheckError, match=r"index \(\)"):
        gradcheck(lambda t: torch.exp(t), x, 2 * torch.exp(x))


def test_bad_input_raises_shape_error():
    x = torch.randn(3, dtype=F64)
    with pytest.raises(ShapeError, match="numerical_grad: x should be a floating-point tensor"):
        numerical_grad(lambda t: t.sum(), torch.arange(3))
    with pytest.raises(ShapeError, match="numerical_grad: x should be a torch.Tensor"):
        numerical_grad(lambda t: t.sum(), [1.0, 2.0])
    with pytest.raises(ShapeError, match=r"f should return a scalar.*shape \(3,\)"):
        numerical_grad(lambda t: t * 2, x)
    with pytest.raises(ShapeError, match=r"gradcheck: inputs\[0\] and analytic\[0\] should have the same shape, got \(3,\) and \(1, 3\)"):
        gradcheck(lambda t: t.sum(), [x], [torch.ones(1, 3, dtype=F64)])
    with pytest.raises(ShapeError, match="1 input"):
        gradcheck(lambda t: t.sum(), [x], [x, x])
    with pytest.raises(ValueError, match="eps"):
        numerical_grad(lambda t: t.sum(), x, eps=0.0)
