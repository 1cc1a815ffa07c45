"""Finite-difference Hessians of log-likelihoods written in numpy, the references of the standard errors."""

from __future__ import annotations

import numpy as np


def finite_difference_hessian(function, point, step: float = 1e-4) -> np.ndarray:
    """``∂²f/∂x_i∂x_j`` at ``point`` by central second differences (error of order ``step²``), ``[p, p]``."""
    point = np.asarray(point, dtype=float)
    size = point.size
    hessian = np.empty((size, size))
    for i in range(size):
        for j in range(size):
            shift_i, shift_j = np.eye(size)[i] * step, np.eye(size)[j] * step
            hessian[i, j] = (function(point + shift_i + shift_j) - function(point + shift_i - shift_j)
                             - function(point - shift_i + shift_j) + function(point - shift_i - shift_j)) / (4 * step**2)
    return hessian
