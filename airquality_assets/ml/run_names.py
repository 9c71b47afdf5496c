"""What the MLflow UI shows of a training run: a name for why it ran, and a note linking back.

Every training run's parent MLflow run would otherwise be named after its Dagster job
(``training``), so the first champion, the weekly retrain and a drift retrain look alike in
the runs table. The reason comes from the Dagster run's retrain-reason tag (``bootstrap``,
``schedule``, ``drift``, ``accuracy``, ``drift+accuracy``; none for a run started by hand).
"""

from __future__ import annotations

#: Tag on the parent MLflow run: why the training run ran (the Dagster tag's value).
TAG_REASON = "retrain_reason"
#: MLflow's own tags: the run's display name and its description (markdown, rendered).
TAG_RUN_NAME = "mlflow.runName"
TAG_NOTE = "mlflow.note.content"

_NAMES = {
    "bootstrap": "first champion",
    "schedule": "weekly retrain",
    "drift": "drift retrain",
    "accuracy": "accuracy retrain",
}


def training_run_name(reason: str | None) -> str:
    """``first champion``, ``weekly retrain``, ``drift retrain``, ``drift + accuracy
    retrain``; ``training (manual)`` for a run with no reason."""
    if not reason:
        return "training (manual)"
    if reason in _NAMES:
        return _NAMES[reason]
    parts = [p for p in reason.split("+") if p]
    if parts and all(p in ("drift", "accuracy") for p in parts):
        return " + ".join(parts) + " retrain"
    return f"training ({reason})"


def training_run_note(reason: str | None, run_url: str, job: str, detail: str | None = None) -> str:
    """The parent run's description (markdown): why it ran and a clickable link to the
    Dagster run (MLflow shows tags as plain text, the description as markdown)."""
    lines = [
        f"**{training_run_name(reason)}** (reason: `{reason or 'manual'}`)",
        "",
        f"Dagster run of job `{job}`: [{run_url}]({run_url})",
    ]
    if detail:
        lines += ["", f"Trigger: {detail}"]
    return "\n".join(lines)
