"""The Markdown-table renderer every metadata table goes through."""

import numpy as np
import pandas as pd
import pytest

from airquality_assets.markdown import INLINE_LIMIT, image, table


def test_a_table_has_a_header_a_rule_and_one_line_per_row() -> None:
    text = table(["model", "rmse"], [["lstm", "1.50"], ["persistence", "2.00"]], right_aligned={1})
    assert text.splitlines() == [
        "| model | rmse |",
        "|---|---:|",
        "| lstm | 1.50 |",
        "| persistence | 2.00 |",
    ]


def test_missing_values_are_blank_and_pipes_stay_inside_their_cell() -> None:
    row = [None, np.nan, pd.NaT, "a|b", 3]
    line = table(["a", "b", "c", "d", "e"], [row]).splitlines()[2]
    assert line == "| " + " | ".join(["", "", "", "a\\|b", "3"]) + " |"
    assert line.replace("\\|", "").count("|") == 6  # five cells


def test_a_frame_renders_through_itertuples() -> None:
    frame = pd.DataFrame({"location": ["x", "y"], "pm2_5": [1.5, np.nan]})
    text = table(list(frame.columns), frame.itertuples(index=False))
    assert text.splitlines()[2:] == ["| x | 1.5 |", "| y |  |"]


def test_by_horizon_orders_numerically_and_rounds() -> None:
    from airquality_assets.markdown import by_horizon

    text = by_horizon({"12": 1.23456, "1": 0.5, "24": float("nan"), "6": 2.0}, "ratio")
    lines = text.splitlines()
    assert lines[0] == "| horizon (h) | ratio |"
    assert lines[2:] == ["| 1 | 0.50 |", "| 6 | 2.00 |", "| 12 | 1.23 |", "| 24 |  |"]
    assert by_horizon({24: 1.0, 1: 2.0}, "x", digits=1).splitlines()[2] == "| 1 | 2.0 |"


def test_an_image_is_a_short_link_dagster_renders_inline() -> None:
    text = image("beijing [pm2_5]", "http://mlflow:5000/get-artifact?path=a b.png&run_uuid=r")
    assert text == "![beijing pm2_5](http://mlflow:5000/get-artifact?path=a%20b.png&run_uuid=r)"
    assert len(text) < INLINE_LIMIT
    with pytest.raises(ValueError, match="would not render inline"):
        image("chart", "data:image/png;base64," + "A" * INLINE_LIMIT)
