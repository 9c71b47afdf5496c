"""List the kept pulls of a raw partition, or restore one as its current bodies.

A re-pull that supersedes stored bodies keeps them under the month's ``.history/`` folder
(``AIRQUALITY_RAW_HISTORY_KEEP`` of them). This brings one back; the bodies it replaces are
kept in turn, so a restore can itself be undone. Afterwards, materialize the raw partition
(no pull: the month is stored whole) so Dagster records its data version and marks what
read the newer pull stale::

    python -m airquality_assets.programs.restore_pull raw_weather beijing 2014-03
    python -m airquality_assets.programs.restore_pull raw_weather beijing 2014-03 --pull <name>
"""

from __future__ import annotations

import argparse
from datetime import date

from airquality_assets.settings import Settings
from airquality_assets.storage import (
    raw_month_bodies,
    raw_month_digest,
    raw_pulls,
    restore_raw_pull,
    storage_location,
)


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("asset", help="a raw asset, e.g. raw_weather or raw_air_quality")
    parser.add_argument("location", help="a location name (the partition's location)")
    parser.add_argument("month", help="the partition's UTC month, YYYY-MM")
    parser.add_argument("--pull", help="the kept pull to restore (default: list them)")
    args = parser.parse_args(argv)
    settings = settings or Settings.from_env()
    root = storage_location(settings.storage_root)
    month = date.fromisoformat(f"{args.month}-01")
    where = (root, args.asset, args.location, month)
    if args.pull is None:
        current = [p.name for p in raw_month_bodies(*where)]
        print(f"current: {', '.join(current) or 'nothing stored'}")
        print(f"data version: {raw_month_digest(*where)}")
        for pull in raw_pulls(*where):
            print(f"kept pull: {pull}")
        return 0
    try:
        restored = restore_raw_pull(*where, args.pull)
    except FileNotFoundError as exc:
        print(exc)
        return 1
    print(f"restored {len(restored)} body(ies) from {args.pull}")
    print(f"data version: {raw_month_digest(*where)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
