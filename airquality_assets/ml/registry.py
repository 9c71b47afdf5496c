"""Promotion gate on the MLflow model registry, using aliases only.

Registry stages (Staging/Production) are deprecated in MLflow; an alias (``champion``) is a
movable pointer to one version, which is exactly "the model serving uses". The gate:

1. registers every candidate as a new version (so each decision has a version to live on),
   tagged with its score;
2. waits (MLflow's ``await_creation_for``) until the version is ``READY``, then checks its
   logged model is ``READY`` with an ``MLmodel`` file in place: the alias must never point
   at a half-written model, whatever crashes later;
3. asks ``judge(champion_uri)`` for the decision *on the same test window* as the candidate:
   the project's rule (:mod:`airquality_assets.ml.promotion`) wants a significance test,
   not a lower number. Without a judge, ``evaluate_champion(champion_uri)`` gives the
   champion's score (lower is better) and the candidate must be strictly lower. Scores
   stored at the champion's own promotion were computed on an older window and are not
   comparable;
4. moves the alias only on that decision, or if there is no champion;
5. records the decision (reason, both scores, previous champion, the judge's evidence) as
   tags and description on
   the new version *before* moving the alias, so a consumer that follows the alias always
   finds a fully described version. A crash between step 5 and the alias move leaves a
   version tagged ``promotion_decision=promoted`` without the alias; the alias is the source
   of truth, and re-running the gate is safe.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airquality_assets.clock import to_utc
from airquality_assets.ml.package import ModelMetadata

DEFAULT_ALIAS = "champion"
TAG_DECISION = "promotion_decision"
TAG_REASON = "promotion_reason"
TAG_SCORE_NAME = "score_name"
TAG_PREVIOUS = "previous_champion_version"
#: The version's RMSE per horizon on the gate's clean windows (JSON ``{"1": ..., ...}``).
TAG_RMSE_BY_HORIZON = "gate_challenger_rmse_by_horizon"


@dataclass(frozen=True)
class Judgement:
    """A judge's decision on the candidate against the champion (step 3).

    ``tags`` (e.g. the p-value, the window, what was left out) go on the new version and
    into :attr:`PromotionDecision.evidence`.
    """

    promote: bool
    reason: str
    champion_score: float | None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PromotionDecision:
    """Outcome of one gate run (the ``champion_model`` asset's value)."""

    promoted: bool
    reason: str
    new_version: str
    previous_champion_version: str | None
    candidate_score: float
    champion_score: float | None
    score_name: str = "score"
    registered_name: str = ""
    alias: str = DEFAULT_ALIAS
    #: The judge's evidence (tag name -> value), as written on the new version.
    evidence: Mapping[str, str] = field(default_factory=dict)

    @property
    def champion_version(self) -> str | None:
        """The version the alias points at after this gate run."""
        return self.new_version if self.promoted else self.previous_champion_version


class RegistrationError(RuntimeError):
    """The new version never became READY (or its model files are missing)."""


def _model_id_from_uri(model_uri: str) -> str | None:
    """``models:/m-abc`` (an MLflow 3 logged model) -> ``m-abc``; else None."""
    prefix = "models:/"
    if model_uri.startswith(prefix):
        rest = model_uri[len(prefix) :].strip("/")
        if rest.startswith("m-") and "/" not in rest:
            return rest
    return None


def _link_logged_model(client: Any, model_id: str, name: str, version: str) -> None:
    """Record the version on its logged model, as ``mlflow.register_model`` does: the logged
    model's page then lists the registration instead of "Not registered"."""
    import json

    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    existing = client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS)
    versions = [*json.loads(existing)] if existing else []
    versions.append({"name": name, "version": version})
    client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(versions)})


def _check_files_ready(client: Any, name: str, version: str, model_id: str | None) -> None:
    """Raise unless the logged model behind a READY version is complete and readable."""
    from mlflow.entities import LoggedModelStatus

    from airquality_assets.ml.tracking import load_mlmodel

    if model_id is not None:
        logged = client.get_logged_model(model_id)
        if logged.status != LoggedModelStatus.READY:
            raise RegistrationError(
                f"logged model {model_id} behind {name} v{version} is {logged.status}, not READY"
            )
    # The artifact store is the last thing that could be incomplete: MLmodel is written last
    # by log_model, and loading it proves the storage location is reachable.
    try:
        load_mlmodel(client.get_model_version_download_uri(name, version))
    except Exception as exc:  # any storage error means: do not point the alias here
        raise RegistrationError(f"{name} v{version} has no readable MLmodel: {exc}") from exc


