"""Interactive explorers: one persistent matplotlib figure rendered into a ``widgets.Image``.

Each chapter's explorer lives in its own module here (``shapes``, ``forward``, ``loss``,
``backprop``, ``optim``, ``conv``, ``pool``, ``metrics``, ``init``, ``rnn``, ``gates``, ``attention``, ``position``, ``sampling``); :mod:`course_lib.widgets.base` holds the shared pattern.
"""
