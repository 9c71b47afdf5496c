"""Grid profiles: the full grid is the reference grid, the demo grid stays small."""

from __future__ import annotations

import pytest

from airquality_assets.ml.grid import PROFILES, grid_for_profile
from airquality_assets.ml.model import LSTMParams


def test_full_profile_is_the_reference_grid() -> None:
    grid = grid_for_profile("full")
    assert len(grid) == 8
    assert {p.units for p in grid} == {128}
    assert {p.dropout for p in grid} == {0.2, 0.3}
    assert {p.learning_rate for p in grid} == {1e-3, 1e-4}
    assert {p.batch_size for p in grid} == {16, 32}
    assert {p.epochs for p in grid} == {50}
    assert all(p.patience >= 1 for p in grid), "full runs rely on early stopping"
    assert len({(p.dropout, p.learning_rate, p.batch_size) for p in grid}) == 8


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
