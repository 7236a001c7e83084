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
# # 15 · Serving a model
#
# <a href="https://colab.research.google.com/github/nn-from-scratch/course/blob/main/notebooks/15_serving.ipynb" target="_parent"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# A trained model is useful once other programs can ask it questions. **Serving** means running it
# behind a network interface that many clients call at once, and then caring about what they
# experience: how long one answer takes (**latency**, and above all the latency of the slow
# requests), how many answers per second the machine gives (**throughput**), and what happens
# when a request is malformed or too many arrive. This chapter serves chapter 13's small GPT over
# HTTP with `course serve`'s own code, measures latency percentiles and throughput against the
# number of concurrent clients with and without **dynamic batching**, explains the trade-off with a
# small simulation, shows how generation servers batch token by token (**continuous batching**),
# and measures four ways of making inference cheaper: the KV cache, the batch size, int8 weights
# and threads. Everything runs on this machine, on the loopback interface: nothing leaves it.

# %% tags=["setup"]
# Setup. On Colab this installs course_lib from the course repository (Colab keeps its own
# torch and ipywidgets); everywhere else it does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", "install --quiet git+https://github.com/nn-from-scratch/course")

# %%
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import gpt, inference, text
from course_lib.compare import compare
from course_lib.device import seed_everything
from course_lib.serving import batching, simulate
from course_lib.serving.app import create_app
from course_lib.serving.loadgen import run_load
from course_lib.serving.models import GPTServable, train_gpt_servable
from course_lib.serving.server import Server
from course_lib.serving.stats import latency_summary, percentile
from course_lib.show import record, show_source
from course_lib.widgets.batching import SERVICE_MODELS, BatchingExplorer

gen = seed_everything(0)
torch.set_num_threads(1)  # one thread for the model: the server's other threads and the clients share the CPU
print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores visible")
NOTEBOOK_START = time.perf_counter()

# %% [markdown]
# ## 1. What a request goes through, and how to measure it
#
# One generation request to the server of this chapter travels this path:
#
# ```
# client --HTTP POST /generate {"prompt": ...}--> server: parse and validate the JSON  (bad -> 4xx at once)
#        --> bounded queue (full -> 503 at once) --> batcher: wait for company, up to max_batch / max_wait_ms
#        --> model thread: run_batch([requests]) --> reply (JSON, or one line per token when streamed)
# ```
#
# Its **latency** is the sum of the waits and the work along the path: parsing, waiting in the
# queue, waiting for a batch to fill, computing, sending. Latencies of many requests form a
# distribution with a long right tail, so a service is described by **percentiles**, not by the
# mean: the p95 is the latency that 95 % of the requests do not exceed; one user in twenty waits
# longer. With the $n$ measured latencies sorted, $x_{(0)} \le \dots \le x_{(n-1)}$, the
# $q$-th percentile sits at the fractional rank $r = (n-1)\,q/100$ and interpolates between its
# neighbours,
#
# $$P_q = x_{(\lfloor r\rfloor)} + (r - \lfloor r\rfloor)\,\big(x_{(\lfloor r\rfloor+1)} - x_{(\lfloor r\rfloor)}\big),$$
#
# NumPy's default ("linear") definition. `percentile` computes exactly that:

# %%
show_source(percentile)

# %%
samples = np.random.default_rng(0).lognormal(mean=3.0, sigma=0.6, size=1001)  # a long right tail, in ms
for q in (50, 95, 99):
    compare(f"p{q} of 1,001 samples vs numpy.percentile", torch.tensor(percentile(samples, q), dtype=torch.float64),
            torch.tensor(np.percentile(samples, q), dtype=torch.float64), atol=1e-9)
s = latency_summary(samples)
print(f"mean {s['mean']:.1f} ms, p50 {s['p50']:.1f} ms, p95 {s['p95']:.1f} ms, p99 {s['p99']:.1f} ms: "
      f"the mean says little about the slowest one request in twenty")

