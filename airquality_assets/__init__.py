"""airquality-assets: urban air-quality forecasting as Dagster software-defined assets.

Keras must run on the JAX backend in every process that imports it (Dagster run workers,
tests, the Bento service). Setting it here, before anything can import keras, means no user
has to remember an environment variable; an explicit ``KERAS_BACKEND`` still wins.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