def champion_version(client: Any, name: str, alias: str = DEFAULT_ALIAS) -> Any | None:
    """The model version ``alias`` points at, or None when there is none (no alias, or no
    registered model yet). The one place the alias is resolved."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _current_alias_version(client: Any, name: str, alias: str) -> str | None:
    version = champion_version(client, name, alias)
    return None if version is None else str(version.version)


def _ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise


def _fmt(score: float | None) -> str:
    return "none" if score is None else f"{score:.6g}"


def register_and_maybe_promote(
    client: Any,
    model_uri: str,
    registered_name: str,
    candidate_score: float,
    score_name: str,
    evaluate_champion: Callable[[str], float] | None,
    alias: str = DEFAULT_ALIAS,
    tags: Mapping[str, str] | None = None,
    *,
    judge: Callable[[str], Judgement] | None = None,
    run_id: str | None = None,
    ready_timeout_s: int = 300,
) -> PromotionDecision:
    """Register ``model_uri`` as a new version of ``registered_name``; move ``alias`` if it wins.

    ``candidate_score`` and the champion's score are "lower is better" (e.g. mean test RMSE)
    and must come from the same test window: ``evaluate_champion`` receives the champion's
    pinned URI (``models:/<name>/<version>``, never the moving alias) and returns its score
    on the candidate's test window. Without a callback an existing champion is only
    replaced if its version carries a ``score_name`` tag, and the reason says so, because
    that score may come from another window. A non-finite candidate score never promotes;
    a non-finite champion score (a broken champion) loses to any finite candidate.
    ``judge``, when given, replaces the score comparison: it receives the same pinned URI
    and returns the :class:`Judgement` that decides (``evaluate_champion`` is then unused).
    """
    candidate_score = float(candidate_score)
    model_id = _model_id_from_uri(model_uri)
    if run_id is None and model_id is not None:
        run_id = client.get_logged_model(model_id).source_run_id

    _ensure_registered_model(client, registered_name)
    previous = _current_alias_version(client, registered_name, alias)
    version_tags = {
        **(tags or {}),
        TAG_SCORE_NAME: score_name,
        score_name: repr(candidate_score),
        TAG_DECISION: "pending",
    }
    version = _register_ready_version(
        client,
        registered_name,
        model_uri,
        version_tags,
        f"candidate {score_name}={_fmt(candidate_score)}; promotion pending",
        run_id=run_id,
        model_id=model_id,
        ready_timeout_s=ready_timeout_s,
    )

    champion_score: float | None = None
    source = ""
    judgement: Judgement | None = None
    if previous is not None:
        try:
            if judge is not None:
                judgement = judge(f"models:/{registered_name}/{previous}")
                champion_score = judgement.champion_score
            else:
                champion_score, source = _champion_score(
                    client, registered_name, previous, score_name, evaluate_champion
                )
        except Exception as exc:
            # Keep the alias where it is and leave an explanation on the version.
            failure = f"champion v{previous} evaluation failed: {exc!r}; {alias} stays"
            _record(client, registered_name, version, False, failure, previous, None, score_name)
            raise
    if judgement is not None and math.isfinite(candidate_score):
        promote, reason = judgement.promote, judgement.reason
    else:
        promote, reason = _verdict(
            candidate_score, champion_score, source, version, previous, alias, score_name
        )
    evidence = dict(judgement.tags) if judgement is not None else {}
    if promote:
        # Best-effort guard against a concurrent gate run that moved the alias meanwhile.
        now = _current_alias_version(client, registered_name, alias)
        if now != previous:
            promote = False
            reason = (
                f"{alias} moved from v{previous} to v{now} during this evaluation; "
                "not promoted, re-run the gate against the new champion"
            )
    _record(
        client, registered_name, version, promote, reason, previous, champion_score, score_name,
        evidence,
    )  # fmt: skip
    if promote:
        client.set_registered_model_alias(registered_name, alias, version)
    return PromotionDecision(
        promoted=promote,
        reason=reason,
        new_version=version,
        previous_champion_version=previous,
        candidate_score=candidate_score,
        champion_score=champion_score,
        score_name=score_name,
        registered_name=registered_name,
        alias=alias,
        evidence=evidence,
    )


def _register_ready_version(
    client: Any,
    name: str,
    model_uri: str,
    tags: Mapping[str, str],
    description: str,
    *,
    run_id: str | None,
    model_id: str | None,
    ready_timeout_s: int,
) -> str:
    """Create the version, wait until it and its files are READY (steps 1-2), link it on its
    logged model; return its number. Raises :class:`RegistrationError` otherwise."""
    from mlflow.exceptions import MlflowException

    try:  # waits until the version is READY, raises if it failed or timed out
        mv = client.create_model_version(
            name,
            source=model_uri,
            run_id=run_id,
            tags=dict(tags),
            description=description,
            model_id=model_id,
            await_creation_for=ready_timeout_s,
        )
    except MlflowException as exc:
        raise RegistrationError(f"{name}: new version not READY: {exc}") from exc
    version = str(mv.version)
    _check_files_ready(client, name, version, model_id)
    if model_id is not None:
        _link_logged_model(client, model_id, name, version)
    return version


def _champion_score(
    client: Any,
    name: str,
    previous: str,
    score_name: str,
    evaluate_champion: Callable[[str], float] | None,
) -> tuple[float | None, str]:
    """The champion's score and where it came from (step 3): re-evaluated through the
    callback, else the tag stored at its own registration (None without one)."""
    if evaluate_champion is not None:
        score = float(evaluate_champion(f"models:/{name}/{previous}"))
        return score, "re-evaluated on the same test window"
    stored = client.get_model_version(name, previous).tags.get(score_name)
    score = float(stored) if stored is not None else None
    return score, "stored at its registration (NOT re-evaluated; window may differ)"


def _verdict(
    candidate_score: float,
    champion_score: float | None,
    source: str,
    version: str,
    previous: str | None,
    alias: str,
    score_name: str,
) -> tuple[bool, str]:
    """Whether the candidate takes ``alias`` (step 4), and the reason recorded for it."""
    if previous is None:
        if math.isfinite(candidate_score):
            return True, f"no '{alias}' yet: candidate v{version} becomes {alias}"
        return False, f"candidate {score_name} is not finite ({candidate_score}); nothing promoted"
    if not math.isfinite(candidate_score):
        return False, f"candidate {score_name} is not finite ({candidate_score}); {alias} stays"
    if champion_score is None:
        return False, f"{alias} v{previous} has no comparable {score_name}; {alias} stays"
    candidate = f"candidate {score_name}={_fmt(candidate_score)}"
    champion = f"{alias} v{previous} {score_name}={_fmt(champion_score)} ({source})"
    if not math.isfinite(champion_score) or candidate_score < champion_score:
        return True, f"{candidate} < {champion}: promoted"
    return False, f"{candidate} >= {champion}: {alias} stays on v{previous}"


def _record(
    client: Any,
    name: str,
    version: str,
    promoted: bool,
    reason: str,
    previous: str | None,
    champion_score: float | None,
    score_name: str,
    evidence: Mapping[str, str] | None = None,
) -> None:
    """Write the decision onto the version (tags for machines, description for people)."""
    tags = {
        **(evidence or {}),
        TAG_DECISION: "promoted" if promoted else "rejected",
        TAG_REASON: reason[:5000],
        TAG_PREVIOUS: previous or "none",
    }
    if champion_score is not None:
        tags[f"champion_{score_name}"] = repr(champion_score)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.update_model_version(name, version, description=reason)


def load_champion(
    registered_name: str, alias: str = DEFAULT_ALIAS, *, client: Any | None = None
) -> tuple[str, str, ModelMetadata | None]:
    """Resolve ``alias`` once: ``(pinned model URI, version, package metadata)``.

    The URI is pinned (``models:/<name>/<version>``) so a later load cannot race with a
    promotion that moves the alias. Metadata comes from the logged model's MLmodel (see
    ``tracking.read_package_metadata``) with ``model_name``/``model_version`` filled in
    from the registry; it is None for versions logged without metadata. Raises
    :class:`NoChampionError` if the alias does not exist.
    """
    from mlflow import MlflowClient

    client = client or MlflowClient()
    mv = champion_version(client, registered_name, alias)
    if mv is None:
        raise NoChampionError(f"no '{alias}' alias on registered model {registered_name!r}")
    record = _read_version(client, registered_name, str(mv.version))
    return record.uri, record.version, record.metadata


class NoChampionError(LookupError):
    """The registered model has no version under the alias (nothing promoted yet)."""


@dataclass(frozen=True)
class ChampionRecord:
    """One registered version as the operating loop needs it; a version never changes."""

    name: str
    version: str
    uri: str
    metadata: ModelMetadata | None
    tags: Mapping[str, str]
    metrics: Mapping[str, float]
    #: The MLflow run the version was logged from (its evaluation run), where the loop
    #: keeps the charts of how the version forecasts in operation.
    run_id: str | None = None

    def seen_until(self) -> datetime:
        """End of what the model trained and was selected on (its test window's start)."""
        window = json.loads(self.tags.get("test_window", "{}") or "{}")
        end = window.get("start") or self.package_metadata().training_window["end"]
        return to_utc(end)

    def training_start(self) -> datetime:
        return to_utc(self.package_metadata().training_window["start"])

    def test_rmse_by_horizon(self) -> dict[int, float]:
        """Per-horizon test RMSE of the version (matched horizons): on the promotion gate's
        clean windows when it was judged against a champion (a test window holding a
        faulty sensor's days would set the bar where the fault is), else its candidate
        run's test metrics."""
        from airquality_assets.ml.tracking import metric_name

        clean = json.loads(self.tags.get(TAG_RMSE_BY_HORIZON, "{}") or "{}")
        if clean:
            return {int(h): float(v) for h, v in clean.items()}
        meta = self.package_metadata()
        out: dict[int, float] = {}
        for pollutant in meta.target_pollutants:
            for h in meta.horizons:
                key = metric_name("test", "rmse", pollutant, int(h))
                if key in self.metrics:
                    out[int(h)] = float(self.metrics[key])
        return out

    def package_metadata(self) -> ModelMetadata:
        """The version's package metadata; raises when it was logged without."""
        if self.metadata is None:
            raise NoChampionError(f"{self.uri} was logged without model-package metadata")
        return self.metadata


#: (tracking URI, name, version) -> record: reading a version's metadata is an artifact
#: download, and a version's content never changes, so once per process is enough.
_RECORDS: dict[tuple[str, str, str], ChampionRecord] = {}
_FORWARDS: dict[str, Callable] = {}


def _read_version(client: Any, name: str, version: str) -> ChampionRecord:
    from airquality_assets.ml.tracking import read_package_metadata

    key = (str(client.tracking_uri), name, version)
    if key not in _RECORDS:
        mv = client.get_model_version(name, version)
        metadata = read_package_metadata(
            client.get_model_version_download_uri(name, version),
            run_id=mv.run_id,
            tracking_uri=client.tracking_uri,
        )
        if metadata is not None:
            metadata.model_name = name
            metadata.model_version = version
        metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
        _RECORDS[key] = ChampionRecord(
            name=name,
            version=version,
            uri=f"models:/{name}/{version}",
            metadata=metadata,
            tags=dict(mv.tags or {}),
            metrics=dict(metrics),
            run_id=mv.run_id or None,
        )
    return _RECORDS[key]


def read_version(client: Any, name: str, version: str) -> ChampionRecord:
    """One version's record, read once per process: e.g. the one that issued a stored
    forecast, whose test RMSE its forecasts are judged against."""
    return _read_version(client, name, str(version))


def read_champion(client: Any, name: str, alias: str = DEFAULT_ALIAS) -> ChampionRecord:
    """The champion now: the alias is resolved on every call (it moves), the version's
    record read once per process. Raises :class:`NoChampionError` when there is none."""
    mv = champion_version(client, name, alias)
    if mv is None:
        raise NoChampionError(f"no '{alias}' alias on registered model {name!r}")
    return _read_version(client, name, str(mv.version))


def champion_forward(record: ChampionRecord) -> Callable:
    """The jitted forward pass of a pinned version, loaded once per process."""
    if record.uri not in _FORWARDS:
        from airquality_assets.ml.logged_model import load_logged_model
        from airquality_assets.ml.model import jit_forward

        _FORWARDS[record.uri] = jit_forward(load_logged_model(record.uri))
    return _FORWARDS[record.uri]
