"""A small convolutional network for the bundled 8x8 digits, and tools to look inside one.

* :class:`DigitsCNN`: conv 3x3 -> ReLU -> max-pool 2 -> conv 3x3 -> ReLU -> max-pool 2
  -> flatten -> linear, for images (N, 1, 8, 8); the flatten size is computed
  from the output-size formula, not typed in.
* :func:`train_digits_cnn`: trains it on :func:`course_lib.data.digits` (fixed
  split, seeded, Adam) with :func:`course_lib.train.fit`; :func:`predict` and
  :func:`predict_proba` apply it.
* :func:`layer_outputs`, :func:`feature_maps`, :func:`shape_report`: the output of
  every layer of *any* module, recorded with forward hooks (the debugging tool for
  "mat1 and mat2 shapes cannot be multiplied").
* :class:`RepairedCNN` / :func:`make_cnn`: the source article's CNN listing with its
  flatten size computed for the input it is given.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from course_lib.validate import expect

# The notebook's settings: about 99 % test accuracy in 1-3 s on one CPU core (no augmentation).
EPOCHS, LR, BATCH_SIZE = 15, 0.01, 32


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


def train_digits_cnn(epochs: int = EPOCHS, seed: int = 0, lr: float = LR, batch_size: int = BATCH_SIZE,
                     progress: bool = True, live: Optional[bool] = None,
                     device: Union[str, torch.device] = "cpu") -> Tuple[DigitsCNN, Any]:
    """Train a :class:`DigitsCNN` on the fixed train split of :func:`course_lib.data.digits`
    with Adam and cross-entropy, in minibatches; return ``(model, history)``.

    ``history`` is a :class:`course_lib.train.History`: per epoch the mean training
    loss (``loss``), the training accuracy (``accuracy``) and the test accuracy
    (``val_accuracy``). Seeded (weights and batch order): the same arguments give
    the same numbers on the same machine. No data augmentation. ``device``: where to
    train (default the CPU, whose numbers the course quotes; pass
    ``course_lib.device.get_device()`` for a GPU); the returned model is on the CPU.
    """
    from course_lib import data, train

    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"train_digits_cnn: device should be a torch device such as 'cpu' or 'cuda', got {device!r}") from err

    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"train_digits_cnn: epochs should be a positive int, got {epochs!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"train_digits_cnn: batch_size should be a positive int, got {batch_size!r}")
    if not lr > 0:
        raise ValueError(f"train_digits_cnn: lr should be > 0, got {lr!r}")
    split = data.digits()
    torch.manual_seed(seed)
    model = DigitsCNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = train.fit(
        model, as_images(split.X_train).to(device), split.y_train.to(device), optimizer=optimizer, epochs=epochs,
        batch_size=batch_size, X_val=as_images(split.X_test).to(device), y_val=split.y_test.to(device), seed=seed,
        progress=progress, live=live, title="DigitsCNN on the 8x8 digits",
    )
    model.eval()
    return model.cpu(), history


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


# --- the source article's listing, repaired -----------------------------------------------------
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
    """The CNN listing of the source article (section 4.1), with the flatten size computed
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

