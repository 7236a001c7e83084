# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 17 · Exercises: a sentence encoder from its parts
#
# Student sheet: <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/exercises/17_capstone.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
# · with solutions: [solutions/17_capstone.ipynb](https://colab.research.google.com/github/nn-from-scratch/course/blob/main/solutions/17_capstone.ipynb)
#
# Five exercises on the capstone lecture `notebooks/17_capstone.ipynb`, one per stage of the
# pipeline that turns a sentence into the vector of all-MiniLM-L6-v2: **WordPiece** splits a word
# into pieces of a vocabulary, the encoder's layers (one **BERT layer** to debug: it runs, and is
# still not BERT's), the **sentence embedding** (a mean over the real tokens, then unit length),
# **retrieval** by cosine similarity, and a **prediction**: how many parameters such an encoder
# has. Nothing here loads the 90 MB model: the questions use tiny vocabularies and small random
# weights, and the last cells assemble a tiny encoder from your functions.
#
# Replace each `raise NotImplementedError(...)` with your code and run the `check(...)` cell below
# it: it compares your function with the course's reference on several inputs (a word with no
# possible split, a sentence of one token, no padding at all, k equal to the corpus size, one
# head of width 1) and reports the first mismatch. When your answer looks like a typical mistake,
# the check names it and says which idea it gets wrong; each further failure shows one more hint,
# and `hint("17.2")` (with any question's number) asks for the next hint without running the
# check. Use plain Python and tensor operations, not `course_lib.wordpiece`, `course_lib.minilm`
# or `course_lib.search`: the point is to write them yourself. Tensors are `float64`.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import math

import torch
import torch.nn.functional as F

from course_lib.check import check, hint, use
from course_lib.device import seed_everything

seed_everything(0)
torch.set_num_threads(1)  # small tensors: one thread is faster

# %% [markdown]
# ## 17.1 WordPiece on one word (1 point)
#
# BERT's tokeniser first splits a text into words (lower-cased, accents stripped, punctuation
# apart), then cuts each word into pieces of a fixed vocabulary with **WordPiece**: starting at
# the beginning of the word, take the **longest** prefix of the rest that is in the vocabulary,
# then continue after it. A piece that does not start the word is a different vocabulary entry,
# written with the prefix `##` (`"##able"`, not `"able"`). If at some position no piece
# matches, the whole word becomes the single token `"[UNK]"`; so does a word longer than
# `max_chars` characters (100 in BERT). With the vocabulary `BASE_VOCAB` below, `"unaffable"`
# becomes `["un", "##aff", "##able"]`.
#
# Write `wordpiece(word, vocab, max_chars=100)`: `word` is a lower-case word without spaces,
# `vocab` a set of strings (it contains `"[UNK]"`); return the list of pieces.

# %%
from course_lib.questions.ch17_capstone import BASE_VOCAB

print(f"{len(BASE_VOCAB)} entries: {' '.join(BASE_VOCAB)}")


# %%
def wordpiece(word: str, vocab: set, max_chars: int = 100) -> list:
    """A word -> its WordPiece pieces (greedy longest match first, '##' on continuations), or ['[UNK]']."""
    ### BEGIN SOLUTION 17.1
    if len(word) > max_chars:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):  # the longest candidate first
            candidate = word[start:end] if start == 0 else "##" + word[start:end]
            if candidate in vocab:
                break
        else:  # no piece of the vocabulary starts here
            return ["[UNK]"]
        pieces.append(candidate)
        start = end
    return pieces
    ### END SOLUTION


# %%
check("17.1", wordpiece)

# %% [markdown]
# Your tokeniser (or the reference's) on a few words: frequent words stay whole, rarer ones fall
# into pieces, and one letter missing from the vocabulary makes the whole word unknown.

# %%
split_word = use("17.1", wordpiece)
vocab_set = set(BASE_VOCAB)
word_pieces = {w: split_word(w, vocab_set) for w in ("played", "playing", "plays", "tokenizer", "affable", "playzing")}
for w, pieces in word_pieces.items():
    print(f"{w:10s} -> {pieces}")

