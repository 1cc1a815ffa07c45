"""Distance between parameters, after matching exchangeable components (label switching).

A mixture's likelihood does not change when its components are relabelled,
so EM runs from different seeds may end at the same fixed point with the
components in a different order. Before measuring how far θ is from the
exact-EM fixed point θ*, the components of θ are put in the order that fits θ*
best: the permutation π minimizing ``Σ_k ‖c_π(k)(θ) − c_k(θ*)‖²`` where
``c_k`` stacks every parameter entry of component ``k`` (solved by trying
every permutation for at most :data:`MAX_ENUMERATED_STATES` components, else
with ``scipy.optimize.linear_sum_assignment``, imported only then: it costs
half a second of import). The matching is done for every iterate separately.

A hidden Markov model's states are exchangeable too, but relabelling them
permutes both the rows and the columns of the transition matrix
(``A ↦ P A Pᵀ``), so the cost is no longer a sum over single components. For
such models (``Symmetry.square_fields``) every permutation is tried when there
are at most :data:`MAX_ENUMERATED_STATES` states (the exact minimum of the
distance below); beyond that the diagonal and the sorted rows of the square
fields (which do not depend on the other components' labels) join ``c_k`` in the
linear assignment, which is then a heuristic.

The distance is then the Euclidean norm over all parameter entries::

    d(θ, θ*) = sqrt( Σ_fields Σ_entries (θ_matched − θ*)² ),

in the units of the parameters (fixed parameters contribute 0).
"""

from __future__ import annotations

import itertools

import numpy as np

from stochem.capabilities import LabelSymmetry
from stochem.models.symmetry import NO_SYMMETRY, Symmetry

__all__ = ["MAX_ENUMERATED_STATES", "NO_SYMMETRY", "Symmetry", "distance", "distance_trace",
           "match_components", "symmetry_of"]


MAX_ENUMERATED_STATES = 7  # 7! = 5040 relabellings, tried at once with numpy


def symmetry_of(model) -> Symmetry:
    """The label symmetry the model declares (:class:`stochem.capabilities.LabelSymmetry`), else none."""
    return model.label_symmetry if isinstance(model, LabelSymmetry) else NO_SYMMETRY


def _component_rows(params: dict, symmetry: Symmetry) -> np.ndarray | None:
    """``[K, P]``: one row of parameter entries per exchangeable component."""
    if symmetry.component_fields or symmetry.square_fields:
        parts = [np.asarray(params[name]) for name in symmetry.component_fields]
        for name in symmetry.square_fields:  # the diagonal, and each row's entries sorted
            square = np.asarray(params[name])
            parts += [np.einsum("ii...->i...", square), np.sort(square, axis=1)]
        return np.concatenate([part.reshape(part.shape[0], -1) for part in parts], axis=1)
    if symmetry.exchangeable_fields:
        return np.stack([np.asarray(params[name]).ravel() for name in symmetry.exchangeable_fields])
    return None


def _reorder(params: dict, symmetry: Symmetry, order: np.ndarray) -> dict:
    """``params`` with component ``order[k]`` moved to position ``k``."""
    result = dict(params)
    for name in symmetry.component_fields:
        result[name] = np.asarray(params[name])[order]
    for name in symmetry.square_fields:
        result[name] = np.asarray(params[name])[order][:, order]
    names = symmetry.exchangeable_fields
    for position, source in enumerate(order[: len(names)]):
        result[names[position]] = params[names[source]]
    return result


def _best_order_by_enumeration(params: dict, reference: dict, symmetry: Symmetry) -> np.ndarray:
    """The relabelling minimizing the squared distance over all fields, trying every permutation."""
    num_components = np.asarray(params[symmetry.square_fields[0]]).shape[0]
    orders = np.array(list(itertools.permutations(range(num_components))))  # [P, K]
    cost = np.zeros(len(orders))
    for name in symmetry.component_fields:
        value, target = np.asarray(params[name]), np.asarray(reference[name])
        cost += np.sum((value[orders] - target) ** 2, axis=tuple(range(1, value.ndim + 1)))
    for name in symmetry.square_fields:
        value, target = np.asarray(params[name]), np.asarray(reference[name])
        permuted = value[orders[:, :, None], orders[:, None, :]]  # [P, K, K, ...]
        cost += np.sum((permuted - target) ** 2, axis=tuple(range(1, value.ndim + 1)))
    return orders[np.argmin(cost)]


def match_components(params: dict, reference: dict, symmetry: Symmetry) -> dict:
    """Relabel the components of ``params`` to best match ``reference`` (dicts field -> array)."""
    if symmetry.square_fields:
        num_components = np.asarray(params[symmetry.square_fields[0]]).shape[0]
        if num_components <= MAX_ENUMERATED_STATES:
            return _reorder(params, symmetry, _best_order_by_enumeration(params, reference, symmetry))
    rows, reference_rows = _component_rows(params, symmetry), _component_rows(reference, symmetry)
    if rows is None:
        return params
    cost = np.sum((rows[:, None, :] - reference_rows[None, :, :]) ** 2, axis=-1)
    return _reorder(params, symmetry, _best_assignment(cost))


def _best_assignment(cost: np.ndarray) -> np.ndarray:
    """``order`` minimizing ``Σ_k cost[order[k], k]`` (row ``order[k]`` of θ goes to position ``k``)."""
    num_components = cost.shape[0]
    if num_components <= MAX_ENUMERATED_STATES:
        orders = np.array(list(itertools.permutations(range(num_components))))  # [P, K]
        return orders[np.argmin(cost[orders, np.arange(num_components)].sum(axis=1))]
    from scipy.optimize import linear_sum_assignment

    source, target = linear_sum_assignment(cost)
    order = np.empty_like(source)
    order[target] = source
    return order


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
