"""Shared test set-up: float64 everywhere, since results are compared to references."""

import jax

jax.config.update("jax_enable_x64", True)
