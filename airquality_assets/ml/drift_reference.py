"""The drift reference: a summary of the training features, stored with the champion.

(Not to be confused with the training *profile*, demo or full, which picks the grid.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
SAMPLE_SIZE = 2000


def reference_profile(
    features: np.ndarray, feature_names: list[str], seed: int = 0
) -> dict[str, Any]:
    """Per feature: count, mean, std, quantiles and a fixed random sample of training values.

    The sample lets drift detection run a two-sample KS test and the quantiles give PSI bin
    edges, without keeping the training data around.
    """
    rng = np.random.default_rng(seed)
    profile: dict[str, Any] = {}
    for j, name in enumerate(feature_names):
        column = features[:, j].astype(np.float64)
        column = column[np.isfinite(column)]
        if column.size == 0:
            profile[name] = {"count": 0}
            continue
        sample = rng.choice(column, size=min(SAMPLE_SIZE, column.size), replace=False)
        profile[name] = {
            "count": int(column.size),
            "mean": float(column.mean()),
            "std": float(column.std()),
            "quantiles": [float(q) for q in np.quantile(column, QUANTILES)],
            "sample": [round(float(v), 4) for v in sample],
        }
    return profile
