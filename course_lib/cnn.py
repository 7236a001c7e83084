"""A small convolutional network for the bundled 8x8 digits, and tools to look inside one.

* :class:`DigitsCNN`: conv 3x3 -> ReLU -> max-pool 2 -> conv 3x3 -> ReLU -> max-pool 2
  -> flatten -> linear, for images (N, 1, 8, 8); the flatten size is computed
  from the output-size formula, not typed in.
* :class:`DigitsMLP`: its baseline, a one-hidden-layer perceptron with as many parameters.
* :func:`train_digits` (and :func:`train_digits_cnn`, :func:`train_digits_mlp`): trains on the
  training part of :func:`course_lib.data.digits_splits` (seeded, Adam) and measures loss and
  accuracy on the validation part after every epoch; the test part is never read.
  :func:`select_on_validation` chooses the learning rate and the number of epochs there.
  :func:`evaluate`, :func:`predict` and :func:`predict_proba` apply a trained model;
  :func:`shift_images` moves digits by whole pixels.
* :func:`layer_outputs`, :func:`feature_maps`, :func:`shape_report`: the output of
  every layer of *any* module, recorded with forward hooks (the debugging tool for
  "mat1 and mat2 shapes cannot be multiplied").
* :class:`RepairedCNN` / :func:`make_cnn`: the employment article's CNN listing (the
  source article on large models and jobs, its section 4.1) with its flatten size computed
  for the input it is given.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from course_lib import train
from course_lib.train import History
from course_lib.validate import expect

# Defaults of train_digits_cnn / train_digits_mlp (Adam, no augmentation): a quick, sound setting.
# The notebook's results do not use them: it chooses the learning rate (from LRS) and the number
# of epochs (1..MAX_EPOCHS) of each model on the validation part with select_on_validation.
EPOCHS, LR, BATCH_SIZE = 15, 0.01, 32
MLP_EPOCHS, MLP_LR = 15, 0.01
LRS, MAX_EPOCHS = (0.003, 0.01, 0.03), 20
# DigitsMLP's hidden width: (64 + 1) * 81 + (81 + 1) * 10 = 6085 parameters, DigitsCNN's 6090 within 5.
MLP_HIDDEN = 81


def _out(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """floor((size + 2 padding - kernel_size) / stride) + 1: the output length of a
    convolution or a pooling along one axis (chapter 05's ``conv_output_size``)."""
    from course_lib.conv import conv_output_size

    return conv_output_size(size, kernel_size, stride=stride, padding=padding)


def _hw(fn: str, input_hw: Any) -> Tuple[int, int]:
    if isinstance(input_hw, int) and not isinstance(input_hw, bool):
        input_hw = (input_hw, input_hw)
    if not (isinstance(input_hw, (tuple, list)) and len(input_hw) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in input_hw)):
        raise ValueError(f"{fn}: input_hw should be an int or a pair (H, W) of positive ints, got {input_hw!r}")
    return int(input_hw[0]), int(input_hw[1])


