"""Find a numpyro model's sites by running it once, and check them.

The model is run once on its concrete arguments, under ``seed`` and ``trace``,
with its continuous latent sites set by numpyro's ``init_to_uniform`` rather
than drawn (:func:`without_sampling`), so that latents with improper or
unsamplable priors (``dist.ImproperUniform`` plus a ``numpyro.factor``) work:

* ``numpyro.param`` sites are the parameters θ (with their constraints);
* unobserved ``numpyro.sample`` sites are the missing data m;
* observed sample sites (``obs=...``, and ``numpyro.factor``) are the data o.

The run is one compiled program (:func:`_run_compiled`): op by op, each of the
model's operations would compile on its own, which costs more than the whole
program. The sites' values and latent distributions come back from it as
concrete arrays; a model that needs concrete values while it runs (Python
control flow on its data) is run op by op instead (:func:`_run_eagerly`).
Everything here happens before any EM program is traced, so bad models get a
clear error naming the site and the fix.
"""

from __future__ import annotations

import keyword
import math
import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer.initialization import init_to_uniform
from numpyro.primitives import Messenger

from stochem.models.numpyro_model._arguments import ModelArguments


class PlateFrame(NamedTuple):
    """A ``numpyro.plate`` a site sits in: its name, batch dimension (negative) and size."""

    name: str
    dim: int
    size: int


class ParamSite(NamedTuple):
    """A ``numpyro.param`` site.

    Attributes:
        name: the site name in the model.
        field: the field of the params NamedTuple that holds it (``name`` when
            that is a valid identifier, see :func:`field_names`).
        constraint: its numpyro constraint (``constraints.real`` by default).
        shape: shape of its value.
        init_value: its initial value from the model (a numpy array).
    """

    name: str
    field: str
    constraint: Any
    shape: tuple
    init_value: Any

    def signature(self) -> tuple:
        return (self.name, self.field, repr(self.constraint), self.shape)


class LatentSite(NamedTuple):
    """An unobserved ``numpyro.sample`` site: one piece of the missing data.

    Attributes:
        name: the site name.
        distribution: the site's distribution as traced at the initial
            parameters (used only for static facts: support, shapes).
        shape: shape of its value.
        batch_shape, event_shape: shapes of its distribution.
        plates: the plates it sits in, innermost last.
        is_discrete: whether its support is discrete.
        dtype: dtype of its value.
    """

    name: str
    distribution: Any
    shape: tuple
    batch_shape: tuple
    event_shape: tuple
    plates: tuple
    is_discrete: bool
    dtype: Any

    def signature(self) -> tuple:
        return (self.name, self.shape, self.batch_shape, self.event_shape, self.plates,
                self.is_discrete, str(self.dtype), repr(self.distribution.support))


class ObservedSite(NamedTuple):
    """An observed sample site (``obs=...`` or ``numpyro.factor``).

    Attributes:
        name: the site name.
        plates: the plates it sits in.
        num_draws: how many independent draws of its distribution it observes,
            the size of its batch shape (an ``[N, D]`` value from a
            ``MultivariateNormal`` of batch shape ``[N]`` is ``N`` draws).
    """

    name: str
    plates: tuple
    num_draws: int = 1


class ModelSites(NamedTuple):
    params: tuple  # ParamSite, in the order the model declares them
    latents: tuple  # LatentSite
    observed: tuple  # ObservedSite


class _require_param_values(Messenger):
    """Stop at a ``numpyro.param`` without a valid initial value, before the model uses it.

    Run op by op (``check_values=True``) the value is checked against its
    constraint here; a compiled run returns the facts and they are checked
    after it (:func:`_run_compiled`).
    """

    def __init__(self, fn=None, check_values: bool = True):
        self.check_values = check_values
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "param" and msg["args"] and msg["args"][0] is None and msg["value"] is None:
            raise ValueError(
                f"numpyro.param site {msg['name']!r} has no initial value, so EM has no start "
                f"for it; give it one in the model: numpyro.param({msg['name']!r}, init_value, "
                "constraint=...)."
            )

    def postprocess_message(self, msg):
        if msg["type"] == "param" and self.check_values:
            value = jnp.asarray(msg["value"], dtype=jnp.result_type(float))
            _check_initial_values([(msg["name"], _constraint_of(msg),
                                    where_values_lie([(_constraint_of(msg), value)])[0])])


