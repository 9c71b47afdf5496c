"""Bundled data: the real Beijing PM2.5 data set converted to API shapes for the replay source.

The converted files live in ``replay/`` (package data, see ``pyproject.toml``); the pure
conversion functions that produced them are in :mod:`airquality_assets.data.beijing`.
"""
