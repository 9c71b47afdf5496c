"""The native compose stack for ``test_stack.py``, started once per session.

Only under ``scripts/stack.sh`` (``AIRQUALITY_STACK=1``): that script runs pytest inside
private network and mount namespaces, where this fixture may bind-mount its own
``/etc/hosts`` (compose's service names on loopback addresses) without touching the
machine's. Anywhere else the stack tests skip, and say how to run them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airquality_assets.settings import project_root
from airquality_assets_tests.stack.compose import format_env, generate_env, load
from airquality_assets_tests.stack.native import NativeStack, python_bin

ROOT = project_root()
RECEIVER_PORT = 8099
#: What the stack test reports at the end of the session (pytest's terminal summary).
REPORT: list[str] = []


def report(line: str) -> None:
    REPORT.append(line)
    print(f"[stack] {line}", flush=True)


def _in_private_namespaces() -> bool:
    """True when this process's network and mount namespaces are not those that
    ``scripts/stack.sh`` started in (it exports them as ``AIRQUALITY_STACK_OUTER_NS``)."""
    outer = os.environ.get("AIRQUALITY_STACK_OUTER_NS", "").split()
    mine = [os.readlink(f"/proc/self/ns/{kind}") for kind in ("net", "mnt")]
    return len(outer) == 2 and all(a != b for a, b in zip(mine, outer, strict=True))


class AlertReceiver:
    """Where Apprise's ``json://receiver:8099/alerts`` delivers: every body it was sent."""

    def __init__(self, port: int):
        received: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                try:
                    received.append(json.loads(body))
                except ValueError:
                    received.append({"raw": body.decode(errors="replace")})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _hosts_file(names: list[str], path: Path) -> Path:
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += [f"127.0.1.{i} {name}" for i, name in enumerate(names, start=1)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[NativeStack]:
    if os.environ.get("AIRQUALITY_STACK") != "1":
        pytest.skip("the native compose stack runs under `bash scripts/stack.sh` (root)")
    if not _in_private_namespaces():
        pytest.fail("AIRQUALITY_STACK=1 outside private network/mount namespaces: refusing")
    # its own folder, not pytest's basetemp (which other pytest sessions of this user rotate)
    root = Path(tempfile.mkdtemp(prefix="airquality-stack-"))
    report(f"stack folder (volumes, logs): {root}")
    env = generate_env(
        ROOT / ".env.example",
        {"AIRQUALITY_ALERT_URLS": f"json://receiver:{RECEIVER_PORT}/alerts"},
    )
    (root / ".env").write_text(format_env(env))
    project = load(ROOT / "docker-compose.yml", env)
    hosts = _hosts_file([*project.services, "receiver"], root / "hosts")
    subprocess.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)
    receiver = AlertReceiver(RECEIVER_PORT)
    native = NativeStack(project, ROOT, root, python_bin())
    native.receiver = receiver  # type: ignore[attr-defined]
    began = time.monotonic()
    try:
        ready = native.up()
        report(
            "up in {:.0f} s, start order {}; seconds to healthy: {}".format(
                time.monotonic() - began,
                " -> ".join(project.start_order()),
                ", ".join(f"{k} {v:.0f}" for k, v in ready.items()),
            )
        )
        for name, reason in native.skipped.items():
            report(f"not started: {name}: {reason}")
        yield native
    finally:
        outcomes = native.down()
        report(
            "down: "
            + ", ".join(
                f"{name} {o['seconds']:.1f} s{' (SIGKILL)' if o['killed'] else ''}"
                for name, o in outcomes.items()
            )
        )
        receiver.close()
        report(f"stack session: {time.monotonic() - began:.0f} s")
        if request.session.testsfailed == 0:
            shutil.rmtree(root, ignore_errors=True)
        else:
            report(f"kept for a look: {root}/logs")


def pytest_terminal_summary(terminalreporter) -> None:
    if REPORT:
        terminalreporter.section("compose stack (native)")
        for line in REPORT:
            terminalreporter.write_line(line)