def field_names(site_names) -> tuple[str, ...]:
    """Params NamedTuple field names for the param sites.

    A site name that is a valid identifier is used as is. Otherwise each
    character that cannot appear in an identifier becomes ``_``, and a name that
    then starts with a digit or an underscore, or is a Python keyword, gets the
    prefix ``param_``: ``"beta.0"`` → ``beta_0``, ``"_sd"`` → ``param__sd``.
    """
    fields = []
    for name in site_names:
        if name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_"):
            fields.append(name)
            continue
        field = re.sub(r"\W", "_", name)
        if not field or field[0].isdigit() or field.startswith("_") or keyword.iskeyword(field):
            field = "param_" + field
        fields.append(field)
    seen = {}
    for name, field in zip(site_names, fields):
        if field in seen:
            raise ValueError(
                f"numpyro.param sites {seen[field]!r} and {name!r} both map to the params field "
                f"{field!r}; rename one of them in the model."
            )
        seen[field] = name
    return tuple(fields)


def _plates_of(site) -> tuple:
    return tuple(PlateFrame(frame.name, frame.dim, frame.size) for frame in site["cond_indep_stack"])


def _constraint_of(param_site):
    return param_site["kwargs"].get("constraint", constraints.real)


def where_values_lie(constraints_and_values) -> list[tuple]:
    """Per ``(constraint, value)``: whether the value satisfies the constraint, and whether it lies
    inside it (``T⁻¹(value)`` finite, ``T`` numpyro's bijection onto the constraint), as boolean
    arrays; op by op on concrete values, or inside a traced program."""
    return [(jnp.all(constraint.check(value)), jnp.all(jnp.isfinite(biject_to(constraint).inv(value))))
            for constraint, value in constraints_and_values]


def _check_initial_values(params) -> None:
    """Each ``(name, constraint, (satisfied, inside))`` of a param site's initial value (:func:`where_values_lie`)."""
    for name, constraint, (satisfied, inside) in params:
        if not satisfied:
            raise ValueError(
                f"the initial value of numpyro.param site {name!r} lies outside its constraint "
                f"{constraint}; give it an initial value that satisfies the constraint."
            )
        if not inside:
            raise ValueError(
                f"the initial value of numpyro.param site {name!r} lies on the boundary of its "
                f"constraint {constraint} (e.g. a probability of exactly 0 or 1), where the gradient "
                "M-step cannot start; move it inside."
            )


def _param_site(site, field) -> ParamSite:
    value = np.asarray(site["value"], dtype=float)
    return ParamSite(site["name"], field, site["constraint"], value.shape, value)


def _latent_site(site) -> LatentSite:
    distribution = site["fn"]
    return LatentSite(
        name=site["name"],
        distribution=distribution,
        shape=tuple(np.shape(site["value"])),
        batch_shape=tuple(distribution.batch_shape),
        event_shape=tuple(distribution.event_shape),
        plates=site["plates"],
        is_discrete=bool(distribution.support.is_discrete),
        dtype=jnp.asarray(site["value"]).dtype,
    )


def _check_no_subsampling(records) -> None:
    for site in records:
        if site["type"] == "plate":
            size, subsample_size = site["size"], site["subsample_size"]
            if subsample_size is not None and subsample_size != size:
                raise ValueError(
                    f"plate {site['name']!r} subsamples ({subsample_size} of {size}); EM needs "
                    "the full data in each iteration, so remove subsample_size."
                )


def without_sampling(model_fn, rng_seed):
    """``model_fn`` seeded, with each continuous latent site set by numpyro's ``init_to_uniform``
    (a uniform draw in (−2, 2) in its unconstrained space) instead of sampled from its
    distribution, which an improper prior cannot do. Discrete latent sites are still drawn."""
    return handlers.substitute(handlers.seed(model_fn, rng_seed=rng_seed), substitute_fn=init_to_uniform)


class _NeedsConcreteValues(Exception):
    """Raised inside the compiled run when a site's static facts hold traced values."""


def _records(model_trace) -> list[dict]:
    """The facts about each site that the rest needs, one dict per param, sample or plate site."""
    records = []
    for site in model_trace.values():
        if site["type"] == "param":
            records.append({"type": "param", "name": site["name"], "value": site["value"],
                            "constraint": _constraint_of(site)})
        elif site["type"] == "sample":
            record = {"type": "sample", "name": site["name"], "is_observed": site["is_observed"],
                      "plates": _plates_of(site), "batch_shape": tuple(site["fn"].batch_shape)}
            if not site["is_observed"]:
                record.update(fn=site["fn"], value=site["value"])
            records.append(record)
        elif site["type"] == "plate":
            records.append({"type": "plate", "name": site["name"], "size": site["args"][0],
                            "subsample_size": site["args"][1]})
    return records


