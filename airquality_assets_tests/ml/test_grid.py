"""Grid profiles: the full grid is a complete search, the demo grid stays small."""

from __future__ import annotations

import pytest

from airquality_assets.ml.grid import PROFILES, grid_for_profile
from airquality_assets.ml.model import LSTMParams


def test_full_profile_tries_every_combination_once_with_early_stopping() -> None:
    grid = grid_for_profile("full")
    varied = [
        {getattr(p, name) for p in grid} for name in ("dropout", "learning_rate", "batch_size")
    ]
    combinations = {(p.dropout, p.learning_rate, p.batch_size) for p in grid}
    assert len(combinations) == len(grid) == len(varied[0]) * len(varied[1]) * len(varied[2])
    assert all(len(values) > 1 for values in varied), "a grid varies each of them"
    assert all(1 <= p.patience < p.epochs for p in grid), "full runs rely on early stopping"
    demo = grid_for_profile("demo")
    assert len(grid) > len(demo)
    assert min(p.units for p in grid) >= max(p.units for p in demo)


def test_demo_profile_is_small_and_cheap() -> None:
    grid = grid_for_profile("demo")
    assert 2 <= len(grid) <= 4
    assert all(p.units <= 64 and p.layers <= 2 and p.epochs <= 8 for p in grid)
    assert all(p.batch_size >= 128 and p.patience <= 3 for p in grid)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profiles_are_deterministic_with_unique_names(profile: str) -> None:
    first, second = grid_for_profile(profile), grid_for_profile(profile)
    assert first == second and first is not second
    assert all(isinstance(p, LSTMParams) for p in first)
    assert len({p.name for p in first}) == len(first)


def test_unknown_profile_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"'fast'.*demo, full"):
        grid_for_profile("fast")
