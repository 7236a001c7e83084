"""Benchmark the capstone: WordPiece agreement with `tokenizers`, embedding difference with
SentenceTransformer, sentences per second (ours and the reference) at batch 1 and 32. Writes the
`capstone` section of docs/benchmarks.md.

    python tools/bench_capstone.py [--strings 1200] [--sentences 128] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench  # noqa: E402  (section writer shared with tools/bench.py)


def _rate(encode, texts, batch_size: int) -> float:
    encode(texts[:batch_size], batch_size)  # warm-up
    start = time.perf_counter()
    encode(texts, batch_size)
    return len(texts) / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strings", type=int, default=1200, help="tokeniser test strings (default 1200)")
    parser.add_argument("--sentences", type=int, default=128, help="sentences for embeddings and speed (default 128)")
    parser.add_argument("--all-code-points", action="store_true",
                        help="also compare every Unicode code point one by one ('a' + ch + 'b'; ~100 s)")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from tokenizers import Tokenizer

    from course_lib import minilm
    from course_lib.wordpiece import WordPiece, agreement_corpus

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    path = minilm.model_dir() / "tokenizer.json"
    ref_tok = Tokenizer.from_file(str(path))
    ref_tok.no_truncation()
    ref_tok.no_padding()
    ours_tok = WordPiece.from_tokenizer_json(path)
    corpus = agreement_corpus(args.strings, seed=0)
    refs = ref_tok.encode_batch(corpus, add_special_tokens=False)
    n_tokens = sum(len(r.tokens) for r in refs)
    mismatches = sum(ours_tok.tokenize(t) != r.tokens for t, r in zip(corpus, refs))
    code_points = ""
    if args.all_code_points:
        cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
        bad = sum(ours_tok.tokenize(f"a{chr(c)}b") != ref_tok.encode(f"a{chr(c)}b", add_special_tokens=False).tokens
                  for c in cps)
        code_points = f"\n- Every code point alone (\"a\" + ch + \"b\"): {len(cps)} compared, {bad} differ."

    ours = minilm.SentenceEncoder.load()
    ref = minilm.reference_encoder()
    texts = [t for t in agreement_corpus(4 * args.sentences, seed=1) if 20 < len(t) < 200][: args.sentences]
    diff = (ours.encode(texts) - ref.encode(texts, convert_to_tensor=True).cpu()).abs().max().item()
    ref_encode = lambda xs, b: ref.encode(xs, batch_size=b)  # noqa: E731
    rows = []
    for b in (1, 32):
        rows.append(f"| {b} | {_rate(ours.encode, texts, b):.1f} | {_rate(ref_encode, texts, b):.1f} |")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join([
        "## Capstone: all-MiniLM-L6-v2 from scratch",
        "",
        f"`python tools/bench_capstone.py` on {now}, torch threads {torch.get_num_threads()}, CPU.",
        "",
        f"- WordPiece vs `tokenizers`: {len(corpus)} strings, {n_tokens} tokens, {mismatches} mismatching strings."
        + code_points,
        f"- Embeddings vs `SentenceTransformer.encode`: max abs difference {diff:.2e} over {len(texts)} sentences x 384.",
        "",
        "| batch | ours sentences/s | reference sentences/s |",
        "|---:|---:|---:|",
        *rows,
    ])
    print(body)
    if not args.no_write:
        bench.write_sections(ROOT / "docs" / "benchmarks.md", {"capstone": body})
    return 0 if mismatches == 0 and diff <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
