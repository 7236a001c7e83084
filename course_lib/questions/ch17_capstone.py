"""Questions of sheet 17_capstone: WordPiece on one word with a given vocabulary, the sentence
embedding (masked mean pooling, then L2 normalisation), cosine top-k retrieval, a debugging
question (one BERT encoder layer written pre-norm and blind to padding) and a prediction (the
parameter count of a BERT-style encoder such as all-MiniLM-L6-v2).

Nothing here needs the pretrained model: the cases use tiny vocabularies and small random
weights. The references come from :mod:`course_lib.wordpiece`, :mod:`course_lib.minilm`,
:mod:`course_lib.search` and :mod:`course_lib.transformer`, imported when a reference first runs;
tests/test_questions_ch17.py checks them against ``tokenizers`` and ``transformers``' ``BertLayer``
and ``BertModel`` (tests/test_minilm.py checks the pooling against ``sentence-transformers``). The wrong variants below are written here, one
mistake each. The grader's sandbox passes tensors, tuples, lists, strings and numbers (no dicts,
no sets): ``call`` rebuilds the vocabulary set and the parameter dict.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Sequence

import torch
import torch.nn.functional as F

from course_lib.questions import Case, Misconception, Question, randn

SHEET = "17_capstone"
F64 = torch.float64
UNK = "[UNK]"
LN_EPS = 1e-12  # BERT's LayerNorm epsilon (all-MiniLM-L6-v2's config.json: layer_norm_eps)


# --- 17.1 WordPiece on one word -------------------------------------------------------------------
def wordpiece_reference(word: str, vocab: Sequence[str], max_chars: int = 100) -> List[str]:
    """The reference of 17.1: :meth:`course_lib.wordpiece.WordPiece.wordpiece` (greedy longest
    match first, continuation pieces prefixed "##", the whole word [UNK] when a position has no
    match or the word is longer than ``max_chars``)."""
    from course_lib.wordpiece import WordPiece

    return list(WordPiece(sorted(vocab), max_chars=max_chars).wordpiece(word))


def _pieces_to_ids(pieces: Any, vocab: Sequence[str]) -> torch.Tensor:
    """The pieces as vocabulary indices (-1 for a string outside the vocabulary), (n,) int64."""
    if not isinstance(pieces, (list, tuple)) or not all(isinstance(s, str) for s in pieces):
        raise TypeError(f"wordpiece should return a list of strings (the pieces), got {pieces!r:.80}")
    index = {s: i for i, s in enumerate(vocab)}
    return torch.tensor([index.get(s, -1) for s in pieces], dtype=torch.int64)


def _wordpiece_call(func: Callable[..., Any], case: Case) -> torch.Tensor:
    """Call ``func(word, vocab as a set, max_chars)`` and compare the pieces by vocabulary index."""
    word, vocab, max_chars = case.args
    return _pieces_to_ids(func(word, set(vocab), max_chars), vocab)


BASE_VOCAB = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "un", "u", "##n", "##aff", "##able", "aff", "able", "affable",
              "##a", "##b", "##l", "##e", "##f", "a", "b", "l", "e", "play", "##ing", "##ed", "##s", "played",
              "p", "##p", "##y", "##i", "##g", "##d", "token", "##izer", "##ize", "##r", "t", "##o", "##k",
              "##ken", "##en", "s", "##t", "ing", "ed", "izer", "x")
"""The vocabulary of the public cases of 17.1 (the sheet's own example uses it too)."""


def _random_vocab(gen: torch.Generator, letters: str) -> tuple:
    """Every letter alone and as "##letter", plus random pieces of 2 to 4 letters in both forms."""
    vocab = [UNK] + list(letters) + [f"##{c}" for c in letters]
    for _ in range(14):
        n = int(torch.randint(2, 5, (1,), generator=gen))
        piece = "".join(letters[int(i)] for i in torch.randint(0, len(letters), (n,), generator=gen))
        vocab.append(piece if int(torch.randint(0, 2, (1,), generator=gen)) else f"##{piece}")
    return tuple(dict.fromkeys(vocab))


def _wordpiece_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("'unaffable'", ("unaffable", BASE_VOCAB, 100)),
        Case("'playing'", ("playing", BASE_VOCAB, 100)),
        Case("a whole word in the vocabulary: 'played'", ("played", BASE_VOCAB, 100)),
        Case("no piece for one letter: 'playzing'", ("playzing", BASE_VOCAB, 100)),
        Case("'tokenizers'", ("tokenizers", BASE_VOCAB, 100)),
        Case("longer than max_chars=8: 'tokenizer'", ("tokenizer", BASE_VOCAB, 8)),
    ]
    if hidden:
        cases += [Case("one letter: 'a'", ("a", BASE_VOCAB, 100)), Case("'tokens'", ("tokens", BASE_VOCAB, 100))]
        for i in range(6):
            letters = "abcde" if i % 2 else "xyzw"
            vocab = _random_vocab(gen, letters)
            n = int(torch.randint(3, 10, (1,), generator=gen))
            word = "".join(letters[int(j)] for j in torch.randint(0, len(letters), (n,), generator=gen))
            if i == 4:
                word = word[:2] + "q" + word[2:]  # a letter with no piece
            cases.append(Case(f"random vocabulary {i}, a word of {len(word)} letters", (word, vocab, 100)))
    return cases


