"""Scaling out training (chapter 16): the ring all-reduce and data-parallel training.

* :mod:`course_lib.distributed.ring` - ring all-reduce with ``send``/``recv`` (real processes) and on
  simulated workers (no processes), its communication volume and the alpha-beta time model;
* :mod:`course_lib.distributed.ddp` - the script run under ``torchrun``: DistributedDataParallel with
  half the batch per worker against one process with the whole batch, the ring against
  ``dist.all_reduce``, timings; and :func:`~course_lib.distributed.ddp.launch`, which starts it.

Importing this package imports nothing heavy; ``torch.distributed`` is imported inside functions.
"""