def _run_eagerly(model, args: tuple, kwargs: dict) -> list[dict]:
    return _records(handlers.trace(model).get_trace(*args, **kwargs))


def _run_compiled(model, args: tuple, kwargs: dict) -> list[dict]:
    """The site records from one compiled run of the model; its array arguments are the program's inputs.

    Values and latent distributions (numpyro distributions are pytrees) are
    the program's outputs; every other fact must be static.

    Raises:
        _NeedsConcreteValues: a static fact (a constraint, a plate size) holds a traced value.
    """
    arguments = ModelArguments.from_call(args, kwargs)
    statics = []

    def run(data):
        traced_args, traced_kwargs = arguments.rebuild(data)
        records = _records(handlers.trace(model).get_trace(*traced_args, **traced_kwargs))
        outputs = []
        for record in records:
            traced = {key: record.pop(key) for key in ("value", "fn") if key in record}
            if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(record)):
                raise _NeedsConcreteValues(record["name"])
            if record["type"] == "param":
                value = jnp.asarray(traced["value"], dtype=jnp.result_type(float))
                traced["place"] = where_values_lie([(record["constraint"], value)])[0]
            outputs.append(traced)
        statics.extend(records)
        return outputs

    outputs = jax.jit(run)(arguments.data())
    records = [{**record, **traced} for record, traced in zip(statics, outputs)]
    _check_initial_values([(record["name"], record["constraint"], record["place"])
                           for record in records if record["type"] == "param"])
    return records


def trace_sites(model_fn, args: tuple, kwargs: dict) -> ModelSites:
    """Run the model once (seed 0, continuous latents not sampled) and describe its sites.

    The run is compiled (:func:`_run_compiled`). When that fails (a model that
    needs concrete values, a bad model, a failed check) the model runs again op
    by op, which raises the same error as a plain run would, with a note saying
    where it happened.

    Raises:
        ValueError: the model has no param sites; a param has no initial value,
            or one outside its constraint; a plate subsamples.
    """
    model = without_sampling(model_fn, 0)
    try:
        records = _run_compiled(_require_param_values(model, check_values=False), args, kwargs)
    except Exception:  # noqa: BLE001  (the op-by-op run below raises the error a plain run gives, or succeeds)
        try:
            records = _run_eagerly(_require_param_values(model), args, kwargs)
        except Exception as error:  # keep the original error, and say where it happened
            error.add_note("(raised while stochem ran the numpyro model once to find its sites)")
            raise
    _check_no_subsampling(records)
    param_records = [site for site in records if site["type"] == "param"]
    if not param_records:
        raise ValueError(
            "the numpyro model has no numpyro.param sites, so EM has no parameters to fit; "
            "declare each parameter with numpyro.param(name, init_value, constraint=...) "
            "(numpyro.sample sites without obs= are the missing data, not parameters)."
        )
    fields = field_names([site["name"] for site in param_records])
    params = tuple(_param_site(site, field) for site, field in zip(param_records, fields))
    samples = [site for site in records if site["type"] == "sample"]
    latents = tuple(_latent_site(site) for site in samples if not site["is_observed"])
    observed = tuple(ObservedSite(site["name"], site["plates"], math.prod(site["batch_shape"]))
                     for site in samples if site["is_observed"])
    return ModelSites(params, latents, observed)


def check_latents_usable(latents) -> None:
    """Every latent site must be usable by some completion.

    Discrete sites need a finite support (they are enumerated: by ``exact`` /
    ``monte_carlo``, or summed out inside the MCMC density when continuous
    sites are present); continuous sites are sampled by ``mcmc``.
    """
    for site in latents:
        if site.is_discrete and not site.distribution.has_enumerate_support:
            raise ValueError(
                f"latent site {site.name!r} ({type(site.distribution).__name__}) is discrete with "
                "an unbounded support, which cannot be enumerated (and mcmc() samples continuous "
                "sites only); give it a finite support (e.g. a Categorical over 0..K-1) or "
                "observe it."
            )