def _wordpiece_variant(shortest: bool = False, hashes: bool = True, unk_whole: bool = True) -> Callable[..., List[str]]:
    """WordPiece with the given mistakes (see the misconceptions of 17.1)."""
    def wrong(word: str, vocab: set, max_chars: int = 100) -> List[str]:
        if len(word) > max_chars:
            return [UNK]
        pieces, start = [], 0
        while start < len(word):
            ends = range(start + 1, len(word) + 1) if shortest else range(len(word), start, -1)
            for end in ends:
                piece = word[start:end] if (start == 0 or not hashes) else "##" + word[start:end]
                if piece in vocab:
                    pieces.append(piece)
                    start = end
                    break
            else:
                if unk_whole:
                    return [UNK]
                pieces.append(UNK)
                start += 1
        return pieces
    return wrong


# --- 17.2 the sentence embedding ------------------------------------------------------------------
def sentence_embedding_reference(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The reference of 17.2: :func:`course_lib.minilm.mean_pool` (the mean over the positions
    whose mask is 1, the count clamped at 1e-9) then :func:`course_lib.minilm.l2_normalize`;
    hidden (B, T, E), mask (B, T) int64 -> (B, E)."""
    from course_lib.minilm import l2_normalize, mean_pool

    return l2_normalize(mean_pool(hidden, mask))


def _mask(lengths: Sequence[int], T: int) -> torch.Tensor:
    return (torch.arange(T).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).to(torch.int64)


def _pool_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(lengths: Sequence[int], T: int, E: int, label: str = "") -> Case:
        h = randn(gen, len(lengths), T, E) + 0.5 * randn(gen, 1, 1, E)
        return Case(f"B={len(lengths)}, T={T}, E={E}, lengths {list(lengths)}{label}", (h, _mask(lengths, T)))

    cases = [case((3, 5), 5, 4), case((2, 4, 1), 4, 6), case((1,), 3, 3, ": one real token"),
             case((4, 4), 4, 2, ": no padding"), case((2, 6), 6, 1, ": E=1")]
    if hidden:
        for B, T, E in ((1, 1, 5), (3, 7, 8), (2, 2, 3), (4, 5, 16)):
            lengths = [int(torch.randint(1, T + 1, (1,), generator=gen)) for _ in range(B)]
            lengths[0] = max(1, T - 1) if T > 1 else 1
            cases.append(case(lengths, T, E))
    return cases


def _pool_variant(kind: str) -> Callable[..., torch.Tensor]:
    """A sentence embedding with one mistake: CLS pooling, padding in the mean, no normalisation."""
    def wrong(hidden, mask):
        m = mask.unsqueeze(-1).to(hidden.dtype)
        if kind == "cls":
            return F.normalize(hidden[:, 0], dim=-1)
        if kind == "padding":
            return F.normalize(hidden.mean(dim=1), dim=-1)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
    return wrong


# --- 17.3 cosine similarity and top-k retrieval -----------------------------------------------------
def retrieve_reference(queries: torch.Tensor, corpus: torch.Tensor, k: int) -> tuple:
    """The reference of 17.3: :func:`course_lib.search.cosine_similarity` of the queries (Q, E) with
    the corpus (N, E), then :func:`course_lib.search.top_k` per query -> (scores (Q, k) float64,
    indices (Q, k) int64), best first."""
    from course_lib.search import cosine_similarity, top_k

    sims = cosine_similarity(queries, corpus)
    idx = torch.stack([top_k(row, k) for row in sims])
    return sims.gather(1, idx), idx


def _retrieve_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(Q: int, N: int, E: int, k: int, label: str = "") -> Case:
        norms = torch.exp(2.0 * randn(gen, N, 1))  # lengths from ~0.02 to ~50: dot products rank differently
        return Case(f"Q={Q} queries, N={N} passages, E={E}, k={k}{label}",
                    (randn(gen, Q, E) * 3.0, randn(gen, N, E) * norms, k))

    cases = [case(2, 8, 4, 3), case(1, 5, 3, 5, ": k = N"), case(3, 6, 2, 1, ": the best passage only"),
             case(1, 10, 6, 4), case(2, 4, 2, 2, ": E=2")]
    if hidden:
        for Q, N, E, k in ((1, 3, 2, 2), (4, 12, 5, 3), (2, 20, 8, 6), (3, 7, 3, 7)):
            cases.append(case(Q, N, E, k))
    return cases


def _retrieve_variant(kind: str) -> Callable[..., tuple]:
    """Retrieval with one mistake: dot products, the k least similar, or only the query normalised."""
    def wrong(queries, corpus, k):
        if kind == "dot":
            scores = queries @ corpus.T
        elif kind == "query_only":
            scores = F.normalize(queries, dim=-1) @ corpus.T
        else:
            scores = F.normalize(queries, dim=-1) @ F.normalize(corpus, dim=-1).T
        values, idx = scores.topk(k, dim=1, largest=(kind != "least"))
        return values, idx
    return wrong


# --- 17.4 debug one BERT encoder layer -----------------------------------------------------------
BERT_KEYS = ("attention.self.query.weight", "attention.self.query.bias", "attention.self.key.weight",
             "attention.self.key.bias", "attention.self.value.weight", "attention.self.value.bias",
             "attention.output.dense.weight", "attention.output.dense.bias", "attention.output.LayerNorm.weight",
             "attention.output.LayerNorm.bias", "intermediate.dense.weight", "intermediate.dense.bias",
             "output.dense.weight", "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias")
"""The parameters of one layer, named as in BERT's checkpoints (all-MiniLM-L6-v2's model.safetensors
holds them under ``encoder.layer.<i>.``)."""


def bert_layer_reference(x: torch.Tensor, mask: torch.Tensor, params: Dict[str, torch.Tensor], num_heads: int) -> torch.Tensor:
    """The reference of 17.4: one BERT layer, post-norm, exact GELU, LayerNorm eps 1e-12, padded keys
    (mask 0) ignored: :func:`course_lib.transformer.encoder_layer` (``norm_first=False``) on the
    parameters renamed to nn.TransformerEncoderLayer's. x (B, T, E), mask (B, T) of 0/1 -> (B, T, E).
    Checked against ``transformers``' ``BertLayer`` in tests/test_questions_ch17.py."""
    from course_lib import transformer

    p = params
    renamed = {
        "self_attn.in_proj_weight": torch.cat([p["attention.self.query.weight"], p["attention.self.key.weight"],
                                               p["attention.self.value.weight"]]),
        "self_attn.in_proj_bias": torch.cat([p["attention.self.query.bias"], p["attention.self.key.bias"],
                                             p["attention.self.value.bias"]]),
        "self_attn.out_proj.weight": p["attention.output.dense.weight"],
        "self_attn.out_proj.bias": p["attention.output.dense.bias"],
        "linear1.weight": p["intermediate.dense.weight"], "linear1.bias": p["intermediate.dense.bias"],
        "linear2.weight": p["output.dense.weight"], "linear2.bias": p["output.dense.bias"],
        "norm1.weight": p["attention.output.LayerNorm.weight"], "norm1.bias": p["attention.output.LayerNorm.bias"],
        "norm2.weight": p["output.LayerNorm.weight"], "norm2.bias": p["output.LayerNorm.bias"],
    }
    return transformer.encoder_layer(x, renamed, num_heads, norm_first=False, activation="gelu",
                                     src_key_padding_mask=mask == 0, batch_first=True, eps=LN_EPS)


