"""Parameters in unconstrained space, through the bijections of their constraints.

Each model declares ``constraints``: field name -> numpyro constraint. The
gradient M-step, SQUAREM's extrapolation and the standard errors all work in
the unconstrained coordinates ``u = T⁻¹(θ)`` so that probabilities stay in
(0, 1), weights on the simplex and covariances positive definite.
"""

from __future__ import annotations

from jax.flatten_util import ravel_pytree


def biject_to(constraint):
    """numpyro's bijection ``T`` onto ``constraint`` (numpyro is imported here, when first needed)."""
    from numpyro.distributions.transforms import biject_to as numpyro_biject_to

    return numpyro_biject_to(constraint)


def to_unconstrained(model, params, fields=None):
    """Map the named fields (default: all constrained ones) to unconstrained space, as a dict."""
    names = model.constraints if fields is None else fields
    values = params._asdict()
    return {name: biject_to(model.constraints[name]).inv(values[name]) for name in names}


def to_constrained(model, params_like, unconstrained):
    """Inverse of :func:`to_unconstrained`, filling a params NamedTuple like ``params_like``."""
    return params_like._replace(
        **{name: biject_to(model.constraints[name])(value) for name, value in unconstrained.items()}
    )


def flat_unconstrained(model, params, fields=None):
    """``(u, unflatten)``: the unconstrained fields as one flat vector, and the way back to params.

    ``unflatten(u)`` returns a params NamedTuple whose other fields are those of
    ``params``.
    """
    vector, unravel = ravel_pytree(to_unconstrained(model, params, fields))

    def unflatten(flat):
        return to_constrained(model, params, unravel(flat))

    return vector, unflatten