# %% [markdown]
# ## 2. The model to serve, and batched generation
#
# `train_gpt_servable` trains chapter 13's character GPT ($E = 64$, 4 heads, 2 blocks, context 64)
# for 100 AdamW steps on the CPython help texts (seeded; the time is printed) and wraps it in a `GPTServable`:
# an object that checks one request (`validate`) and answers a **batch** of them (`run_batch`).
# Prompts of different lengths cannot share one $(B, T)$ tensor without padding, so `run_batch`
# groups the requests by prompt length and decodes each group as one batch with the KV cache,
# each request with its own temperature, top-k and random generator:

# %%
t0 = time.perf_counter()
servable = train_gpt_servable(steps=100, seed=0, progress=False)
model, vocab = servable.model, servable.vocab
print(f"E = {model.embed_dim}, {model.num_heads} heads, {model.num_layers} blocks, context {model.context}: "
      f"{sum(p.numel() for p in model.parameters()):,} parameters, V = {vocab.size} characters, "
      f"trained in {time.perf_counter() - t0:.1f} s")
show_source(GPTServable.run_batch)

# %% [markdown]
# A batch must answer each request as if it ran alone. Greedy decoding of four prompts, alone and as
# one batch (two of the prompts have the same length, so they share a decoding batch):

# %%
prompts = ["The for statement", "A class definition", "Exceptions are ", "The if statement "]
requests = [servable.validate({"kind": "generate", "prompt": p, "max_new_tokens": 24, "temperature": 0})
            for p in prompts]
together = servable.run_batch(requests)
alone = [servable.run_batch([r])[0] for r in requests]
for r, a, b in zip(requests, alone, together):
    print(f"{r['prompt']!r:22} -> {b['text']!r}  same alone: {a['text'] == b['text']}")

# %% [markdown]
# Trained for seconds, the model is weak (greedy decoding soon repeats a frequent word; chapter 13
# trained longer), but every request gets the same text alone and in the batch, which is what a
# server must guarantee.
#
# ## 3. A real HTTP server in the notebook
#
# `create_app` builds a FastAPI application and `Server` runs it with uvicorn in a background thread on a free loopback port, the same code as
# `course serve` on the command line (`course serve --help`). Endpoints: `GET /health`,
# `POST /generate` with a JSON body, and with `"stream": true` one JSON object per generated token
# (newline-delimited JSON) followed by a final `{"done": true, ...}`.

# %%
server = Server(create_app(servable, batching=True, max_batch=16, max_wait_ms=5.0)).start()
client = httpx.Client(base_url=server.url, timeout=30.0, trust_env=False)
health = client.get("/health").json()
print(server.url, "->", {k: health[k] for k in ("status", "models", "batching", "max_batch", "max_wait_ms")})
reply = client.post("/generate", json={"prompt": "The for statement", "max_new_tokens": 40, "temperature": 0})
print(reply.status_code, json.dumps({k: reply.json()[k] for k in ("text", "n_tokens", "finish_reason")}))

# %% [markdown]
# Streaming sends each token as soon as it is computed. The client reads the lines as they arrive;
# the **time to the first token** is what a user of a chat interface perceives as responsiveness:

# %%
t0 = time.perf_counter()
lines = []
with client.stream("POST", "/generate", json={"prompt": "A class definition", "max_new_tokens": 40,
                                              "temperature": 0.8, "top_k": 10, "seed": 1, "stream": True}) as r:
    for line in r.iter_lines():
        lines.append((time.perf_counter() - t0, json.loads(line)))
print("first lines:", [event for _, event in lines[:3]])
print("last line:  ", {k: lines[-1][1][k] for k in ("done", "text", "n_tokens")})
print(f"{len(lines) - 1} tokens: first after {1000 * lines[0][0]:.1f} ms, all after {1000 * lines[-1][0]:.1f} ms")

# %% [markdown]
# ## 4. Dynamic batching: the policy, and what it costs and buys
#
# A batch of $b$ requests costs less than $b$ separate runs: the weights are read once per step and
# the matrix products are larger. On this model, the time to answer $b$ requests of 16 tokens in one
# `run_batch` call (prompts of equal length, measured in-process, no HTTP):

