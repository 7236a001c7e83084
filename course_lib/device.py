"""Where to compute and how to make runs repeatable."""

from __future__ import annotations

import os
import random

import torch


def get_device(prefer: str | None = None) -> torch.device:
    """Return ``cuda`` if available, else ``mps`` (Apple), else ``cpu``.

    ``prefer`` (or the environment variable ``COURSE_DEVICE``) forces a device,
    e.g. ``"cpu"`` to reproduce CPU numbers on a GPU machine.
    """
    choice = prefer or os.environ.get("COURSE_DEVICE")
    if choice:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a ``torch.Generator`` seeded with ``seed``.

    Two runs that call this first give the same numbers (on the same device).
    """
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy ships with torch
        pass
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
