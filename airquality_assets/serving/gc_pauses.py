"""Keep Python's full garbage collections short in a serving worker.

A worker holds ~280,000 long-lived objects after start-up (BentoML, Keras, JAX, pydantic
models, the warmed-up model); a full (generation 2) collection walks all of them and takes
about 0.2 s on the shared 2 cores. One worker answers every client, so each such pause lands
on every request in flight at once: 16 concurrent clients all get +0.2 s, which is the p99
of a run. :func:`settle` collects the start-up garbage once, then freezes what survives
(``gc.freeze``: moved to a permanent generation that later collections skip), so later
collections walk only the objects created since. Called once the worker is ready, and
again after a new champion is swapped in: it unfreezes first, so the old model's cycles
are collected (one full pause then, not one every few thousand requests).
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect, then freeze every surviving object; the number now frozen."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