# %% [markdown]
# ## 17.2 The sentence embedding: masked mean, then normalise (1 point)
#
# The encoder gives one vector per token: `hidden` of shape $(B, T, E)$ for a batch of $B$
# sentences padded to $T$ tokens, with `mask` $(B, T)$ equal to 1 at real tokens and 0 at
# padding. all-MiniLM-L6-v2 turns them into one vector per sentence by a **mean over the real
# tokens** followed by **L2 normalisation**:
#
# $$u_b = \frac{\sum_{t} m_{bt}\, h_{bt}}{\max\!\big(\sum_t m_{bt},\ 10^{-9}\big)} \in \mathbb{R}^{E},
# \qquad e_b = \frac{u_b}{\max(\lVert u_b \rVert_2,\ 10^{-12})} .$$
#
# Write `sentence_embedding(hidden, mask)` returning $e$ of shape $(B, E)$ (`mask` is `int64`).

# %%
def sentence_embedding(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """hidden (B, T, E), mask (B, T) of 0/1 -> (B, E): the mean over the real tokens, at unit length."""
    ### BEGIN SOLUTION 17.2
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    mean = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    return F.normalize(mean, dim=-1)
    ### END SOLUTION


# %%
check("17.2", sentence_embedding)

# %% [markdown]
# Why the mask matters: the same sentence of 3 tokens embedded alone and in a batch where it is
# padded to 8 tokens (the padded positions hold whatever the encoder computed there) must give
# the same vector.

# %%
embed = use("17.2", sentence_embedding)
gen = torch.Generator().manual_seed(3)
tokens = torch.randn(1, 3, 6, generator=gen, dtype=torch.float64)
padded = torch.cat([tokens, torch.randn(1, 5, 6, generator=gen, dtype=torch.float64)], dim=1)
alone = embed(tokens, torch.ones(1, 3, dtype=torch.int64))
in_batch = embed(padded, torch.tensor([[1, 1, 1, 0, 0, 0, 0, 0]]))
padding_gap = float((alone - in_batch).abs().max())
print(f"alone vs padded to 8: max difference {padding_gap:.1e}; norm {float(alone.norm()):.6f}")

# %% [markdown]
# ## 17.3 Cosine similarity and top-k retrieval (2 points)
#
# Semantic search embeds the passages once, embeds each query, and returns the passages whose
# vectors point in the direction closest to the query's: the largest **cosine similarity**
#
# $$S_{qj} = \frac{a_q \cdot c_j}{\lVert a_q\rVert\,\lVert c_j\rVert}, \qquad a \in
# \mathbb{R}^{Q\times E}\ \text{(queries)},\ c \in \mathbb{R}^{N\times E}\ \text{(passages)} .$$
#
# Write `retrieve(queries, corpus, k)` returning `(scores, indices)`, both $(Q, k)$: for each
# query the $k$ largest similarities, best first, and the indices of their passages in the
# corpus (`int64`). The vectors are not normalised (the check's have very different lengths);
# no row is zero, and no two scores of a query are equal.

# %%
def retrieve(queries: torch.Tensor, corpus: torch.Tensor, k: int) -> tuple:
    """queries (Q, E), corpus (N, E), 1 <= k <= N -> (scores (Q, k), indices (Q, k)): the k most similar
    passages by cosine similarity, best first."""
    ### BEGIN SOLUTION 17.3
    similarity = F.normalize(queries, dim=1) @ F.normalize(corpus, dim=1).T  # (Q, N)
    scores, indices = torch.topk(similarity, k, dim=1)
    return scores, indices
    ### END SOLUTION


# %%
check("17.3", retrieve)

# %% [markdown]
# ## 17.4 Debug one BERT encoder layer (2 points)
#
# A layer of BERT (and of all-MiniLM-L6-v2, six of them) is a **post-norm** Transformer encoder
# layer: for $x \in \mathbb{R}^{B\times T\times E}$,
#
# $$x' = \operatorname{LN}_1\big(x + \operatorname{MHA}(x)\big), \qquad
# \operatorname{out} = \operatorname{LN}_2\big(x' + W_2\, \operatorname{GELU}(W_1 x' + b_1) + b_2\big),$$
#
# with exact GELU and LayerNorm $\varepsilon = 10^{-12}$. The multi-head self-attention
# ($h$ heads of width $d = E/h$, scores scaled by $1/\sqrt{d}$) must not look at padding: a key
# whose mask is 0 gets weight 0 from every query. The parameters are a dict named as in BERT's
# checkpoints (`attention.self.query.weight` $(E, E)$, ..., `intermediate.dense.weight`
# $(I, E)$, `output.dense.weight` $(E, I)$, `attention.output.LayerNorm.weight` for
# $\operatorname{LN}_1$ and `output.LayerNorm.weight` for $\operatorname{LN}_2$, each with its
# bias; a Linear computes $u W^\top + b$). A colleague wrote the layer; it runs, yet it does not
# compute BERT's layer:

# %%
def buggy_bert_layer(x, mask, params, num_heads):
    """x (B, T, E), mask (B, T) of 0/1, params named like BERT's -> (B, T, E)."""
    B, T, E = x.shape
    h, d = num_heads, E // num_heads

    def linear(u, name):
        return u @ params[f"{name}.weight"].T + params[f"{name}.bias"]

    def layer_norm(u, name):
        return F.layer_norm(u, (E,), params[f"{name}.LayerNorm.weight"], params[f"{name}.LayerNorm.bias"], 1e-12)

    def heads(t):  # (B, T, E) -> (B, h, T, d)
        return t.reshape(B, T, h, d).transpose(1, 2)

    def self_attention(u):
        q, k, v = (heads(linear(u, f"attention.self.{n}")) for n in ("query", "key", "value"))
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)
        return linear((weights @ v).transpose(1, 2).reshape(B, T, E), "attention.output.dense")

    def feed_forward(u):
        return linear(F.gelu(linear(u, "intermediate.dense")), "output.dense")

    x = x + self_attention(layer_norm(x, "attention.output"))
    return x + feed_forward(layer_norm(x, "output"))


