"""Small data sets, made in code or shipped with scikit-learn: nothing is downloaded.

Toy 2-D classification sets (:func:`moons`, :func:`circles`, :func:`spirals`,
:func:`xor`) return ``(X, y)`` with ``X`` of shape ``(N, 2)`` (float) and ``y``
of shape ``(N,)`` (long). They are seeded: the same arguments give the same
tensors. Classes are balanced (sizes differ by at most one) and the rows are
shuffled. ``noise`` is always the standard deviation of Gaussian noise added
to each coordinate.

:func:`digits` gives scikit-learn's bundled 8x8 handwritten digits (1,797
images) as tensors with a fixed stratified train/test split; :func:`digits_splits`
adds a validation part, carved out of the training part, for choosing hyperparameters.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path
from typing import List, NamedTuple, Tuple

import numpy as np
import torch

from course_lib.validate import expect


def _class_sizes(n: int, k: int, fn: str) -> List[int]:
    if not (isinstance(n, int) and isinstance(k, int)) or k < 1 or n < k:
        raise ValueError(f"{fn}: need integers n >= k >= 1 (at least one point per class), got n={n!r}, k={k!r}")
    return [n // k + (1 if c < n % k else 0) for c in range(k)]


def _check_noise(fn: str, noise: float) -> None:
    if not noise >= 0:
        raise ValueError(f"{fn}: noise is a standard deviation and must be >= 0, got {noise!r}")


def _finish(parts: List[torch.Tensor], labels: List[int], noise: float, gen: torch.Generator, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    """Stack the classes, add noise, shuffle; X (N, 2) of ``dtype``, y (N,) long."""
    X = torch.cat(parts).to(torch.float64)
    y = torch.cat([torch.full((len(p),), c, dtype=torch.long) for p, c in zip(parts, labels)])
    X = X + noise * torch.randn(X.shape, generator=gen, dtype=torch.float64)
    order = torch.randperm(len(y), generator=gen)
    return X[order].to(dtype), y[order]


def moons(n: int = 200, noise: float = 0.1, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half circles: X (n, 2), y (n,) in {0, 1}."""
    _check_noise("moons", noise)
    sizes = _class_sizes(n, 2, "moons")
    gen = torch.Generator().manual_seed(seed)
    t0 = torch.linspace(0, math.pi, sizes[0], dtype=torch.float64)
    t1 = torch.linspace(0, math.pi, sizes[1], dtype=torch.float64)
    upper = torch.stack([torch.cos(t0), torch.sin(t0)], dim=1)
    lower = torch.stack([1 - torch.cos(t1), 0.5 - torch.sin(t1)], dim=1)
    return _finish([upper, lower], [0, 1], noise, gen, dtype)


