"""course_lib.bpe: training, encoding and decoding of a byte-pair encoding."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_lib import bpe, text

ALPHABET = "ab c.\n"


def _naive_train(text_: str, num_merges: int) -> list:
    """Sennrich et al.'s loop written plainly: recount every pair after every merge."""
    words = [tuple(w) for w in bpe.pretokenize(text_)]
    merges = []
    for _ in range(num_merges):
        pairs = Counter(p for w in words for p in zip(w, w[1:]))
        if not pairs:
            break
        pair, freq = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if freq < 2:
            break
        merges.append(pair)
        words = [bpe._merge_word(w, pair, pair[0] + pair[1]) for w in words]
    return merges


@given(s=st.text(alphabet=ALPHABET, min_size=1, max_size=60), n=st.integers(0, 12))
def test_train_equals_naive_loop_and_round_trips(s, n):
    tok = bpe.BPE.train(s, n)
    assert tok.merges == _naive_train(s, n)
    assert tok.vocab_size == len(set(s)) + len(tok.merges)
    ids = tok.encode(s)
    assert tok.decode(ids) == s
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert sum(tok.token_lengths(ids)) == len(s)


@given(train=st.text(alphabet=ALPHABET, min_size=1, max_size=60),
       other=st.text(alphabet=ALPHABET, max_size=40))
def test_round_trip_on_other_text(train, other):
    tok = bpe.BPE.train(train, 8, alphabet=ALPHABET)
    assert tok.decode(tok.encode(other)) == other


def test_known_merges_and_counts():
    tok = bpe.BPE.train("low low low lower lowest", 3)
    # words: "low", " low" x2, " lower", " lowest": ('l', 'o') and ('o', 'w') occur 5 times each (the tie
    # goes to the smaller pair), then ('lo', 'w') 5 times, then (' ', 'low') 4 times
    assert tok.merges == [("l", "o"), ("lo", "w"), (" ", "low")]
    assert [tok.tokens[i] for i in tok.encode(" lowest")] == [" low", "e", "s", "t"]
    assert len(tok.encode("low low low")) < len("low low low")


def test_merges_do_not_cross_words():
    tok = bpe.BPE.train("ab ab ab ab", 10)
    assert all(" " not in a + b or (a + b).startswith(" ") and (a + b).count(" ") == 1 for a, b in tok.merges)
    assert bpe.pretokenize("x = 3.14  ok\n") == ["x", " =", " 3", ".", "14", " ", " ok", "\n"]


def test_fewer_tokens_than_characters_on_held_out_corpus_text():
    corpus = text.cpython_text(60_000)
    tok = bpe.BPE.train(corpus[:50_000], 100, alphabet=corpus)
    held_out = corpus[50_000:]
    ids = tok.encode(held_out)
    assert tok.decode(ids) == held_out
    assert len(ids) < 0.75 * len(held_out)


def test_tensor_ids_and_errors():
    tok = bpe.BPE.train("abcabc", 2)
    assert tok.decode(torch.tensor(tok.encode("abc"))) == "abc"
    with pytest.raises(KeyError, match=r"BPE.encode: characters not in the alphabet: \['z'\]"):
        tok.encode("abz")
    with pytest.raises(ValueError, match=r"BPE.decode: ids should be ints in 0..4, got \[5\]"):
        tok.decode([5])
    with pytest.raises(TypeError, match="BPE.encode: text should be a str, got int"):
        tok.encode(3)
    with pytest.raises(ValueError, match="BPE.train: text should be a non-empty str"):
        bpe.BPE.train("", 3)
    with pytest.raises(ValueError, match="BPE.train: num_merges should be an int >= 0, got -1"):
        bpe.BPE.train("abc", -1)
    assert "vocab_size=5" in repr(tok)
