"""Benchmark `course serve` on loopback: throughput and latency against concurrency, batched vs
unbatched, and a burst of valid and malformed requests. Writes the `serving` section of
docs/benchmarks.md.

    python tools/bench_serve.py [--seconds 5] [--tokens 16] [--threads 1] [--no-write]

The server runs in a separate process (`python -m course_lib.cli serve --port 0`, the chapter 13
GPT untrained but seeded: the cost of a forward pass does not depend on the weights' values), so
the load generator does not share its interpreter. Each level of concurrency sends closed-loop
requests (`course_lib.serving.loadgen.run_load`) for `--seconds` seconds, prompts all of 8
characters asking `--tokens` greedy tokens, after a warm-up. The burst sends 1,000 valid requests
and 100 malformed ones (broken JSON, wrong types, empty or over-long prompts, unknown fields, too
many tokens) at concurrency 64 and checks: every request answered (0 lost), valid ones 200,
malformed ones 4xx, every reply a JSON object (errors with "detail"), the server alive with
accepted == answered, and its resident memory before and after.
Exit code 0 when the burst passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench  # noqa: E402  (section writer shared with tools/bench.py)

import httpx  # noqa: E402

from course_lib.serving.loadgen import run_load  # noqa: E402

PROMPTS = ["def f(x)", "class A:", "import o", "for i in", "while Tr", "return x", "if a ==b", "print(x)"]
MALFORMED: List[Any] = [b'{"prompt": "def",', b"", b"[1, 2]", {"prompt": ""}, {"prompt": 42},
                        {"prompt": "a" * 5000}, {"prompt": "def", "max_new_tokens": 10_000},
                        {"prompt": "def", "max_new_tokens": "8"}, {"prompt": "\u4e2d\u6587"},
                        {"prompt": "def", "temprature": 0.5}]


class ServerProcess:
    """`course serve` in a subprocess; the URL read from its first line of output."""

    def __init__(self, batching: bool, threads: int) -> None:
        cmd = [sys.executable, "-m", "course_lib.cli", "serve", "--port", "0", "--train-steps", "0",
               "--log-level", "warning", "--threads", str(threads)] + ([] if batching else ["--no-batching"])
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"course serve did not start: {line!r}")
        self.url = line.split()[2]
        for _ in range(600):
            try:
                if httpx.get(self.url + "/health", trust_env=False).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("course serve did not answer /health")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def health(self) -> Dict[str, Any]:
        return httpx.get(self.url + "/health", trust_env=False).json()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def sweep(server: "ServerProcess", levels: List[int], seconds: float, tokens: int) -> Dict[int, Dict[str, Any]]:
    url = server.url

    def make(i: int) -> Tuple[str, Dict[str, Any]]:
        return "/generate", {"prompt": PROMPTS[i % len(PROMPTS)], "max_new_tokens": tokens}

    run_load(url, make, n_requests=16, concurrency=8, time_limit_s=seconds)  # warm-up
    out = {}
    for c in levels:
        server_cpu, client_cpu = server.cpu_s(), time.process_time()
        before = server.health()["batches"]["gpt"]
        rep = run_load(url, make, n_requests=100_000, concurrency=c, time_limit_s=seconds)
        after = server.health()["batches"]["gpt"]
        out[c] = s = rep.summary()
        s["server_cpu_ms"] = (server.cpu_s() - server_cpu) * 1000 / max(rep.n_ok, 1)
        s["client_cpu_ms"] = (time.process_time() - client_cpu) * 1000 / max(rep.n_ok, 1)
        s["mean_batch"] = (after["answered"] - before["answered"]) / max(after["batches"] - before["batches"], 1)
        print(f"  concurrency {c:>2}: {s['requests_per_s']:.1f} req/s, {s['tokens_per_s']:.0f} tok/s, "
              f"p50 {s['p50_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms, mean batch {s['mean_batch']:.1f}, CPU ms/request "
              f"server {s['server_cpu_ms']:.1f} client {s['client_cpu_ms']:.1f} ({s['n_ok']} ok, errors {s['n_errors']})",
              flush=True)
    return out


def burst(server: ServerProcess, tokens: int) -> Dict[str, Any]:
    def make(i: int) -> Tuple[str, Any]:
        if i % 11 == 10:  # 100 of 1,100
            return "/generate", MALFORMED[(i // 11) % len(MALFORMED)]
        return "/generate", {"prompt": PROMPTS[i % len(PROMPTS)], "max_new_tokens": tokens}

    before = server.health()["counts"]
    rss_before = server.rss_mb()
    rep = run_load(server.url, make, n_requests=1_100, concurrency=64, time_limit_s=600)
    health = server.health()
    rss_after = server.rss_mb()
    counts = health["counts"]
    accepted = counts["accepted"] - before["accepted"]
    answered = counts["answered"] - before["answered"]
    cancelled = counts.get("cancelled", 0) - before.get("cancelled", 0)
    n_4xx = sum(v for k, v in rep.n_errors.items() if 400 <= k < 500)
    ok = (rep.n_sent == 1_100 and rep.n_ok == 1_000 and n_4xx == 100 and rep.n_malformed_replies == 0
          and accepted == answered == 1_000 and cancelled == 0 and server.proc.poll() is None)
    return {"ok": ok, "report": rep.summary(), "n_4xx": n_4xx, "accepted": accepted, "answered": answered,
            "cancelled": cancelled,
            "rss_before": rss_before, "rss_after": rss_after, "alive": server.proc.poll() is None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per concurrency level (default 5)")
    parser.add_argument("--tokens", type=int, default=16, help="tokens generated per request (default 16)")
    parser.add_argument("--burst-tokens", type=int, default=4, help="tokens per request in the burst (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server (default 1)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32], help="concurrency levels")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.tokens < 1 or args.threads < 1 or min(args.levels) < 1:
        parser.error("--seconds, --tokens, --threads and --levels must be positive")
    started = time.monotonic()
    results: Dict[str, Dict[int, Dict[str, Any]]] = {}
    fault: Dict[str, Any] = {}
    exit_codes = {}
    for mode in ("batched", "unbatched"):
        print(f"{mode}:", flush=True)
        server = ServerProcess(batching=mode == "batched", threads=args.threads)
        try:
            results[mode] = sweep(server, args.levels, args.seconds, args.tokens)
            if mode == "batched":
                fault = burst(server, args.burst_tokens)
                print(f"  burst: {'OK' if fault['ok'] else 'FAILED'} {fault}", flush=True)
        finally:
            exit_codes[mode] = server.stop()
    top = max(args.levels)
    ratio = results["batched"][top]["requests_per_s"] / max(results["unbatched"][top]["requests_per_s"], 1e-9)
    rows = []
    for mode in ("batched", "unbatched"):
        for c in args.levels:
            s = results[mode][c]
            rows.append(f"| {mode} | {c} | {s['requests_per_s']:.1f} | {s['tokens_per_s']:.0f} | {s['p50_ms']:.0f} | "
                        f"{s['p95_ms']:.0f} | {s['p99_ms']:.0f} | {s['mean_batch']:.1f} | {s['server_cpu_ms']:.1f} | "
                        f"{s['client_cpu_ms']:.1f} | {s['n_ok']} | {sum(s['n_errors'].values())} |")
    rep = fault["report"]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join([
        "## Serving (`course serve`, loopback)",
        "",
        f"`python tools/bench_serve.py --seconds {args.seconds:g} --tokens {args.tokens} --threads {args.threads}` on "
        f"{now} ({time.monotonic() - started:.0f} s). The chapter 13 GPT (untrained, seeded) in its own process with "
        f"{args.threads} torch thread(s); closed-loop clients for {args.seconds:g} s per level; prompts of 8 characters, "
        f"{args.tokens} greedy tokens each; batching: up to 16 requests or 5 ms.",
        "",
        "| server | concurrency | requests/s | tokens/s | p50 ms | p95 ms | p99 ms | mean batch | server CPU ms/req | "
        "client CPU ms/req | ok | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Batched / unbatched throughput at concurrency {top}: **{ratio:.2f}x**. CPU ms per request: what each "
        "process spent per answered request; when the client's is comparable with the server's, the load "
        "generator (httpx, pure Python) limits the throughput as much as the model does, and the load average "
        f"during the run ({os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs) says how much the machine was shared.",
        "",
        f"Burst: 1,000 valid requests ({args.burst_tokens} tokens each) and 100 malformed ones at concurrency 64: "
        f"{rep['n_sent']} sent, {rep['n_ok']} answered 200, {fault['n_4xx']} answered 4xx, "
        f"{rep['n_errors'].get(0, 0)} lost{' ' + str(rep['failures']) if rep['failures'] else ''}, {rep['n_malformed_replies']} malformed replies; "
        f"server counted {fault['accepted']} accepted, {fault['answered']} answered and {fault['cancelled']} "
        f"cancelled; alive after: {fault['alive']}; "
        f"exit code on SIGTERM: {exit_codes['batched']}; resident memory {fault['rss_before']:.0f} MB before, "
        f"{fault['rss_after']:.0f} MB after; {rep['elapsed_s']:.1f} s. **{'OK' if fault['ok'] else 'FAILED'}**.",
    ])
    print(body)
    if not args.no_write:
        bench.write_sections(ROOT / "docs" / "benchmarks.md", {"serving": body})
    return 0 if fault["ok"] and exit_codes["batched"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
