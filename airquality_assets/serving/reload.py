"""Pick up a newly promoted champion inside the running service, without a failed request.

The training job's ``bento`` asset imports every newly promoted MLflow ``champion`` into the
BentoML model store, which moves the store's ``<name>:latest``. A :class:`ChampionWatcher`
thread in each service worker polls that tag; when it moves, the new model is loaded and
warmed up (every batch bucket compiled) beside the old one, which keeps answering, and then
one attribute assignment makes it the served model: a request in flight finishes on the
model it started with, the next one gets the new model. A restart of the server, the
previous approach, failed every request for its start-up time.

A champion whose request contract differs (other input features or lookback) is not
swapped in: clients' bodies would stop validating mid-flight. The watcher logs it once and
keeps serving the old model; restarting the service adopts it (a deliberate API change).
A champion whose ``model.keras`` is not a whole archive (:class:`CorruptModel`) is refused
the same way, once, and the old model keeps serving.
No BentoML import here: the service passes in how to read the tag and how to load a model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from airquality_assets.serving.integrity import CorruptModel

Served = TypeVar("Served")


class IncompatibleChampion(ValueError):
    """The new champion needs another request body than the one being served."""


class ChampionWatcher(Generic[Served]):
    """Polls the champion's tag every ``poll_s`` seconds and swaps a new one in.

    ``latest_tag()`` reads the tag ``:latest`` resolves to now; ``load(tag)`` returns a
    ready-to-serve object (or raises :class:`IncompatibleChampion` or :class:`CorruptModel`,
    both refused once); ``swap(served)`` makes it current. Other errors while reading or
    loading are logged and retried on the next poll.
    """

    def __init__(
        self,
        served_tag: str,
        latest_tag: Callable[[], str],
        load: Callable[[str], Served],
        swap: Callable[[Served], None],
        poll_s: float,
        log: Callable[[str], None],
    ) -> None:
        self.served_tag = served_tag
        self._latest_tag = latest_tag
        self._load = load
        self._swap = swap
        self.poll_s = poll_s
        self._log = log
        self._refused: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_once(self) -> str:
        """One poll: ``same``, ``swapped``, ``refused`` (incompatible) or ``error``."""
        try:
            tag = self._latest_tag()
        except Exception as exc:  # a store being written, a network volume away: retry
            self._log(f"champion watcher: cannot read the latest tag: {exc}")
            return "error"
        if tag == self.served_tag or tag in self._refused:
            return "same"
        try:
            served = self._load(tag)
        except IncompatibleChampion as exc:
            self._refused.add(tag)
            self._log(f"champion watcher: not serving {tag}: {exc}; restart to adopt it")
            return "refused"
        except CorruptModel as exc:
            self._refused.add(tag)
            self._log(
                f"champion watcher: refusing {tag}, its model is corrupt: {exc}; "
                f"still serving {self.served_tag}"
            )
            return "refused"
        except Exception as exc:
            self._log(f"champion watcher: loading {tag} failed ({exc}); still {self.served_tag}")
            return "error"
        self._swap(served)
        self._log(f"champion watcher: now serving {tag} (was {self.served_tag})")
        self.served_tag = tag
        return "swapped"

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.check_once()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
