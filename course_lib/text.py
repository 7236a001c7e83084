"""Character-level language modelling on English text that ships with CPython.

Nothing is downloaded: the corpus is ``pydoc_data.topics``, the help texts of Python's
``help()`` (statements, operators, data model...), joined in sorted key order, so it is
deterministic for a given Python version (``cpython_text`` says which).

Shapes::

    ids:     (N,)      long, a whole split encoded with a CharVocab
    x, y:    (B, T)    long, y[:, t] = x[:, t+1]: the next character
    logits:  (B, T, V) unnormalised scores over the V characters of the vocabulary

Losses are cross-entropies in **nats per character** (natural log); divide by ln 2 for bits.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from course_lib.validate import expect

_CELLS = ("rnn", "lstm", "gru")


def _int(fn: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{fn}: {name} should be an int >= {minimum}, got {value!r}")
    return value


def python_version() -> str:
    """The running Python's version, e.g. ``'3.11.7'``: the corpus depends on it."""
    return ".".join(str(v) for v in sys.version_info[:3])


def cpython_text(max_chars: Optional[int] = None) -> str:
    """The help topics of ``pydoc_data.topics`` joined in sorted key order (blank line between).

    About 465,000 characters of English in Python 3.11; deterministic for a given Python
    version (see :func:`python_version`). ``max_chars`` keeps only the first characters.
    """
    if max_chars is not None:
        _int("cpython_text", "max_chars", max_chars, 1)
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key].strip("\n") for key in sorted(topics))
    return text if max_chars is None else text[:max_chars]


