"""After :func:`settle`, full collections skip what start-up left; a later settle still
frees what became garbage in between (an old champion's cycles)."""

from __future__ import annotations

import gc
import weakref

from airquality_assets.serving.gc_pauses import settle


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_settle_freezes_survivors_and_frees_garbage_on_the_next_settle() -> None:
    try:
        kept = _Node()
        frozen = settle()
        assert frozen > 0 and frozen == gc.get_freeze_count()
        assert not any(obj is kept for obj in gc.get_objects(2))  # skipped by collections
        old = weakref.ref(kept)
        del kept
        gc.collect()
        assert old() is not None  # frozen: a collection does not free it
        settle()
        assert old() is None  # the next settle unfreezes first, so the cycle is freed
    finally:
        gc.unfreeze()
