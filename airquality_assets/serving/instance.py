"""One Prometheus multiprocess folder per running service, not one per BentoML home.

BentoML keeps its workers' metric files in ``$BENTOML_HOME/prometheus_multiproc_dir`` and
empties that folder whenever a server starts: a second instance on the same home (a
second port, a blue/green start, a test) wiped the first one's ``/metrics``
(``airquality_predictions_total`` 1518 -> 0). :func:`own_metrics_dir` gives this instance
a fresh folder of its own, removed when it exits; BentoML hands it to its workers.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Mapping

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def own_metrics_dir(environ: Mapping[str, str]) -> str | None:
    """In the process that starts the server: a new metrics folder for it; the folder's
    path, or None in a worker (BentoML has already set its folder in the environment)."""
    if environ.get(MULTIPROC_ENV):
        return None
    from bentoml._internal.configuration.containers import BentoMLContainer

    path = tempfile.mkdtemp(prefix="airquality-metrics-")
    BentoMLContainer.prometheus_multiproc_dir.set(path)
    atexit.register(shutil.rmtree, path, True)
    return path