class CharVocab:
    """The characters of a text, sorted, as ids 0..V-1."""

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        if not chars or any(not isinstance(c, str) or len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("CharVocab: chars should be distinct single characters, at least one")
        self.chars: List[str] = chars
        self.index: Dict[str, int] = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """The vocabulary of every distinct character of ``text``, sorted by code point."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"CharVocab.from_text: text should be a non-empty str, got {type(text).__name__}")
        return cls(sorted(set(text)))

    @property
    def size(self) -> int:
        """V, the number of characters."""
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """``text`` as a LongTensor (len(text),) of ids; raises on a character not in the vocabulary."""
        if not isinstance(text, str):
            raise TypeError(f"CharVocab.encode: text should be a str, got {type(text).__name__}")
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise KeyError(f"CharVocab.encode: characters not in the vocabulary: {unknown[:10]!r}")
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids: Any) -> str:
        """The string of ids (a 1-D tensor or a sequence of ints in 0..V-1)."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = [i for i in values if not isinstance(i, int) or not 0 <= i < self.size]
        if bad:
            raise ValueError(f"CharVocab.decode: ids should be ints in 0..{self.size - 1}, got {bad[:5]!r}")
        return "".join(self.chars[i] for i in values)

    def __repr__(self) -> str:
        return f"CharVocab(size={self.size})"


def split_ids(
    ids: torch.Tensor, val_fraction: float = 0.1, test_fraction: float = 0.1
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Contiguous (train, val, test) slices of ``ids`` (N,), in that order (no shuffling: a
    random split of overlapping windows would leak text from training into validation)."""
    fn = "split_ids"
    expect(fn, "ids", ids, (None,), integer=True)
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(f, (int, float)) or isinstance(f, bool) or not 0 <= f < 1:
            raise ValueError(f"{fn}: {name} should be in [0, 1), got {f!r}")
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"{fn}: val_fraction + test_fraction should be < 1, got {val_fraction + test_fraction}")
    n = ids.shape[0]
    n_val, n_test = int(n * val_fraction), int(n * test_fraction)
    n_train = n - n_val - n_test
    return ids[:n_train], ids[n_train:n_train + n_val], ids[n_train + n_val:]


def char_batches(
    ids: torch.Tensor, batch: int, seq_len: int, generator: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``batch`` random windows of ``ids`` (N,): x (batch, seq_len) and y = x shifted by one."""
    fn = "char_batches"
    expect(fn, "ids", ids, (None,), integer=True)
    _int(fn, "batch", batch, 1)
    _int(fn, "seq_len", seq_len, 1)
    if ids.shape[0] < seq_len + 1:
        raise ValueError(f"{fn}: ids should hold at least seq_len + 1 = {seq_len + 1} ids, got {ids.shape[0]}")
    starts = torch.randint(0, ids.shape[0] - seq_len, (batch,), generator=generator)
    offsets = torch.arange(seq_len + 1)
    windows = ids[starts[:, None] + offsets]  # (batch, seq_len + 1)
    return windows[:, :-1], windows[:, 1:]


class CharModel(torch.nn.Module):
    """Characters in, next-character logits out: (embedding or one-hot) -> nn.RNN/LSTM/GRU -> linear.

    forward(x (B, T) long, state=None) -> (logits (B, T, V), state); the state is nn.RNN's
    h (layers, B, H), or nn.LSTM's (h, c). ``embed=None`` feeds one-hot vectors (V inputs).
    """

    def __init__(self, vocab_size: int, hidden: int, cell: str = "rnn", layers: int = 1,
                 embed: Optional[int] = None) -> None:
        super().__init__()
        fn = "CharModel"
        _int(fn, "vocab_size", vocab_size, 1)
        _int(fn, "hidden", hidden, 1)
        _int(fn, "layers", layers, 1)
        if cell not in _CELLS:
            raise ValueError(f"{fn}: cell should be one of {_CELLS}, got {cell!r}")
        self.vocab_size, self.hidden, self.cell, self.layers = vocab_size, hidden, cell, layers
        self.embed = None if embed is None else torch.nn.Embedding(vocab_size, _int(fn, "embed", embed, 1))
        in_size = vocab_size if embed is None else embed
        recurrent = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        self.rnn = recurrent(in_size, hidden, num_layers=layers, batch_first=True)
        self.head = torch.nn.Linear(hidden, vocab_size)

    def forward(self, x: torch.Tensor, state: Any = None) -> Tuple[torch.Tensor, Any]:
        expect("CharModel.forward", "x", x, ("B", "T"), integer=True)
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.vocab_size):
            raise ValueError(f"CharModel.forward: x should hold ids in 0..{self.vocab_size - 1}, "
                             f"got values in {int(x.min())}..{int(x.max())}")
        if self.embed is None:
            inputs = torch.nn.functional.one_hot(x, self.vocab_size).to(self.head.weight.dtype)
        else:
            inputs = self.embed(x)
        out, state = self.rnn(inputs, state)  # (B, T, H)
        return self.head(out), state


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate_nats(model: torch.nn.Module, ids: torch.Tensor, seq_len: int, max_chars: Optional[int] = None) -> float:
    """Mean cross-entropy (nats per character) of ``model`` predicting ``ids[1:]`` from ``ids[:-1]``.

    The text is cut into consecutive windows of ``seq_len`` characters, each read from a zero
    state (so early characters of a window have less context); the tail that does not fill a
    window is dropped. ``max_chars`` evaluates only the first characters (faster).
    """
    fn = "evaluate_nats"
    expect(fn, "ids", ids, (None,), integer=True)
    _int(fn, "seq_len", seq_len, 1)
    if max_chars is not None:
        ids = ids[:_int(fn, "max_chars", max_chars, seq_len + 1)]
    rows = (ids.shape[0] - 1) // seq_len
    if rows < 1:
        raise ValueError(f"{fn}: ids should hold at least seq_len + 1 = {seq_len + 1} ids, got {ids.shape[0]}")
    dev = _device(model)
    x = ids[: rows * seq_len].view(rows, seq_len).to(dev)
    y = ids[1: rows * seq_len + 1].view(rows, seq_len).to(dev)
    was_training = model.training
    model.eval()
    logits, _ = model(x)
    model.train(was_training)
    return float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)))


def unigram_nats(train_ids: torch.Tensor, eval_ids: torch.Tensor, vocab_size: int) -> float:
    """The baseline without context: cross-entropy (nats/char) on ``eval_ids`` of the character
    frequencies of ``train_ids`` (add-one smoothed, so an unseen character costs a finite amount)."""
    fn = "unigram_nats"
    expect(fn, "train_ids", train_ids, (None,), integer=True)
    expect(fn, "eval_ids", eval_ids, (None,), integer=True)
    _int(fn, "vocab_size", vocab_size, 1)
    counts = torch.bincount(train_ids, minlength=vocab_size).double() + 1
    logp = torch.log(counts / counts.sum())
    return float(-logp[eval_ids].mean())


