"""What every stochem model made from a numpyro model shares.

Parameters: one field per ``numpyro.param`` site, in the order the model
declares them (names mapped to identifiers by :func:`._sites.field_names`);
``constraints`` are the sites' own constraints, so the gradient M-step ascends
Q(θ) in the unconstrained space numpyro would use.

The log joint is numpyro's own: ``numpyro.infer.util.log_density`` of the model
with θ substituted into its param sites and the latent values into its latent
sites::

    log p(o, m; θ) = Σ_{sample sites} log p(site value | parents; θ).

Identity: models are frozen dataclasses compared and hashed by what the
compiled program depends on (the model function, the static arguments, the
shapes and dtypes of the array arguments, the sites); the array values travel
as ``data`` (see :mod:`._arguments`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import log_density

from stochem import _validation
from stochem.models.base import ModelBase
from stochem.models.numpyro_model._arguments import ModelArguments
from stochem.models.numpyro_model._sites import ModelSites, where_values_lie, without_sampling
from stochem.mstep.gradient import gradient

# One params class per tuple of field names, so that equal models share it.
_PARAMS_TYPES: dict[tuple[str, ...], type] = {}

# L-BFGS with a line search reaches the maximizer of a smooth Q(θ) in few
# steps; created once so that every fit with the default shares one program.
DEFAULT_MSTEP = gradient(optax.lbfgs(), num_steps=20)


def params_type_for(fields: tuple[str, ...]) -> type:
    """The params NamedTuple class with these fields (``NumpyroParams``)."""
    if fields not in _PARAMS_TYPES:
        _PARAMS_TYPES[fields] = NamedTuple("NumpyroParams", [(field, Any) for field in fields])
    return _PARAMS_TYPES[fields]


@dataclasses.dataclass(frozen=True, eq=False)
class NumpyroModel(ModelBase):
    """Shared part of :class:`EnumeratedNumpyroModel` and :class:`ContinuousNumpyroModel`.

    Build one with :func:`stochem.models.from_numpyro`.

    Attributes:
        model_fn: the user's numpyro model, unchanged.
        arguments: its arguments (static structure plus array data).
        sites: its param, latent and observed sites.
        default_mstep: the M-step to use when none is given:
            ``stochem.gradient(optax.lbfgs(), num_steps=20)`` (these models
            have no closed-form M-step). With ``mcmc()`` and several seeds
            (``key=[...]``) the seeds run one after another in one compiled
            program: under ``vmap`` the L-BFGS line search did not finish
            (see :class:`stochem.completion.mcmc.Mcmc`).
    """

    model_fn: Callable
    arguments: ModelArguments = dataclasses.field(repr=False)
    sites: ModelSites = dataclasses.field(repr=False)

    default_mstep = DEFAULT_MSTEP
    # Half-width, in each param site's unconstrained space, of the random move of its initial
    # value that gives each seed its own start (init_params).
    init_radius = 0.5

    # ----------------------------------------------------------------- identity
    def _signature(self) -> tuple:
        return (
            type(self),
            self.model_fn,
            self.arguments.signature(),
            tuple(site.signature() for site in self.sites.params),
            tuple(site.signature() for site in self.sites.latents),
            self.sites.observed,
        )

    def __eq__(self, other):
        return isinstance(other, NumpyroModel) and self._signature() == other._signature()

    def __hash__(self):
        return hash(self._signature())

    # ------------------------------------------------------------- parameters
    @property
    def params_type(self) -> type:
        return params_type_for(tuple(site.field for site in self.sites.params))

    @property
    def constraints(self) -> dict:
        """Params field -> the numpyro constraint of its param site."""
        return {site.field: site.constraint for site in self.sites.params}

    @property
    def latent_names(self) -> tuple[str, ...]:
        return tuple(site.name for site in self.sites.latents)

    def site_values(self, params) -> dict:
        """Params (a NamedTuple or a dict by field) -> ``{param site name: value}``, as JAX arrays.

        Numpy values are converted: a model that indexes a param by a latent
        value (``probs[coin]``) needs a JAX array there, not a numpy one.
        """
        values = params._asdict() if _validation.is_namedtuple(params) else dict(params)
        return {site.name: jnp.asarray(values[site.field]) for site in self.sites.params}

    def as_params(self, params):
        """User parameters (the params NamedTuple, another NamedTuple or a dict by field, numpy
        or JAX values) as this model's params NamedTuple of JAX arrays; not validated, so it
        also takes traced values."""
        values = params._asdict() if _validation.is_namedtuple(params) else dict(params)
        return self.params_type(**{field: jnp.asarray(value) for field, value in values.items()})

    def data_or_own(self, data):
        """``data``, or the model's own array arguments when ``data`` is ``None``."""
        return self.prepare_data(None) if data is None else data

    def with_params(self, params):
        """The user's model with θ substituted into its param sites."""
        return handlers.substitute(self.model_fn, data=self.site_values(params))

    def prepare_params(self, params, data):
        """Check user parameters; a dict may leave out fields, which keep the model's initial values."""
        if _validation.is_namedtuple(params) and not isinstance(params, self.params_type):
            params = params._asdict()
        if isinstance(params, dict):  # unknown keys are reported by params_from_user
            params = {**{site.field: site.init_value for site in self.sites.params
                         if site.field not in params}, **params}
        return super().prepare_params(params, data)

    def check_params(self, arrays, data):
        for site in self.sites.params:
            _validation.check_shape(f"init.{site.field}", arrays[site.field], site.shape,
                                    f"(the shape of param site {site.name!r})")
        places = where_values_lie((site.constraint, jnp.asarray(arrays[site.field], dtype=jnp.result_type(float)))
                                  for site in self.sites.params)
        for site, (satisfied, inside) in zip(self.sites.params, places):
            name = f"init.{site.field}"
            if not satisfied:
                raise ValueError(f"{name} must satisfy the constraint {site.constraint} of param "
                                 f"site {site.name!r}.")
            if not inside:
                raise ValueError(f"{name} lies on the boundary of the constraint {site.constraint}; "
                                 "move it inside (e.g. no probability of exactly 0 or 1).")

    def initial_values(self, key, data):
        """Each param site's own initial value from the model (callable initial values get ``key``)."""
        args, kwargs = self.arguments.rebuild(data)
        model_trace = handlers.trace(without_sampling(self.model_fn, key)).get_trace(*args, **kwargs)
        return self.params_type(*(jnp.asarray(model_trace[site.name]["value"], dtype=jnp.result_type(float))
                                  for site in self.sites.params))

    def init_params(self, key, data):
        """The start of a seed with ``init=None``: each param site's initial value moved at random.

        In numpyro's unconstrained space of each site (``u = T⁻¹(θ₀)``, ``T`` the
        bijection onto the site's constraint), every coordinate is moved by an
        independent ``Uniform(−r, r)`` draw from ``key``, ``r = init_radius``::

            θ_start = T(T⁻¹(θ₀) + U),    U ~ Uniform(−r, r).

        So several seeds start at different points near the model's values
        (restarts); ``init={}`` starts every seed at the model's values exactly.
        """
        values_key, move_key = jax.random.split(key)
        values = self.initial_values(values_key, data)
        moved = []
        for site, value, site_key in zip(self.sites.params, values,
                                         jax.random.split(move_key, len(self.sites.params))):
            transform = biject_to(site.constraint)
            unconstrained = transform.inv(value)
            step = jax.random.uniform(site_key, jnp.shape(unconstrained), unconstrained.dtype,
                                      -self.init_radius, self.init_radius)
            moved.append(transform(unconstrained + step))
        return self.params_type(*moved)

    # ------------------------------------------------------------------- data
    def prepare_data(self, data):
        """The model's array arguments; ``data`` must be ``None`` (the data live in the model).

        Raises:
            TypeError: if ``data`` is not ``None``.
        """
        if data is not None:
            raise TypeError(
                "a model made by from_numpyro takes its data from the model's arguments, "
                "from_numpyro(model_fn, *args, **kwargs); call fit(model, None, ...), or build a "
                "new model with from_numpyro for other data."
            )
        return self.arguments.data()

    def num_observations(self, data) -> int:
        """``n`` in BIC's ``k log n``: the draws of all observed sites together.

        Each observed site counts the independent draws of its distribution
        (its batch size; an observed vector is one draw). For hierarchical
        models the right ``n`` is a matter of definition (groups or
        measurements); pass ``num_observations=`` to
        :func:`stochem.information_criteria` to choose.
        """
        del data
        return sum(site.num_draws for site in self.sites.observed)

    # -------------------------------------------------------------- log joint
    def log_joint(self, params, data, latent):
        """log p(o, m; θ) by numpyro's ``log_density``; ``latent`` maps latent site names to values."""
        args, kwargs = self.arguments.rebuild(data)
        value, _ = log_density(self.with_params(params), args, kwargs, dict(latent))
        return value
