"""Interactive explorers: one persistent matplotlib figure rendered into a ``widgets.Image``.

Each chapter's explorer lives in its own module here (``forward``, ``loss``,
``backprop``, ``optim``); :mod:`course_lib.widgets.base` holds the shared pattern.
"""
