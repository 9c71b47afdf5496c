"""Settings declared once: each field names its environment variable, default and meaning.

A field made with :func:`env_field` carries its variable in its pydantic metadata, so one
declaration gives the parser (:func:`from_env`), the error messages (which name the
variable) and the reference table (:func:`markdown_table`, committed as
``docs/reference/environment.md``). Sections are nested models; a model can be parsed alone
(the service parses just its own, before JAX loads), so this module imports only pydantic
and the standard library, and it reads no environment itself: callers pass the mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo

_MISSING: Any = object()
M = TypeVar("M", bound=BaseModel)


def env_field(
    default: Any = _MISSING,
    *,
    env: str,
    help: str,
    default_doc: str | None = None,
    keep_blank: bool = False,
    secret: bool = False,
    default_factory: Callable[[], Any] | None = None,
    **constraints: Any,
) -> Any:
    """A model field read from ``env``.

    ``keep_blank``: a variable set to an empty string is passed to the field's validators
    (where an empty value means something, e.g. "no budget"); otherwise it counts as unset,
    so ``VAR=`` from a compose file falls back to the default. ``secret``: the value is
    validated but never serialized into resource config (it is read again at run time).
    ``default_doc`` is what the reference table shows when the default is computed.
    """
    extra = {"env": env, "keep_blank": keep_blank, "secret": secret}
    if default_doc is not None:
        extra["default_doc"] = default_doc
    if default_factory is not None:
        return Field(
            default_factory=default_factory,
            description=help,
            json_schema_extra=extra,
            **constraints,
        )
    if default is _MISSING:
        return Field(description=help, json_schema_extra=extra, **constraints)
    return Field(default, description=help, json_schema_extra=extra, **constraints)


@dataclass(frozen=True)
class Declared:
    """One environment-backed field: where it sits in the model and what it reads."""

    path: tuple[str, ...]
    env: str
    info: FieldInfo
    section: type[BaseModel]

    @property
    def extra(self) -> dict[str, Any]:
        extra = self.info.json_schema_extra
        return extra if isinstance(extra, dict) else {}

    @property
    def keep_blank(self) -> bool:
        return bool(self.extra.get("keep_blank"))

    @property
    def secret(self) -> bool:
        return bool(self.extra.get("secret"))

    @property
    def help(self) -> str:
        return self.info.description or ""

    def default_text(self) -> str:
        """The default as the reference table shows it: a literal value in backticks, or
        the field's ``default_doc`` (prose) when the default is computed."""
        if "default_doc" in self.extra:
            return str(self.extra["default_doc"])
        if self.info.default_factory is not None:
            value = self.info.default_factory()  # type: ignore[call-arg]
        else:
            value = self.info.default
        if value is None or value == () or value == []:
            return "unset"
        if isinstance(value, bool):
            value = "1" if value else "0"
        elif isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        return f"`{value}`"


def _section(annotation: Any) -> type[BaseModel] | None:
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def declared(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[Declared]:
    """Every environment-backed field of ``model`` and its nested sections, in order."""
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and "env" in extra:
            yield Declared((*prefix, name), str(extra["env"]), info, model)
        elif (section := _section(info.annotation)) is not None:
            yield from declared(section, (*prefix, name))


def secret_paths(model: type[BaseModel]) -> list[tuple[str, ...]]:
    """Where the secret fields sit: left out of anything serialized into resource config."""
    return [d.path for d in declared(model) if d.secret]


def raw_values(model: type[BaseModel], env: Mapping[str, str]) -> dict[str, Any]:
    """The nested input ``model`` validates: each set variable's text at its field's path."""
    values: dict[str, Any] = {}
    for item in declared(model):
        text = env.get(item.env)
        if text is None or (not text.strip() and not item.keep_blank):
            continue
        node = values
        for key in item.path[:-1]:
            node = node.setdefault(key, {})
        node[item.path[-1]] = text
    return values


@dataclass(frozen=True)
class Problem:
    """One refused value: its variable (None for a rule across fields), text and message."""

    env: str | None
    text: str | None
    message: str


def from_env(
    model: type[M], env: Mapping[str, str], refuse: Callable[[list[Problem]], Exception]
) -> M:
    """Validate ``model`` from ``env``; a refusal is ``refuse(problems)``, raised bare."""
    values = raw_values(model, env)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        by_path = {d.path: d.env for d in declared(model)}
        problems = []
        for error in exc.errors(include_url=False):
            path = tuple(str(part) for part in error["loc"])
            variable = next(
                (by_path[path[:n]] for n in range(len(path), 0, -1) if path[:n] in by_path),
                None,
            )
            message = error["msg"].removeprefix("Value error, ")
            problems.append(Problem(variable, env.get(variable) if variable else None, message))
        raise refuse(problems) from None


def markdown_table(
    model: type[BaseModel],
    used_by: Mapping[str, str] | None = None,
    section: type[BaseModel] | None = None,
) -> str:
    """The reference rows of ``model`` (only those declared in ``section``, if given):
    variable, default, meaning, and who else reads it (``used_by``)."""
    used_by = used_by or {}
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for item in declared(model):
        if section is not None and item.section is not section:
            continue
        meaning = " ".join(item.help.split())
        if item.env in used_by:
            meaning = f"{meaning} (also read by {used_by[item.env]})"
        default = item.default_text().replace("|", "\\|")
        meaning = meaning.replace("|", "\\|")
        rows.append(f"| `{item.env}` | {default} | {meaning} |")
    return "\n".join(rows)