# %%
def batch_ms(b, n_tokens=16, repeats=3):
    reqs = [servable.validate({"kind": "generate", "prompt": "The for statement", "max_new_tokens": n_tokens,
                               "temperature": 0})] * b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        servable.run_batch(reqs)
        times.append(time.perf_counter() - t0)
    return 1000 * sorted(times)[len(times) // 2]


sizes = [1, 4, 16]
cost = {b: batch_ms(b) for b in sizes}
for b in sizes:
    print(f"batch {b:2d}: {cost[b]:6.1f} ms for the batch, {cost[b] / b:5.2f} ms per request, "
          f"{16 * b / cost[b] * 1000:6.0f} tokens/s")
per_item, fixed = np.polyfit(sizes, [cost[b] for b in sizes], 1)
print(f"least-squares fit: a batch of b costs about {fixed:.1f} + {per_item:.2f}·b ms")
gain_16 = record("GPT (16 tokens): tokens/s of one run_batch, batch 16 vs batch 1", cost[1] * 16 / cost[16], "x", ".1f")

# %% [markdown]
# The fixed part of the cost (Python, per-operation overhead, reading the weights) is paid once per
# batch; the part per request is small. Batching therefore raises throughput, but only if requests
# are there to be batched, and a request that **waits** for company is answered later. The server's
# batcher applies one rule, a pure function of the queue:
#
# $$\text{flush} \iff \text{queue\_len} \ge \text{max\_batch} \;\lor\; (\text{queue\_len} > 0 \land
#   \text{oldest\_wait} \ge \text{max\_wait}),$$
#
# and only when the model thread is free. `simulate.simulate_batching` plays the same rule on a
# list of arrival times without any clock or thread (it equals a millisecond-by-millisecond
# simulation that calls `should_flush`; `tests/test_serving_sim.py` checks it):

# %%
show_source(batching.should_flush, simulate.simulate_batching)

# %% [markdown]
# With the cost model just fitted, 2,000 requests arriving at random (a Poisson process) at a
# modest and at a high rate, served one by one (`max_batch = 1`) or batched (up to 16, waiting at
# most 5 ms):

# %%
service = lambda b: fixed + per_item * b  # noqa: E731 - the measured cost of a batch, ms
capacity_1 = 1000 / service(1)
print(f"one at a time, the worker can answer at most {capacity_1:.0f} requests/s")
for rate in (0.5 * capacity_1, 2.0 * capacity_1):
    arrivals = simulate.poisson_arrivals(rate, 2000, seed=0)
    for label, mb in (("unbatched", 1), ("batched  ", 16)):
        runs = simulate.simulate_batching(arrivals, service, max_batch=mb, max_wait_ms=5.0)
        lat = latency_summary(simulate.latencies_from_simulation(arrivals, runs))
        print(f"{rate:5.0f} req/s offered, {label}: p50 {lat['p50']:7.1f} ms, p99 {lat['p99']:7.1f} ms, "
              f"mean batch {2000 / len(runs):4.1f}")

# %% [markdown]
# At the low rate, compare p50 and p99: batching adds up to `max_wait_ms` to a request that waits
# for company, but it can shorten the tail, because random arrivals come in bursts and a burst is
# served together. Past the unbatched capacity, requests arrive faster than one-at-a-time service can answer them, the queue
# grows without bound and so do the latencies, while batching keeps up. The real server, measured
# with the load generator: `run_load` keeps $c$ requests in flight from an asynchronous HTTP client
# (each client sends its next request when the previous one is answered), for 1, 8 and 32 concurrent
# clients, with batching on and off (a second server). Each request asks for 12 greedy tokens.

# %%
def make_request(i):
    return "/generate", {"prompt": prompts[i % len(prompts)], "max_new_tokens": 12, "temperature": 0}


LOADS = {1: 8, 8: 24, 32: 64}  # concurrency -> number of requests
results = {}
servers = {"batched": server, "unbatched": Server(create_app(servable, batching=False)).start()}
for c, n in LOADS.items():
    for label, srv in servers.items():  # alternate the two servers, so that a slow moment of the machine hits both
        report = run_load(srv.url, make_request, n_requests=n, concurrency=c, time_limit_s=20.0)
        results[label, c] = (report, latency_summary([1000 * x for x in report.latencies_s]))
servers["unbatched"].stop()
print(f"{'':10s}{'clients':>8s}{'sent':>6s}{'ok':>5s}{'req/s':>8s}{'tokens/s':>10s}{'p50 ms':>9s}{'p95 ms':>9s}"
      f"{'p99 ms':>9s}{'c/throughput':>14s}{'mean':>7s}")
for (label, c), (report, lat) in sorted(results.items(), key=lambda kv: kv[0][0]):
    print(f"{label:10s}{c:8d}{report.n_sent:6d}{report.n_ok:5d}{report.requests_per_s:8.1f}{report.tokens_per_s:10.0f}"
          f"{lat['p50']:9.1f}{lat['p95']:9.1f}{lat['p99']:9.1f}{1000 * c / report.requests_per_s:14.1f}{lat['mean']:7.1f}")
for label in ("batched", "unbatched"):
    for c in LOADS:
        report, lat = results[label, c]
        record(f"serving GPT on loopback, {label}, concurrency {c}: throughput", report.requests_per_s, "requests/s", ".1f")
        record(f"serving GPT on loopback, {label}, concurrency {c}: p95 latency", lat["p95"], "ms", ".0f")
ratio = record("serving GPT: batched / unbatched throughput at concurrency 32",
               results["batched", 32][0].requests_per_s / results["unbatched", 32][0].requests_per_s, "x", ".2f")

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
cs = list(LOADS)
for label, style in (("batched", "-o"), ("unbatched", "--s")):
    ax1.plot(cs, [results[label, c][0].requests_per_s for c in cs], style, label=label)
    for q, color in ((50, "C2"), (95, "C1"), (99, "C3")):
        ax2.plot(cs, [results[label, c][1][f"p{q}"] for c in cs], style, color=color, label=f"{label} p{q}")
for ax, ylabel in ((ax1, "requests per second"), (ax2, "latency (ms)")):
    ax.set_xscale("log", base=2)
    ax.set_xticks(cs, [str(c) for c in cs])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel(ylabel)
ax2.set_yscale("log")
ax1.legend()
ax2.legend(fontsize=7, ncol=2)
ax1.set_title("throughput")
ax2.set_title("latency percentiles")
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the numbers above from left to right. With **one client** there is never anyone to batch
# with: both servers answer one request at a time, the batched one up to `max_wait_ms` = 5 ms later
# (its oldest-wait rule); compare the two rows at one client, where any larger gap is the noise of
# a shared machine. As the
# clients multiply, the **unbatched** server's throughput first rises (with one client the model
# idles while the reply travels and the next request is parsed; with several, that work overlaps
# the model's) and then levels off once its model thread is never idle (compare 8 and 32 clients):
# from then on every extra client only lengthens the queue, and latency grows in proportion to the
# number of clients. In a closed loop of $c$ clients, each sending its next request when answered,
# Little's law (mean number in the system = throughput × mean time in it) gives a mean latency of
# $c / \text{throughput}$ while all $c$ are in flight; the last two columns of the table compare it
# with the measured mean, which is lower because these short runs (two requests per client at 32)
# end with fewer than $c$ requests in flight. The **batched** server turns the queue into larger batches,
# answers more requests per second (the ratio at 32 clients is recorded above) and keeps latency
# lower, because the fixed cost of a decoding step is shared. The price of batching is paid at low
# load (up to `max_wait_ms` of waiting) and in the tail: a request that arrives just after a batch
# started waits for that whole batch. On this 2-core machine the clients, the event loop and the
# model share the same cores, so the absolute numbers are modest; the shape is what matters.
#
# ## 5. Bad input and overload
#
# A server must answer every request, including wrong ones, with a clear message and without
# falling over. Malformed JSON, an empty prompt, a wrong type and too many tokens asked get a 4xx
# reply with a `detail` that says what was expected:

# %%
bad = [("malformed JSON", b'{"prompt": "The", '), ("empty prompt", {"prompt": ""}),
       ("wrong type", {"prompt": "The", "max_new_tokens": "ten"}),
       ("too many tokens", {"prompt": "The", "max_new_tokens": 100_000})]
for label, body in bad:
    kwargs = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) else {"json": body}
    r = client.post("/generate", **kwargs)
    print(f"{label:16s} -> {r.status_code} {r.json()['detail']}")