def bert_params(gen: torch.Generator, E: int, F_: int) -> Dict[str, torch.Tensor]:
    """Random float64 parameters of one BERT layer of width E and feed-forward width F_ (names: BERT_KEYS)."""
    shapes = {"query": (E, E), "key": (E, E), "value": (E, E), "attention.output.dense": (E, E),
              "intermediate.dense": (F_, E), "output.dense": (E, F_)}
    params = {}
    for name in BERT_KEYS:
        stem, kind = name.rsplit(".", 1)
        if "LayerNorm" in stem:
            params[name] = (1 + 0.3 * randn(gen, E)) if kind == "weight" else 0.3 * randn(gen, E)
            continue
        shape = shapes[stem.split(".")[-1] if stem.startswith("attention.self") else stem]
        params[name] = randn(gen, *shape, scale=1.5 / math.sqrt(shape[1])) if kind == "weight" else 0.3 * randn(gen, shape[0])
    return params


def _bert_call(func: Callable[..., Any], case: Case) -> torch.Tensor:
    """Call ``func(x, mask, params, num_heads)`` with the case's parameter tuple as the dict named by BERT_KEYS."""
    x, mask, values, num_heads = case.args
    return func(x, mask, dict(zip(BERT_KEYS, values)), num_heads)


def _bert_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    def case(lengths: Sequence[int], T: int, E: int, h: int, label: str = "") -> Case:
        params = bert_params(gen, E, 4 * E)
        return Case(f"B={len(lengths)}, T={T}, E={E}, {h} head(s), lengths {list(lengths)}{label}",
                    (randn(gen, len(lengths), T, E, scale=2.0) + 0.5, _mask(lengths, T),
                     tuple(params[k] for k in BERT_KEYS), h))

    cases = [case((5, 3), 5, 8, 2), case((2,), 4, 6, 3), case((1,), 1, 4, 1, ": one position, one head"),
             case((3, 1, 2), 3, 4, 4, ": d = 1"), case((6, 6), 6, 12, 3, ": no padding")]
    if hidden:
        for _ in range(5):
            B, T, h, d = (int(s) for s in torch.randint(1, 5, (4,), generator=gen))
            lengths = [int(torch.randint(1, T + 2, (1,), generator=gen)) for _ in range(B)]
            lengths[0] = max(1, T)  # one full row, at least one padded when B > 1 and T > 1
            cases.append(case(lengths, T + 1, h * d, h))
    return cases


