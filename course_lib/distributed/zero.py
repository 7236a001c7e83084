"""Memory per device under data parallelism with ZeRO / FSDP sharding (Rajbhandari et al., 2020).

Plain data parallelism keeps a full replica of the training state on every one of the ``p`` devices.
ZeRO's stages shard more and more of it (each device keeps ``1/p`` of a sharded part):

=======  ==========================================================  =================================
stage    sharded over the p devices                                  PyTorch
=======  ==========================================================  =================================
0        nothing (a full replica: DDP)                               ``DistributedDataParallel``
1        optimiser states (and the float32 master weights)           ``ZeroRedundancyOptimizer``
2        + gradients                                                 FSDP ``SHARD_GRAD_OP``
3        + weights                                                   FSDP ``FULL_SHARD``
=======  ==========================================================  =================================

The input is the dict of :func:`course_lib.cost.memory_bytes` (keys ``weights``, ``gradients``,
``optimizer``, ``master``, ``activations``); activations are not sharded (each device keeps those of
its own shard of the batch).
"""

from __future__ import annotations

from typing import Dict, Mapping

SHARDED = {0: (), 1: ("optimizer", "master"), 2: ("optimizer", "master", "gradients"),
           3: ("optimizer", "master", "gradients", "weights")}
KINDS = ("weights", "gradients", "optimizer", "master", "activations")


def sharded_memory_bytes(memory: Mapping[str, float], world_size: int, stage: int) -> Dict[str, float]:
    """Bytes per device for ZeRO ``stage`` (0-3) over ``world_size`` devices.

    ``memory``: bytes of one full replica by kind (:func:`course_lib.cost.memory_bytes`). Returns the
    same kinds divided by ``world_size`` where the stage shards them, and ``total``.
    """
    if stage not in SHARDED:
        raise ValueError(f"sharded_memory_bytes: expected stage 0, 1, 2 or 3, got {stage!r}")
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"sharded_memory_bytes: expected world_size an int >= 1, got {world_size!r}")
    missing = [k for k in KINDS if k not in memory]
    if missing:
        raise KeyError(f"sharded_memory_bytes: expected the kinds {list(KINDS)} (course_lib.cost.memory_bytes), "
                       f"got keys {sorted(memory)}")
    out = {k: float(memory[k]) / (world_size if k in SHARDED[stage] else 1) for k in KINDS}
    out["total"] = sum(out.values())
    return out
