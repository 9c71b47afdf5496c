"""The compose stack run natively: each service a "container" made of Linux namespaces.

Where no Docker engine runs, every service of ``docker-compose.yml`` still starts with
compose's own command, environment, volumes, restart policy, stop grace period and health
check, in compose's start-up order, reachable under compose's own host names:

* **Network.** The whole stack (and the test driving it) shares one private network
  namespace, made by ``scripts/stack.sh`` (``unshare --net``): every service binds its
  compose address (``0.0.0.0``) without meeting anything else on the machine, a published
  port is on 127.0.0.1 as with compose, and ``/etc/hosts`` (bind-mounted in that namespace
  only) names each service on a loopback address of its own. Unlike compose's network,
  every service can reach every port of every other.
* **Container.** Each service runs in its own mount and PID namespaces (``unshare --mount
  --pid --fork``): its command is PID 1, as in a container (PID 1 ignores signals it does
  not handle), and killing PID 1 ends every process in it, run workers included.
  Volumes are bind mounts at compose's targets: named volumes are folders of this stack,
  bind sources the repository's files; the project image's working directory is the
  repository (read-only) and its ``DAGSTER_HOME`` a folder with the Dockerfile's copy of
  ``deploy/dagster.yaml``.
* **Images.** The project image is this checkout's virtualenv with the Dockerfile's ``ENV``.
  The upstream images are Debian's packages: ``postgres`` is Debian's PostgreSQL behind the
  image's first-start steps (role, database, ``/docker-entrypoint-initdb.d``),
  ``prom/prometheus`` and ``prom/pushgateway`` Debian's ``prometheus`` and
  ``prometheus-pushgateway``. An image with no such stand-in (Grafana is not in Debian) is
  reported as not started.

``exec`` runs a command inside a running service (``nsenter``), as ``docker compose exec``
does; health checks run that way. Everything runs as root: the image's ``USER`` is not
applied (PostgreSQL runs as Debian's ``postgres`` user).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from airquality_assets_tests.stack.compose import ComposeProject, Service

HERE = Path(__file__).resolve().parent
POSTGRES_ENTRYPOINT = HERE / "postgres_entrypoint.sh"
#: The project image's filesystem, as its Dockerfile lays it out.
APP_DIR = "/opt/dagster/app"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class NotAvailable(RuntimeError):
    """The image of a service has no native stand-in on this machine."""


def dockerfile_env(dockerfile: Path) -> dict[str, str]:
    """The ``ENV`` instructions of a Dockerfile (``KEY=value`` form, continuation lines)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().startswith("ENV "):
            for item in shlex.split(line.strip()[4:]):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def dockerfile_workdir(dockerfile: Path) -> str:
    workdir = "/"
    for line in dockerfile.read_text().splitlines():
        if line.strip().startswith("WORKDIR "):
            workdir = line.split(None, 1)[1].strip()
    return workdir


@dataclass
class Launch:
    """How one service's process is started: argv, environment, mounts, working dir."""

    argv: list[str]
    env: dict[str, str]
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)  # (source, target, ro)
    tmpfs: list[str] = field(default_factory=list)
    workdir: str = "/"


@dataclass
class Health:
    status: str = "starting"  # starting, healthy, unhealthy
    failures: int = 0
    last_output: str = ""
    first_healthy_at: float | None = None
    checks: int = 0


