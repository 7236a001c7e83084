"""Numbers that the lectures state in their prose, recomputed with the same data, seeds and code.

The lectures print these numbers and explain them; the checks that the prose matches them live
here, so that the lectures read as a textbook and a change in the library, the data or PyTorch
that moves a stated number shows up as a failing test naming the sentence concerned.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import conv, data, layers, optim, pool, train


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# --- 01_forward, section 4: nn.Linear's default initialisation lets the signal shrink -------------

def _init_spread() -> dict:
    """The lecture's measurement: std over 500 inputs of each Z_l, averaged over units, 8 x 256."""
    init_gen = torch.Generator().manual_seed(1)
    X_deep = torch.randn(500, 256, generator=init_gen, dtype=torch.float64)
    params_deep = layers.init_mlp([256] * 9, generator=init_gen)
    spread = {}
    for act in ("tanh", "relu"):
        Zs = layers.mlp_forward(X_deep, params_deep, activation=act)[1::2]
        spread[act] = [float(Z.std(dim=0).mean()) for Z in Zs]
    return spread


def test_01_default_init_variance_is_one_third_over_fan_in():
    # "every weight has variance 1/(3 D_{l-1})"
    (W, b), = layers.init_mlp([400, 300], generator=torch.Generator().manual_seed(0))
    assert float(W.var()) == pytest.approx(1 / (3 * 400), rel=0.02)
    assert float(b.var()) == pytest.approx(1 / (3 * 400), rel=0.25)


def test_01_signal_shrinks_through_default_initialised_layers():
    spread = _init_spread()
    tanh, relu = spread["tanh"], spread["relu"]
    assert tanh[0] == pytest.approx(0.58, abs=0.005) and relu[0] == pytest.approx(0.58, abs=0.005)  # "from 0.58"
    assert tanh[-1] == pytest.approx(0.009, abs=0.0005)  # "to about 0.009 with tanh"
    assert relu[-1] < 0.001  # "below 0.001 with ReLU"
    tanh_factors = [a / b for a, b in zip(tanh, tanh[1:])]
    relu_factors = [a / b for a, b in zip(relu, relu[1:])]
    assert 1.7 <= min(tanh_factors) and max(tanh_factors) < 2.25  # "a factor of 1.7 to 2.2 per tanh layer"
    assert 2.35 <= min(relu_factors) and max(relu_factors) < 3.05  # "2.4 to 3 per ReLU layer"
    assert min(tanh_factors[3:]) > math.sqrt(3) - 0.01  # "divides the spread of z by about sqrt(3)"


# --- 04_optimization, section 2: minibatches ---------------------------------------------------------

def test_04_minibatch_error_shrinks_like_one_over_sqrt_batch_and_epochs_average_exactly():
    X, y = data.moons(256, noise=0.1, dtype=torch.float64)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2)).to(torch.float64)

    def gradient(Xb, yb):
        net.zero_grad()
        F.cross_entropy(net(Xb), yb).backward()
        return torch.cat([q.grad.reshape(-1) for q in net.parameters()])

    full = gradient(X, y)
    gen = torch.Generator().manual_seed(0)
    error = {}
    for size in (1, 4, 16, 64):
        grads = [gradient(Xb, yb) for Xb, yb in train.minibatches(X, y, size, generator=gen)]
        assert len(grads) == 256 // size  # N/|B| steps per epoch
        torch.testing.assert_close(torch.stack(grads).mean(dim=0), full, atol=1e-12, rtol=0)
        error[size] = float(torch.stack([(g - full).norm() / full.norm() for g in grads]).mean())
    # "shrinks roughly like 1/sqrt(|B|)": four times the batch, about half the error (a little less
    # than half at |B| = 64, where a batch is a quarter of the data and only 4 batches are averaged)
    for small, large in ((1, 4), (4, 16), (16, 64)):
        assert 1.5 < error[small] / error[large] < 3.2, error


# --- 04_optimization, sections 8 and 9: the repaired listing and the spirals --------------------------

def _listing_test_accuracy(lr: float) -> float:
    """The talent article's training listing as repaired in the lecture, for a given learning rate."""
    from torch.utils.data import DataLoader, TensorDataset

    digits = data.digits()
    torch.manual_seed(0)
    net = nn.Linear(64, 10)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(digits.X_train, digits.y_train), batch_size=32, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    for _ in range(10):
        for inputs, target in loader:
            optimizer.zero_grad()
            nn.CrossEntropyLoss()(net(inputs), target).backward()
            optimizer.step()
    with torch.no_grad():
        return train.accuracy(net(digits.X_test), digits.y_test)


def test_04_listing_learning_rate_claim():
    # "with 0.01 the same ten epochs reach about 0.86 test accuracy instead of 0.93"
    assert _listing_test_accuracy(0.1) == pytest.approx(0.93, abs=0.015)
    assert _listing_test_accuracy(0.01) == pytest.approx(0.86, abs=0.015)