# %% [markdown]
# **Overload**: a queue without a bound turns a burst into ever-growing latency and memory. This
# server's queue is bounded; when it is full, a request is refused at once with **503 Service
# Unavailable** and a `Retry-After` header, so a client can back off instead of hanging. A server
# that batches nothing and queues at most 2 requests, under 32 concurrent clients:

# %%
small = Server(create_app(servable, batching=False, max_queue=2)).start()
burst = run_load(small.url, make_request, n_requests=64, concurrency=32, time_limit_s=20.0)
with httpx.Client(base_url=small.url, timeout=30.0, trust_env=False) as c2, ThreadPoolExecutor(16) as pool:
    replies = list(pool.map(lambda i: c2.post("/generate", json=make_request(i)[1]), range(16)))  # 16 at once
r503 = next((r for r in replies if r.status_code == 503), None)
small_counts = httpx.get(small.url + "/health", trust_env=False).json()["counts"]
small.stop()
print(f"burst of {burst.n_sent}: {burst.n_ok} answered, refused {burst.n_errors}, "
      f"malformed replies {burst.n_malformed_replies}")
print(f"16 requests at once: statuses {sorted(r.status_code for r in replies)}")
if r503 is not None:
    print(f"a refused request: {r503.status_code}, Retry-After: {r503.headers.get('retry-after')}, {r503.json()}")