# %% [markdown]
# Find the bugs (run it on a batch whose second sentence is shorter, change a padded token, and
# watch the real positions) and write the repaired `bert_layer` with the same signature. The
# check compares it with the course's reference (itself tested against the `BertLayer` of
# Hugging Face `transformers`) on small random weights in float64.

# %%
def bert_layer(x, mask, params, num_heads):
    """x (B, T, E), mask (B, T) of 0/1, params named like BERT's -> (B, T, E): one post-norm BERT layer."""
    ### BEGIN SOLUTION 17.4
    B, T, E = x.shape
    h, d = num_heads, E // num_heads

    def linear(u, name):
        return u @ params[f"{name}.weight"].T + params[f"{name}.bias"]

    def layer_norm(u, name):
        return F.layer_norm(u, (E,), params[f"{name}.LayerNorm.weight"], params[f"{name}.LayerNorm.bias"], 1e-12)

    def heads(t):  # (B, T, E) -> (B, h, T, d)
        return t.reshape(B, T, h, d).transpose(1, 2)

    def self_attention(u):
        q, k, v = (heads(linear(u, f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, h, T, T), keys last
        scores = scores.masked_fill(mask[:, None, None, :] == 0, -math.inf)  # padded keys get weight 0
        weights = torch.softmax(scores, dim=-1)
        return linear((weights @ v).transpose(1, 2).reshape(B, T, E), "attention.output.dense")

    def feed_forward(u):
        return linear(F.gelu(linear(u, "intermediate.dense")), "output.dense")

    x = layer_norm(x + self_attention(x), "attention.output")  # post-norm: normalise the residual sum
    return layer_norm(x + feed_forward(x), "output")
    ### END SOLUTION


# %%
check("17.4", bert_layer)

# %% [markdown]
# ## 17.5 Predict the parameters of a BERT-style encoder (1 point)
#
# A BERT-style encoder has three embedding tables (words: `vocab_size` rows; positions:
# `max_positions` rows; token types: `type_vocab_size` rows; each of width $E$ = `hidden`)
# followed by a LayerNorm; then `num_layers` layers as in 17.4 (four $E\times E$ projections,
# a feed-forward network $E \to I \to E$ with $I$ = `intermediate`, two LayerNorms; every Linear
# with a bias); and a **pooler**, one more Linear $E \to E$ with a bias, which the checkpoint
# of all-MiniLM-L6-v2 holds although mean pooling never uses it. **Before counting anything**,
# derive the number of parameters and return it (an `int`). all-MiniLM-L6-v2 has $V = 30522$,
# 512 positions, 2 token types, $E = 384$, 6 layers and $I = 1536$.

# %%
def bert_parameter_count(vocab_size: int, max_positions: int, type_vocab_size: int, hidden: int,
                         num_layers: int, intermediate: int) -> int:
    """The parameters of a BERT-style encoder with its pooler."""
    ### BEGIN SOLUTION 17.5
    E, I = hidden, intermediate
    embeddings = (vocab_size + max_positions + type_vocab_size) * E + 2 * E  # three tables and a LayerNorm
    attention = 4 * (E * E + E) + 2 * E  # query, key, value, output; LayerNorm 1
    feed_forward = (E * I + I) + (I * E + E) + 2 * E  # two Linears; LayerNorm 2
    return embeddings + num_layers * (attention + feed_forward) + E * E + E  # the pooler
    ### END SOLUTION


# %%
check("17.5", bert_parameter_count)

# %% [markdown]
# Where the parameters of all-MiniLM-L6-v2 sit, by your count (or the reference's): with a
# vocabulary of 30,522 word pieces, the word embeddings alone are about half of the model.

# %%
count = use("17.5", bert_parameter_count)
minilm_total = count(30522, 512, 2, 384, 6, 1536)
no_words = count(0, 512, 2, 384, 6, 1536)
print(f"all-MiniLM-L6-v2: {minilm_total:,} parameters; the word embeddings {minilm_total - no_words:,} "
      f"({(minilm_total - no_words) / minilm_total:.0%}); one layer {count(0, 0, 0, 384, 1, 1536) - count(0, 0, 0, 384, 0, 1536):,}")

# %% [markdown]
# ## Putting them to work
#
# A tiny encoder assembled from your functions (or the references, where yours do not pass yet):
# your WordPiece splits five short texts with `BASE_VOCAB`, a random embedding table and two of
# your BERT layers (random weights, $E = 16$, 4 heads) encode them, your pooling makes one vector
# per text and your retrieval ranks the texts for the first one. The weights are random, so the
# ranking means nothing yet; with the trained weights of the lecture the same code is a semantic
# search. The last line checks the property the mask guarantees: the first text's vector is the
# same alone and in the padded batch.

# %%
from course_lib.questions.ch17_capstone import bert_params

layer = use("17.4", bert_layer)
find = use("17.3", retrieve)
texts = ["playing", "played tokens", "unaffable player", "tokenizers played", "a token"]
ids_of = {piece: i for i, piece in enumerate(BASE_VOCAB)}
token_ids = [[ids_of[p] for w in text.split() for p in split_word(w, vocab_set)] for text in texts]
T_max = max(len(ids) for ids in token_ids)
ids = torch.tensor([ids + [ids_of["[PAD]"]] * (T_max - len(ids)) for ids in token_ids])
mask = torch.tensor([[1] * len(ids) + [0] * (T_max - len(ids)) for ids in token_ids])
gen = torch.Generator().manual_seed(4)
table = torch.randn(len(BASE_VOCAB), 16, generator=gen, dtype=torch.float64)
layers = [bert_params(gen, 16, 64) for _ in range(2)]


def tiny_encode(ids, mask):
    """ids, mask (B, T) -> (B, 16) unit vectors, with your layers and pooling."""
    x = table[ids]
    for params in layers:
        x = layer(x, mask, params, 4)
    return embed(x, mask)


vectors = tiny_encode(ids, mask)
scores, order = find(vectors[:1], vectors, 3)
for text, ids_ in zip(texts, token_ids):
    print(f"{text!r:22s} -> {len(ids_)} token(s)")
print("closest to", repr(texts[0]), ":", [(texts[int(j)], round(float(s), 3)) for s, j in zip(scores[0], order[0])])
alone_gap = float((tiny_encode(ids[:1, : len(token_ids[0])], mask[:1, : len(token_ids[0])]) - vectors[:1]).abs().max())
print(f"first text alone vs in the padded batch: max difference {alone_gap:.1e}")
