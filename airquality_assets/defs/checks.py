"""Asset-check results shared by the frame assets, plus the standalone freshness check."""

from collections.abc import Sequence

import dagster as dg
import pandas as pd

from airquality_assets.schemas import validate_lazily

MAX_FAILURE_ROWS = 50


def schema_check_result(asset: str, schema: type, frame: pd.DataFrame) -> dg.AssetCheckResult:
    """Lazy Pandera validation: one report lists every failure, in the check's metadata."""
    ok, failure_cases, message = validate_lazily(schema, frame)
    metadata: dict[str, object] = {"rows_checked": len(frame)}
    if not ok:
        metadata["failures"] = len(failure_cases)
        metadata["message"] = message
        metadata["failure_cases"] = dg.MetadataValue.md(
            failure_cases.head(MAX_FAILURE_ROWS).to_markdown(index=False)
        )
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name="schema",
        passed=ok,
        metadata=metadata,
        description=None if ok else message,
    )


def completeness_result(
    asset: str, frame: pd.DataFrame, columns: Sequence[str], threshold: float
) -> dg.AssetCheckResult:
    """Share of missing hours per watched column; WARN above ``threshold``."""
    shares = {
        column: float(frame[column].isna().mean()) if len(frame) else 1.0
        for column in columns
        if column in frame
    }
    absent = [c for c in columns if c not in frame]
    worst = max(shares.values(), default=1.0)
    passed = not absent and worst <= threshold
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name="completeness",
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "missing_share": dg.MetadataValue.json({k: round(v, 4) for k, v in shares.items()}),
            "absent_columns": ", ".join(absent) or "none",
            "threshold": threshold,
        },
    )