print(f"server counts: {small_counts}")

# %% [markdown]
# Every request got exactly one reply: an answer or a refusal, none lost, none malformed, and the
# server kept answering afterwards (the counts above). `tests/test_serving.py` checks the same
# guarantees: a 503 with `Retry-After` at once under overload, exactly one reply per accepted request
# under concurrent load, a 4xx for each kind of bad input, and a server that survives a failing model.
# The larger burst, 1,000 valid requests mixed with 100 malformed ones, is run by `make bench`
# (`tools/bench_serve.py`), which records in `docs/benchmarks.md` that none was lost.
#
# ## 6. Continuous batching: scheduling token by token
#
# Generation is a loop of decoding steps, one token per running sequence per step, and requests want
# very different numbers of tokens. **Static** batching, as in our server, keeps a batch together
# until its longest sequence is done: a finished row is padding that still costs, and a newcomer
# waits for the whole batch. **Continuous** (iteration-level) batching, introduced by Orca (Yu et
# al., 2022), re-forms the batch at every step: finished sequences leave, waiting ones join. It is
# what large-model servers such as vLLM do (Kwon et al., 2023, who add a paged memory manager for
# the KV caches of sequences that come and go). The simulation below models only the scheduling:
# 40 requests arriving at random, each wanting between 4 and 64 tokens, on one worker that
# decodes up to 8 sequences per step, a step costing 1 time unit whatever its width (as on a GPU
# far from saturation). The comparison is like for like: both policies see the same arrivals and
# lengths, the same maximum width and the same step cost, and neither waits for company; only
# *when* a waiting request may join differs.

# %%
show_source(simulate.simulate_continuous_batching)

# %%
rng = np.random.default_rng(0)
arr = sorted(rng.uniform(0, 150, 40).round(1).tolist())
want = rng.integers(4, 65, 40).tolist()
sims = {p: simulate.simulate_continuous_batching(arr, want, max_batch=8, policy=p) for p in ("static", "continuous")}
for p, sim in sims.items():
    lat = latency_summary(sim.latencies(arr))
    ttft = latency_summary([f - a for f, a in zip(sim.first_token_ms, arr)])
    print(f"{p:10s}: {len(sim.steps):4d} steps, slots used {100 * sim.utilisation():5.1f} %, "
          f"latency p50 {lat['p50']:6.1f} p95 {lat['p95']:6.1f}, first token p50 {ttft['p50']:6.1f} (time units)")
record("continuous vs static batching (simulated, 40 requests): steps saved",
       1 - len(sims["continuous"].steps) / len(sims["static"].steps), "fraction", ".2f")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