class Container:
    """One service: started, health-checked, stopped, killed and restarted like compose."""

    def __init__(self, stack: NativeStack, service: Service):
        self.stack = stack
        self.service = service
        self.name = service.name
        self.process: subprocess.Popen[bytes] | None = None
        self.health = Health()
        self.started_at = 0.0
        self.restarts = 0
        self._stopped = threading.Event()  # set by stop(): no restart, no health checks
        self._generation = 0  # one per start(): the loops of an earlier start end
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.log_path = stack.root / "logs" / f"{self.name}.log"
        self.launch = stack.launch_for(service)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            self._stopped.clear()
            self._generation += 1
            self.health = Health()
            self._spawn()
        for target in (self._health_loop, self._restart_loop):
            thread = threading.Thread(
                target=target, args=(self._generation,), name=f"{self.name}-{target.__name__}"
            )
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def _spawn(self) -> None:
        launch = self.launch
        script = ["set -e"]
        for target in launch.tmpfs:
            script.append(f"mkdir -p {shlex.quote(target)}")
            script.append(f"mount -t tmpfs tmpfs {shlex.quote(target)}")
        for source, target, read_only in sorted(launch.mounts, key=lambda m: m[1].count("/")):
            # a bind mount needs its target: an empty folder or file at the container path
            # (left in place: another stack run may be using it as a mountpoint)
            parent, quoted = shlex.quote(str(Path(target).parent)), shlex.quote(target)
            make = (
                f"mkdir -p {quoted}"
                if Path(source).is_dir()
                else f"mkdir -p {parent}; touch {quoted}"
            )
            script.append(f"[ -e {shlex.quote(target)} ] || {{ {make}; }}")
            script.append(f"mount --bind {shlex.quote(source)} {shlex.quote(target)}")
            if read_only:
                script.append(f"mount -o remount,bind,ro {shlex.quote(target)}")
        script.append(f"cd {shlex.quote(launch.workdir)}")
        script.append('exec "$@"')
        argv = list(launch.argv)
        if self.service.init:  # compose's `init: true`: tini is PID 1 and forwards signals
            argv = [_which("tini"), "--", *argv]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        log.write(f"--- start {time.strftime('%H:%M:%S')}: {shlex.join(argv)}\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation",
             "private", "--kill-child", "--", "/bin/sh", "-c", "\n".join(script), self.name,
             *argv],
            env=launch.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        log.close()
        self.started_at = time.monotonic()

    @property
    def init_pid(self) -> int | None:
        """Host PID of the service's PID 1 (the child of ``unshare``)."""
        process = self.process
        if process is None or process.poll() is not None:
            return None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
            except OSError:
                return None
            if children.split():
                return int(children.split()[0])
            time.sleep(0.05)
        return None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float | None = None) -> dict[str, float | bool]:
        """``docker compose stop``: SIGTERM to PID 1, SIGKILL after the grace period."""
        grace = self.service.stop_grace_period if timeout is None else timeout
        self._stopped.set()
        began = time.monotonic()
        killed = False
        with self._lock:
            pid, process = self.init_pid, self.process
            if pid is not None and process is not None:
                _signal(pid, signal.SIGTERM)
                try:
                    process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    killed = True
                    _signal(pid, signal.SIGKILL)
                    process.wait(timeout=30)
        return {"seconds": time.monotonic() - began, "killed": killed}

    def crash(self) -> None:
        """The service's processes die at once (SIGKILL to PID 1: the kernel ends the rest
        of its PID namespace), as in an OOM kill; the restart policy then applies."""
        pid = self.init_pid
        if pid is not None:
            _signal(pid, signal.SIGKILL)

    def restart(self) -> dict[str, float | bool]:
        """``docker compose restart``: stop (with the grace period), start."""
        outcome = self.stop()
        self.start()
        return outcome

    def _current(self, generation: int) -> bool:
        return generation == self._generation and not self._stopped.is_set()

    def _restart_loop(self, generation: int) -> None:
        """``restart: unless-stopped`` / ``always``: a process that ends by itself comes back.

        Respawned from this thread, which lives until the service is stopped (a child's
        parent-death signal follows the thread that started it)."""
        process = self.process
        while self._current(generation):
            if process is not None and process.poll() is not None:
                if self.service.restart not in ("always", "unless-stopped", "on-failure"):
                    return
                if self.service.restart == "on-failure" and process.returncode == 0:
                    return
                time.sleep(1.0)  # Docker's first restart delay is 100 ms, doubling
                with self._lock:
                    if not self._current(generation):
                        return
                    self.restarts += 1
                    self.health = Health()
                    self._spawn()
                    process = self.process
            time.sleep(0.2)

    # -- exec and health ------------------------------------------------------------------
    def exec(
        self, argv: list[str], timeout: float = 60.0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``docker compose exec SERVICE argv``: in the service's namespaces and environment."""
        pid = self.init_pid
        if pid is None:
            raise RuntimeError(f"{self.name} is not running")
        return subprocess.run(
            # cd inside: nsenter's --wd would resolve the folder before the mount namespace
            ["nsenter", f"--target={pid}", "--mount", "--pid", "--", "/bin/sh", "-c",
             'cd "$0" && exec "$@"', self.launch.workdir, *argv],
            env={**self.launch.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )  # fmt: skip

    def check_health(self) -> bool:
        check = self.service.healthcheck
        if check is None:
            return self.running
        try:
            result = self.exec(list(check.argv), timeout=check.timeout)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            self.health.last_output = str(exc)
            return False
        self.health.last_output = (result.stdout + result.stderr)[-500:]
        return result.returncode == 0

    def _health_loop(self, generation: int) -> None:
        check = self.service.healthcheck
        if check is None:
            self.health.status = "running"
            return
        while not self._stopped.wait(check.interval) and generation == self._generation:
            healthy = self.check_health()
            health = self.health
            health.checks += 1
            if healthy:
                health.failures = 0
                if health.status != "healthy" and health.first_healthy_at is None:
                    health.first_healthy_at = time.monotonic() - self.started_at
                health.status = "healthy"
            elif time.monotonic() - self.started_at >= check.start_period or (
                health.status == "healthy"
            ):
                health.failures += 1
                if health.failures >= check.retries:
                    health.status = "unhealthy"

    def wait_healthy(self, timeout: float) -> float:
        """Seconds until compose's condition ``service_healthy`` holds (raises on timeout)."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if self.health.status in ("healthy", "running"):
                return time.monotonic() - began
            if self.health.status == "unhealthy":
                break
            time.sleep(0.2)
        raise TimeoutError(
            f"{self.name} is {self.health.status} after {time.monotonic() - began:.0f} s; "
            f"last check said: {self.health.last_output.strip()[-300:]}\n"
            f"log tail:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process dies, however it dies; then
    ``unshare --kill-child`` ends the service's PID namespace, so no stack outlives its test."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _which(program: str) -> str:
    found = shutil.which(program)
    if not found:
        raise NotAvailable(f"{program} is not installed (scripts/stack.sh installs it)")
    return found


class NativeStack:
    """The services of a :class:`ComposeProject`, run natively under ``root``.

    ``root`` holds the named volumes, each project container's ``DAGSTER_HOME`` and home,
    and the logs. ``repo`` is the checkout (the build context of the project image).
    """

    def __init__(self, project: ComposeProject, repo: Path, root: Path, python_bin: Path):
        self.project = project
        self.repo = repo
        self.root = root
        self.python_bin = python_bin
        self.containers: dict[str, Container] = {}
        self.skipped: dict[str, str] = {}
        self.timeline: list[tuple[float, str]] = []
        self._t0 = time.monotonic()
        for name in project.volumes:
            (root / "volumes" / name).mkdir(parents=True, exist_ok=True)

    def note(self, text: str) -> None:
        self.timeline.append((time.monotonic() - self._t0, text))
        print(f"[stack {time.monotonic() - self._t0:6.1f} s] {text}", flush=True)

    # -- how each image runs natively ----------------------------------------------------
    def launch_for(self, service: Service) -> Launch:
        if service.built:
            launch = self._project_image(service)
        elif service.image.startswith("postgres:"):
            launch = self._postgres(service)
        elif service.image.startswith("prom/prometheus:"):
            launch = Launch([_which("prometheus"), *(service.command or ())], self._base_env())
        elif service.image.startswith("prom/pushgateway:"):
            launch = Launch(
                [_which("prometheus-pushgateway"), *(service.command or ())], self._base_env()
            )
        else:
            raise NotAvailable(f"no native stand-in for image {service.image}")
        for volume in service.volumes:
            source = (
                str((self.repo / volume.source).resolve())
                if volume.is_bind
                else str(self.root / "volumes" / volume.source)
            )
            launch.mounts.append((source, volume.target, volume.read_only))
        return launch

    def _base_env(self) -> dict[str, str]:
        return {"PATH": SYSTEM_PATH, "HOME": "/root", "LANG": "C.UTF-8"}

    def _project_image(self, service: Service) -> Launch:
        dockerfile = self.repo / "Dockerfile"
        image_env = dockerfile_env(dockerfile)
        home = self.root / "containers" / service.name / "home"
        dagster_home = self.root / "containers" / service.name / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        dagster_home.mkdir(parents=True, exist_ok=True)
        # the Dockerfile: cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
        shutil.copy(self.repo / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
        env = {
            **self._base_env(),
            "PATH": f"{self.python_bin}:{SYSTEM_PATH}",
            "HOME": str(home),
            **image_env,
            **service.environment,
        }
        workdir = dockerfile_workdir(dockerfile)
        mounts = [
            (str(self.repo), workdir, True),
            (str(dagster_home), image_env.get("DAGSTER_HOME", "/opt/dagster/home"), False),
        ]
        return Launch(list(service.command or ()), env, mounts, workdir=workdir)

    def _postgres(self, service: Service) -> Launch:
        versions = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
        )
        if not versions:
            raise NotAvailable("Debian's postgresql is not installed")
        env = {
            **self._base_env(),
            "PATH": f"{versions[-1]}:{SYSTEM_PATH}",
            "PGDATA": "/var/lib/postgresql/data",
            **service.environment,
        }
        argv = ["/bin/sh", str(POSTGRES_ENTRYPOINT), *(service.command or ("postgres",))]
        # the image's socket directory is its own: a tmpfs, not the machine's
        return Launch(argv, env, [], tmpfs=["/var/run/postgresql"])

    # -- compose verbs -------------------------------------------------------------------
    def up(self, timeout_per_service: float = 300.0) -> dict[str, float]:
        """``docker compose up -d --wait``: in dependency order, each waiting for its
        dependencies' conditions; returns seconds to healthy per service."""
        ready: dict[str, float] = {}
        for name in self.project.start_order():
            service = self.project.services[name]
            missing = [d for d in service.depends_on if d in self.skipped]
            if missing:
                self.skipped[name] = f"depends on {', '.join(missing)}, not started"
                self.note(f"{name}: not started ({self.skipped[name]})")
                continue
            try:
                container = Container(self, service)
            except NotAvailable as exc:
                self.skipped[name] = str(exc)
                self.note(f"{name}: not started ({exc})")
                continue
            for dependency, condition in service.depends_on.items():
                if condition == "service_healthy":
                    self.containers[dependency].wait_healthy(timeout_per_service)
            self.containers[name] = container
            began = time.monotonic()
            container.start()
            self.note(f"{name}: started ({shlex.join(container.launch.argv)[:120]})")
            if name in self._waited_for():
                container.wait_healthy(timeout_per_service)
                ready[name] = time.monotonic() - began
                self.note(f"{name}: {container.health.status} after {ready[name]:.1f} s")
        return ready

    def _waited_for(self) -> set[str]:
        return {
            dependency
            for service in self.project.services.values()
            for dependency, condition in service.depends_on.items()
            if condition == "service_healthy"
        }

    def wait_all_healthy(self, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        for container in self.containers.values():
            container.wait_healthy(max(1.0, deadline - time.monotonic()))
        return {name: c.health.status for name, c in self.containers.items()}

    def down(self) -> dict[str, dict[str, float | bool]]:
        outcomes = {}
        for name in reversed(self.project.start_order()):
            if name in self.containers:
                outcomes[name] = self.containers[name].stop()
        return outcomes

    def __getitem__(self, name: str) -> Container:
        return self.containers[name]


def wait_until(
    predicate: Callable[[], object], timeout: float, interval: float = 1.0, what: str = ""
) -> object:
    """The first truthy value of ``predicate()`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing waited for may not answer yet
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} ({last_error})")


def python_bin() -> Path:
    return Path(sys.executable).parent
