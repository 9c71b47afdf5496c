"""Which split ``sequence_tensors`` cuts: the run's dates, the deployment's, or the recent one."""

from __future__ import annotations

import pandas as pd

from airquality_assets.defs.model.tensors import SequenceConfig, _split
from airquality_assets.transforms.windowing import SplitSpec


def observed(start: str, end: str) -> pd.DataFrame:
    return pd.DataFrame({"time": pd.date_range(start, end, freq="h", tz="UTC")})


FIVE_YEARS = observed("2010-01-01", "2014-12-30 23:00")


def test_recent_split_tests_on_the_last_90_days_where_the_data_allows() -> None:
    split = _split(SequenceConfig(), "recent", 90, FIVE_YEARS)
    assert (str(split.train_end), str(split.validation_end)) == ("2014-08-02", "2014-10-01")
    short = _split(SequenceConfig(), "recent", 90, observed("2013-10-01", "2014-03-31 23:00"))
    assert str(short.validation_end) == "2014-02-23"  # 36 test days: a fifth of the span
    run = _split(SequenceConfig(test_days=30), "recent", 90, FIVE_YEARS)
    assert str(run.validation_end) == "2014-11-30"


def test_fixed_split_is_the_bundled_years_and_a_runs_dates_win() -> None:
    assert _split(SequenceConfig(), "fixed", 90, FIVE_YEARS) == SplitSpec()
    assert (str(SplitSpec().train_end), str(SplitSpec().validation_end)) == (
        "2012-12-31",
        "2013-12-31",
    )
    dated = SequenceConfig(train_end="2011-12-31", validation_end="2012-06-30")
    assert _split(dated, "fixed", 90, FIVE_YEARS) == SplitSpec("2011-12-31", "2012-06-30")
