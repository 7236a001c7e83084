"""course_lib.train: minibatches, the training step, fit, decision boundaries, the live curve."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import data, optim, train
from course_lib.validate import ShapeError

F64 = torch.float64


@given(n=st.integers(1, 50), batch=st.integers(1, 20), seed=st.integers(0, 100))
def test_minibatches_cover_every_row_once(n: int, batch: int, seed: int) -> None:
    X = torch.arange(n * 2, dtype=F64).reshape(n, 2)
    y = torch.arange(n)
    parts = list(train.minibatches(X, y, batch, generator=torch.Generator().manual_seed(seed)))
    assert [len(yb) for _, yb in parts] == [min(batch, n - i) for i in range(0, n, batch)]
    seen = torch.cat([yb for _, yb in parts])
    assert sorted(seen.tolist()) == list(range(n))
    for Xb, yb in parts:  # rows stay paired with their labels
        assert torch.equal(Xb, X[yb])
    again = torch.cat([yb for _, yb in train.minibatches(X, y, batch, generator=torch.Generator().manual_seed(seed))])
    assert torch.equal(seen, again)
    in_order = torch.cat([yb for _, yb in train.minibatches(X, y, batch, shuffle=False)])
    assert torch.equal(in_order, y)


def test_minibatches_reject_bad_input() -> None:
    with pytest.raises(ShapeError, match=r"minibatches: y should have shape \(N,\), got \(4,\) \(N should be 5"):
        next(train.minibatches(torch.zeros(5, 2), torch.zeros(4), 2))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        next(train.minibatches(torch.zeros(5, 2), torch.zeros(5), 0))


def _tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).to(F64)


def test_train_step_is_the_torch_loop_and_returns_the_loss_before_the_update() -> None:
    X, y = data.moons(32, dtype=F64)
    ours, ref = _tiny_model(), _tiny_model()
    opt_ours = optim.SGD(ours.parameters(), lr=0.5, momentum=0.9)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.5, momentum=0.9)
    loss_fn = torch.nn.functional.cross_entropy
    for _ in range(5):
        before = float(loss_fn(ours(X), y).detach())
        got = train.train_step(ours, loss_fn, opt_ours, X, y)
        assert isinstance(got, float) and got == pytest.approx(before, rel=1e-12)
        opt_ref.zero_grad()
        loss_fn(ref(X), y).backward()
        opt_ref.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_accuracy() -> None:
    y = torch.tensor([0, 1, 2, 1])
    scores = torch.tensor([[2.0, 0, 0], [0, 1, 0], [0, 3, 0], [0, 5, 1]])
    assert train.accuracy(scores, y) == 0.75
    assert train.accuracy(torch.tensor([0, 1, 1, 1]), y) == 0.75
    with pytest.raises(ShapeError, match="accuracy: y should be an integer tensor"):
        train.accuracy(scores, y.float())
    with pytest.raises(ShapeError, match=r"accuracy: scores should have shape \(N, K\), got \(3, 3\)"):
        train.accuracy(scores[:3], y)


def test_fit_trains_a_classifier_and_is_repeatable() -> None:
    X, y = data.moons(200, noise=0.1)
    histories = []
    for _ in range(2):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
        hist = train.fit(model, X, y, optimizer=optim.Adam(model.parameters(), lr=0.05), epochs=40, batch_size=50,
                         X_val=X[:20], y_val=y[:20], progress=False)
        histories.append(hist)
    hist = histories[0]
    assert len(hist.loss) == len(hist.accuracy) == len(hist.val_accuracy) == 40
    assert len(hist.batch_loss) == 40 * 4
    assert hist.loss[-1] < 0.5 * hist.loss[0] and hist.accuracy[-1] > 0.95
    assert hist.loss == histories[1].loss  # seeded: the same shuffles, the same numbers
    # the epoch loss is the size-weighted mean of its batch losses
    assert hist.loss[0] == pytest.approx(sum(hist.batch_loss[:4]) / 4)


def test_fit_with_a_step_function() -> None:
    X = torch.randn(30, 3, dtype=F64)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    w = torch.zeros(3, dtype=F64, requires_grad=True)
    opt = optim.SGD([w], lr=0.1)

    def step(Xb: torch.Tensor, yb: torch.Tensor) -> float:
        return train.train_step(lambda A: A @ w, torch.nn.functional.mse_loss, opt, Xb, yb)

    hist = train.fit(step, X, y, epochs=5, batch_size=7, progress=False, live=False)
    assert len(hist.loss) == 5 and hist.accuracy == [] and len(hist.batch_loss) == 5 * 5
    assert hist.loss[-1] < hist.loss[0]


def test_fit_rejects_bad_input() -> None:
    model = _tiny_model()
    X, y = data.moons(20, dtype=F64)
    with pytest.raises(ValueError, match="needs an optimizer"):
        train.fit(model, X, y, progress=False)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        train.fit(model, X, y, optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=0)
    with pytest.raises(ShapeError, match=r"fit: y should have shape \(N,\), got \(19,\)"):
        train.fit(model, X, y[:19], optimizer=optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="expected a torch.nn.Module or a step function"):
        train.fit("model", X, y)


def test_live_curve_redraws_when_pushed() -> None:
    from course_lib.widgets.optim import LiveCurve

    curve = LiveCurve(epochs=10, title="demo")
    first = curve.image.value
    curve.push([1.0, 0.5, 0.3], [0.5, 0.7, 0.8])
    assert curve.image.value != first
    assert list(curve.loss_line.get_ydata()) == [1.0, 0.5, 0.3]
    assert "epoch 3" in curve.ax.get_title() and "0.800" in curve.ax.get_title()
    curve.finish()  # nothing displayed: nothing to refresh, no error


def test_plot_decision_boundary_colours_the_plane_by_prediction() -> None:
    from matplotlib.figure import Figure

    X, y = data.xor(40, noise=0.0)
    fig = Figure()
    ax = fig.add_subplot()
    labels = train.plot_decision_boundary(ax, lambda G: (G[:, 0] * G[:, 1] < 0).long(), X, y, resolution=50)
    assert labels.shape == (50, 50)
    assert int(labels[0, 0]) == 0 and int(labels[0, -1]) == 1  # bottom-left: both negative; bottom-right: signs differ
    assert len(ax.images) == 1 and len(ax.collections) == 1
    logits = train.plot_decision_boundary(ax, lambda G: torch.stack([G[:, 0], -G[:, 0]], dim=1), X, y, resolution=20)
    assert int(logits[0, 0]) == 1 and int(logits[0, -1]) == 0
    with pytest.raises(ShapeError, match=r"plot_decision_boundary: X should have shape \(N, 2\)"):
        train.plot_decision_boundary(ax, lambda G: G, torch.zeros(5, 3), torch.zeros(5, dtype=torch.long))


def test_library_modules_do_not_import_plotting_or_widgets() -> None:
    code = (
        "import sys, course_lib.optim, course_lib.train, course_lib.data, course_lib.questions.ch04_optim;"
        "bad = [m for m in ('matplotlib', 'ipywidgets', 'sklearn') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
