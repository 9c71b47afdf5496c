"""Serving building blocks: request validation, predictor, BentoML store, champion reload."""