def _bert_variant(pre_norm: bool, ignore_padding: bool) -> Callable[..., torch.Tensor]:
    """The sheet's listing (``buggy_bert_layer``) with one or both of its bugs."""
    def layer(x, mask, params, num_heads):
        B, T, E = x.shape
        h, d = num_heads, E // num_heads
        p = params

        def linear(u, name):
            return u @ p[f"{name}.weight"].T + p[f"{name}.bias"]

        def ln(u, name):
            return F.layer_norm(u, (E,), p[f"{name}.LayerNorm.weight"], p[f"{name}.LayerNorm.bias"], LN_EPS)

        def split(t):  # (B, T, E) -> (B, h, T, d)
            return t.reshape(B, T, h, d).transpose(1, 2)

        def attend(u):
            q, k, v = (split(linear(u, f"attention.self.{n}")) for n in ("query", "key", "value"))
            scores = q @ k.transpose(-2, -1) / math.sqrt(d)
            if not ignore_padding:
                scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
            out = torch.softmax(scores, dim=-1) @ v
            return linear(out.transpose(1, 2).reshape(B, T, E), "attention.output.dense")

        def ff(u):
            return linear(F.gelu(linear(u, "intermediate.dense")), "output.dense")

        if pre_norm:
            x = x + attend(ln(x, "attention.output"))
            return x + ff(ln(x, "output"))
        x = ln(x + attend(x), "attention.output")
        return ln(x + ff(x), "output")
    return layer


