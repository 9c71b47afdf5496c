"""Training runs are named for why they ran; the note links back to Dagster."""

from airquality_assets.ml.run_names import training_run_name, training_run_note


def test_each_retrain_reason_has_its_own_name() -> None:
    assert training_run_name("bootstrap") == "first champion"
    assert training_run_name("schedule") == "weekly retrain"
    assert training_run_name("drift") == "drift retrain"
    assert training_run_name("accuracy") == "accuracy retrain"
    assert training_run_name("drift+accuracy") == "drift + accuracy retrain"
    assert training_run_name(None) == "training (manual)"
    assert training_run_name("backfill") == "training (backfill)"


def test_the_note_is_markdown_with_a_clickable_link() -> None:
    note = training_run_note("schedule", "http://127.0.0.1:3000/runs/abc", "training", "weekly")
    assert note.startswith("**weekly retrain** (reason: `schedule`)")
    assert "[http://127.0.0.1:3000/runs/abc](http://127.0.0.1:3000/runs/abc)" in note
    assert "Trigger: weekly" in note
    assert "Trigger" not in training_run_note(None, "u", "training")
