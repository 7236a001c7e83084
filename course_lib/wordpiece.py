"""WordPiece tokenisation from scratch (BERT's tokeniser; chapter 17).

A text goes through three stages, each equal to the stage of the same name in the ``tokenizers``
library (``BertNormalizer``, ``BertPreTokenizer``, ``WordPiece``) that all-MiniLM-L6-v2's
``tokenizer.json`` configures:

1. **normalise** (:meth:`WordPiece.normalize`): drop NUL, U+FFFD and "other" characters (control
   Cc, format Cf, private use Co, unassigned Cn; tab, newline and carriage return are kept), turn
   every White_Space character into a space; put a space on each side of a CJK ideograph; strip
   accents (NFD, then drop the non-spacing marks Mn); lower-case. (Accents are stripped *before*
   lower-casing, as ``tokenizers`` does; the Python ``BertTokenizer`` does the opposite order.)
2. **pre-tokenise** (:meth:`WordPiece.basic_tokenize`): split on whitespace, and make every
   punctuation character a word of its own. Punctuation is BERT's definition: all ASCII
   punctuation (so ``$ + < = > ^ ` | ~``, which Unicode calls symbols, count) plus every character
   of a Unicode punctuation category (P*).
3. **WordPiece** (:meth:`WordPiece.wordpiece`): greedy longest-match-first. From position 0, take
   the longest prefix of the word that is in the vocabulary; continue from where it ended, now
   looking for pieces spelt ``"##" + piece``. A word longer than ``max_chars`` characters, or one
   where some position matches nothing, becomes the single token ``[UNK]`` (the whole word, not
   just the failing piece).

:meth:`WordPiece.encode` adds ``[CLS]`` ... ``[SEP]`` and truncates the content to
``max_length - 2`` tokens; :meth:`WordPiece.encode_batch` pads to the longest sequence (ids
``[PAD]``, attention mask 0) and returns (B, T) long tensors.

Unicode versions: ``tokenizers`` classifies characters with the tables of the Rust crates it was
built with, Python with ``unicodedata`` (Unicode 14 for Python 3.11). Characters whose class changed
between those versions could be classified differently. Measured over all 1,112,064 code points, one by
one (``"a" + ch + "b"``, about 100 s): with Python's tables alone 503 code points of rare scripts were
tokenised differently; the small range tables ``_REF_*`` below give them the reference's class, after
which the measurement finds 0 differences.
The reference's CJK ranges skip U+2B820..U+2B91F (BERT's original list includes them); so does this module.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

__all__ = ["WordPiece", "is_punctuation", "is_whitespace", "is_control", "is_cjk", "is_accent", "agreement_corpus"]

#: the Unicode White_Space property (stable since Unicode 6.3); Rust's ``char::is_whitespace``
WHITE_SPACE = frozenset(
    [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F,
     0x205F, 0x3000]
)
#: CJK ideograph blocks that BERT surrounds with spaces (the reference's list, code point ranges)
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


# --- where the reference's (older) Unicode tables differ from Python's unicodedata ---------------------
# Measured over all 1,112,064 code points, one by one ("a" + ch + "b" through tokenizers and this module):
# 503 code points were tokenised differently with Python's tables alone, all characters added to (or moved
# between) the categories Mn, Cf and P* in recent Unicode versions. These ranges apply the reference's view.
#: Cf for Python, kept by the reference (13 code points)
_REF_NOT_CONTROL = (
    (0x890, 0x891), (0x8E2, 0x8E2), (0x110CD, 0x110CD), (0x13430, 0x13438),
)
#: Mn for Python, not accents for the reference (384)
_REF_NOT_MARK = (
    (0x7FD, 0x7FD), (0x898, 0x89F), (0x8CA, 0x8E1), (0x9FE, 0x9FE), (0xAFA, 0xAFF), (0xB55, 0xB55),
    (0xC04, 0xC04), (0xC3C, 0xC3C), (0xD00, 0xD00), (0xD3B, 0xD3C), (0xD81, 0xD81), (0xEBA, 0xEBA),
    (0x180F, 0x180F), (0x1885, 0x1886), (0x1ABF, 0x1ACE), (0x1DF6, 0x1DFB), (0xA82C, 0xA82C), (0xA8C5, 0xA8C5),
    (0xA8FF, 0xA8FF), (0xA9BD, 0xA9BD), (0x10D24, 0x10D27), (0x10EAB, 0x10EAC), (0x10F46, 0x10F50),
    (0x10F82, 0x10F85), (0x11070, 0x11070), (0x11073, 0x11074), (0x110C2, 0x110C2), (0x111C9, 0x111C9),
    (0x111CF, 0x111CF), (0x1123E, 0x1123E), (0x1133B, 0x1133B), (0x11438, 0x1143F), (0x11442, 0x11444),
    (0x11446, 0x11446), (0x1145E, 0x1145E), (0x1182F, 0x11837), (0x11839, 0x1183A), (0x1193B, 0x1193C),
    (0x1193E, 0x1193E), (0x11943, 0x11943), (0x119D4, 0x119D7), (0x119DA, 0x119DB), (0x119E0, 0x119E0),
    (0x11A01, 0x11A0A), (0x11A33, 0x11A38), (0x11A3B, 0x11A3E), (0x11A47, 0x11A47), (0x11A51, 0x11A56),
    (0x11A59, 0x11A5B), (0x11A8A, 0x11A96), (0x11A98, 0x11A99), (0x11C30, 0x11C36), (0x11C38, 0x11C3D),
    (0x11C3F, 0x11C3F), (0x11C92, 0x11CA7), (0x11CAA, 0x11CB0), (0x11CB2, 0x11CB3), (0x11CB5, 0x11CB6),
    (0x11D31, 0x11D36), (0x11D3A, 0x11D3A), (0x11D3C, 0x11D3D), (0x11D3F, 0x11D45), (0x11D47, 0x11D47),
    (0x11D90, 0x11D91), (0x11D95, 0x11D95), (0x11D97, 0x11D97), (0x11EF3, 0x11EF4), (0x16F4F, 0x16F4F),
    (0x16FE4, 0x16FE4), (0x1CF00, 0x1CF2D), (0x1CF30, 0x1CF46), (0x1E000, 0x1E006), (0x1E008, 0x1E018),
    (0x1E01B, 0x1E021), (0x1E023, 0x1E024), (0x1E026, 0x1E02A), (0x1E130, 0x1E136), (0x1E2AE, 0x1E2AE),
    (0x1E2EC, 0x1E2EF), (0x1E944, 0x1E94A),
)
#: stripped like an accent by the reference, Mc for Python (1)
_REF_MARK = (
    (0x1734, 0x1734),
)
#: punctuation for the reference, So or Mn for Python (2)
_REF_PUNCT = (
    (0x166D, 0x166D), (0x111C9, 0x111C9),
)
#: P* for Python, not punctuation for the reference (104)
_REF_NOT_PUNCT = (
    (0x61D, 0x61D), (0x9FD, 0x9FD), (0xA76, 0xA76), (0xC77, 0xC77), (0xC84, 0xC84), (0x1B7D, 0x1B7E),
    (0x2E43, 0x2E4F), (0x2E52, 0x2E5D), (0x10EAD, 0x10EAD), (0x10F55, 0x10F59), (0x10F86, 0x10F89),
    (0x1144B, 0x1144F), (0x1145A, 0x1145B), (0x1145D, 0x1145D), (0x11660, 0x1166C), (0x116B9, 0x116B9),
    (0x1183B, 0x1183B), (0x11944, 0x11946), (0x119E2, 0x119E2), (0x11A3F, 0x11A46), (0x11A9A, 0x11A9C),
    (0x11A9E, 0x11AA2), (0x11C41, 0x11C45), (0x11C70, 0x11C71), (0x11EF7, 0x11EF8), (0x11FFF, 0x11FFF),
    (0x12FF1, 0x12FF2), (0x16E97, 0x16E9A), (0x16FE2, 0x16FE2), (0x1E95E, 0x1E95F),
)


@functools.lru_cache(maxsize=None)
def _table(name: str) -> frozenset:
    return frozenset(c for lo, hi in globals()[name] for c in range(lo, hi + 1))


def is_whitespace(ch: str) -> bool:
    """True for tab, newline, carriage return and every other Unicode White_Space character."""
    return ord(ch) in WHITE_SPACE


def is_control(ch: str) -> bool:
    """True for the characters the normaliser deletes: categories Cc, Cf, Co, Cn, Cs (not tab, LF, CR)."""
    if ch in "\t\n\r" or ord(ch) in _table("_REF_NOT_CONTROL"):
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")


def is_punctuation(ch: str) -> bool:
    """BERT's punctuation: any ASCII punctuation (33-47, 58-64, 91-96, 123-126) or a Unicode P* category."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    if cp in _table("_REF_PUNCT"):
        return True
    return unicodedata.category(ch).startswith("P") and cp not in _table("_REF_NOT_PUNCT")


