"""``docker-compose.yml`` read the way ``docker compose`` reads it, for the native stack.

Only what the stack test needs, each rule as compose applies it: ``${VAR}``,
``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}`` and ``$$`` interpolated from an env
file after the YAML (anchors and merge keys included) is parsed; a string command split like
a shell; durations such as ``1m30s``; the start-up order of ``depends_on``. Pure: no process
is started here.
"""

from __future__ import annotations

import re
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)
_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>ms|us|ns|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
#: Words that mark a variable of .env.example as a secret to generate.
SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET")


class InterpolationError(ValueError):
    """A required variable (``${VAR:?message}``) is missing or empty."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """One string with compose's variable rules applied."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if unset_or_empty else str(value)
        if op in (":?", "?"):
            if unset_or_empty:
                raise InterpolationError(f"{name}: {arg or 'required'}")
            return str(value)
        return "" if value is None else value

    return _VARIABLE.sub(replace, text)


def _interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    return node


def duration_seconds(text: str | int | float) -> float:
    """Compose's duration format (``10s``, ``1m30s``, ``500ms``) in seconds."""
    if isinstance(text, int | float):
        return float(text)
    parts = list(_DURATION.finditer(text))
    if not parts or "".join(p.group(0) for p in parts) != text:
        raise ValueError(f"not a compose duration: {text!r}")
    return sum(float(p.group("value")) * _UNIT_SECONDS[p.group("unit")] for p in parts)


@dataclass(frozen=True)
class Healthcheck:
    """``healthcheck:`` of a service; ``argv`` is what runs (``CMD-SHELL`` becomes sh -c)."""

    argv: tuple[str, ...]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0

    @classmethod
    def parse(cls, spec: dict[str, Any]) -> Healthcheck:
        test = spec["test"]
        if isinstance(test, str):
            argv: tuple[str, ...] = ("/bin/sh", "-c", test)
        elif test[0] == "CMD":
            argv = tuple(test[1:])
        elif test[0] == "CMD-SHELL":
            argv = ("/bin/sh", "-c", " ".join(test[1:]))
        else:
            raise ValueError(f"unsupported health check test {test!r}")
        return cls(
            argv=argv,
            interval=duration_seconds(spec.get("interval", "30s")),
            timeout=duration_seconds(spec.get("timeout", "30s")),
            retries=int(spec.get("retries", 3)),
            start_period=duration_seconds(spec.get("start_period", "0s")),
        )


@dataclass(frozen=True)
class Volume:
    source: str  # a named volume, or a path relative to the project (bind mount)
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith((".", "/"))


@dataclass(frozen=True)
class Service:
    name: str
    image: str
    built: bool  # built from the project's Dockerfile
    command: tuple[str, ...] | None
    environment: dict[str, str]
    volumes: tuple[Volume, ...]
    ports: tuple[tuple[str, int, int], ...]  # (host ip, host port, container port)
    depends_on: dict[str, str]  # service -> condition
    healthcheck: Healthcheck | None
    restart: str = "no"
    stop_grace_period: float = 10.0
    init: bool = False


@dataclass
class ComposeProject:
    services: dict[str, Service]
    volumes: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    def start_order(self) -> list[str]:
        """Every service after the ones it depends on; file order breaks ties (as compose's
        own dependency walk, which starts independent services together, allows)."""
        order: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in order:
                return
            if name in visiting:
                raise ValueError(f"dependency cycle through {name}")
            visiting.add(name)
            for dependency in self.services[name].depends_on:
                visit(dependency)
            visiting.discard(name)
            order.append(name)

        for name in self.services:
            visit(name)
        return order


def _environment(node: Any) -> dict[str, str]:
    if not node:
        return {}
    if isinstance(node, list):
        node = dict(item.split("=", 1) for item in node)
    return {str(k): "" if v is None else str(v) for k, v in node.items()}


def _volume(text: str) -> Volume:
    parts = text.split(":")
    return Volume(parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(","))


def _port(text: str) -> tuple[str, int, int]:
    host_ip, host_port, container_port = str(text).rsplit(":", 2)
    return host_ip, int(host_port), int(container_port)


def _depends_on(node: Any) -> dict[str, str]:
    if not node:
        return {}
    if isinstance(node, list):
        return dict.fromkeys(node, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in node.items()}


def load(path: Path, env: dict[str, str]) -> ComposeProject:
    """The compose file at ``path`` with ``env`` (the .env file's values) interpolated."""
    raw = yaml.safe_load(path.read_text())
    tree = _interpolate_tree(raw, env)
    services = {}
    for name, spec in tree["services"].items():
        command = spec.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        health = spec.get("healthcheck")
        services[name] = Service(
            name=name,
            image=spec["image"],
            built="build" in spec,
            command=tuple(command) if command else None,
            environment=_environment(spec.get("environment")),
            volumes=tuple(_volume(v) for v in spec.get("volumes", [])),
            ports=tuple(_port(p) for p in spec.get("ports", [])),
            depends_on=_depends_on(spec.get("depends_on")),
            healthcheck=Healthcheck.parse(health) if health and not health.get("disable") else None,
            restart=str(spec.get("restart", "no")),
            stop_grace_period=duration_seconds(spec.get("stop_grace_period", "10s")),
            init=bool(spec.get("init", False)),
        )
    return ComposeProject(services, tuple(tree.get("volumes") or ()), env)


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def generate_env(example: Path, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """A complete ``.env`` from ``.env.example``: its values, a fresh random value for every
    empty secret (what the example tells a person to generate), then ``overrides``."""
    values = read_env_file(example)
    for key, value in values.items():
        if not value and any(word in key for word in SECRET_WORDS):
            values[key] = secrets.token_hex(24)
    values.update(overrides or {})
    return values


def format_env(values: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())