def _spirals_accuracy(make_optimizer) -> float:
    X, y = data.spirals(300, k=3, noise=0.04)
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))
    history = train.fit(mlp, X, y, optimizer=make_optimizer(mlp.parameters()), epochs=150, batch_size=60,
                        live=False, progress=False)
    return history.accuracy[-1]


def test_04_adam_fits_the_spirals_plain_sgd_has_barely_started_momentum_needs_its_own_lr():
    adam = _spirals_accuracy(lambda p: optim.Adam(p, lr=0.02))
    sgd = _spirals_accuracy(lambda p: optim.SGD(p, lr=0.02))
    momentum = _spirals_accuracy(lambda p: optim.SGD(p, lr=0.1, momentum=0.9))
    assert adam > 0.95 > 0.5 > sgd, (adam, sgd)  # the panel titles; "plain SGD has barely started"
    assert momentum > 0.95, momentum


# --- 06_pooling, section 7: how much shift invariance pooling buys --------------------------------------

def _shift_right(x: torch.Tensor, t: int) -> torch.Tensor:
    out = torch.zeros_like(x)
    out[..., t:] = x[..., :x.shape[-1] - t]
    return out


def _relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).mean())


@pytest.fixture(scope="module")
def shift_table():
    """The lecture's table delta[features, t][pooling], and the canvas it was measured on."""
    digits = data.digits(dtype=torch.float64)
    images = data.to_images(digits.X_test).unsqueeze(1)  # (450, 1, 8, 8)
    sobel = torch.tensor([[[[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]]], dtype=torch.float64)
    canvas = F.pad(images, (4, 4))  # (450, 1, 8, 16)
    poolings = {"no pooling": lambda m: m, "max 2x2": lambda m: pool.max_pool2d(m, 2),
                "avg 2x2": lambda m: pool.avg_pool2d(m, 2), "max 4x4": lambda m: pool.max_pool2d(m, 4),
                "global avg": pool.global_avg_pool2d}
    features = {"pixels": lambda z: z, "edges": lambda z: torch.relu(conv.conv2d(z, sobel, padding=1))}
    delta = {}
    for fname, f in features.items():
        for t in (1, 2, 3, 4):
            original, shifted = f(canvas), f(_shift_right(canvas, t))
            delta[fname, t] = {name: _relative_difference(P(shifted), P(original)) for name, P in poolings.items()}
    return delta, canvas


def test_06_stated_table_values(shift_table):
    delta, _ = shift_table
    d1, d2 = delta["pixels", 1], delta["pixels", 2]
    e1, e2 = delta["edges", 1], delta["edges", 2]
    stated = {  # value in the table: number in the lecture's bullet list
        "pixels, t=1, no pooling": (d1["no pooling"], 0.83), "edges, t=1, no pooling": (e1["no pooling"], 0.98),
        "pixels, t=1, max 2x2": (d1["max 2x2"], 0.55), "pixels, t=1, avg 2x2": (d1["avg 2x2"], 0.58),
        "edges, t=1, max 2x2": (e1["max 2x2"], 0.70), "edges, t=1, avg 2x2": (e1["avg 2x2"], 0.77),
        "pixels, t=2, max 2x2": (d2["max 2x2"], 0.90), "pixels, t=2, no pooling": (d2["no pooling"], 1.14),
        "edges, t=2, max 2x2": (e2["max 2x2"], 1.05), "edges, t=2, no pooling": (e2["no pooling"], 1.32),
        "pixels, t=1, max 4x4": (d1["max 4x4"], 0.17), "edges, t=1, max 4x4": (e1["max 4x4"], 0.32),
    }
    wrong = {k: v for k, v in stated.items() if abs(v[0] - v[1]) >= 0.006}
    assert not wrong, f"the lecture's numbers no longer match its table: {wrong}"


def test_06_two_by_two_pooling_cuts_a_one_pixel_shift_by_21_to_34_percent(shift_table):
    delta, _ = shift_table
    reductions = [1 - d[p] / d["no pooling"] for d in (delta["pixels", 1], delta["edges", 1])
                  for p in ("max 2x2", "avg 2x2")]
    assert 0.205 <= min(reductions) and max(reductions) < 0.345, reductions


def test_06_global_average_is_unchanged_by_every_shift(shift_table):
    delta, _ = shift_table
    assert all(delta[key]["global avg"] < 1e-12 for key in delta)


def test_06_max_pooling_is_equivariant_to_shifts_by_the_stride(shift_table):
    _, canvas = shift_table
    assert torch.equal(pool.max_pool2d(_shift_right(canvas, 2), 2), _shift_right(pool.max_pool2d(canvas, 2), 1))
