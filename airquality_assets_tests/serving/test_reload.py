"""The champion watcher's decisions, without a server (the service test runs it for real)."""

from __future__ import annotations

import time

import pytest

from airquality_assets.serving.integrity import CorruptModel
from airquality_assets.serving.reload import ChampionWatcher, IncompatibleChampion


class _Store:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.loads: list[str] = []
        self.fail_read = False

    def latest(self) -> str:
        if self.fail_read:
            raise OSError("store unavailable")
        return self.tag

    def load(self, tag: str) -> str:
        self.loads.append(tag)
        if tag.endswith("-other-contract"):
            raise IncompatibleChampion("lookback 12 is not 24")
        if tag.endswith("-broken"):
            raise RuntimeError("truncated model file")
        return f"model<{tag}>"


@pytest.fixture
def setup() -> tuple[_Store, list[str], list[str], ChampionWatcher[str]]:
    store, swapped, logged = _Store("m:1"), [], []
    watcher = ChampionWatcher("m:1", store.latest, store.load, swapped.append, 1.0, logged.append)
    return store, swapped, logged, watcher


def test_swaps_once_when_the_tag_moves(setup) -> None:
    store, swapped, _, watcher = setup
    assert watcher.check_once() == "same" and store.loads == []
    store.tag = "m:2"
    assert watcher.check_once() == "swapped"
    assert swapped == ["model<m:2>"] and watcher.served_tag == "m:2"
    assert watcher.check_once() == "same" and store.loads == ["m:2"]  # loaded once


def test_an_incompatible_champion_is_refused_once_and_the_old_one_kept(setup) -> None:
    store, swapped, logged, watcher = setup
    store.tag = "m:3-other-contract"
    assert watcher.check_once() == "refused"
    assert watcher.check_once() == "same"  # not reloaded on every poll
    assert swapped == [] and watcher.served_tag == "m:1"
    assert len(store.loads) == 1 and "restart to adopt it" in logged[-1]


def test_errors_keep_the_served_model_and_are_retried(setup) -> None:
    store, swapped, logged, watcher = setup
    store.fail_read = True
    assert watcher.check_once() == "error"
    store.fail_read, store.tag = False, "m:4-broken"
    assert watcher.check_once() == "error"
    assert watcher.check_once() == "error"  # retried: the file may have been mid-copy
    assert swapped == [] and watcher.served_tag == "m:1"
    assert "truncated model file" in logged[-1]


def test_the_thread_polls_and_stops() -> None:
    store, swapped = _Store("m:1"), []
    watcher = ChampionWatcher("m:1", store.latest, store.load, swapped.append, 0.01, print)
    watcher.start()
    store.tag = "m:2"
    for _ in range(500):
        if swapped:
            break
        time.sleep(0.01)
    watcher.stop()
    assert swapped == ["model<m:2>"]


def test_a_corrupt_champion_is_refused_once_and_the_old_one_kept() -> None:
    swapped: list[str] = []
    logged: list[str] = []
    loads: list[str] = []

    def load(tag: str) -> str:
        loads.append(tag)
        raise CorruptModel("model.keras (1200 bytes) is not a whole Keras archive")

    watcher = ChampionWatcher("m:1", lambda: "m:5", load, swapped.append, 1.0, logged.append)
    assert watcher.check_once() == "refused"
    assert watcher.check_once() == "same"  # refused once, not re-read on every poll
    assert swapped == [] and watcher.served_tag == "m:1" and loads == ["m:5"]
    assert "m:5" in logged[-1] and "corrupt" in logged[-1] and "still serving m:1" in logged[-1]
