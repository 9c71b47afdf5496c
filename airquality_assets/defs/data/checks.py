"""Asset-check results shared by the frame assets (the freshness check is in freshness.py)."""

from collections.abc import Sequence

import dagster as dg
import pandas as pd

from airquality_assets import markdown
from airquality_assets.schemas import validate_lazily
from airquality_assets.transforms.completeness import Completeness

MAX_FAILURE_ROWS = 50
MAX_LISTED_MONTHS = 5


def schema_check_result(asset: str, schema: type, frame: pd.DataFrame) -> dg.AssetCheckResult:
    """Lazy Pandera validation: one report lists every failure, in the check's metadata."""
    ok, failure_cases, message = validate_lazily(schema, frame)
    metadata: dict[str, object] = {"rows_checked": len(frame)}
    if not ok:
        metadata["failures"] = len(failure_cases)
        metadata["message"] = message
        shown = failure_cases.head(MAX_FAILURE_ROWS)
        metadata["failure_cases"] = dg.MetadataValue.md(
            markdown.table(list(shown.columns), shown.itertuples(index=False))
        )
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name="schema",
        passed=ok,
        metadata=metadata,
        description=None if ok else message,
    )


def completeness_metadata(completeness: Completeness) -> dict[str, object]:
    """Per column with any value: missing hours against the expected ones, the longest gap;
    and the columns never reported at all (named once, with the locations, not listed again
    as missing every hour)."""
    meta = completeness.as_metadata()
    never = completeness.never_reported
    empty = set(completeness.empty_columns)
    missing = {c: n for c, n in meta["missing_hours"].items() if c not in empty}  # type: ignore[union-attr]
    return {
        "expected_hours": completeness.expected_hours,
        "missing_hours": dg.MetadataValue.json(missing),
        "longest_gap_hours": dg.MetadataValue.json(meta["longest_gap_hours"]),
        "never_reported": ", ".join(f"{c} ({', '.join(locs)})" for c, locs in never.items())
        or "none",
    }


def completeness_result(
    asset: str,
    completeness: Completeness,
    watch: Sequence[str],
    threshold: float,
    excusable: Sequence[str] = (),
) -> dg.AssetCheckResult:
    """WARN when a watched column misses more than ``threshold`` of its expected hours, over
    the run or in any one (month, location) (absent rows count: OWM leaves a missing hour
    out). A column of ``excusable`` that a station never reports while it reports others
    (no humidity sensor) is named once and judged nowhere, so it cannot fail every month
    forever; a watched column with no value because the data are missing still fails. The
    description names the failing columns and months and, once, the columns never reported."""
    verdict = completeness.judge(watch, threshold, excusable)
    parts = []
    empty = set(completeness.empty_columns)
    for column, stats in verdict.failing.items():
        gap = "no value at all" if column in empty else f"longest gap {stats.longest_gap_hours} h"
        parts.append(
            f"{column}: {stats.missing_hours} of {stats.expected_hours} expected hours "
            f"missing ({stats.missing_share:.1%}, {gap})"
        )
    months = verdict.months
    if months:
        listed = ", ".join(
            f"{key} ({', '.join(f'{c} {s:.0%}' for c, s in over.items())})"
            for key, over in list(months.items())[:MAX_LISTED_MONTHS]
        )
        more = len(months) - MAX_LISTED_MONTHS
        parts.append(
            f"{len(months)} month(s) over {threshold:.0%} missing: {listed}"
            + (f" and {more} more" if more > 0 else "")
        )
    failed = not verdict.passed
    never = sorted(completeness.never_reported)
    if never:
        parts.append(f"never reported: {', '.join(never)}")
    shares = {c: v.missing_share for c, v in verdict.judged.items()}
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name="completeness",
        passed=not failed,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(parts) or None,
        metadata={
            **completeness_metadata(completeness),
            "watched": ", ".join(watch),
            "missing_share": dg.MetadataValue.json({c: round(s, 4) for c, s in shares.items()}),
            "months_over_threshold": dg.MetadataValue.json(
                {k: {c: round(s, 4) for c, s in v.items()} for k, v in months.items()}
            ),
            "not_judged_never_reported": dg.MetadataValue.json(verdict.excused),
            "threshold": threshold,
        },
    )
