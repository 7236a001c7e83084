"""Synthetic sequence tasks generated in code (nothing downloaded), for recurrent networks.

* :func:`adding_problem`: add the two numbers that are marked somewhere in a long sequence; a
  simplified form of the long-range benchmark of Hochreiter & Schmidhuber (Long Short-Term
  Memory, Neural Computation 1997, whose values lie in [-1, 1], whose first marker is among the
  first ten steps and whose target is rescaled to [0, 1]).
* :func:`copy_task`: remember a few symbols, wait, then reproduce them.
* :func:`noisy_sines`: predict the next value of a noisy sine wave.

Every function is deterministic given ``seed`` (its own ``torch.Generator``; the global RNG is
untouched) and returns batch-first tensors ``(n, length, features)``.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch


def _int(fn: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{fn}: {name} should be an int >= {minimum}, got {value!r}")
    return value


def _float_dtype(fn: str, dtype: object) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"{fn}: dtype should be a floating-point torch.dtype, got {dtype!r}")
    return dtype


def adding_problem(n: int, length: int, seed: int = 0,
                   dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """``x`` (n, length, 2) and ``y`` (n,).

    Channel 0 holds numbers drawn uniformly from [0, 1); channel 1 is a marker, 1 at exactly
    two positions, one in the first half (``[0, length // 2)``) and one in the second half,
    0 elsewhere. The target is the sum of the two marked numbers, ``y = sum_t x[:, t, 0] *
    x[:, t, 1]``. Predicting the mean, 1, gives a mean squared error of 1/6 ≈ 0.167: the
    baseline a model must beat. ``length >= 2``.
    """
    fn = "adding_problem"
    _int(fn, "n", n, 1)
    _int(fn, "length", length, 2)
    _float_dtype(fn, dtype)
    gen = torch.Generator().manual_seed(seed)
    values = torch.rand(n, length, generator=gen, dtype=torch.float64)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=gen)
    second = torch.randint(half, length, (n,), generator=gen)
    marks = torch.zeros(n, length, dtype=torch.float64)
    rows = torch.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    x = torch.stack([values, marks], dim=-1)
    y = (values * marks).sum(1)
    return x.to(dtype), y.to(dtype)


def copy_task(n: int, length: int, symbols: int = 8, delay: int = 10, seed: int = 0,
              dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """Remember ``length`` symbols for ``delay`` steps, then reproduce them.

    A sequence has ``length + delay + length`` steps: first ``length`` random symbols from
    1..``symbols``, then ``delay`` blanks (symbol 0), whose last one is replaced by the
    go-marker (symbol ``symbols + 1``), then ``length`` blanks while the model answers.
    Returns ``x`` (n, 2*length + delay, symbols + 2) one-hot inputs and ``y`` (n, 2*length + delay)
    long targets: 0 (blank) everywhere except the last ``length`` steps, which hold the
    symbols. Guessing blanks everywhere and a uniform symbol at the end scores
    ``length * ln(symbols) / (2*length + delay)`` nats per step. ``delay >= 1``.
    """
    fn = "copy_task"
    _int(fn, "n", n, 1)
    _int(fn, "length", length, 1)
    _int(fn, "symbols", symbols, 1)
    _int(fn, "delay", delay, 1)
    _float_dtype(fn, dtype)
    gen = torch.Generator().manual_seed(seed)
    total = 2 * length + delay
    seq = torch.randint(1, symbols + 1, (n, length), generator=gen)
    inputs = torch.zeros(n, total, dtype=torch.long)
    inputs[:, :length] = seq
    inputs[:, length + delay - 1] = symbols + 1
    y = torch.zeros(n, total, dtype=torch.long)
    y[:, length + delay:] = seq
    x = torch.nn.functional.one_hot(inputs, symbols + 2).to(dtype)
    return x, y


def noisy_sines(n: int, length: int, noise: float = 0.1, seed: int = 0,
                dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """Next-value prediction on sine waves with random frequency and phase plus Gaussian noise.

    ``s[t] = sin(omega * t + phi) + noise * eps_t`` for t = 0..length, omega ~ U(0.1, 0.5)
    radians per step, phi ~ U(0, 2 pi), eps ~ N(0, 1). Returns ``x`` (n, length, 1) = s[0..length-1]
    and ``y`` (n, length, 1) = s[1..length]. Even a perfect model keeps a mean squared
    error of ``noise**2`` (the noise of the target cannot be predicted).
    """
    fn = "noisy_sines"
    _int(fn, "n", n, 1)
    _int(fn, "length", length, 1)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < math.inf:
        raise ValueError(f"{fn}: noise should be a finite number >= 0, got {noise!r}")
    _float_dtype(fn, dtype)
    gen = torch.Generator().manual_seed(seed)
    omega = 0.1 + 0.4 * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    phi = 2 * math.pi * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    t = torch.arange(length + 1, dtype=torch.float64)
    s = torch.sin(omega * t + phi) + noise * torch.randn(n, length + 1, generator=gen, dtype=torch.float64)
    s = s.to(dtype)[..., None]
    return s[:, :-1], s[:, 1:]