for ax, (p, sim) in zip(axes, sims.items()):
    ax.step([s for s, _, _ in sim.steps], [len(r) for _, _, r in sim.steps], where="post", label="sequences served")
    ax.step([s for s, _, _ in sim.steps], sim.slots, where="post", ls=":", label="slots paid for")
    ax.set_title(f"{p} batching")
    ax.set_xlabel("time (steps)")
axes[0].set_ylabel("batch width")
axes[1].legend(fontsize=8, loc="lower center")
fig.tight_layout()
plt.show()

# %% [markdown]
# Static batching pays for slots that no sequence uses once the short sequences of a batch have
# finished (the gap between the two curves), and newcomers wait outside; continuous batching fills
# every slot as long as requests wait, so the same work takes fewer steps and requests start, and
# finish, sooner (numbers above). The cost is engineering: each sequence of the batch is at a
# different position, with its own KV cache, so attention must handle ragged lengths, and caches
# are allocated and freed all the time (the problem vLLM's paged memory solves).
#
# ## 7. Cheaper inference, measured
#
# Four levers on the cost of one generated token, all measured on the model being served.
#
# **The KV cache** (chapter 13): each step processes only the new token instead of the whole
# window. Greedy generation of 47 tokens after a 17-character prompt (so that it stays within the
# context of 64):

# %%
prompt_ids = vocab.encode("The for statement")
with_cache = gpt.tokens_per_second(model, prompt_ids, 47, use_cache=True)
without_cache = gpt.tokens_per_second(model, prompt_ids, 47, use_cache=False)
print(f"{with_cache:.0f} tokens/s with the cache, {without_cache:.0f} without")
kv_gain = record("served GPT: KV cache speed-up (47 tokens, context 64)", with_cache / without_cache, "x", ".2f")

# %% [markdown]
# As in chapter 13, at a context of 64 a tiny model gains little or nothing from the cache (the
# ratio above is close to 1, on either side of it from run to run): recomputing a window of at most
# 64 positions costs about as much as the cache's bookkeeping, and a step is mostly fixed
# per-operation overhead. Chapter 13 shows the cache paying off at a context of 256. **The batch size** is the larger lever here: the `run_batch` measurement of
# section 4 gives the tokens per second at each batch size (recorded there).
#
# **Int8 weights.** Dynamic quantisation stores each `nn.Linear` weight $W \in \mathbb{R}^{O\times
# I}$ as 8-bit integers with one scale per tensor,
#
# $$s = \frac{\max(|\min W|, |\max W|)}{127.5}, \qquad Q = \operatorname{clamp}\big(\operatorname{round}(W s^{-1}), -128, 127\big), \qquad \hat W = s\,Q,$$
#
# and quantises each batch of activations to 8 bits on the fly, so that the products run on
# integers. `inference.quantize_symmetric` is the weight half, from scratch; it must give the very
# integers PyTorch stores in its quantised Linear layer (`torch.ao.quantization.quantize_dynamic`,
# which torch 2.13 still ships but marks deprecated in favour of the separate `torchao` package):

# %%
show_source(inference.quantize_symmetric)

# %%
qmodel = inference.quantize_linear_layers(model)
w = model.blocks[0].fc1.weight  # (256, 64)
q_ours, s_ours = inference.quantize_symmetric(w)
q_torch, s_torch = inference.quantized_weight(qmodel.blocks[0].fc1)
compare("int8 codes of blocks[0].fc1: ours vs torch's quantised Linear", q_ours, q_torch, atol=0)
print(f"scale ours {s_ours:.6g}, torch {s_torch:.6g}; max rounding error {inference.max_rounding_error(w):.2e} "
      f"(half a step: {s_ours / 2:.2e})")

# %% [markdown]
# What it changes: the validation loss (first 10,000 validation characters in windows of 48, as in
# chapter 13), the storage, and the speed of a batch of 16 requests:

