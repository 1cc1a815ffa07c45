"""How the log joint of a continuous numpyro model splits into independent groups of latent values.

In unconstrained coordinates ``z`` (the MCMC chain's), the log joint with its
Jacobian is a sum of *terms*: one log density per element of every sample
site (observed sites, latent sites, ``numpyro.factor``) and one log-Jacobian
per latent element::

    −U_θ(z) = Σ_e t_e(z).

Each term depends on a few coordinates of ``z``. Two coordinates that share a
term are dependent given θ and the data; the connected components of that
relation are the *groups* (a random-effects model: one group per subject or
herd; a censored regression: one per censored value; a state-space model:
the whole chain). Terms that depend on no coordinate are constants given θ.
Because the terms of different groups share no coordinate,

    p(o; θ) = exp(Σ_{constant e} t_e) · Π_g ∫ exp(Σ_{e ∈ g} t_e(z_g)) dz_g,

so ℓ(θ) is a sum of independent low-dimensional integrals, whose Monte Carlo
errors add up over groups instead of multiplying (see :mod:`._loglik`).

Which coordinates a term depends on is read from the sparsity of the
Jacobian ∂t/∂z, computed on concrete values at two random points before
anything is traced (a term whose derivative vanishes at both points by
coincidence would be missed; two generic points make that a measure-zero
event). The groups are static structure: a model with other data of the same
shapes but another grouping (another ``group`` index array) gets its own
compiled program.

The latent sites' supports are those traced when the model was built (their
constraints must not depend on θ).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import compute_log_probs

# Coordinates whose Jacobian columns are computed in one vectorized pass.
_SPARSITY_CHUNK = 256


class LatentGroups(NamedTuple):
    """Independent groups of the latent coordinates (static, hashable).

    Groups are numbered ``0 … G−1``, those of one size together.

    Attributes:
        classes: one entry per group size ``d``, in increasing ``d``: a tuple
            of ``G_d`` tuples of ``d`` flat coordinate indices (the groups of
            that size, in group order).
        term_groups: for every term, the group it belongs to, or ``-1`` for a
            term that depends on no latent value (a constant given θ).
        dimension: the number of unconstrained latent coordinates.
    """

    classes: tuple
    term_groups: tuple
    dimension: int

    @property
    def num_groups(self) -> int:
        return sum(len(coordinates) for coordinates in self.classes)

    @property
    def largest_group(self) -> int:
        return max(len(coordinates[0]) for coordinates in self.classes)


def term_log_densities(model, params, data, flat_position):
    """The terms ``t_e(z)`` of ``−U_θ(z)``, as one vector (a flat unconstrained position ``z``).

    Args:
        model: a :class:`ContinuousNumpyroModel`.
        params: its parameters.
        data: its prepared data.
        flat_position: ``[D]`` unconstrained latent values, raveled like ``model.init_position``.
    """
    unravel = ravel_pytree(model.init_position(params, data))[1]
    position = unravel(flat_position)
    constrained, jacobian_terms = {}, []
    for site in model.sites.latents:
        transform = biject_to(site.distribution.support)
        value = transform(position[site.name])
        constrained[site.name] = value
        jacobian_terms.append(jnp.ravel(transform.log_abs_det_jacobian(position[site.name], value)))
    args, kwargs = model.arguments.rebuild(data)
    log_probs, _ = compute_log_probs(model.with_params(params), args, kwargs, constrained, sum_log_prob=False)
    return jnp.concatenate([jnp.ravel(log_prob) for log_prob in log_probs.values()] + jacobian_terms)


def _dependencies(model, params, data, point) -> np.ndarray:
    """``[num_terms, D]`` booleans: term ``e`` has a nonzero derivative in coordinate ``d`` at ``point``."""
    terms = jax.jit(lambda z: term_log_densities(model, params, data, z))
    dimension = point.shape[0]

    @jax.jit
    def columns(tangents):
        return jax.vmap(lambda tangent: jax.jvp(terms, (point,), (tangent,))[1])(tangents)

    pattern = []
    for start in range(0, dimension, _SPARSITY_CHUNK):
        tangents = jnp.eye(dimension, dtype=point.dtype)[start:start + _SPARSITY_CHUNK]
        pattern.append(np.asarray(columns(tangents)).T != 0)
    return np.concatenate(pattern, axis=1)


def _components(dependent: np.ndarray) -> np.ndarray:
    """Connected components of the coordinates, linked when one term depends on both (union–find)."""
    dimension = dependent.shape[1]
    parent = np.arange(dimension)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for row in dependent:
        touched = np.flatnonzero(row)
        for other in touched[1:]:
            a, b = root(touched[0]), root(other)
            if a != b:
                parent[b] = a
    return np.array([root(i) for i in range(dimension)])


def find_groups(model, params, data, seed: int = 0) -> LatentGroups:
    """The independent groups of ``model``'s latent coordinates, on concrete values (see the module docstring)."""
    flat, _ = ravel_pytree(model.init_position(params, data))
    rng = np.random.default_rng(seed)
    dependent = np.zeros((0, 0), dtype=bool)
    for _ in range(2):
        point = jnp.asarray(rng.uniform(-1.0, 1.0, flat.shape), dtype=flat.dtype)
        pattern = _dependencies(model, params, data, point)
        dependent = pattern if dependent.size == 0 else dependent | pattern
    num_terms, dimension = dependent.shape
    component = _components(dependent)
    term_component = np.full(num_terms, -1)
    for term, row in enumerate(dependent):
        touched = np.flatnonzero(row)
        if touched.size:
            term_component[term] = component[touched[0]]
    by_size: dict[int, list] = {}
    for label in np.unique(component):
        coordinates = tuple(int(i) for i in np.flatnonzero(component == label))
        by_size.setdefault(len(coordinates), []).append((label, coordinates))
    classes, group_of_label = [], {}
    for size in sorted(by_size):
        classes.append(tuple(coordinates for _, coordinates in by_size[size]))
        for label, _ in by_size[size]:
            group_of_label[label] = len(group_of_label)
    term_groups = tuple(-1 if label < 0 else group_of_label[label] for label in term_component)
    return LatentGroups(tuple(classes), term_groups, dimension)
