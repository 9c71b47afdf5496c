"""The one Markdown-table renderer, for ``MetadataValue.md`` and MLflow text artifacts.

Plain string joins rather than pandas' ``to_markdown``: that goes through ``tabulate``, which
measured ~150 ms per partition under load when every frame partition carried a preview.
"""

from collections.abc import Collection, Iterable, Sequence

import pandas as pd


def cell(value: object) -> str:
    """A value as table text: missing values are blank, a ``|`` cannot end the cell."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(
    header: Sequence[object],
    rows: Iterable[Sequence[object]],
    right_aligned: Collection[int] = (),
) -> str:
    """``header`` and ``rows`` as a Markdown table; columns at ``right_aligned`` indices are
    right-aligned (numbers)."""
    rule = ("---:" if i in right_aligned else "---" for i in range(len(header)))
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "|".join(rule) + "|"]
    lines.extend("| " + " | ".join(map(cell, row)) + " |" for row in rows)
    return "\n".join(lines)


def by_horizon(values: dict[int, float] | dict[str, float], label: str, digits: int = 2) -> str:
    """Per-horizon values as a two-column table in horizon order (1, 6, 12, 24; never the
    string order of JSON keys), rounded to ``digits``; a missing value is blank."""
    ordered = sorted(values.items(), key=lambda kv: int(kv[0]))
    return table(
        ["horizon (h)", label],
        ([int(h), "" if v != v else f"{float(v):.{digits}f}"] for h, v in ordered),
        right_aligned=(0, 1),
    )


#: Dagster renders Markdown metadata inline only below this length (longer ones hide behind
#: "[Show Markdown]"), so a chart is a short image link, never a base64 data URI.
INLINE_LIMIT = 1000


def image(title: str, url: str) -> str:
    """A Markdown image of ``url``, short enough for Dagster to show inline."""
    alt = title.replace("[", "").replace("]", "")
    text = f"![{alt}]({url.replace(')', '%29').replace(' ', '%20')})"
    if len(text) >= INLINE_LIMIT:
        raise ValueError(f"image link of {len(text)} characters would not render inline")
    return text
