"""A small training loop: minibatches, one training step, :func:`fit`, decision boundaries.

:func:`fit` shows a ``tqdm`` progress bar and, inside a notebook, a live loss
curve (:class:`course_lib.widgets.optim.LiveCurve`); run elsewhere (tests,
scripts) it displays nothing. matplotlib and ipywidgets are imported only when
something is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch

from course_lib.validate import expect

StepFn = Callable[[torch.Tensor, torch.Tensor], float]


def _expect_rows(fn: str, name: str, x: Any, dims: Optional[Dict[str, int]] = None) -> Dict[str, int]:
    """``x`` is a tensor of shape (N, ...); returns the known sizes with N bound."""
    expect(fn, name, x)
    return expect(fn, name, x, ("N",) + (None,) * max(0, x.dim() - 1), dims)


def minibatches(
    X: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = True, generator: Optional[torch.Generator] = None
) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(X_batch, y_batch)`` pairs that cover every row exactly once per pass.

    X (N, ...), y (N, ...); batches have ``batch_size`` rows (the last may be smaller).
    With ``shuffle`` the rows are visited in a random order drawn from ``generator``.
    """
    dims = _expect_rows("minibatches", "X", X)
    _expect_rows("minibatches", "y", y, dims)
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"minibatches: batch_size must be a positive integer, got {batch_size!r}")
    n = X.shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start: start + batch_size]
        yield X[idx], y[idx]


def train_step(model: Callable[[torch.Tensor], torch.Tensor], loss_fn: Callable[..., torch.Tensor], optimizer: Any, X: torch.Tensor, y: torch.Tensor) -> float:
    """One training step on a batch; returns the batch loss *before* the update.

    X (B, ...) goes through ``model``; ``loss_fn(model(X), y)`` must be a scalar.
    The four lines every PyTorch training loop contains, in this order.
    """
    optimizer.zero_grad()           # forget the previous batch's gradients
    loss = loss_fn(model(X), y)     # forward pass
    loss.backward()                 # gradients of the loss w.r.t. every parameter
    optimizer.step()                # update the parameters
    return float(loss.detach())


