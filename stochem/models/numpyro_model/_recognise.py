"""Find, in a numpyro model, the Gaussian sites whose parameters are param sites (SAEM's closed forms).

:func:`sufficient_plan` runs the model a few times on concrete values, with θ
and the latent values drawn at random around the model's own start, and
recognises a sample site (latent or observed) as a
:class:`~._gaussian_sites.NormalSite` or :class:`~._gaussian_sites.MvnSite`
when all of these hold:

1. its distribution is ``Normal`` or ``MultivariateNormal`` (possibly under
   ``.expand`` or ``.to_event``), with no ``mask`` and no ``scale`` handler
   on the site;
2. its scale equals a param site σ broadcast to the value's shape (or its
   square equals one, ω²), its covariance matrix (or ``scale_tril``) equals a
   param site — at two random values of θ and of the latent sites;
3. its loc equals a param site μ broadcast to the value's shape at both
   points, or does not change when only θ changes (it is then free of θ:
   data, other latent sites, constants);
4. no *other* site's log density depends on the params of (2) and (3): the
   derivative of each other site's log density with respect to them is
   exactly zero (JAX gives structural zeros for parameters a site does not
   use).

Everything else — sites of other distributions, a loc that is a nonlinear
function of θ, a param shared by two sites — is left to the numerical part
of the M-step: its params (:attr:`SufficientPlan.surrogate_fields`) are
updated from a quadratic surrogate of Q (:mod:`._summary`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import compute_log_probs

from stochem.models.numpyro_model._gaussian_sites import MvnSite, NormalSite, padded

# Random points: θ and the latent values are drawn around the model's start
# (θ by N(0, PERTURBATION²) in unconstrained space, latents uniform in (−2, 2)
# unconstrained), from a fixed seed so the plan never depends on the run.
PERTURBATION = 0.3
_SEED = 20240815


class SufficientPlan(NamedTuple):
    """How SAEM handles each param of a numpyro model.

    Attributes:
        sites: the recognised Gaussian sites (closed-form updates).
        surrogate_fields: params fields updated numerically, through the
            quadratic surrogate of Q.
        remainder_sites: the sample sites whose log density makes up the
            numerical part of Q.
    """

    sites: tuple
    surrogate_fields: tuple
    remainder_sites: tuple

    def describe(self) -> str:
        """One line per recognised site, then the fields left to the surrogate."""
        lines = [site.describe() for site in self.sites]
        lines.append(f"numerical (quadratic surrogate): {list(self.surrogate_fields) or 'none'}")
        return "\n".join(lines)


def _unwrap(distribution):
    """The distribution under ``Independent`` / ``ExpandedDistribution`` wrappers."""
    while isinstance(distribution, (dist.Independent, dist.ExpandedDistribution)):
        distribution = distribution.base_dist
    return distribution


def _tolerance(dtype) -> float:
    return 1e-7 if jnp.finfo(dtype).bits == 64 else 1e-3


def _close(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    return bool(np.all(np.abs(a - b) <= _tolerance(a.dtype) * scale))


def _matching_field(value, points, fields, shapes, transform=lambda x: x, batch_shape=None):
    """The param field whose value (transformed, broadcast to ``batch_shape``) equals ``value`` at every point.

    ``value``: one array per point; ``points``: θ per point (``{field: value}``).
    """
    for field in fields:
        try:
            matches = all(
                _close(observed, np.broadcast_to(transform(np.asarray(theta[field])), batch_shape or observed.shape))
                for observed, theta in zip(value, points))
        except ValueError:  # not broadcastable
            continue
        if matches and len(shapes[field]) <= len(batch_shape or value[0].shape):
            return field
    return None


def _random_points(model, rng):
    """Two θ around the start and two sets of latent values, as ``{site name: value}`` dicts."""
    thetas = []
    for _ in range(2):
        theta = {}
        for site in model.sites.params:
            bijection = biject_to(site.constraint)
            free = np.asarray(bijection.inv(jnp.asarray(site.init_value)))
            theta[site.name] = bijection(jnp.asarray(free + PERTURBATION * rng.standard_normal(free.shape)))
        thetas.append(theta)
    latents = []
    for _ in range(2):
        values = {}
        for site, shape in zip(model.sites.latents, model.unconstrained_shapes().values()):
            values[site.name] = biject_to(site.distribution.support)(jnp.asarray(rng.uniform(-2, 2, shape)))
        latents.append(values)
    return thetas, latents


def sufficient_plan(model) -> SufficientPlan:
    """Recognise the model's closed-form Gaussian sites (rules in the module docstring).

    Runs on concrete values, eagerly even when called while JAX traces.
    """
    with jax.ensure_compile_time_eval():
        return _plan(model)


class _SiteView(NamedTuple):
    """What recognition reads of a sample site at one point (plain arrays, so it can leave ``jit``)."""

    value: Any
    loc: Any
    scale: Any  # Normal: scale; MultivariateNormal: scale_tril
    covariance: Any  # MultivariateNormal only
    scaled: bool  # a scale handler acts on the site


def _viewer(model, args, kwargs):
    """``(view, kinds)``: a jitted ``view(values) -> {site: _SiteView}``; ``kinds`` fills in when it is traced.

    Running the model eagerly compiles each of its operations on its own; one
    jitted function compiles once.
    """
    kinds = {}

    def view(values):
        _, model_trace = compute_log_probs(model.model_fn, args, kwargs, values)
        views = {}
        for name, site in model_trace.items():
            if site["type"] != "sample":
                continue
            base = _unwrap(site["fn"])
            kinds[name] = type(base)
            normal, mvn = type(base) is dist.Normal, type(base) is dist.MultivariateNormal
            views[name] = _SiteView(
                site["value"],
                base.loc if normal or mvn else None,
                base.scale if normal else (base.scale_tril if mvn else None),
                base.covariance_matrix if mvn else None,
                site["scale"] is not None)
        return views

    return jax.jit(view), kinds


def _plan(model) -> SufficientPlan:
    data = model.prepare_data(None)
    args, kwargs = model.arguments.rebuild(data)
    field_of = {site.name: site.field for site in model.sites.params}
    shapes = {site.field: tuple(site.shape) for site in model.sites.params}
    rng = np.random.default_rng(_SEED)
    thetas, latents = _random_points(model, rng)
    view, kinds = _viewer(model, args, kwargs)
    # A: (θa, La), B: (θb, La) — only θ changed, C: (θb, Lb) — both changed.
    views = [view({**thetas[0], **latents[0]}), view({**thetas[1], **latents[0]}),
             view({**thetas[1], **latents[1]})]
    by_field = [{field_of[name]: np.asarray(value) for name, value in theta.items()} for theta in thetas]
    dependence = _dependence(model, args, kwargs, thetas[0], latents[0], field_of)
    sample_sites = [site.name for site in model.sites.latents + model.sites.observed]  # the model's order
    fields = tuple(field_of.values())

    recognised = []
    for name in sample_sites:
        candidate = _recognise_site(name, kinds[name], [v[name] for v in views], by_field, fields, shapes)
        if candidate is None:
            continue
        others_use = any(dependence[other][field] for other in sample_sites if other != name
                         for field in candidate.fields)
        if not others_use:
            recognised.append(candidate)
    claimed = {field for site in recognised for field in site.fields}
    surrogate_fields = tuple(field for field in fields if field not in claimed)
    done = {site.name for site in recognised}
    return SufficientPlan(tuple(recognised), surrogate_fields, tuple(n for n in sample_sites if n not in done))


def _dependence(model, args, kwargs, theta, latent, field_of) -> dict:
    """``{site: {field: whether log p(site) depends on the field}}`` from exact zeros of the gradient."""
    def per_site(values):
        log_probs, _ = compute_log_probs(model.model_fn, args, kwargs, {**values, **latent})
        return log_probs

    jacobian = jax.jit(jax.jacrev(per_site))(dict(theta))
    return {site: {field_of[name]: bool(np.any(np.asarray(grad) != 0)) for name, grad in grads.items()}
            for site, grads in jacobian.items()}


def _recognise_site(name, kind, views, points, fields, shapes):
    """The :class:`NormalSite` / :class:`MvnSite` for a site seen at points A, B, C, or ``None``."""
    if views[0].scaled:  # a mask wraps fn and is not unwrapped, so masked sites never get here
        return None
    value_shape = tuple(np.shape(views[0].value))
    if kind is dist.Normal:
        return _normal_site(name, value_shape, views, points, fields, shapes)
    if kind is dist.MultivariateNormal:
        return _mvn_site(name, value_shape, views, points, fields, shapes)
    return None


def _loc_field(views, points, fields, shapes, batch_shape):
    """``(field, free)``: the param that loc equals, or ``free=True`` when loc is free of θ."""
    locs = [np.broadcast_to(np.asarray(v.loc), batch_shape) for v in views]
    field = _matching_field([locs[0], locs[2]], points, fields, shapes, batch_shape=batch_shape)
    free = field is None and np.array_equal(locs[0], locs[1])
    return field, free


def _normal_site(name, value_shape, views, points, fields, shapes):
    scales = [np.broadcast_to(np.asarray(views[i].scale), value_shape) for i in (0, 2)]
    kind = "scale"
    scale_field = _matching_field(scales, points, fields, shapes, batch_shape=value_shape)
    if scale_field is None:
        kind = "variance"
        scale_field = _matching_field([s**2 for s in scales], points, fields, shapes, batch_shape=value_shape)
    if scale_field is None:
        return None
    loc_field, free = _loc_field(views, points, fields, shapes, value_shape)
    if loc_field == scale_field or (loc_field is None and not free):
        return None
    if loc_field is not None and not _coarser(shapes[scale_field], shapes[loc_field], len(value_shape)):
        return None
    return NormalSite(name, value_shape, scale_field, shapes[scale_field], kind, loc_field,
                      shapes[loc_field] if loc_field else ())


def _coarser(scale_shape, loc_shape, ndim) -> bool:
    """Whether σ is constant over the entries sharing one entry of μ (each σ axis is μ's or 1)."""
    return all(s == 1 or s == m for s, m in zip(padded(scale_shape, ndim), padded(loc_shape, ndim)))


def _mvn_site(name, value_shape, views, points, fields, shapes):
    dimension = value_shape[-1]
    square = [field for field in fields if shapes[field] == (dimension, dimension)]
    kind, cov_field = "scale_tril", _matching_field([np.asarray(views[i].scale) for i in (0, 2)], points,
                                                    square, shapes)
    if cov_field is None:
        kind, cov_field = "covariance", _matching_field([np.asarray(views[i].covariance) for i in (0, 2)],
                                                        points, square, shapes)
    if cov_field is None:
        return None
    vectors = [field for field in fields if shapes[field] == (dimension,)]
    loc_field, free = _loc_field(views, points, vectors, shapes, value_shape)
    if loc_field is None and not free:
        return None
    return MvnSite(name, value_shape, cov_field, kind, loc_field)