# --- 17.5 predict the parameter count of a BERT-style encoder -------------------------------------
def bert_parameter_count(vocab_size: int, max_positions: int, type_vocab_size: int, hidden: int,
                         num_layers: int, intermediate: int) -> int:
    """The reference of 17.5: the parameters of ``transformers.BertModel`` with a pooler: embeddings
    (words, positions, token types, one LayerNorm), per layer the four E x E projections with biases,
    two LayerNorms and the feed-forward E -> I -> E with biases, and the pooler's dense E x E with
    bias. Checked against ``BertModel`` on the meta device and all-MiniLM-L6-v2's checkpoint
    (22,713,216) in tests/test_questions_ch17.py."""
    E, I = hidden, intermediate
    embeddings = (vocab_size + max_positions + type_vocab_size) * E + 2 * E
    layer = 4 * (E * E + E) + (E * I + I) + (I * E + E) + 2 * 2 * E
    return embeddings + num_layers * layer + (E * E + E)


def _count_call(func: Callable[..., Any], case: Case) -> float:
    """The student's count as a float, so that 1234 and 1234.0 count alike."""
    return float(func(*case.args, **case.kwargs))


def _count_cases(gen: torch.Generator, hidden: bool) -> List[Case]:
    cases = [
        Case("all-MiniLM-L6-v2: V=30522, 512 positions, 2 types, E=384, 6 layers, I=1536",
             (30522, 512, 2, 384, 6, 1536)),
        Case("BERT-base: V=30522, 512 positions, 2 types, E=768, 12 layers, I=3072", (30522, 512, 2, 768, 12, 3072)),
        Case("a tiny encoder: V=100, 16 positions, 1 type, E=8, 2 layers, I=32", (100, 16, 1, 8, 2, 32)),
        Case("one layer: V=1000, 64 positions, 2 types, E=32, 1 layer, I=64", (1000, 64, 2, 32, 1, 64)),
    ]
    if hidden:
        for i in range(5):
            E = 16 * int(torch.randint(1, 65, (1,), generator=gen))
            cases.append(Case(f"E={E}, {1 + i * 3} layers", (int(torch.randint(50, 60000, (1,), generator=gen)),
                                                                128 * (1 + i), 1 + i % 2, E, 1 + 3 * i, 4 * E)))
    return cases


def _count_variant(biases: bool = True, norms: bool = True, positions: bool = True) -> Callable[..., int]:
    """A parameter count with the given mistakes (see the misconceptions of 17.5)."""
    def wrong(vocab_size, max_positions, type_vocab_size, hidden, num_layers, intermediate):
        E, I, b, n = hidden, intermediate, int(biases), int(norms)
        embeddings = (vocab_size + (max_positions + type_vocab_size if positions else 0)) * E + n * 2 * E
        layer = 4 * (E * E + b * E) + (E * I + b * I) + (I * E + b * E) + n * 4 * E
        return embeddings + num_layers * layer + (E * E + b * E)
    return wrong


