"""The model half: sequence tensors, the tuned LSTM, its evaluation, the promotion gate."""

from __future__ import annotations

import dagster as dg

from airquality_assets.settings import Settings


def definitions(settings: Settings) -> dg.Definitions:
    from airquality_assets.defs.model.checks import bento_serves_champion, champion_is_servable
    from airquality_assets.defs.model.jobs import build_training_job
    from airquality_assets.defs.model.tensors import sequence_tensors
    from airquality_assets.defs.model.training import champion_model, model_evaluation, tuned_lstm

    return dg.Definitions(
        assets=[sequence_tensors, tuned_lstm, model_evaluation, champion_model],
        asset_checks=[champion_is_servable, bento_serves_champion],
        jobs=[build_training_job(settings.profile, settings.executor)],
    )