def train_char_model(
    model: CharModel,
    train_ids: torch.Tensor,
    val_ids: torch.Tensor,
    steps: int,
    batch: int,
    seq_len: int,
    lr: float,
    seed: int = 0,
    progress: bool = True,
    clip: float = 1.0,
    eval_every: Optional[int] = None,
    eval_chars: int = 20_000,
    title: str = "char model",
) -> Dict[str, Any]:
    """Train ``model`` on random windows of ``train_ids`` with Adam and gradient clipping.

    Each step: a batch of ``batch`` windows of ``seq_len`` characters (:func:`char_batches`,
    seeded by ``seed``), cross-entropy averaged over all B*T predictions, backward,
    ``clip_grad_norm_(clip)``, an Adam step. The validation loss (:func:`evaluate_nats` on the
    first ``eval_chars`` characters of ``val_ids``) is measured every ``eval_every`` steps
    (default: 10 times) and at the end. A tqdm bar shows the running training loss.

    Returns ``{"train_loss": [per step], "val_steps": [...], "val_loss": [...], "seconds": float}``,
    losses in nats per character.
    """
    fn = "train_char_model"
    for name, v in (("steps", steps), ("batch", batch), ("seq_len", seq_len)):
        _int(fn, name, v, 1)
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"{fn}: lr should be a number > 0, got {lr!r}")
    expect(fn, "train_ids", train_ids, (None,), integer=True)
    expect(fn, "val_ids", val_ids, (None,), integer=True)
    from tqdm.auto import tqdm

    eval_every = eval_every or max(1, steps // 10)
    gen = torch.Generator().manual_seed(seed)
    dev = _device(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: Dict[str, Any] = {"train_loss": [], "val_steps": [], "val_loss": [], "seconds": 0.0}
    start = time.perf_counter()
    model.train()
    bar = tqdm(range(1, steps + 1), desc=title, disable=not progress, leave=True)
    for step in bar:
        x, y = char_batches(train_ids, batch, seq_len, gen)
        logits, _ = model(x.to(dev))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(dev).reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        history["train_loss"].append(loss.item())
        if step % eval_every == 0 or step == steps:
            val = evaluate_nats(model, val_ids, seq_len, max_chars=min(eval_chars, val_ids.shape[0]))
            history["val_steps"].append(step)
            history["val_loss"].append(val)
            bar.set_postfix(train=f"{loss.item():.3f}", val=f"{val:.3f}")
    history["seconds"] = time.perf_counter() - start
    return history


@torch.no_grad()
def temperature_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The sampling distribution at temperature T: ``softmax(logits / T)`` over the last axis.

    logits (..., V), temperature > 0 -> probabilities (..., V), each row summing to 1. T = 1 is the
    model's own distribution, T -> 0 approaches greedy decoding (all mass on the largest logit),
    T -> inf the uniform distribution. Numerically stable: softmax subtracts the row maximum.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 1:
        raise TypeError(f"temperature_probs: logits should be a floating-point tensor (..., V), got "
                        f"{type(logits).__name__}{'' if not isinstance(logits, torch.Tensor) else f' {logits.dtype} of shape {tuple(logits.shape)}'}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < math.inf:
        raise ValueError(f"temperature_probs: temperature should be a finite number > 0, got {temperature!r}")
    return torch.softmax(logits / temperature, dim=-1)


def sample(model: CharModel, vocab: CharVocab, prompt: str, n: int, temperature: float = 1.0,
           generator: Optional[torch.Generator] = None) -> str:
    """``prompt`` followed by ``n`` characters drawn one at a time from
    ``softmax(logits / temperature)``, feeding each back in with the carried state.
    ``temperature -> 0`` approaches greedy decoding; 1 samples the model's distribution."""
    fn = "sample"
    _int(fn, "n", n, 0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < math.inf:
        raise ValueError(f"{fn}: temperature should be a finite number > 0, got {temperature!r}")
    if not prompt:
        raise ValueError(f"{fn}: prompt should be a non-empty str")
    dev = _device(model)
    was_training = model.training
    model.eval()
    ids = vocab.encode(prompt)[None].to(dev)  # (1, len(prompt))
    logits, state = model(ids)
    out: List[int] = []
    for _ in range(n):
        probs = temperature_probs(logits[0, -1].double().cpu(), temperature)
        nxt = int(torch.multinomial(probs, 1, generator=generator))
        out.append(nxt)
        logits, state = model(torch.tensor([[nxt]], device=dev), state)
    model.train(was_training)
    return prompt + vocab.decode(out)