def accuracy(scores: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows whose predicted class matches ``y``.

    scores (N, K) class scores (the prediction is the argmax) or (N,) predicted
    labels; y (N,) integer labels.
    """
    dims = expect("accuracy", "y", y, ("N",), integer=True)
    if isinstance(scores, torch.Tensor) and scores.dim() == 2:
        expect("accuracy", "scores", scores, ("N", "K"), dims)
        pred = scores.argmax(dim=1)
    else:
        expect("accuracy", "scores", scores, ("N",), dims)
        pred = scores
    return float((pred == y).double().mean()) if len(y) else float("nan")


@dataclass
class History:
    """What :func:`fit` records: per epoch the mean training loss, the training
    accuracy and (with validation data) the validation accuracy; per step the batch loss."""

    loss: List[float] = field(default_factory=list)
    accuracy: List[float] = field(default_factory=list)
    val_accuracy: List[float] = field(default_factory=list)
    batch_loss: List[float] = field(default_factory=list)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def fit(
    model_or_step: Union[torch.nn.Module, StepFn],
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    optimizer: Any = None,
    loss_fn: Optional[Callable[..., torch.Tensor]] = None,
    epochs: int = 100,
    batch_size: Optional[int] = None,
    predict: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    X_val: Optional[torch.Tensor] = None,
    y_val: Optional[torch.Tensor] = None,
    seed: int = 0,
    every: int = 1,
    progress: bool = True,
    live: Optional[bool] = None,
    title: str = "training",
) -> History:
    """Train for ``epochs`` passes over ``(X, y)`` in minibatches; return a :class:`History`.

    ``model_or_step`` is either a ``torch.nn.Module`` (then ``optimizer`` is required
    and ``loss_fn`` defaults to cross-entropy; each batch runs :func:`train_step`)
    or a function ``step(X_batch, y_batch) -> float`` that does one update itself.
    X (N, ...), y (N,); ``batch_size=None`` means full batch. Accuracy is recorded
    when ``y`` holds class labels and there is a ``predict`` function (for a module:
    the argmax of its output). ``live`` (default: only inside a notebook) shows a
    loss curve redrawn every ``every`` epochs; ``progress`` shows a tqdm bar.
    """
    dims = _expect_rows("fit", "X", X)
    expect("fit", "y", y, ("N",), dims)
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"fit: epochs must be a positive integer, got {epochs!r}")
    if isinstance(model_or_step, torch.nn.Module):
        model = model_or_step
        if optimizer is None:
            raise ValueError("fit: training a module needs an optimizer, e.g. fit(model, X, y, optimizer=SGD(model.parameters(), lr=0.1))")
        loss = loss_fn or torch.nn.functional.cross_entropy

        def step(Xb: torch.Tensor, yb: torch.Tensor) -> float:
            return train_step(model, loss, optimizer, Xb, yb)

        if predict is None and not y.is_floating_point():
            def predict(Xq: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    return model(Xq)
    elif callable(model_or_step):
        step = model_or_step
    else:
        raise TypeError(f"fit: expected a torch.nn.Module or a step function, got {type(model_or_step).__name__}")

    gen = torch.Generator().manual_seed(seed)
    size = batch_size or len(y)
    history = History()
    curve = None
    if live if live is not None else _in_notebook():
        from course_lib.widgets.optim import LiveCurve

        curve = LiveCurve(epochs, title=title)
        curve.show()
    from tqdm.auto import tqdm

    bar = tqdm(range(epochs), desc=title, disable=not progress, leave=True)
    for epoch in bar:
        total, count = 0.0, 0
        for Xb, yb in minibatches(X, y, size, shuffle=batch_size is not None, generator=gen):
            batch_loss = float(step(Xb, yb))
            history.batch_loss.append(batch_loss)
            total += batch_loss * len(yb)
            count += len(yb)
        history.loss.append(total / count)
        if predict is not None:
            history.accuracy.append(accuracy(predict(X), y))
            if X_val is not None and y_val is not None:
                history.val_accuracy.append(accuracy(predict(X_val), y_val))
        if progress:
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}", refresh=False)
        if curve is not None and ((epoch + 1) % every == 0 or epoch + 1 == epochs):
            curve.push(history.loss, history.accuracy)
    bar.close()
    if curve is not None:
        curve.finish()
    return history


def plot_decision_boundary(
    ax: Any,
    predict_fn: Callable[[torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    resolution: int = 200,
    margin: float = 0.3,
) -> Any:
    """Colour the plane of ``ax`` by the class ``predict_fn`` gives each point and
    scatter the data on top.

    X (N, 2), y (N,) integer labels; ``predict_fn`` maps a grid (M, 2) (X's dtype)
    to class scores (M, K) or labels (M,). Returns the predicted labels on the grid,
    (resolution, resolution).
    """
    dims = expect("plot_decision_boundary", "X", X, ("N", 2))
    expect("plot_decision_boundary", "y", y, ("N",), dims, integer=True)
    from matplotlib.colors import ListedColormap

    lo = X.min(dim=0).values - margin
    hi = X.max(dim=0).values + margin
    xs = torch.linspace(float(lo[0]), float(hi[0]), resolution, dtype=X.dtype)
    ys = torch.linspace(float(lo[1]), float(hi[1]), resolution, dtype=X.dtype)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    with torch.no_grad():
        out = predict_fn(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1))
    labels = (out.argmax(dim=1) if out.dim() == 2 else out).reshape(resolution, resolution)
    k = int(max(int(y.max()), int(labels.max())) + 1)
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan"]
    colors = [palette[i % len(palette)] for i in range(k)]
    ax.imshow(
        labels.numpy(), origin="lower", extent=(float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])),
        cmap=ListedColormap(colors), vmin=-0.5, vmax=k - 0.5, alpha=0.25, aspect="auto", interpolation="nearest",
    )
    ax.scatter(X[:, 0].numpy(), X[:, 1].numpy(), c=[colors[int(c)] for c in y], s=12, edgecolors="black", linewidths=0.4)
    ax.set_xlim(float(lo[0]), float(hi[0]))
    ax.set_ylim(float(lo[1]), float(hi[1]))
    return labels
