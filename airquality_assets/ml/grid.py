"""Grid-search profiles: which :class:`LSTMParams` candidates a training run tries.

Each candidate becomes its own MLflow run and its own Dagster step, so the grid is a plain,
ordered, deterministic list: the same profile always yields the same candidate names.

* ``demo``: three small candidates that finish in minutes on 2 CPU cores for ~30k windows
  (batch 256 keeps the number of jitted steps per epoch low; patience 2 stops flat runs).
* ``full``: units 128; dropout 0.2/0.3; learning rate 1e-3/1e-4; batch 16/32; up to 50
  epochs with early stopping: 8 candidates. Patience 3, because the validation loss
  bottoms out within a few epochs and then only rises (the LR is halved after 1 flat epoch
  first): waiting longer buys nothing but time.
"""

from __future__ import annotations

import itertools

from airquality_assets.ml.model import LSTMParams


def _demo() -> list[LSTMParams]:
    return [
        LSTMParams(
            units=32, layers=1, dropout=0.2, learning_rate=3e-3, batch_size=256, epochs=6,
            patience=2,
        ),
        LSTMParams(
            units=32, layers=2, dropout=0.2, learning_rate=1e-3, batch_size=256, epochs=6,
            patience=2,
        ),
        LSTMParams(
            units=64, layers=2, dropout=0.2, learning_rate=1e-3, batch_size=256, epochs=6,
            patience=2,
        ),
    ]  # fmt: skip


def _full() -> list[LSTMParams]:
    return [
        LSTMParams(
            units=128,
            layers=2,
            dropout=dropout,
            learning_rate=learning_rate,
            batch_size=batch_size,
            epochs=50,
            patience=3,
        )
        for dropout, learning_rate, batch_size in itertools.product(
            (0.2, 0.3), (1e-3, 1e-4), (16, 32)
        )
    ]


PROFILES = {"demo": _demo, "full": _full}


def grid_for_profile(name: str) -> list[LSTMParams]:
    """Candidates of profile ``name`` (fresh list, safe to mutate); unknown name -> ValueError."""
    try:
        factory = PROFILES[name]
    except KeyError:
        valid = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown training profile {name!r}; valid profiles: {valid}") from None
    return factory()
