"""Latent sites in independent groups: the per-group densities that per-group MCMC kernels need.

Many models fitted by SAEM have one small block of latent variables per group
(per subject, per cluster) that are independent given θ: the posterior
factorises, ``p(m | o; θ) = Π_g p(m_g | o_g; θ)``, and a Metropolis kernel can
accept or reject each group on its own (saemix, Monolix). For a numpyro model
:func:`group_structure` finds the groups and checks that they are independent:

* every latent site sits in one common ``numpyro.plate`` (the *groups*, size G);
* every element of every sample site's log density depends on the latent
  values of at most one group. This is checked once, on concrete values: one
  forward-mode derivative per group (random directions inside the group, zero
  elsewhere) of every site's elementwise log density; an element with a
  nonzero derivative for two groups makes the model refuse, with the site
  named. Elements that depend on no latent value are constant and dropped.

The latent values of group g, in numpyro's unconstrained space, are laid out
as one row of a ``[G, d]`` array (:class:`GroupLayout`), so kernels act on all
groups at once and keep one acceptance decision per row. Per group::

    log p(o_g | m_g; θ)  = Σ over the elements of the non-latent sites in g
    log prior_g          = Σ over the latent sites' elements in g  +  log |det ∂T/∂z| of g
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import compute_log_probs


class LatentBlock(NamedTuple):
    """Where one latent site sits in a group's row: its unconstrained shape and group axis, its columns."""

    name: str
    shape: tuple  # unconstrained shape, group axis included
    group_axis: int
    start: int
    width: int


class GroupStructure(NamedTuple):
    """The groups of a numpyro model (see the module docstring).

    Attributes:
        plate: the plate over groups; ``num_groups`` its size.
        blocks: one :class:`LatentBlock` per latent site.
        width: ``d``, unconstrained latent values per group.
        element_groups: ``{sample site: [elements] group index}`` (``G`` for
            elements that depend on no latent value: dropped by the sums).
        latent_sites: the latent site names (their elements form the prior part).
    """

    plate: str
    num_groups: int
    blocks: tuple
    width: int
    element_groups: dict
    latent_sites: tuple

    def to_rows(self, position: dict):
        """``{site: unconstrained array}`` -> ``[G, d]``."""
        return jnp.concatenate([jnp.moveaxis(position[b.name], b.group_axis, 0).reshape(self.num_groups, b.width)
                                for b in self.blocks], axis=1)

    def from_rows(self, rows) -> dict:
        """``[G, d]`` -> ``{site: unconstrained array}``."""
        position = {}
        for block in self.blocks:
            moved = list(block.shape)
            moved.insert(0, moved.pop(block.group_axis))
            columns = rows[:, block.start: block.start + block.width].reshape(moved)
            position[block.name] = jnp.moveaxis(columns, 0, block.group_axis)
        return position


def _common_plate(model):
    """``(name, size)`` of the plate every latent site sits in (the outermost if several)."""
    shared = None
    for site in model.sites.latents:
        names = {frame.name for frame in site.plates}
        shared = names if shared is None else shared & names
    if not shared:
        raise ValueError(
            "per-group MCMC needs every latent site inside one common numpyro.plate (the groups, e.g. "
            f"subjects); the latent sites {list(model.latent_names)} share none. Use "
            "completion=stochem.mcmc(num_samples), whose NUTS kernel moves all latent values jointly.")
    frames = {frame.name: frame for site in model.sites.latents for frame in site.plates}
    name = min(shared, key=lambda plate: frames[plate].dim)  # the outermost: most negative dim
    return name, frames[name].size


def group_structure(model) -> GroupStructure:
    """Find and check the groups of ``model`` (rules in the module docstring); runs eagerly on concrete values."""
    with jax.ensure_compile_time_eval():
        return _structure(model)


def _blocks(model, plate):
    blocks, start = [], 0
    for site, shape in zip(model.sites.latents, model.unconstrained_shapes().values()):
        frame = next(frame for frame in site.plates if frame.name == plate)
        axis = len(site.batch_shape) + frame.dim
        width = math.prod(shape) // shape[axis]
        blocks.append(LatentBlock(site.name, tuple(shape), axis, start, width))
        start += width
    return tuple(blocks), start


