"""Distance between parameters, after matching exchangeable components (label switching).

A mixture's likelihood does not change when its components are relabelled,
so EM runs from different seeds may end at the same fixed point with the
components in a different order. Before measuring how far θ is from the
exact-EM fixed point θ*, the components of θ are put in the order that fits θ*
best: the permutation π minimizing ``Σ_k ‖c_π(k)(θ) − c_k(θ*)‖²`` where
``c_k`` stacks every parameter entry of component ``k`` (solved with
``scipy.optimize.linear_sum_assignment``). The matching is done for every
iterate separately.

The distance is then the Euclidean norm over all parameter entries::

    d(θ, θ*) = sqrt( Σ_fields Σ_entries (θ_matched − θ*)² ),

in the units of the parameters (fixed parameters contribute 0).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclasses.dataclass(frozen=True)
class Symmetry:
    """Which parts of θ may be relabelled without changing the likelihood.

    Attributes:
        component_fields: fields whose leading axis indexes the exchangeable
            components (a mixture's ``weights``, ``means``, ...).
        exchangeable_fields: fields that are themselves exchangeable copies of
            one another (the two dice of ``DiceSum``: ``probs1``, ``probs2``).
    """

    component_fields: tuple[str, ...] = ()
    exchangeable_fields: tuple[str, ...] = ()


NO_SYMMETRY = Symmetry()


def symmetry_of(model) -> Symmetry:
    """The label symmetry of a stochem model (none for models not listed here)."""
    name = type(model).__name__
    if name in ("BinomialMixture", "CategoricalMixture"):
        return Symmetry(component_fields=("weights", "probs"))
    if name == "GaussianMixture":
        fields = ("weights", "means") if model.covariance_type == "tied" else ("weights", "means", "covariances")
        return Symmetry(component_fields=fields)
    if name == "DiceSum":
        return Symmetry(exchangeable_fields=("probs1", "probs2"))
    return NO_SYMMETRY


def _component_rows(params: dict, symmetry: Symmetry) -> np.ndarray | None:
    """``[K, P]``: one row of parameter entries per exchangeable component."""
    if symmetry.component_fields:
        parts = [np.asarray(params[name]) for name in symmetry.component_fields]
        return np.concatenate([part.reshape(part.shape[0], -1) for part in parts], axis=1)
    if symmetry.exchangeable_fields:
        return np.stack([np.asarray(params[name]).ravel() for name in symmetry.exchangeable_fields])
    return None


def _reorder(params: dict, symmetry: Symmetry, order: np.ndarray) -> dict:
    """``params`` with component ``order[k]`` moved to position ``k``."""
    result = dict(params)
    for name in symmetry.component_fields:
        result[name] = np.asarray(params[name])[order]
    names = symmetry.exchangeable_fields
    for position, source in enumerate(order[: len(names)]):
        result[names[position]] = params[names[source]]
    return result


def match_components(params: dict, reference: dict, symmetry: Symmetry) -> dict:
    """Relabel the components of ``params`` to best match ``reference`` (dicts field -> array)."""
    rows, reference_rows = _component_rows(params, symmetry), _component_rows(reference, symmetry)
    if rows is None:
        return params
    cost = np.sum((rows[:, None, :] - reference_rows[None, :, :]) ** 2, axis=-1)
    source, target = linear_sum_assignment(cost)
    order = np.empty_like(source)
    order[target] = source
    return _reorder(params, symmetry, order)


def distance(params: dict, reference: dict, symmetry: Symmetry) -> float:
    """Euclidean distance over all entries between matched ``params`` and ``reference``."""
    matched = match_components(params, reference, symmetry)
    squares = sum(float(np.sum((np.asarray(matched[name]) - np.asarray(reference[name])) ** 2))
                  for name in reference)
    return float(np.sqrt(squares))


def distance_trace(params_trace: dict, reference: dict, symmetry: Symmetry) -> np.ndarray:
    """Distances for a trace whose fields have leading axes ``[num_seeds, T + 1]``.

    Returns:
        ``[num_seeds, T + 1]``; NaN where the trace is NaN (iterations not run).
    """
    arrays = {name: np.asarray(value) for name, value in params_trace.items()}
    num_seeds, length = next(iter(arrays.values())).shape[:2]
    distances = np.full((num_seeds, length), np.nan)
    for seed in range(num_seeds):
        for iteration in range(length):
            iterate = {name: value[seed, iteration] for name, value in arrays.items()}
            if all(np.all(np.isfinite(value)) for value in iterate.values()):
                distances[seed, iteration] = distance(iterate, reference, symmetry)
    return distances
