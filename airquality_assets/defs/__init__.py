"""Dagster wiring only: every module here is thin and calls into sources/, transforms/, ml/."""
