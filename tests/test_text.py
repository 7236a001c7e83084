"""course_lib.text (the CPython corpus, vocabulary, batches, the character model) and
course_lib.sequences (the synthetic sequence tasks)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import sequences as S
from course_lib import text as X
from course_lib.validate import ShapeError


# --- the corpus ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus():
    text = X.cpython_text()
    vocab = X.CharVocab.from_text(text)
    return text, vocab, vocab.encode(text)


def test_cpython_text_is_deterministic_and_large(corpus):
    text, vocab, ids = corpus
    assert X.cpython_text() == text
    assert len(text) > 100_000
    assert X.cpython_text(1000) == text[:1000]
    assert X.python_version().count(".") == 2
    assert ids.dtype == torch.long and ids.shape == (len(text),)
    with pytest.raises(ValueError, match="cpython_text: max_chars should be an int >= 1, got 0"):
        X.cpython_text(0)


@given(st.text(min_size=1, max_size=30))
def test_vocab_round_trip(s):
    vocab = X.CharVocab.from_text(s)
    assert vocab.size == len(set(s))
    assert vocab.chars == sorted(set(s))
    assert vocab.decode(vocab.encode(s)) == s


def test_vocab_errors():
    vocab = X.CharVocab.from_text("abc")
    with pytest.raises(KeyError, match=r"CharVocab.encode: characters not in the vocabulary: \['z'\]"):
        vocab.encode("az")
    with pytest.raises(ValueError, match=r"CharVocab.decode: ids should be ints in 0..2, got \[3\]"):
        vocab.decode([0, 3])
    with pytest.raises(ValueError, match="CharVocab.from_text: text should be a non-empty str"):
        X.CharVocab.from_text("")


def test_split_ids_contiguous_in_order():
    ids = torch.arange(100)
    tr, va, te = X.split_ids(ids, 0.1, 0.2)
    assert torch.equal(torch.cat([tr, va, te]), ids)
    assert (len(tr), len(va), len(te)) == (70, 10, 20)
    with pytest.raises(ShapeError, match="split_ids: ids should be an integer tensor"):
        X.split_ids(torch.zeros(10))
    with pytest.raises(ValueError, match="split_ids: val_fraction \\+ test_fraction should be < 1"):
        X.split_ids(ids, 0.5, 0.5)


@given(n=st.integers(2, 40), batch=st.integers(1, 4), seq_len=st.integers(1, 5), seed=st.integers(0, 100))
def test_char_batches_are_shifted_windows(n, batch, seq_len, seed):
    ids = torch.arange(n) * 3
    if n < seq_len + 1:
        with pytest.raises(ValueError, match="char_batches: ids should hold at least"):
            X.char_batches(ids, batch, seq_len)
        return
    x, y = X.char_batches(ids, batch, seq_len, torch.Generator().manual_seed(seed))
    assert x.shape == y.shape == (batch, seq_len)
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(y - x, torch.full_like(x, 3))  # consecutive ids of the text
    x2, _ = X.char_batches(ids, batch, seq_len, torch.Generator().manual_seed(seed))
    assert torch.equal(x, x2)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("embed", [None, 5])
def test_char_model_shapes_and_state(cell, embed):
    torch.manual_seed(0)
    model = X.CharModel(7, 6, cell=cell, layers=2, embed=embed)
    x = torch.randint(0, 7, (3, 4))
    logits, state = model(x)
    assert logits.shape == (3, 4, 7)
    # feeding the sequence in two pieces with the carried state gives the same logits
    a, s = model(x[:, :2])
    b, _ = model(x[:, 2:], s)
    assert torch.allclose(torch.cat([a, b], 1), logits, atol=1e-6)
    with pytest.raises(ValueError, match=r"CharModel.forward: x should hold ids in 0..6, got values in 0..7"):
        model(torch.tensor([[0, 7]]))
    with pytest.raises(ShapeError, match="CharModel.forward: x should be an integer tensor"):
        model(torch.zeros(1, 2))


def test_char_model_rejects_unknown_cell():
    with pytest.raises(ValueError, match=r"CharModel: cell should be one of \('rnn', 'lstm', 'gru'\), got 'elman'"):
        X.CharModel(5, 4, cell="elman")


def test_evaluate_nats_uniform_model_is_log_v():
    model = X.CharModel(9, 4)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    ids = torch.randint(0, 9, (200,), generator=torch.Generator().manual_seed(0))
    assert abs(X.evaluate_nats(model, ids, 16) - math.log(9)) < 1e-6


def test_unigram_baseline():
    train = torch.tensor([0, 0, 0, 1])
    # add-one smoothing over V = 3: p = (4/7, 2/7, 1/7)
    assert abs(X.unigram_nats(train, torch.tensor([0, 1]), 3) - (-(math.log(4 / 7) + math.log(2 / 7)) / 2)) < 1e-12


def test_training_beats_the_unigram_baseline_and_samples(corpus):
    text, vocab, ids = corpus
    ids = ids[:20_000]
    train, val, _ = X.split_ids(ids)
    torch.manual_seed(0)
    model = X.CharModel(vocab.size, 32, cell="gru", embed=16)
    hist = X.train_char_model(model, train, val, steps=40, batch=16, seq_len=32, lr=1e-2, seed=0, progress=False)
    assert len(hist["train_loss"]) == 40 and hist["val_steps"][-1] == 40
    assert hist["val_loss"][-1] < X.unigram_nats(train, val, vocab.size)
    gen = torch.Generator().manual_seed(0)
    s = X.sample(model, vocab, "The ", 30, temperature=0.8, generator=gen)
    assert s.startswith("The ") and len(s) == 34
    assert X.sample(model, vocab, "The ", 30, 0.8, torch.Generator().manual_seed(0)) == s
    with pytest.raises(ValueError, match="sample: temperature should be a finite number > 0, got 0"):
        X.sample(model, vocab, "The", 3, temperature=0)


# --- sequences ------------------------------------------------------------------------------
@given(n=st.integers(1, 5), length=st.integers(2, 12), seed=st.integers(0, 100))
def test_adding_problem(n, length, seed):
    x, y = S.adding_problem(n, length, seed=seed, dtype=torch.float64)
    assert x.shape == (n, length, 2) and y.shape == (n,)
    marks = x[..., 1]
    assert torch.equal(marks.sum(1), torch.full((n,), 2.0, dtype=torch.float64))
    half = length // 2
    assert torch.equal(marks[:, :half].sum(1), torch.ones(n, dtype=torch.float64))
    assert torch.allclose(y, (x[..., 0] * marks).sum(1))
    x2, _ = S.adding_problem(n, length, seed=seed, dtype=torch.float64)
    assert torch.equal(x, x2)


def test_adding_problem_baseline_mse_is_one_sixth():
    _, y = S.adding_problem(20_000, 10, dtype=torch.float64)
    assert abs(float(((y - 1) ** 2).mean()) - 1 / 6) < 0.01


def test_copy_task():
    x, y = S.copy_task(3, 4, symbols=5, delay=3, seed=1)
    assert x.shape == (3, 11, 7) and y.shape == (3, 11)
    symbols = x[:, :4].argmax(-1)
    assert torch.equal(y[:, 7:], symbols) and bool((y[:, :7] == 0).all())
    assert bool((x[:, 6].argmax(-1) == 6).all())  # the go-marker
    assert bool((symbols >= 1).all() and (symbols <= 5).all())


def test_noisy_sines():
    x, y = S.noisy_sines(4, 30, noise=0.0, seed=2, dtype=torch.float64)
    assert x.shape == y.shape == (4, 30, 1)
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert float(x.abs().max()) <= 1.0
    # without noise each row is a pure sine: s[t+1] + s[t-1] = 2 cos(omega) s[t], omega in [0.1, 0.5]
    s = torch.cat([x, y[:, -1:]], 1)[..., 0]
    mid, outer = s[:, 1:-1], s[:, 2:] + s[:, :-2]
    two_cos = (outer * mid).sum(1) / (mid * mid).sum(1)  # least squares per row
    assert float((outer - two_cos[:, None] * mid).abs().max()) < 1e-12
    assert bool(((two_cos >= 2 * math.cos(0.5) - 1e-12) & (two_cos <= 2 * math.cos(0.1) + 1e-12)).all())
    noisy, _ = S.noisy_sines(4, 30, noise=0.5, seed=2, dtype=torch.float64)
    assert 0.3 < float((noisy - x).std()) < 0.7  # the same waves (same seed) plus N(0, 0.25) noise


def test_sequence_errors():
    with pytest.raises(ValueError, match="adding_problem: length should be an int >= 2, got 1"):
        S.adding_problem(3, 1)
    with pytest.raises(ValueError, match="adding_problem: dtype should be a floating-point torch.dtype"):
        S.adding_problem(3, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="copy_task: delay should be an int >= 1, got 0"):
        S.copy_task(3, 4, delay=0)
    with pytest.raises(ValueError, match="noisy_sines: noise should be a finite number >= 0, got -1"):
        S.noisy_sines(3, 4, noise=-1)
