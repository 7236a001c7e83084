"""course_lib.data: toy 2-D sets and the bundled digits."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import data
from course_lib.validate import ShapeError

TOYS = {
    "moons": lambda n, seed, **kw: data.moons(n, seed=seed, **kw),
    "circles": lambda n, seed, **kw: data.circles(n, seed=seed, **kw),
    "xor": lambda n, seed, **kw: data.xor(n, seed=seed, **kw),
    "spirals": lambda n, seed, **kw: data.spirals(n, k=3, seed=seed, **kw),
}


@pytest.mark.parametrize("name", TOYS)
@given(n=st.integers(3, 150), seed=st.integers(0, 1000))
def test_toy_sets_have_shapes_dtypes_balance_and_are_seeded(name: str, n: int, seed: int) -> None:
    X, y = TOYS[name](n, seed)
    k = 3 if name == "spirals" else 2
    assert X.shape == (n, 2) and X.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.long
    counts = torch.bincount(y, minlength=k)
    assert len(counts) == k and int(counts.max() - counts.min()) <= 1  # balanced
    X2, y2 = TOYS[name](n, seed)
    assert torch.equal(X, X2) and torch.equal(y, y2)  # deterministic


@pytest.mark.parametrize("name", TOYS)
def test_seed_and_noise_change_the_data(name: str) -> None:
    X0, _ = TOYS[name](100, 0)
    X1, _ = TOYS[name](100, 1)
    assert not torch.equal(X0, X1)
    clean, _ = TOYS[name](100, 0, noise=0.0)
    noisy, _ = TOYS[name](100, 0, noise=0.3)
    # same points before the noise: the spread of the difference is about the noise level
    assert 0.2 < float((noisy.double() - clean.double()).std()) < 0.4


def test_toy_sets_are_the_shapes_they_claim() -> None:
    X, y = data.circles(200, noise=0.0, factor=0.4)
    radius = X.double().norm(dim=1)
    assert torch.allclose(radius[y == 0], torch.ones(100, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(radius[y == 1], torch.full((100,), 0.4, dtype=torch.float64), atol=1e-6)
    X, y = data.xor(200, noise=0.0)
    assert torch.equal((X[:, 0] * X[:, 1] < 0).long(), y)  # class 1 where the signs differ
    X, y = data.moons(200, noise=0.0)
    upper = X[y == 0].double()
    assert torch.allclose(upper.norm(dim=1), torch.ones(100, dtype=torch.float64), atol=1e-6)
    X, y = data.spirals(300, k=3, noise=0.0)
    assert float(X.double().norm(dim=1).max()) == pytest.approx(1.0, abs=1e-6)


def test_spirals_with_many_classes_and_float64() -> None:
    X, y = data.spirals(50, k=5, dtype=torch.float64)
    assert X.dtype == torch.float64 and torch.bincount(y).tolist() == [10] * 5


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="at least one point per class"):
        data.spirals(2, k=3)
    with pytest.raises(ValueError, match="noise is a standard deviation"):
        data.moons(10, noise=-0.1)
    with pytest.raises(ValueError, match="factor"):
        data.circles(10, factor=1.5)


def test_digits_split_is_stratified_scaled_and_fixed() -> None:
    split = data.digits()
    n_train, n_test = len(split.y_train), len(split.y_test)
    assert n_train + n_test == 1797 and abs(n_test - 0.25 * 1797) <= 5
    assert split.X_train.shape == (n_train, 64) and split.X_test.shape == (n_test, 64)
    assert split.X_train.dtype == torch.float32 and split.y_train.dtype == torch.long
    assert float(split.X_train.min()) == 0.0 and float(split.X_train.max()) == 1.0
    # scikit-learn's digits have these class sizes; stratified: each class sends a quarter to test
    sizes = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert torch.bincount(torch.cat([split.y_train, split.y_test])).tolist() == sizes
    assert torch.bincount(split.y_test).tolist() == [round(0.25 * s) for s in sizes]
    again = data.digits()
    assert torch.equal(again.X_test, split.X_test) and torch.equal(again.y_train, split.y_train)
    other = data.digits(seed=1)
    assert not torch.equal(other.y_test, split.y_test)
    # no image in both parts: train and test together are the 1,797 images, each once
    both = torch.cat([split.X_train, split.X_test])
    assert len(torch.unique(both, dim=0)) == len(torch.unique(torch.cat([other.X_train, other.X_test]), dim=0))


def test_image_helpers() -> None:
    split = data.digits()
    images = data.to_images(split.X_test[:5])
    assert images.shape == (5, 8, 8) and torch.equal(images[2].reshape(64), split.X_test[2])
    grid = data.tile_images(split.X_test[:12], cols=5, pad=1)
    assert grid.shape == (3 * 9 - 1, 5 * 9 - 1)
    assert torch.equal(grid[9:17, 18:26], data.to_images(split.X_test[7:8])[0])  # image 7: row 1, column 2
    with pytest.raises(ShapeError, match=r"to_images: X should have shape \(\*, 64\), got \(5, 63\)"):
        data.to_images(torch.zeros(5, 63))


def test_digits_splits_are_disjoint_stratified_seeded_and_keep_the_test_part() -> None:
    parts = data.digits_splits()
    assert [len(parts.y_train), len(parts.y_val), len(parts.y_test)] == [1078, 269, 450]
    sizes = torch.tensor([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    assert torch.bincount(parts.y_val).tolist() == [round(0.15 * int(s)) for s in sizes]  # stratified
    assert torch.bincount(parts.y_test).tolist() == [round(0.25 * int(s)) for s in sizes]
    assert torch.equal(torch.bincount(parts.y_train) + torch.bincount(parts.y_val) + torch.bincount(parts.y_test), sizes)
    # the test part is data.digits()'s, and train + validation are its training part, each image once
    split = data.digits()
    assert torch.equal(parts.X_test, split.X_test) and torch.equal(parts.y_test, split.y_test)
    rest = torch.cat([parts.X_train, parts.X_val])
    key = lambda X: sorted(map(tuple, X.tolist()))  # noqa: E731  (order-free comparison of rows)
    assert key(rest) == key(split.X_train)
    # disjoint: the 1,797 rows of the three parts are those of the whole set (duplicates included)
    whole = torch.cat([rest, parts.X_test])
    assert len(whole) == 1797 and key(whole) == key(torch.cat([split.X_train, split.X_test]))
    # deterministic and seeded
    again = data.digits_splits()
    assert all(torch.equal(a, b) for a, b in zip(parts, again))
    other = data.digits_splits(seed=1)
    assert not torch.equal(other.y_val, parts.y_val) and torch.equal(other.X_test, data.digits(seed=1).X_test)
    assert data.digits_splits(dtype=torch.float64).X_val.dtype == torch.float64


def test_digits_splits_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"digits_splits: val_fraction must lie in \(0, 1\), got 0"):
        data.digits_splits(val_fraction=0)
    with pytest.raises(ValueError, match=r"digits_splits: test_fraction must lie in \(0, 1\), got 1.5"):
        data.digits_splits(test_fraction=1.5)
    with pytest.raises(ValueError, match=r"val_fraction \+ test_fraction must be < 1"):
        data.digits_splits(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="leaves no training image of class"):
        data.digits_splits(val_fraction=0.749, test_fraction=0.25)
    with pytest.raises(ValueError, match=r"digits: test_fraction must lie in \(0, 1\)"):
        data.digits(test_fraction=0)