# --- the digits CNN ---------------------------------------------------------------------------
class DigitsCNN(nn.Sequential):
    """conv(1->c1, 3x3, pad 1) -> ReLU -> maxpool 2 -> conv(c1->c2, 3x3, pad 1) -> ReLU
    -> maxpool 2 -> flatten -> linear(c2 * s * s -> num_classes).

    Input (N, 1, H, H) with H = ``image_size`` (8 for the digits); output logits
    (N, num_classes). Padding 1 keeps a 3x3 convolution's size, each pooling halves
    it (rounding down): 8 -> 8 -> 4 -> 4 -> 2, so s = 2 and the linear layer sees
    32 * 2 * 2 = 128 numbers per image. Layers are named (``model.conv1``, ...).
    """

    def __init__(self, channels: Sequence[int] = (16, 32), num_classes: int = 10, image_size: int = 8) -> None:
        c1, c2 = channels
        side = image_size
        for _ in range(2):  # each block: conv 3x3 with padding 1, then max-pool 2x2 with stride 2
            side = _out(_out(side, 3, padding=1), 2, stride=2)
        super().__init__(OrderedDict([
            ("conv1", nn.Conv2d(1, c1, kernel_size=3, padding=1)),
            ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(c1, c2, kernel_size=3, padding=1)),
            ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
            ("flatten", nn.Flatten()),  # (N, c2, side, side) -> (N, c2 * side * side)
            ("fc", nn.Linear(c2 * side * side, num_classes)),
        ]))
        self.image_size = image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 1, H, H) -> logits (N, num_classes)."""
        expect("DigitsCNN", "x", x, (None, 1, self.image_size, self.image_size), floating=True)
        return super().forward(x)


class DigitsMLP(nn.Sequential):
    """flatten -> linear(64 -> hidden) -> ReLU -> linear(hidden -> num_classes): the CNN's baseline.

    Input (N, 1, H, H) images, as for :class:`DigitsCNN`; output logits (N, num_classes).
    It sees the same 64 pixels but shares no weights between positions and does not pool.
    With ``hidden=81`` (the default) it has (64 + 1) * 81 + (81 + 1) * 10 = 6085 parameters,
    as many as :class:`DigitsCNN` (6090) to within 5. Layers are named (``model.fc1``, ...).
    """

    def __init__(self, hidden: int = MLP_HIDDEN, num_classes: int = 10, image_size: int = 8) -> None:
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"DigitsMLP: hidden should be a positive int, got {hidden!r}")
        super().__init__(OrderedDict([
            ("flatten", nn.Flatten()),  # (N, 1, H, H) -> (N, H * H)
            ("fc1", nn.Linear(image_size * image_size, hidden)),
            ("relu1", nn.ReLU()),
            ("fc2", nn.Linear(hidden, num_classes)),
        ]))
        self.image_size = image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 1, H, H) -> logits (N, num_classes)."""
        expect("DigitsMLP", "x", x, (None, 1, self.image_size, self.image_size), floating=True)
        return super().forward(x)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable numbers in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def as_images(X: torch.Tensor) -> torch.Tensor:
    """Digit rows (N, 64) as single-channel images (N, 1, 8, 8); images pass unchanged."""
    if isinstance(X, torch.Tensor) and X.dim() == 4:
        expect("as_images", "X", X, (None, 1, 8, 8))
        return X
    expect("as_images", "X", X, (None, 64))
    return X.reshape(-1, 1, 8, 8)