def is_accent(ch: str) -> bool:
    """True for a non-spacing mark (category Mn), the characters accent stripping drops after NFD."""
    cp = ord(ch)
    if cp in _table("_REF_MARK"):
        return True
    return unicodedata.category(ch) == "Mn" and cp not in _table("_REF_NOT_MARK")


def is_cjk(ch: str) -> bool:
    """True for a CJK ideograph (the blocks of :data:`CJK_RANGES`); kana and hangul are not included."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


class WordPiece:
    """A BERT WordPiece tokeniser.

    ``vocab``: a dict token -> id, or a list of tokens (id = position). ``lowercase`` and
    ``strip_accents`` as in BERT's uncased models; ``unk`` the unknown token (its id is only needed
    to turn tokens into ids); ``max_chars`` the longest word that is split (longer words are ``unk``; 100 as
    the reference's ``max_input_chars_per_word``). Works with a tiny vocabulary: ``[CLS]``,
    ``[SEP]`` and ``[PAD]`` are only needed by :meth:`encode` / :meth:`encode_batch`.
    """

    def __init__(self, vocab: Union[Dict[str, int], Sequence[str]], lowercase: bool = True,
                 strip_accents: bool = True, unk: str = "[UNK]", max_chars: int = 100,
                 handle_cjk: bool = True, prefix: str = "##") -> None:
        fn = "WordPiece"
        if isinstance(vocab, dict):
            bad = [k for k, v in vocab.items() if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int)]
            if bad:
                raise TypeError(f"{fn}: vocab should map str tokens to int ids, got entries like {bad[:3]!r}")
            self.vocab: Dict[str, int] = dict(vocab)
        elif isinstance(vocab, (list, tuple)):
            if not all(isinstance(t, str) for t in vocab):
                raise TypeError(f"{fn}: a vocab list should hold str tokens, got {[type(t).__name__ for t in vocab][:3]}")
            self.vocab = {t: i for i, t in enumerate(vocab)}
        else:
            raise TypeError(f"{fn}: vocab should be a dict token -> id or a list of tokens, got {type(vocab).__name__}")
        if not self.vocab:
            raise ValueError(f"{fn}: vocab should not be empty")
        if not isinstance(unk, str) or not unk:
            raise TypeError(f"{fn}: unk should be a non-empty str, got {unk!r}")
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
            raise ValueError(f"{fn}: max_chars should be an int >= 1, got {max_chars!r}")
        self.lowercase, self.strip_accents, self.handle_cjk = bool(lowercase), bool(strip_accents), bool(handle_cjk)
        self.unk, self.max_chars, self.prefix = unk, max_chars, prefix
        self.inverse = {i: t for t, i in self.vocab.items()}

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_vocab(cls, path: Union[str, Path], **kwargs) -> "WordPiece":
        """From a ``vocab.txt`` file: one token per line, the id is the line number (from 0)."""
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines = lines[:-1]
        return cls({t: i for i, t in enumerate(lines)}, **kwargs)

    @classmethod
    def from_tokenizer_json(cls, path: Union[str, Path]) -> "WordPiece":
        """From a ``tokenizers`` ``tokenizer.json`` with a BertNormalizer and a WordPiece model."""
        fn = "WordPiece.from_tokenizer_json"
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        model, norm = spec.get("model") or {}, spec.get("normalizer") or {}
        if model.get("type") != "WordPiece":
            raise ValueError(f"{fn}: {path} should describe a WordPiece model, got model type {model.get('type')!r}")
        if norm and norm.get("type") != "BertNormalizer":
            raise ValueError(f"{fn}: only the BertNormalizer is implemented, got {norm.get('type')!r}")
        lowercase = bool(norm.get("lowercase", True))
        strip = norm.get("strip_accents")
        return cls(model["vocab"], lowercase=lowercase, strip_accents=lowercase if strip is None else bool(strip),
                   unk=model.get("unk_token", "[UNK]"), max_chars=int(model.get("max_input_chars_per_word", 100)),
                   handle_cjk=bool(norm.get("handle_chinese_chars", True)),
                   prefix=model.get("continuing_subword_prefix", "##"))

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return (f"WordPiece(vocab={len(self.vocab)} tokens, lowercase={self.lowercase}, "
                f"strip_accents={self.strip_accents}, max_chars={self.max_chars})")

    # --- the three stages ----------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """Clean, space out CJK ideographs, strip accents, lower-case (the BertNormalizer)."""
        if not isinstance(text, str):
            raise TypeError(f"WordPiece.normalize: text should be a str, got {type(text).__name__}")
        out = []
        for ch in text:
            if ch == "\x00" or ch == "\ufffd" or is_control(ch):
                continue
            if is_whitespace(ch):
                out.append(" ")
            elif self.handle_cjk and is_cjk(ch):
                out.append(f" {ch} ")
            else:
                out.append(ch)
        text = "".join(out)
        if self.strip_accents:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if not is_accent(c))
        if self.lowercase:
            text = text.lower()
        return text

    def basic_tokenize(self, text: str) -> List[str]:
        """Normalise, split on whitespace, isolate every punctuation character: the words."""
        words: List[str] = []
        for chunk in self.normalize(text).split(" "):
            # after normalisation every whitespace is a plain space, except those lower() may create (none)
            current = []
            for ch in chunk:
                if is_punctuation(ch):
                    if current:
                        words.append("".join(current))
                        current = []
                    words.append(ch)
                elif is_whitespace(ch):
                    if current:
                        words.append("".join(current))
                        current = []
                else:
                    current.append(ch)
            if current:
                words.append("".join(current))
        return words

    def wordpiece(self, word: str) -> List[str]:
        """Greedy longest-match-first pieces of one word; ``[unk]`` alone if it cannot be split."""
        if not isinstance(word, str):
            raise TypeError(f"WordPiece.wordpiece: word should be a str, got {type(word).__name__}")
        if len(word) > self.max_chars:
            return [self.unk]
        pieces: List[str] = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    found = piece
                    break
                end -= 1
            if found is None:
                return [self.unk]
            pieces.append(found)
            start = end
        return pieces

    def tokenize(self, text: str) -> List[str]:
        """The token strings of ``text`` (no special tokens)."""
        return [p for w in self.basic_tokenize(text) for p in self.wordpiece(w)]

    # --- ids -------------------------------------------------------------------------------------
    def _special(self, fn: str, token: str) -> int:
        if token not in self.vocab:
            raise ValueError(f"{fn}: the vocabulary has no {token} token, which this needs")
        return self.vocab[token]

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> List[int]:
        """Token strings -> ids (an unknown string -> the id of ``unk``)."""
        u = self._special("WordPiece.convert_tokens_to_ids", self.unk)
        return [self.vocab.get(t, u) for t in tokens]

    def decode_ids(self, ids: Iterable[int]) -> List[str]:
        """Ids -> token strings."""
        return [self.inverse[int(i)] for i in ids]

    def encode(self, text: str, max_length: Optional[int] = None) -> List[int]:
        """``[CLS] tokens [SEP]`` as ids; with ``max_length`` the tokens are cut to ``max_length - 2``."""
        fn = "WordPiece.encode"
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or max_length < 2):
            raise ValueError(f"{fn}: max_length should be None or an int >= 2 (room for [CLS] and [SEP]), "
                             f"got {max_length!r}")
        cls_id, sep_id = self._special(fn, "[CLS]"), self._special(fn, "[SEP]")
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        if max_length is not None:
            ids = ids[: max_length - 2]
        return [cls_id, *ids, sep_id]

    def encode_batch(self, texts: Sequence[str], max_length: Optional[int] = None):
        """Encode and pad to the longest: ``(ids (B, T) long, attention_mask (B, T) long)``.

        Padding uses ``[PAD]`` on the right with mask 0; T = the longest encoding (<= max_length).
        """
        import torch

        fn = "WordPiece.encode_batch"
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise TypeError(f"{fn}: texts should be a list of str, got {type(texts).__name__}")
        if not texts:
            raise ValueError(f"{fn}: texts should hold at least one string, got an empty list")
        pad = self._special(fn, "[PAD]")
        rows = [self.encode(t, max_length) for t in texts]
        T = max(len(r) for r in rows)
        ids = torch.full((len(rows), T), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        return ids, mask


def agreement_corpus(n: int = 1200, seed: int = 0) -> List[str]:
    """``n`` varied, deterministic test strings for comparing tokenisers.

    Mixes English sentences from CPython's ``pydoc_data`` topics with accented words, Chinese,
    Japanese, emoji (with ZWJ sequences and skin tones), code, whitespace oddities (tabs, NBSP, ideographic
    space, zero-width and control characters), punctuation runs and very long words and texts.
    """
    import random

    from pydoc_data.topics import topics

    rng = random.Random(seed)
    english = [s.strip() for doc in sorted(topics) for s in topics[doc].split(".") if 3 < len(s.strip()) < 300]
    accented = ["café", "naïve", "résumé", "Ångström", "façade", "Müller", "jalapeño", "Đorđe", "İstanbul",
                "ﬁnance", "Œuvre", "São Paulo", "Ærøskøbing", "crème brûlée", "Žluťoučký kůň", "ΕΛΛΗΝΙΚΆ", "Привет"]
    cjk = ["机器学习很有趣", "深度学习", "自然语言处理。", "人工智能（AI）", "日本語のテキスト", "한국어 문장", "漢字と仮名",
           "中文，标点！", "𠀀𠀁 rare ideographs", "数据123abc"]
    emoji = ["🙂", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🤖 robots", "✨🔥💯", "☕️ coffee", "🧠🧪"]
    code = ["def f(x): return x**2", "for i in range(10):\n\tprint(i)", "a[i] += b->c; // comment",
            "x = {'k': [1, 2.5e-3]}", "#include <stdio.h>", "SELECT * FROM t WHERE a>=1;", "$HOME/.bashrc",
            "foo_bar.baz(qux)", "λx.x+1", "<div class=\"a\">&amp;</div>", "https://example.com/a?b=c&d=e"]
    spaces = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2003", "\u200b", "\u200d", "\x00", "\x07",
              "\ufeff", "\u0085", "\x0b", "\ufffd", "\u202f"]
    punct = ["...", "!!", "?!", "—", "–", "«»", "“quoted”", "‘single’", "(a)", "[b]", "{c}", "@#$%^&*", "~`|\\",
             "¿qué?", "¡hola!", "§1.2", "€5", "£3", "±2", "°C", "™", "©", "•"]
    pools = [english, accented, cjk, emoji, code, punct]
    out = [*accented, *cjk, *emoji, *code, *punct, "", " ", "\t\n", "a" * 100, "a" * 101, "b" * 250]
    while len(out) < n:
        kind = rng.randrange(6)
        if kind == 0:
            out.append(rng.choice(english))
        elif kind == 5:  # a very long text or a very long word
            out.append(" ".join(rng.choice(english) for _ in range(rng.randint(5, 30))) if rng.random() < 0.7
                       else "".join(rng.choice("abcdefghij") for _ in range(rng.randint(90, 130))))
        else:
            parts = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(2, 8))]
            out.append("".join(p + rng.choice(spaces) if rng.random() < 0.6 else p for p in parts))
    return out[:n]