QUESTIONS = [
    Question(
        id="17.1", sheet=SHEET, title="WordPiece on one word", func_name="wordpiece", points=1,
        reference=wordpiece_reference, make_cases=_wordpiece_cases, call=_wordpiece_call, kind="implement",
        hints=(
            "WordPiece is greedy: from the current position it takes the longest piece of the vocabulary that "
            "matches, then continues after it. A piece that does not start the word is looked up with the "
            "continuation prefix ##. If some position matches nothing, the whole word is unknown.",
            "Keep a start index; for each start try the end positions from the end of the word downwards; "
            "the piece word[start:end] gets the prefix ## when start > 0. A word longer than max_chars is "
            "unknown at once.",
            "Two nested loops: the outer one runs until the start reaches the end of the word, the inner one tries "
            "the ends; when the inner loop finds nothing (a for ... else works), return the unknown token alone.",
        ),
        misconceptions=(
            Misconception(
                "shortest match first",
                "WordPiece takes the longest matching piece at each position (greedy longest-match-first, as "
                "BERT's tokeniser does); taking the shortest splits words into single letters.",
                _wordpiece_variant(shortest=True),
            ),
            Misconception(
                "missing '##' on continuation pieces",
                "Pieces inside a word are distinct vocabulary entries marked with ##: 'able' at the start of a word "
                "and '##able' after another piece are different tokens, so continuations must be looked up with "
                "the prefix.",
                _wordpiece_variant(hashes=False),
            ),
            Misconception(
                "only the unmatched letter made unknown",
                "When a position matches no piece, BERT's WordPiece gives up on the whole word and emits a single "
                "unknown token, not the pieces found so far plus one unknown letter.",
                _wordpiece_variant(unk_whole=False),
            ),
        ),
    ),
    Question(
        id="17.2", sheet=SHEET, title="The sentence embedding: masked mean, then normalise",
        func_name="sentence_embedding", points=1, reference=sentence_embedding_reference, make_cases=_pool_cases,
        kind="implement",
        hints=(
            "A sentence embedding averages the token vectors of the real tokens only (the padding positions are "
            "not part of the sentence), then scales the average to length 1 so that a dot product is a cosine.",
            "hidden is (B, T, E) and mask (B, T) of 0/1: turn the mask into (B, T, 1) floats, sum the masked "
            "vectors over T and divide by the number of real tokens of each sentence; the result is (B, E).",
            "Clamp the token count from below (1e-9) before dividing; then divide each row by its Euclidean "
            "norm (F.normalize along the last axis).",
        ),
        misconceptions=(
            Misconception(
                "CLS pooling",
                "all-MiniLM-L6-v2 was trained with mean pooling, and its pipeline averages the vectors of all the "
                "real tokens; the first token's ([CLS]) vector alone is a different vector.",
                _pool_variant("cls"),
            ),
            Misconception(
                "padding included in the mean",
                "Padded positions are not part of the sentence; averaging over all T positions makes a sentence's "
                "embedding depend on how long the other sentences of its batch are.",
                _pool_variant("padding"),
            ),
            Misconception(
                "missing normalisation",
                "The model's last module scales every embedding to unit length, so that the dot product of two "
                "embeddings is their cosine similarity; the raw mean has an arbitrary length.",
                _pool_variant("none"),
            ),
        ),
    ),
    Question(
        id="17.3", sheet=SHEET, title="Cosine similarity and top-k retrieval", func_name="retrieve", points=2,
        reference=retrieve_reference, make_cases=_retrieve_cases, kind="implement",
        hints=(
            "Semantic search ranks passages by the cosine of the angle between the query's vector and each "
            "passage's vector: the dot product of the two vectors after scaling each to length 1.",
            "queries (Q, E) and corpus (N, E) give a (Q, N) similarity matrix; for each query keep the k largest "
            "entries, best first, with their column indices: two (Q, k) tensors.",
            "Normalise the rows of both matrices, multiply one by the transpose of the other, then torch.topk "
            "along dim=1.",
        ),
        misconceptions=(
            Misconception(
                "dot product without normalisation",
                "A raw dot product grows with the length of the passage's vector, so long vectors win whatever "
                "their direction; the cosine compares directions only.",
                _retrieve_variant("dot"),
            ),
            Misconception(
                "the k least similar",
                "Retrieval returns the passages most similar to the query, the largest cosines first.",
                _retrieve_variant("least"),
            ),
            Misconception(
                "only the query normalised",
                "Scaling the query does not change the ranking; it is the passages' lengths that bias a dot "
                "product, so both sides must be scaled to unit length.",
                _retrieve_variant("query_only"),
            ),
        ),
    ),
    Question(
        id="17.4", sheet=SHEET, title="Debug one BERT encoder layer", func_name="bert_layer", points=2,
        reference=bert_layer_reference, make_cases=_bert_cases, call=_bert_call, kind="debug", atol=1e-9,
        hints=(
            "BERT places each LayerNorm after the residual sum (post-norm): the sublayer sees the un-normalised "
            "input and the sum is normalised. And a padded position must receive no attention from any query.",
            "The attention scores are (B, h, T, T) with the keys on the last axis; the mask (B, T) marks real "
            "tokens with 1. Compare where the listing calls its LayerNorm with where the residual is added.",
            "Run the listing on a batch whose second sentence is shorter and change a padded token of it: the "
            "outputs at the real positions must not move. Then check the order of sublayer, residual and norm.",
        ),
        misconceptions=(
            Misconception(
                "pre-norm instead of BERT's post-norm",
                "BERT and all-MiniLM-L6-v2 normalise after each residual sum (LN(x + sublayer(x))); the pre-norm "
                "form of GPT-2 (x + sublayer(LN(x))) is a different function, and the checkpoint's weights were "
                "trained for the post-norm one.",
                _bert_variant(pre_norm=True, ignore_padding=False),
            ),
            Misconception(
                "padding keys attended",
                "Without the padding mask the real tokens attend to the padded positions, so an embedding depends "
                "on how much padding its batch needed; a padded key must get weight exactly 0 (score minus "
                "infinity before the softmax).",
                _bert_variant(pre_norm=False, ignore_padding=True),
            ),
            Misconception(
                "both planted bugs left in",
                "The listing has two independent bugs, one in where it normalises and one in what each query may "
                "attend to; fixing either alone still changes the output.",
                _bert_variant(pre_norm=True, ignore_padding=True),
            ),
        ),
    ),
    Question(
        id="17.5", sheet=SHEET, title="Predict the parameters of a BERT-style encoder",
        func_name="bert_parameter_count", points=1, reference=bert_parameter_count, make_cases=_count_cases,
        call=_count_call, kind="predict", rtol=0.0, atol=0.5,
        hints=(
            "List every learned tensor: the three embedding tables and their LayerNorm, then per layer the "
            "attention's projections, the feed-forward network and the two LayerNorms, then the pooler.",
            "A Linear layer from a to b has a * b weights and b biases; a LayerNorm of width E has a gain and a "
            "bias, 2 E values; an embedding table has one row of width E per entry.",
            "Write the count of one layer as a function of E and I, multiply by the number of layers, and add "
            "the embeddings and the pooler; compare with 22.7 M for all-MiniLM-L6-v2.",
        ),
        misconceptions=(
            Misconception(
                "biases forgotten",
                "Every dense layer of BERT has a bias vector, one per output: the query, key, value and output "
                "projections, the two feed-forward layers and the pooler.",
                _count_variant(biases=False),
            ),
            Misconception(
                "LayerNorms forgotten",
                "Each LayerNorm learns a gain and a bias of width E: one after the embeddings and two in every "
                "layer.",
                _count_variant(norms=False),
            ),
            Misconception(
                "position and token-type embeddings forgotten",
                "BERT adds a learned position embedding (one row per position up to the maximum length) and a "
                "token-type embedding to each word embedding; both are tables of parameters.",
                _count_variant(positions=False),
            ),
        ),
    ),
]