def circles(n: int = 200, noise: float = 0.05, factor: float = 0.5, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """A circle of radius 1 (class 0) around one of radius ``factor`` (class 1): X (n, 2), y (n,)."""
    _check_noise("circles", noise)
    if not 0 < factor < 1:
        raise ValueError(f"circles: factor is the inner radius and must lie in (0, 1), got {factor!r}")
    sizes = _class_sizes(n, 2, "circles")
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for size, radius in zip(sizes, (1.0, factor)):
        t = torch.arange(size, dtype=torch.float64) * (2 * math.pi / size)
        parts.append(radius * torch.stack([torch.cos(t), torch.sin(t)], dim=1))
    return _finish(parts, [0, 1], noise, gen, dtype)


def spirals(n: int = 300, k: int = 3, noise: float = 0.05, turns: float = 1.0, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """``k`` interleaved spiral arms from the origin to radius 1: X (n, 2), y (n,) in {0..k-1}.

    Arm ``c`` at radius ``r`` sits at angle ``2*pi*(c/k + turns*r)``.
    """
    _check_noise("spirals", noise)
    sizes = _class_sizes(n, k, "spirals")
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for c, size in enumerate(sizes):
        r = torch.linspace(0.05, 1.0, size, dtype=torch.float64)
        angle = 2 * math.pi * (c / k + turns * r)
        parts.append(r[:, None] * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1))
    return _finish(parts, list(range(k)), noise, gen, dtype)


def xor(n: int = 200, noise: float = 0.1, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """Points in the four quadrants of [-1, 1]^2; class 1 where the signs of x1 and x2 differ.

    X (n, 2), y (n,). Each class is split evenly between its two quadrants.
    """
    _check_noise("xor", noise)
    sizes = _class_sizes(n, 2, "xor")
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for c, size in enumerate(sizes):
        magnitude = torch.rand(size, 2, generator=gen, dtype=torch.float64)
        first = torch.arange(size) % 2 == 0  # alternate between the class's two quadrants
        sign1 = torch.where(first, 1.0, -1.0).to(torch.float64)
        sign2 = sign1 if c == 0 else -sign1
        parts.append(magnitude * torch.stack([sign1, sign2], dim=1))
    return _finish(parts, [0, 1], noise, gen, dtype)


# --- handwritten digits ---------------------------------------------------------------
class DigitsSplit(NamedTuple):
    """Train and test tensors: X_* (N, 64) float in [0, 1], y_* (N,) long in {0..9}."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor


@functools.lru_cache(maxsize=1)
def _load_digits() -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as arrays (1797, 64) with values 0..16 and (1797,), read once.

    Reads the CSV that ships inside scikit-learn directly (importing ``sklearn.datasets``
    takes seconds); falls back to ``load_digits`` if the file has moved.
    """
    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.exists():
            table = np.loadtxt(path, delimiter=",")
            return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits  # pragma: no cover

    data = load_digits()  # pragma: no cover
    return data.data, data.target  # pragma: no cover


def _digits_tensors(dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    pixels, target = _load_digits()
    return torch.tensor(pixels / 16.0, dtype=dtype), torch.tensor(target, dtype=torch.long)


def _check_fraction(fn: str, name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{fn}: {name} must lie in (0, 1), got {value!r}")


def _train_test_indices(y: torch.Tensor, test_fraction: float, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Stratified, seeded: each class puts ``round(test_fraction * its size)`` random images
    into the test part; both parts are then shuffled (classes mixed). Index tensors."""
    gen = torch.Generator().manual_seed(seed)
    train_parts, test_parts = [], []
    for c in range(10):
        idx = torch.nonzero(y == c).squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_test = round(test_fraction * len(idx))
        test_parts.append(idx[:n_test])
        train_parts.append(idx[n_test:])
    train_idx, test_idx = torch.cat(train_parts), torch.cat(test_parts)
    train_idx = train_idx[torch.randperm(len(train_idx), generator=gen)]  # mix the classes
    test_idx = test_idx[torch.randperm(len(test_idx), generator=gen)]
    return train_idx, test_idx


def digits(test_fraction: float = 0.25, seed: int = 0, dtype: torch.dtype = torch.float32) -> DigitsSplit:
    """scikit-learn's bundled 8x8 digits (no download), pixels scaled from 0..16 to [0, 1],
    split into train and test with the same class proportions (stratified, seeded):
    each class puts ``round(test_fraction * its size)`` random images into the test set.
    For a separate validation part, see :func:`digits_splits`."""
    _check_fraction("digits", "test_fraction", test_fraction)
    X, y = _digits_tensors(dtype)
    train_idx, test_idx = _train_test_indices(y, test_fraction, seed)
    return DigitsSplit(X[train_idx], y[train_idx], X[test_idx], y[test_idx])


class DigitsSplits(NamedTuple):
    """Train, validation and test tensors: X_* (N, 64) float in [0, 1], y_* (N,) long in {0..9}.

    Fit the parameters on train, choose hyperparameters (learning rate, epochs, the
    model) on validation, and evaluate the final choice on test once."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor


def digits_splits(val_fraction: float = 0.15, test_fraction: float = 0.25, seed: int = 0,
                  dtype: torch.dtype = torch.float32) -> DigitsSplits:
    """The bundled 8x8 digits in three disjoint, stratified, seeded parts: train, validation, test.

    The test part is exactly :func:`digits`'s (same ``test_fraction`` and ``seed``: the same
    450 images by default, so every chapter reports on the same test images). The
    validation part is carved out of :func:`digits`'s training part: each class moves
    ``round(val_fraction * its size)`` of its training images (a random choice, fixed by
    ``seed``) into validation. Defaults: 1,078 train, 269 validation, 450 test images
    (60 / 15 / 25 %).
    """
    _check_fraction("digits_splits", "val_fraction", val_fraction)
    _check_fraction("digits_splits", "test_fraction", test_fraction)
    if not val_fraction + test_fraction < 1:
        raise ValueError(f"digits_splits: val_fraction + test_fraction must be < 1 to leave training images, "
                         f"got {val_fraction!r} + {test_fraction!r}")
    X, y = _digits_tensors(dtype)
    train_idx, test_idx = _train_test_indices(y, test_fraction, seed)
    # train_idx is in random order: each class's first round(val_fraction * size) of them go to validation
    is_val = torch.zeros(len(train_idx), dtype=torch.bool)
    for c in range(10):
        positions = torch.nonzero(y[train_idx] == c).squeeze(1)
        n_val = round(val_fraction * int((y == c).sum()))
        if n_val >= len(positions):
            raise ValueError(f"digits_splits: val_fraction={val_fraction!r} leaves no training image of class {c}")
        is_val[positions[:n_val]] = True
    val_idx, fit_idx = train_idx[is_val], train_idx[~is_val]
    return DigitsSplits(X[fit_idx], y[fit_idx], X[val_idx], y[val_idx], X[test_idx], y[test_idx])


def to_images(X: torch.Tensor) -> torch.Tensor:
    """Flat digit rows (N, 64) as images (N, 8, 8)."""
    expect("to_images", "X", X, (None, 64))
    return X.reshape(-1, 8, 8)


def tile_images(X: torch.Tensor, cols: int = 10, pad: int = 1) -> torch.Tensor:
    """Lay out digit rows (N, 64) or images (N, 8, 8) in a grid, for ``ax.imshow``:
    returns (rows * (8 + pad) - pad, cols * (8 + pad) - pad) with the gaps set to 0."""
    images = to_images(X) if X.dim() == 2 else X
    expect("tile_images", "X", images, (None, 8, 8))
    n = images.shape[0]
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    out = torch.zeros(rows * (8 + pad) - pad, cols * (8 + pad) - pad, dtype=images.dtype)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (8 + pad): r * (8 + pad) + 8, c * (8 + pad): c * (8 + pad) + 8] = images[i]
    return out
