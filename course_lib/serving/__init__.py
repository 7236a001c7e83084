"""Serving a model over HTTP (chapter 15): the room for serving code.

Modules (import the one you need; importing this package loads nothing heavy):

* :mod:`~course_lib.serving.batching` - ``should_flush`` (the dynamic-batching policy as a pure
  function), ``DynamicBatcher`` (an asyncio queue that collects requests for up to ``max_wait_ms``
  or ``max_batch`` items and runs them together in a worker thread), ``Overloaded``.
* :mod:`~course_lib.serving.models` - the ``Servable`` protocol and ``GPTServable`` (chapter 13's GPT).
* :mod:`~course_lib.serving.app` - ``create_app``: the FastAPI application (``/health``,
  ``/generate``, ``/embed``, ``/search``).
* :mod:`~course_lib.serving.server` - ``Server``: uvicorn in a background thread on a free port.
* :mod:`~course_lib.serving.loadgen` - ``run_load``: an async HTTP load generator on loopback.
* :mod:`~course_lib.serving.simulate`, :mod:`~course_lib.serving.stats`,
  :mod:`~course_lib.serving.embedding` - simulations, latency statistics, the embedding model.
"""