# %%
corpus = text.cpython_text()
_, val_ids, _ = text.split_ids(vocab.encode(corpus))
loss_f32 = text.evaluate_nats(model, val_ids, seq_len=48, max_chars=10_000)
loss_int8 = text.evaluate_nats(qmodel, val_ids, seq_len=48, max_chars=10_000)
record("served GPT: validation loss, float32", loss_f32, "nats/char", ".4f")
record("served GPT: validation loss, int8 Linear layers", loss_int8, "nats/char", ".4f")
print(f"change of the loss: {loss_int8 - loss_f32:+.1e} nats/char")
record("served GPT: state_dict size int8 / float32", inference.state_bytes(qmodel) / inference.state_bytes(model),
       "x", ".2f")
n_linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
print(f"Linear weights: {n_linear:,} of the {sum(p.numel() for p in model.parameters()):,} parameters: "
      f"{4 * n_linear:,} bytes in float32, {n_linear:,} bytes (+ one scale per layer) in int8")
int8_servable = GPTServable(qmodel, vocab)
req16 = [servable.validate({"kind": "generate", "prompt": "The for statement", "max_new_tokens": 8,
                            "temperature": 0})] * 16


def run_ms(sv, reqs, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sv.run_batch(reqs)
        times.append(time.perf_counter() - t0)
    return 1000 * sorted(times)[len(times) // 2]


t_f32, t_int8 = run_ms(servable, req16), run_ms(int8_servable, req16)
record("served GPT: batch of 16 x 8 tokens, int8 time / float32 time", t_int8 / t_f32, "x", ".2f")
same = sum(a["text"] == b["text"] for a, b in zip(servable.run_batch(requests), int8_servable.run_batch(requests)))
print(f"greedy continuations unchanged by int8: {same} of {len(requests)}")

# %% [markdown]
# The loss changes little (the two losses above), the Linear weights shrink to a quarter, one byte
# instead of four, and the whole state shrinks less: the embeddings, the biases and the layer norms
# stay in float32, and the file holds some per-layer metadata. Speed is
# another matter for a model this small: its matrices are $64\times 256$ at most, the integer
# kernels add the cost of quantising every activation, and a decoding step is dominated by
# per-operation overhead, so int8 is not faster here and may be slower (ratio above). The gain of
# int8 appears when the weights are large enough that reading them from memory is the bottleneck,
# as for a large model at small batch size.
#
# **Threads.** PyTorch can split one operation across cores (`torch.set_num_threads`). On this
# machine the lecture runs with one thread; the same batch of 16 with two:

# %%
torch.set_num_threads(2)
t_two = run_ms(servable, req16)
torch.set_num_threads(1)
thread_ratio = record(f"served GPT: batch of 16 x 8 tokens, 2 threads / 1 thread time ({os.cpu_count()} cores)",
                      t_two / t_f32, "x", ".2f")

# %% [markdown]
# Read the ratio printed above for what it is: with matrices this small (at most a $16\times 64$ by
# $64\times 256$ product per step) there is little work to split, each operation pays for starting
# and joining its threads, and when another core is busy (here: other programs, or in a server the
# event loop and the clients) the threads wait for each other, so a second thread barely helps and
# may make the batch *slower*. A server with many
# cores usually runs several single-threaded workers (replicas) rather than one multi-threaded one;
# threads pay off for large matrices.

# %%
client.close()
server.stop()
print(f"server stopped: {not server.running}")

# %% [markdown]
# ## 8. Explore: the batching trade-off
#
# The explorer runs the batching simulator on 1,500 Poisson arrivals for the settings you choose
# (a batch of $b$ costs `fixed + per-item·b` ms; three cost models) and shows the cumulative
# distribution of the latencies with the p50/p95/p99 lines, how many batches of each size ran, and
# a one-row table: the offered and served rates, the fraction of time the worker computes, the mean
# batch size and the percentiles. The settings suggested below, simulated first (the same
# `explorer.stats` that draws the figure):

# %%
explorer = BatchingExplorer()
cost_models = {v: k for k, v in SERVICE_MODELS}
tries = [(200, 1, 4.0, (8.0, 0.5)), (200, 2, 4.0, (8.0, 0.5)), (200, 4, 4.0, (8.0, 0.5)), (200, 16, 4.0, (8.0, 0.5)),
         (100, 16, 0.0, (8.0, 0.5)), (100, 16, 20.0, (8.0, 0.5)), (150, 16, 4.0, (0.0, 5.0)), (250, 16, 4.0, (0.0, 5.0))]
print(f"{'req/s':>6s}{'max batch':>10s}{'max wait':>9s}  {'batch cost':14s}{'served/s':>9s}{'busy':>6s}{'batch':>6s}"
      f"{'p50 ms':>9s}{'p95 ms':>9s}{'p99 ms':>9s}")
for rate, mb, wait, service in tries:
    _, _, st = explorer.stats(rate, mb, wait, service)
    print(f"{rate:6d}{mb:10d}{wait:9.0f}  {cost_models[service].split(' (')[0]:14s}{st['served_per_s']:9.0f}"
          f"{100 * st['busy']:5.0f}%{st['mean_batch']:6.1f}{st['p50']:9.1f}{st['p95']:9.1f}{st['p99']:9.1f}")

# %% [markdown]
# Things to try, with the numbers above:
#
# * At 200 requests/s with the first cost model, set max batch to 1: one request costs 8.5 ms, so
#   the worker can answer at most about 118 per second; it is busy all the time, the queue grows
#   for the whole run and the p50 reaches seconds. Max batch 2 already keeps up (a pair costs
#   9 ms), with a longer tail than larger batches give.
# * With max batch 16, raise max wait from 0 to 20 ms at 100 requests/s: the batches grow and the
#   worker computes less of the time, but every percentile grows: with little load, waiting for
#   company is mostly delay.
# * Choose "5·b ms (no fixed cost)": batching no longer buys throughput (the worker can answer
#   at most 200 requests per second whatever the batch size), so at 250 requests/s the queue grows
#   without bound, as it would unbatched.

# %%
explorer

# %%
step_ms = 1000 * explorer.time_step(repeats=5)
print(f"explorer: one step (simulation + frame) {step_ms:.0f} ms; notebook so far "
      f"{time.perf_counter() - NOTEBOOK_START:.1f} s")

# %% [markdown]
# ## Summary
#
# * Serving puts a model behind a request path: HTTP, validation, a bounded queue, a batcher, the
#   model, the reply. Describe it by throughput and latency **percentiles** (p50/p95/p99, NumPy's
#   linear definition, equal to ours to the last bit), never by the mean alone.
# * Batched generation must answer each request as if it ran alone; grouping by prompt length keeps
#   it exact without padding.
# * Dynamic batching flushes when the batch is full or its oldest request has waited `max_wait_ms`.
#   It shares the fixed cost of a step: at 32 clients the batched server answered more requests per
#   second with lower latency (ratio recorded above); at one client it only adds waiting.
#   Unbatched, throughput levels off once the worker is saturated, and latency then grows with the
#   number of clients (Little's law).
# * Bad input gets a 4xx with a clear `detail`; a full queue gets an immediate 503 with
#   `Retry-After`; every request gets exactly one reply.
# * Continuous batching re-forms the batch at every decoding step (Orca): fewer steps, no padding,
#   newcomers start sooner (simulated above).
# * Cheaper inference on a tiny model: the batch size is the big lever; the KV cache gains little or
#   nothing at context 64; int8 weights barely change the loss and shrink the Linear weights four-fold but are
#   not faster at this size; a second thread on two cores does not help.
#
# ## Exercises
#
# Open `exercises/15_serving.ipynb`.
#
# ## References
#
# * G.-I. Yu, J. S. Jeong, G.-W. Kim, S. Kim, B.-G. Chun. *Orca: A distributed serving system for
#   Transformer-based generative models.* OSDI 2022. (Iteration-level scheduling.)
# * W. Kwon, Z. Li, S. Zhuang, Y. Sheng, L. Zheng, C. H. Yu, J. E. Gonzalez, H. Zhang, I. Stoica.
#   *Efficient memory management for large language model serving with PagedAttention.* SOSP 2023,
#   arXiv:2309.06180. (vLLM.)
# * NumPy documentation: `numpy.percentile` (method "linear"). PyTorch documentation:
#   `torch.ao.quantization.quantize_dynamic`, `torch.set_num_threads`. FastAPI and uvicorn
#   documentation.

# %%
print(explorer.self_check())
