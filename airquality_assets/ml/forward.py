"""The jitted forward pass: one implementation for evaluation (``ml/``) and the service.

Why not ``model.predict``: under the JAX backend Keras keeps per-model mutable state (the
compiled predict function, its iterator, "compiled" flags), so concurrent calls from server
threads failed and stayed broken. ``stateless_call`` is a pure function of (weights,
inputs); jitting it with the weights passed as arrays gives a compiled XLA function that
many threads may call at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def jit_forward(model: Any) -> Callable[..., np.ndarray]:
    """A pure, jitted ``(x[, forecast]) -> forecast`` function over a copy of ``model``'s
    weights: ``forward(x)`` for a model reading observations only, ``forward(x, future)``
    for one that also reads the weather forecast of the target hours.

    The copy means later training of ``model`` does not change an already-built function.
    JAX compiles once per input shape, so a server pads batches to a few fixed sizes.
    An :class:`~airquality_assets.ml.ensemble.EnsembleModel` (LSTMs plus LightGBM) gets
    the same call: its members' jitted functions blended with its boosters.
    """
    from airquality_assets.ml.ensemble import EnsembleModel, ensemble_forward

    if isinstance(model, EnsembleModel):
        return ensemble_forward(model)
    import jax
    import jax.numpy as jnp

    trainable = [jnp.array(v.value) for v in model.trainable_variables]
    non_trainable = [jnp.array(v.value) for v in model.non_trainable_variables]

    @jax.jit
    def _forward(trainable_vars: list[Any], non_trainable_vars: list[Any], x: Any) -> Any:
        outputs, _ = model.stateless_call(trainable_vars, non_trainable_vars, x, training=False)
        return outputs

    n_inputs = len(model.inputs)

    def forward(*arrays: np.ndarray) -> np.ndarray:
        if len(arrays) != n_inputs:
            raise ValueError(f"the model reads {n_inputs} input(s), got {len(arrays)}")
        inputs = [jnp.asarray(a, dtype=jnp.float32) for a in arrays]
        return np.asarray(
            _forward(trainable, non_trainable, inputs[0] if n_inputs == 1 else inputs)
        )

    forward.n_inputs = n_inputs  # type: ignore[attr-defined]  (what a caller must pass)
    return forward
