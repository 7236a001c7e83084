"""Byte-pair encoding (BPE) trained from scratch, starting from characters.

Sennrich, Haddow & Birch (2016, arXiv:1508.07909) adapted byte-pair encoding to build a
subword vocabulary: start from single symbols, count every pair of adjacent symbols over the
words of a training text, replace the most frequent pair by a new symbol (a **merge**), repeat
``num_merges`` times. Encoding a new text replays the learned merges in the order they were
learned. Merges never cross a word boundary: the text is first cut into "words" by a regular
expression (:data:`PRETOKENIZE`, a simplified form of GPT-2's: a word keeps its leading space).

This implementation starts from the *characters* of the training text (plus an optional
``alphabet``); GPT-2 (Radford et al., 2019) starts from the 256 byte values instead, so that any
text can be encoded. Ids: the base characters are ``0..B-1`` (sorted), merge ``m`` creates id
``B + m``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

#: a word is an optional space followed by letters, or by digits, or by other symbols; runs of
#: whitespace form their own words (the last space before a word stays with the word)
PRETOKENIZE = re.compile(r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def pretokenize(text: str) -> List[str]:
    """``text`` cut into the words that merges may not cross; ``"".join(words) == text``."""
    if not isinstance(text, str):
        raise TypeError(f"pretokenize: text should be a str, got {type(text).__name__}")
    return PRETOKENIZE.findall(text)


def _merge_word(word: Tuple[str, ...], pair: Tuple[str, str], new: str) -> Tuple[str, ...]:
    out: List[str] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


class BPE:
    """A trained byte-pair encoding: ``tokens`` (id -> string) and the ordered ``merges``.

    Build one with :meth:`BPE.train`; ``encode(str) -> list[int]``, ``decode(ids) -> str``
    with ``decode(encode(s)) == s`` for every ``s`` made of known characters.
    """

    def __init__(self, alphabet: Sequence[str], merges: Sequence[Tuple[str, str]]) -> None:
        alphabet = list(alphabet)
        if not alphabet or any(not isinstance(c, str) or len(c) != 1 for c in alphabet) \
                or len(set(alphabet)) != len(alphabet):
            raise ValueError("BPE: alphabet should be distinct single characters, at least one")
        self.alphabet: List[str] = alphabet
        self.merges: List[Tuple[str, str]] = [tuple(m) for m in merges]  # type: ignore[misc]
        self.tokens: List[str] = alphabet + [a + b for a, b in self.merges]
        self.index: Dict[str, int] = {}
        for i, t in enumerate(self.tokens):
            self.index.setdefault(t, i)
        self.ranks: Dict[Tuple[str, str], int] = {m: r for r, m in enumerate(self.merges)}
        self._cache: Dict[str, List[int]] = {}

    @classmethod
    def train(cls, text: str, num_merges: int, alphabet: Optional[Iterable[str]] = None) -> "BPE":
        """Learn ``num_merges`` merges on ``text`` (Sennrich et al.'s algorithm, on word counts).

        The base vocabulary is every character of ``text`` plus ``alphabet`` (e.g. the characters
        of a whole corpus, so that held-out text with rare characters can be encoded). Ties between
        equally frequent pairs go to the pair seen first in sorted order (deterministic). Stops
        early when no pair occurs twice.
        """
        fn = "BPE.train"
        if not isinstance(text, str) or not text:
            raise ValueError(f"{fn}: text should be a non-empty str, got {type(text).__name__}"
                             f"{' (empty)' if isinstance(text, str) else ''}")
        if isinstance(num_merges, bool) or not isinstance(num_merges, int) or num_merges < 0:
            raise ValueError(f"{fn}: num_merges should be an int >= 0, got {num_merges!r}")
        chars = set(text) | set(alphabet or ())
        base = sorted(chars)
        words = Counter(pretokenize(text))
        # each distinct word as a list of symbols, with its count
        symbols: List[Tuple[str, ...]] = [tuple(w) for w in words]
        counts: List[int] = list(words.values())
        pairs: Counter = Counter()
        where: Dict[Tuple[str, str], set] = defaultdict(set)  # pair -> ids of words holding it
        for wi, (word, c) in enumerate(zip(symbols, counts)):
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += c
                where[(a, b)].add(wi)
        merges: List[Tuple[str, str]] = []
        for _ in range(num_merges):
            if not pairs:
                break
            best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
            pair, freq = best
            if freq < 2:
                break
            merges.append(pair)
            new = pair[0] + pair[1]
            for wi in list(where.pop(pair, ())):
                word, c = symbols[wi], counts[wi]
                for a, b in zip(word, word[1:]):  # remove the old pairs of this word
                    pairs[(a, b)] -= c
                    if pairs[(a, b)] <= 0:
                        del pairs[(a, b)]
                merged = _merge_word(word, pair, new)
                symbols[wi] = merged
                for a, b in zip(merged, merged[1:]):
                    pairs[(a, b)] += c
                    where[(a, b)].add(wi)
            pairs.pop(pair, None)
        return cls(base, merges)

    @property
    def vocab_size(self) -> int:
        """Number of tokens: base characters + merges."""
        return len(self.tokens)

    def _encode_word(self, word: str) -> List[int]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        parts: Tuple[str, ...] = tuple(word)
        while len(parts) > 1:
            ranked = [(self.ranks.get(p), p) for p in zip(parts, parts[1:])]
            ranked = [(r, p) for r, p in ranked if r is not None]
            if not ranked:
                break
            _, pair = min(ranked)
            parts = _merge_word(parts, pair, pair[0] + pair[1])
        ids = [self.index[p] for p in parts]
        self._cache[word] = ids
        return ids

    def encode(self, text: str) -> List[int]:
        """Token ids of ``text``: each word's characters, merged by replaying the merges in the
        order they were learned (lowest rank first). Raises on a character not in the alphabet."""
        if not isinstance(text, str):
            raise TypeError(f"BPE.encode: text should be a str, got {type(text).__name__}")
        unknown = sorted(set(text) - set(self.alphabet))
        if unknown:
            raise KeyError(f"BPE.encode: characters not in the alphabet: {unknown[:10]!r} "
                           f"(train with alphabet=... to include them)")
        out: List[int] = []
        for word in pretokenize(text):
            out.extend(self._encode_word(word))
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """The text of token ids (a list of ints or a 1-D integer tensor)."""
        values = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        bad = [i for i in values if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"BPE.decode: ids should be ints in 0..{self.vocab_size - 1}, got {bad[:5]!r}")
        return "".join(self.tokens[i] for i in values)

    def token_lengths(self, ids: Iterable[int]) -> List[int]:
        """Number of characters of each token (to convert a loss per token into one per character)."""
        values = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return [len(self.tokens[i]) for i in values]

    def __repr__(self) -> str:
        return f"BPE(alphabet={len(self.alphabet)}, merges={len(self.merges)}, vocab_size={self.vocab_size})"