@torch.no_grad()
def predict_proba(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Class probabilities softmax(model(x)): X (N, 64) or (N, 1, 8, 8) -> (N, K)."""
    was_training = model.training
    model.eval()
    try:
        return torch.softmax(model(as_images(X)), dim=1)
    finally:
        model.train(was_training)


def predict(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Predicted labels, the most probable class: X (N, 64) or (N, 1, 8, 8) -> (N,) long."""
    return predict_proba(model, X).argmax(dim=1)


@torch.no_grad()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> Tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` of ``model`` on X (N, 64) or (N, 1, 8, 8) and labels
    y (N,), in evaluation mode (the mode is restored)."""
    dims = expect("evaluate", "y", y, ("N",), integer=True)
    images = as_images(X)
    expect("evaluate", "X", images, ("N", 1, 8, 8), dims)
    was_training = model.training
    model.eval()
    try:
        logits = model(images)
    finally:
        model.train(was_training)
    loss = float(nn.functional.cross_entropy(logits, y))
    return loss, float((logits.argmax(dim=1) == y).double().mean())


@dataclass
class DigitsHistory(History):
    """What :func:`train_digits` records, per epoch: ``loss`` (the mean of the batch losses
    during the epoch, as :func:`course_lib.train.fit`), ``train_loss`` and ``accuracy`` (on the
    whole training part after the epoch), ``val_loss`` and ``val_accuracy`` (on the
    validation part after the epoch); per step ``batch_loss``. ``best_epoch`` (1-based): the
    epoch with the highest validation accuracy, ties broken by the lower validation loss,
    then by the earlier epoch."""

    train_loss: List[float] = field(default_factory=list)
    val_loss: List[float] = field(default_factory=list)
    best_epoch: int = 0


def _best_epoch(val_accuracy: Sequence[float], val_loss: Sequence[float]) -> int:
    """1-based epoch maximising (validation accuracy, -validation loss); the earliest on ties."""
    return 1 + max(range(len(val_accuracy)), key=lambda e: (val_accuracy[e], -val_loss[e], -e))


def _check_training(fn: str, epochs: Any, lr: Any, batch_size: Any, device: Any) -> torch.device:
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{fn}: device should be a torch device such as 'cpu' or 'cuda', got {device!r}") from err
    if isinstance(epochs, bool) or not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"{fn}: epochs should be a positive int, got {epochs!r}")
    if isinstance(batch_size, bool) or not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"{fn}: batch_size should be a positive int, got {batch_size!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"{fn}: lr should be > 0, got {lr!r}")
    return device


def train_digits(make_model: Callable[[], nn.Module], epochs: int = EPOCHS, seed: int = 0, lr: float = LR,
                 batch_size: int = BATCH_SIZE, progress: bool = True, live: Optional[bool] = None,
                 device: Union[str, torch.device] = "cpu", split: Any = None, keep_best: bool = False,
                 title: str = "the 8x8 digits") -> Tuple[nn.Module, DigitsHistory]:
    """Train ``make_model()`` on the training part of ``split`` (default
    :func:`course_lib.data.digits_splits`) with Adam and cross-entropy in minibatches, and
    measure it on the validation part after every epoch; return ``(model, history)``.

    Only ``split.X_train, y_train, X_val, y_val`` are read: the test part is never touched.
    Seeded (``torch.manual_seed(seed)`` before ``make_model()``, and the batch order): the same
    arguments give the same numbers on the same machine, and the first ``e`` epochs of a run
    equal a run of ``e`` epochs. ``keep_best``: return the weights of ``history.best_epoch``
    instead of the last epoch's. ``device``: where to train; the model comes back on the CPU.
    """
    from course_lib import data

    device = _check_training("train_digits", epochs, lr, batch_size, device)
    if isinstance(make_model, nn.Module) or not callable(make_model):
        raise TypeError(f"train_digits: make_model should be a function returning a new model, such as "
                        f"cnn.DigitsCNN (a class, not a model), got {type(make_model).__name__}")
    split = data.digits_splits() if split is None else split
    X_train, y_train = as_images(split.X_train).to(device), split.y_train.to(device)
    X_val, y_val = as_images(split.X_val).to(device), split.y_val.to(device)
    torch.manual_seed(seed)
    model = make_model().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history, best_state, curve = DigitsHistory(), None, None
    if live if live is not None else train._in_notebook():
        from course_lib.widgets.optim import LiveCurve

        curve = LiveCurve(epochs, title=f"{title}: training loss and validation accuracy")
        curve.show()
    from tqdm.auto import tqdm

    for _ in tqdm(range(epochs), desc=title, disable=not progress, leave=True):
        model.train()
        total = 0.0
        for Xb, yb in train.minibatches(X_train, y_train, batch_size, generator=gen):
            history.batch_loss.append(train.train_step(model, nn.functional.cross_entropy, optimizer, Xb, yb))
            total += history.batch_loss[-1] * len(yb)
        history.loss.append(total / len(y_train))
        train_loss, train_accuracy = evaluate(model, X_train, y_train)  # after the epoch, evaluation mode
        val_loss, val_accuracy = evaluate(model, X_val, y_val)
        history.train_loss.append(train_loss)
        history.accuracy.append(train_accuracy)
        history.val_loss.append(val_loss)
        history.val_accuracy.append(val_accuracy)
        history.best_epoch = _best_epoch(history.val_accuracy, history.val_loss)
        if keep_best and history.best_epoch == len(history.val_loss):
            best_state = copy.deepcopy(model.state_dict())
        if curve is not None:
            curve.push(history.train_loss, history.val_accuracy)
    if curve is not None:
        curve.finish()
    if keep_best:
        model.load_state_dict(best_state)
    model.eval()
    return model.cpu(), history


def train_digits_cnn(epochs: int = EPOCHS, seed: int = 0, lr: float = LR, batch_size: int = BATCH_SIZE,
                     progress: bool = True, live: Optional[bool] = None,
                     device: Union[str, torch.device] = "cpu", *, split: Any = None,
                     keep_best: bool = False, channels: Sequence[int] = (16, 32)) -> Tuple[DigitsCNN, DigitsHistory]:
    """Train a :class:`DigitsCNN` with :func:`train_digits`: on the training part of
    :func:`course_lib.data.digits_splits`, measured on its validation part after every
    epoch (``history.val_accuracy``, ``history.val_loss``); the test part is never touched.
    No data augmentation. ``device``: where to train (default the CPU, whose numbers the
    course quotes; pass ``course_lib.device.get_device()`` for a GPU)."""
    _check_training("train_digits_cnn", epochs, lr, batch_size, device)
    return train_digits(lambda: DigitsCNN(channels), epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
                        progress=progress, live=live, device=device, split=split, keep_best=keep_best,
                        title="DigitsCNN on the 8x8 digits")


def train_digits_mlp(epochs: int = MLP_EPOCHS, seed: int = 0, lr: float = MLP_LR, batch_size: int = BATCH_SIZE,
                     progress: bool = True, live: Optional[bool] = None,
                     device: Union[str, torch.device] = "cpu", *, split: Any = None,
                     keep_best: bool = False, hidden: int = MLP_HIDDEN) -> Tuple[DigitsMLP, DigitsHistory]:
    """Train a :class:`DigitsMLP` (the CNN's baseline) exactly as :func:`train_digits_cnn`
    trains the CNN: same split, optimiser, batch size, seeds and validation measurements."""
    _check_training("train_digits_mlp", epochs, lr, batch_size, device)
    return train_digits(lambda: DigitsMLP(hidden), epochs=epochs, seed=seed, lr=lr, batch_size=batch_size,
                        progress=progress, live=live, device=device, split=split, keep_best=keep_best,
                        title="DigitsMLP on the 8x8 digits")


@dataclass
class Selection:
    """What :func:`select_on_validation` chose: the learning rate ``lr`` and the number of
    ``epochs`` with the best validation accuracy (ties: lower validation loss), the
    validation numbers there, every run's :class:`DigitsHistory` by learning rate, and
    ``model``: trained on the training part with the chosen ``lr`` for ``epochs`` epochs."""

    lr: float
    epochs: int
    val_accuracy: float
    val_loss: float
    runs: Dict[float, DigitsHistory]
    model: nn.Module


def select_on_validation(make_model: Callable[[], nn.Module], lrs: Sequence[float] = LRS,
                         max_epochs: int = MAX_EPOCHS, seed: int = 0, batch_size: int = BATCH_SIZE,
                         split: Any = None, device: Union[str, torch.device] = "cpu",
                         progress: bool = False) -> Selection:
    """Choose the learning rate (from ``lrs``) and the number of epochs (1..``max_epochs``)
    of ``make_model`` on the validation part: one seeded run of :func:`train_digits` per
    learning rate; the best (validation accuracy, then lower validation loss) epoch over
    all runs wins. The test part is never read. Since the first ``e`` epochs of a run equal
    a run of ``e`` epochs, the chosen model is that run's weights at the chosen epoch."""
    from course_lib import data

    if isinstance(lrs, (int, float)) or len(lrs) == 0:
        raise ValueError(f"select_on_validation: lrs should be a non-empty sequence of learning rates, got {lrs!r}")
    for lr in lrs:
        _check_training("select_on_validation", max_epochs, lr, batch_size, device)
    split = data.digits_splits() if split is None else split
    best = None
    runs: Dict[float, DigitsHistory] = {}
    for lr in lrs:
        model, history = train_digits(make_model, epochs=max_epochs, seed=seed, lr=lr, batch_size=batch_size,
                                      progress=progress, live=False, device=device, split=split, keep_best=True)
        runs[lr] = history
        e = history.best_epoch
        key = (history.val_accuracy[e - 1], -history.val_loss[e - 1])
        if best is None or key > best[0]:
            best = (key, lr, e, model)
    (acc, neg_loss), lr, epochs, model = best
    return Selection(lr=lr, epochs=epochs, val_accuracy=acc, val_loss=-neg_loss, runs=runs, model=model)


def shift_images(X: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Digits moved ``dy`` pixels down and ``dx`` right (negative: up, left), the uncovered
    border filled with 0 (blank paper): X (N, 64) or (N, 1, 8, 8) -> (N, 1, 8, 8)."""
    images = as_images(X)
    for name, v in (("dy", dy), ("dx", dx)):
        if isinstance(v, bool) or not isinstance(v, int) or abs(v) > 7:
            raise ValueError(f"shift_images: {name} should be an int in -7..7, got {v!r}")
    out = torch.zeros_like(images)
    h = images.shape[-1]
    src_y, dst_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    src_x, dst_x = slice(max(0, -dx), h - max(0, dx)), slice(max(0, dx), h - max(0, -dx))
    out[..., dst_y, dst_x] = images[..., src_y, src_x]
    return out


# --- looking inside: outputs of every layer ---------------------------------------------------
class _Recorder:
    """Forward hooks on every leaf module of ``model`` that append ``(name, output)`` to
    ``records``; a context manager that removes the hooks on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.records: List[Tuple[str, Any]] = []
        self.handles = [
            module.register_forward_hook(self._hook(name))
            for name, module in model.named_modules()
            if name and next(module.children(), None) is None
        ]

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self.records.append((name, output))

        return hook

    def __enter__(self) -> "_Recorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self.handles:
            handle.remove()


def layer_outputs(model: nn.Module, x: torch.Tensor) -> List[Tuple[str, torch.Tensor]]:
    """Run ``model(x)`` and return ``[(layer name, its output)]`` for every leaf module,
    in the order they ran (a module used twice appears twice). Uses forward hooks,
    removed afterwards. Exceptions of the forward pass propagate; see :func:`shape_report`."""
    with _Recorder(model) as rec:
        model(x)
    return rec.records


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    """``{layer name: output}`` of every leaf layer of ``model`` on ``x`` (no gradients).

    For a :class:`DigitsCNN` and x (N, 1, 8, 8): ``conv1``/``relu1`` (N, 16, 8, 8),
    ``pool1`` (N, 16, 4, 4), ``conv2``/``relu2`` (N, 32, 4, 4), ``pool2`` (N, 32, 2, 2),
    ``flatten`` (N, 128), ``fc`` (N, 10). A layer that runs twice gets ``name#2``.
    """
    out: Dict[str, torch.Tensor] = {}
    for name, value in layer_outputs(model, x):
        key, k = name, 1
        while key in out:
            k += 1
            key = f"{name}#{k}"
        out[key] = value
    return out


def shape_report(model: nn.Module, x: torch.Tensor) -> str:
    """A table of the output shape of every layer of ``model`` on ``x``; if the forward
    pass fails, the layers that ran and then the error. Never raises for the model's errors."""
    error = None
    with _Recorder(model) as rec, torch.no_grad():
        try:
            model(x)
        except Exception as exc:  # the point is to show it
            error = f"{type(exc).__name__}: {exc}"
    records = rec.records
    modules = dict(model.named_modules())
    width = max([len("input")] + [len(n) for n, _ in records])
    lines = [f"{'input':<{width}}  {'':<40}  {tuple(x.shape)}"]
    for name, value in records:
        layer = repr(modules[name]).replace("\n", " ")
        layer = layer if len(layer) <= 40 else layer[:37] + "..."
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        lines.append(f"{name:<{width}}  {layer:<40}  {shape}")
    if error is not None:
        lines.append(f"!! the forward pass failed after {records[-1][0] if records else 'the input'}: {error}")
    return "\n".join(lines)


# --- the employment article's listing, repaired -----------------------------------------------------
def flatten_size(input_hw: Any, channels: int = 64, poolings: int = 2) -> int:
    """Numbers per image after ``poolings`` blocks of (conv 3x3 padding 1, max-pool 2x2)
    ending with ``channels`` channels: ``channels * H' * W'`` with H' = H halved
    (rounding down) ``poolings`` times, likewise W'. (28, 28) -> 64 * 7 * 7 = 3136."""
    h, w = _hw("flatten_size", input_hw)
    if h < 2**poolings or w < 2**poolings:
        raise ValueError(f"flatten_size: {poolings} max-poolings 2x2 need H, W >= {2**poolings}, got input_hw={input_hw!r}")
    for _ in range(poolings):
        h, w = _out(_out(h, 3, padding=1), 2, stride=2), _out(_out(w, 3, padding=1), 2, stride=2)
    return channels * h * w


class RepairedCNN(nn.Module):
    """The CNN listing of the employment article (section 4.1), with the flatten size computed
    for the input size instead of the hard-coded ``64 * 5 * 5``, and ``torch.flatten``
    instead of ``view(-1, ...)``. Input (N, in_channels, H, W) -> logits (N, num_classes);
    H, W >= 4 (two poolings)."""

    def __init__(self, in_channels: int = 1, input_hw: Any = (28, 28), num_classes: int = 10) -> None:
        super().__init__()
        h, w = _hw("RepairedCNN", input_hw)
        if h < 4 or w < 4:
            raise ValueError(f"RepairedCNN: two 2x2 poolings need H, W >= 4, got input_hw={input_hw!r}")
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(flatten_size((h, w), channels=64, poolings=2), 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)  # (N, 64, H', W') -> (N, 64 * H' * W'); keeps N whatever the sizes
        x = torch.relu(self.fc1(x))
        return self.fc2(x)


def make_cnn(in_channels: int, input_hw: Any, num_classes: int = 10) -> nn.Module:
    """The repaired listing for inputs (N, in_channels, H, W): a :class:`RepairedCNN`."""
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"make_cnn: in_channels should be a positive int, got {in_channels!r}")
    return RepairedCNN(in_channels, input_hw, num_classes)