def _structure(model) -> GroupStructure:
    plate, num_groups = _common_plate(model)
    blocks, width = _blocks(model, plate)
    data = model.prepare_data(None)
    args, kwargs = model.arguments.rebuild(data)
    params = model.site_values(model.initial_values(jax.random.key(0), data))
    rng = np.random.default_rng(0)
    probe = GroupStructure(plate, num_groups, blocks, width, {}, model.latent_names)
    rows = jnp.asarray(rng.uniform(-1.0, 1.0, (num_groups, width)))

    def elementwise(rows):
        latent = _constrained(model, probe, rows)
        log_probs, _ = compute_log_probs(model.model_fn, args, kwargs, {**params, **latent}, sum_log_prob=False)
        return {name: jnp.ravel(value) for name, value in log_probs.items()}

    directions = jnp.asarray(rng.standard_normal((num_groups, width)))

    @jax.jit
    def derivatives(rows):  # {site: [G, elements]}: one forward derivative per group, all in one program
        def along(group):
            direction = jnp.where(jnp.arange(num_groups)[:, None] == group, directions, 0.0)
            return jax.jvp(elementwise, (rows,), (direction,))[1]

        return jax.lax.map(along, jnp.arange(num_groups))

    per_group = derivatives(rows)
    element_groups = {}
    for name, values in per_group.items():
        touched = np.asarray(values).T != 0  # [elements, G]
        counts = touched.sum(axis=1)
        if np.any(counts > 1):
            raise ValueError(
                f"per-group MCMC needs the groups of plate {plate!r} to be independent, but site {name!r} "
                f"has elements whose density depends on the latent values of {int(counts.max())} groups. "
                "Use completion=stochem.mcmc(num_samples) for models whose groups are coupled.")
        element_groups[name] = np.where(counts == 1, np.argmax(touched, axis=1), num_groups).astype(np.int32)
    return probe._replace(element_groups=element_groups)


def _constrained(model, structure, rows) -> dict:
    position = structure.from_rows(rows)
    return {site.name: biject_to(site.distribution.support)(position[site.name]) for site in model.sites.latents}


def _per_group(structure, name, values):
    return jax.ops.segment_sum(jnp.ravel(values), structure.element_groups[name],
                               num_segments=structure.num_groups)


def group_log_densities(model, structure, params, data, rows):
    """``(log p(o_g | m_g; θ), log prior_g)`` per group, each ``[G]`` (unconstrained ``rows`` ``[G, d]``)."""
    args, kwargs = model.arguments.rebuild(data)
    position = structure.from_rows(rows)
    latent = {}
    log_prior = jnp.zeros(structure.num_groups, rows.dtype)
    for site, block in zip(model.sites.latents, structure.blocks):
        bijection = biject_to(site.distribution.support)
        value = bijection(position[site.name])
        latent[site.name] = value
        log_det = bijection.log_abs_det_jacobian(position[site.name], value)
        other_axes = tuple(axis for axis in range(jnp.ndim(log_det)) if axis != block.group_axis)
        log_prior = log_prior + jnp.sum(log_det, axis=other_axes)
    log_probs, _ = compute_log_probs(model.model_fn, args, kwargs, {**model.site_values(params), **latent},
                                     sum_log_prob=False)
    log_lik = jnp.zeros(structure.num_groups, rows.dtype)
    for name, values in log_probs.items():
        if name in structure.latent_sites:
            log_prior = log_prior + _per_group(structure, name, values)
        else:
            log_lik = log_lik + _per_group(structure, name, values)
    return log_lik, log_prior


def prior_rows(model, structure, key, params, data):
    """One draw of every group's latent values from their prior at θ, as unconstrained ``[G, d]`` rows."""
    args, kwargs = model.arguments.rebuild(data)
    seeded = handlers.seed(handlers.substitute(model.model_fn, data=model.site_values(params)), rng_seed=key)
    model_trace = handlers.trace(seeded).get_trace(*args, **kwargs)
    position = {site.name: biject_to(site.distribution.support).inv(model_trace[site.name]["value"])
                for site in model.sites.latents}
    return structure.to_rows(position)
