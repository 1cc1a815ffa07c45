"""scikit-learn estimators over ``stochem.fit``: ``GaussianMixture`` with scikit-learn's names, plus ``completion=``.

``stochem.sklearn.GaussianMixture`` is a drop-in for
``sklearn.mixture.GaussianMixture``: the same parameters, methods and fitted
attributes, and, with the exact completion, the same answers from the same
start (the starts themselves are drawn as scikit-learn draws them, from the
same ``random_state``). What it adds is ``completion=``: any stochem
completion, so that Monte Carlo EM, stochastic EM or SAEM run behind the
estimator API, in ``GridSearchCV`` and pipelines.

This module needs scikit-learn (``pip install "stochem[sklearn]"``); ``import
stochem`` does not import it.

float64: scikit-learn computes in float64, and so does the estimator, whatever
the global JAX setting. Every JAX computation of the estimator runs inside
``jax.enable_x64(True)``, a context manager that is local to the call (and to
the thread): the global ``jax_enable_x64`` flag is left as it was, arrays made
outside keep their dtypes, and the fitted attributes are float64 numpy arrays.

Why there is no hidden Markov estimator here: hmmlearn's estimators take
``fit(X, lengths)``, name parameter groups by letters (``params="stmc"``),
predict by Viterbi decoding and default to diagonal covariances; stochem's
``HiddenMarkovModel`` has full covariances and no Viterbi decoder, and
scikit-learn's ``check_estimator`` cannot test ``lengths``. A shell that
bends either side would not be thin; use ``stochem.models.HiddenMarkovModel``
with ``stochem.fit`` and ``stochem.information_criteria``.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings

import jax
import numpy as np
import scipy.linalg
import scipy.special
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

import stochem
from stochem import _validation
from stochem.models.gaussian_mixture import COVARIANCE_TYPES, GaussianMixtureParams
from stochem.models.gaussian_mixture import GaussianMixture as GaussianMixtureModel
from stochem.selection import criteria_from_loglik, num_free_params

__all__ = ["GaussianMixture"]

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")

# scikit-learn's estimator checks that this estimator cannot pass, with the reason
# (``check_estimator(..., expected_failed_checks=SKIPPED_CHECKS)``). Empty: it passes all.
SKIPPED_CHECKS: dict[str, str] = {}


@functools.partial(jax.jit, static_argnums=0)
def _start_from_responsibilities(model, points, responsibilities):
    """The M-step from given responsibilities ``[N, K]``: a start as scikit-learn draws it (one program)."""
    return model.m_step(model.suff_stats(points, responsibilities))


@functools.partial(jax.jit, static_argnums=0)
def _log_joint_table(model, params, points):
    """``log w_k + log N(x_n; μ_k, Σ_k)``, ``[N, K]`` (compiled once per model and shape)."""
    return model.log_joint_table(params, points)


def _precision_cholesky(covariances, covariance_type):
    """scikit-learn's ``precisions_cholesky_``: ``U`` upper triangular with ``Σ⁻¹ = U Uᵀ`` (``1/σ`` for diag, spherical)."""
    if covariance_type in ("diag", "spherical"):
        return 1.0 / np.sqrt(covariances)

    def one(covariance):
        lower = scipy.linalg.cholesky(covariance, lower=True)
        return scipy.linalg.solve_triangular(lower, np.eye(covariance.shape[0]), lower=True).T

    if covariance_type == "tied":
        return one(covariances)
    return np.stack([one(covariance) for covariance in covariances])


def _precisions(precision_cholesky, covariance_type):
    """``Σ⁻¹ = U Uᵀ`` (or ``1/σ²``) from :func:`_precision_cholesky`."""
    if covariance_type in ("diag", "spherical"):
        return precision_cholesky**2
    return precision_cholesky @ np.swapaxes(precision_cholesky, -1, -2)


def _covariances_from_precisions(precisions, covariance_type):
    """``Σ = (Σ⁻¹)⁻¹`` for each component (elementwise for diag, spherical)."""
    if covariance_type in ("diag", "spherical"):
        return 1.0 / precisions
    return np.linalg.inv(precisions)


class GaussianMixture(DensityMixin, BaseEstimator):
    """A Gaussian mixture fitted by EM: scikit-learn's ``GaussianMixture``, any stochem completion.

    Parameters are scikit-learn's (same names, defaults and meaning):

    Args:
        n_components: number of mixture components K.
        covariance_type: ``"full"``, ``"tied"``, ``"diag"`` or ``"spherical"``.
        tol: stop when the mean log-likelihood per sample (the "lower bound")
            changes by less than ``tol`` between iterations. stochem's own
            ``tol`` is on the total ℓ; the estimator passes ``tol · n_samples``
            (``|Δℓ| ≤ n·tol`` in place of scikit-learn's ``|Δℓ/n| < tol``,
            the same rule but at exact equality).
        reg_covar: added to the diagonal of every covariance in the M-step.
        max_iter: the maximum number of EM iterations per start (``0``: the
            start itself).
        n_init: the number of starts; the one with the highest final lower
            bound is kept.
        init_params: how a start is drawn, as scikit-learn draws it from
            ``random_state``: ``"kmeans"`` (scikit-learn's ``KMeans`` labels),
            ``"k-means++"`` (its seeding: one point per component),
            ``"random"`` (random responsibilities) or ``"random_from_data"``
            (random points). The start is the M-step of those responsibilities.
        weights_init: initial weights ``[K]``, replacing those of the start.
        means_init: initial means ``[K, D]``.
        precisions_init: initial precisions (inverse covariances), shaped as
            the covariances of ``covariance_type``.
        random_state: ``None``, an int or a ``numpy.random.RandomState``; it
            draws the starts (and the seed of a sampled completion).
        warm_start: continue from the fitted parameters on the next ``fit``
            (one start, ``n_init`` ignored).
        completion: the E-step, any stochem completion: ``None`` (exact EM),
            ``stochem.monte_carlo(100)``, ``stochem.saem(...)``, ...

    Attributes:
        weights_: ``[K]``.
        means_: ``[K, D]``.
        covariances_: ``full [K, D, D]``, ``tied [D, D]``, ``diag [K, D]``,
            ``spherical [K]``.
        precisions_: the inverse covariances, same shapes.
        precisions_cholesky_: ``U`` with ``precision = U Uᵀ`` (upper
            triangular; ``1/σ`` for diag and spherical), as scikit-learn's.
        converged_: whether the kept start met ``tol`` within ``max_iter``.
        n_iter_: EM iterations of the kept start.
        lower_bound_: its mean log-likelihood per sample at the last
            iteration's input parameters (scikit-learn's lower bound);
            ``-inf`` when ``max_iter=0``.
        lower_bounds_: the lower bound at each iteration of the kept start.
        n_features_in_: D; ``feature_names_in_`` too when fitted on a
            DataFrame with string column names.
        fit_result_: the kept start's ``stochem.FitResult`` (trace,
            ``to_pandas()``).

    How it runs: each start is one ``stochem.fit`` (all starts share one
    compiled program). The starts are not ``vmap``ped seeds, because they are
    scikit-learn's (k-means labels and the others) drawn in scikit-learn's
    order, so that this estimator equals scikit-learn start for start; for
    restarts drawn by stochem in one vmapped program use
    ``stochem.best_of(stochem.fit(model, X, key=[...]))``.

    scikit-learn's ``check_estimator`` passes with no check skipped
    (:data:`SKIPPED_CHECKS` is empty). scikit-learn itself skips one,
    ``check_array_api_input``, unless ``SCIPY_ARRAY_API=1`` was set before
    scipy was imported; with it set, it passes too (the tests run it so).

    Example:
        >>> import numpy as np
        >>> from stochem.sklearn import GaussianMixture
        >>> rng = np.random.default_rng(0)
        >>> X = np.concatenate([rng.normal(0, 1, (50, 2)), rng.normal(5, 1, (50, 2))])
        >>> mixture = GaussianMixture(n_components=2, random_state=0).fit(X)
        >>> sorted(int(round(mean)) for mean in mixture.means_[:, 0])
        [0, 5]
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        completion=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.completion = completion

    # --- settings ---------------------------------------------------------------------------

    def _check_settings(self):
        """Check the hyperparameters (in ``fit``, as scikit-learn does), naming the bad one."""
        _validation.as_int("n_components", self.n_components, minimum=1)
        _validation.as_int("max_iter", self.max_iter, minimum=0)
        _validation.as_int("n_init", self.n_init, minimum=1)
        if self.covariance_type not in COVARIANCE_TYPES:
            raise _validation.ArgumentError(
                "covariance_type", f"covariance_type must be one of {list(COVARIANCE_TYPES)}, "
                                   f"got {self.covariance_type!r}.")
        if self.init_params not in INIT_PARAMS:
            raise _validation.ArgumentError(
                "init_params", f"init_params must be one of {list(INIT_PARAMS)}, got {self.init_params!r}.")
        for name in ("tol", "reg_covar"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0 \
                    or not math.isfinite(value):
                raise _validation.ArgumentError(name, f"{name} must be a finite number >= 0, got {value!r}.")
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise _validation.ArgumentTypeError("warm_start", f"warm_start must be True or False, "
                                                              f"got {self.warm_start!r}.")
        if self.completion is not None and not callable(self.completion):
            raise _validation.ArgumentTypeError(
                "completion", f"completion must be None (exact EM) or a stochem completion such as "
                              f"stochem.monte_carlo(100), got {self.completion!r}.")

    def _model(self):
        return GaussianMixtureModel(self.n_components, covariance_type=self.covariance_type,
                                    reg_covar=self.reg_covar)

    def _check_user_inits(self, num_features):
        """``weights_init``, ``means_init`` and ``precisions_init`` as float arrays (or ``None``), checked."""
        num_components = self.n_components
        weights = means = precisions = None
        if self.weights_init is not None:
            weights = _validation.as_float_array("weights_init", self.weights_init)
            _validation.check_shape("weights_init", weights, (num_components,), "(one weight per component)")
            _validation.check_distribution("weights_init", weights)
        if self.means_init is not None:
            means = _validation.as_float_array("means_init", self.means_init)
            _validation.check_shape("means_init", means, (num_components, num_features),
                                    "(one row per component, one column per feature)")
        if self.precisions_init is not None:
            precisions = _validation.as_float_array("precisions_init", self.precisions_init)
            structure_shape = {"full": (num_components, num_features, num_features),
                               "tied": (num_features, num_features),
                               "diag": (num_components, num_features),
                               "spherical": (num_components,)}[self.covariance_type]
            _validation.check_shape("precisions_init", precisions, structure_shape,
                                    f"(covariance_type={self.covariance_type!r})")
            if self.covariance_type in ("full", "tied"):
                _validation.check_positive_definite("precisions_init", precisions)
            elif precisions.min() <= 0:
                raise _validation.ArgumentError("precisions_init", "precisions_init must be positive.")
        return weights, means, precisions

    # --- starts -----------------------------------------------------------------------------

    def _responsibilities(self, X, random_state):
        """The start's responsibilities ``[N, K]``, drawn as scikit-learn draws them."""
        num_points, num_components = X.shape[0], self.n_components
        if self.init_params == "kmeans":
            labels = KMeans(n_clusters=num_components, n_init=1, random_state=random_state).fit(X).labels_
            return np.eye(num_components)[labels]
        if self.init_params == "random":
            responsibilities = random_state.uniform(size=(num_points, num_components))
            return responsibilities / responsibilities.sum(axis=1, keepdims=True)
        if self.init_params == "random_from_data":
            chosen = random_state.choice(num_points, size=num_components, replace=False)
        else:  # k-means++
            _, chosen = kmeans_plusplus(X, num_components, random_state=random_state)
        responsibilities = np.zeros((num_points, num_components))
        responsibilities[chosen, np.arange(num_components)] = 1.0
        return responsibilities

    def _draw_start(self, model, X, random_state, user_inits):
        """One start: the M-step of the drawn responsibilities, with the user's inits in their place.

        scikit-learn's ``"k-means++"`` and ``"random_from_data"`` starts give one
        point to each component and leave the weights unnormalized (they sum to
        K / N); here the M-step normalizes them. The responsibilities, and so
        every iterate, are the same; only the first lower bound differs.
        """
        weights, means, precisions = user_inits
        covariances = None if precisions is None else _covariances_from_precisions(precisions,
                                                                                   self.covariance_type)
        if weights is None or means is None or covariances is None:
            drawn = _start_from_responsibilities(model, X, self._responsibilities(X, random_state))
            weights = np.asarray(drawn.weights) if weights is None else weights
            means = np.asarray(drawn.means) if means is None else means
            covariances = np.asarray(drawn.covariances) if covariances is None else covariances
        return GaussianMixtureParams(weights, means, covariances)

    # --- fitting ----------------------------------------------------------------------------

    def fit(self, X, y=None):
        """Fit the mixture by EM from ``n_init`` starts and keep the best; returns ``self``.

        Args:
            X: ``[n_samples, n_features]``.
            y: ignored.
        """
        self.fit_predict(X, y)
        return self

    def fit_predict(self, X, y=None):
        """Fit as :meth:`fit`, then return the most probable component of each point of ``X``."""
        del y
        self._check_settings()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        if X.shape[0] < self.n_components:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = {self.n_components}, "
                             f"n_samples = {X.shape[0]}; use fewer components or more data.")
        user_inits = self._check_user_inits(X.shape[1])
        warm = bool(self.warm_start) and "converged_" in vars(self)  # fitted before
        model = self._model()
        random_state = check_random_state(self.random_state)
        with jax.enable_x64(True):
            points = model.prepare_data(X)
            if warm:
                starts = [GaussianMixtureParams(self.weights_, self.means_, self.covariances_)]
            else:
                starts = [self._draw_start(model, X, random_state, user_inits) for _ in range(self.n_init)]
            # Drawn after the starts, so that the starts follow scikit-learn's stream.
            key_seed = int(random_state.randint(np.iinfo(np.int32).max))
            best = None
            for index, start in enumerate(starts):
                run = self._run_em(model, points, start, jax.random.fold_in(jax.random.key(key_seed), index),
                                   self.lower_bound_ if warm else None)
                if best is None or run["lower_bound"] > best["lower_bound"]:
                    best = run
        if not best["converged"] and self.max_iter > 0:
            warnings.warn("Best performing initialization did not converge. Try different init parameters, "
                          "or increase max_iter, tol, or check for degenerate data.", ConvergenceWarning)
        self._set_fitted(best)
        return self.predict(X)

    def _run_em(self, model, points, start, key, previous_lower_bound):
        """One start: ``stochem.fit`` with scikit-learn's stopping rule; the run's lower bounds and result."""
        num_points = points.shape[0]
        completion = stochem.exact() if self.completion is None else self.completion
        num_iters, tol = self.max_iter, None if self.max_iter == 0 else float(self.tol) * num_points
        stopped_at_once = False
        if previous_lower_bound is not None and self.max_iter > 0:
            # A warm start compares its first lower bound with the last fit's, as scikit-learn does;
            # when that already meets tol, it runs that one iteration and stops.
            first = float(model.log_marginal(model.prepare_params(start, points), points)) / num_points
            stopped_at_once = abs(first - previous_lower_bound) < self.tol
            if stopped_at_once:
                num_iters, tol = 1, None
        result = stochem.fit(model, points, init=start, completion=completion, key=key,
                             num_iters=num_iters, tol=tol)
        result = jax.tree_util.tree_map(np.asarray, result)
        iterations = int(result.num_iters)
        lower_bounds = np.asarray(result.trace.loglik[:iterations], dtype=float) / num_points
        return {"result": result, "lower_bounds": lower_bounds,
                "converged": bool(result.converged) or stopped_at_once,
                "lower_bound": lower_bounds[-1] if iterations else -np.inf}

    def _set_fitted(self, run):
        result = run["result"]
        self.weights_ = np.asarray(result.params.weights, dtype=np.float64)
        self.means_ = np.asarray(result.params.means, dtype=np.float64)
        self.covariances_ = np.asarray(result.params.covariances, dtype=np.float64)
        self.precisions_cholesky_ = _precision_cholesky(self.covariances_, self.covariance_type)
        self.precisions_ = _precisions(self.precisions_cholesky_, self.covariance_type)
        self.converged_ = run["converged"]
        self.n_iter_ = int(result.num_iters)
        self.lower_bound_ = float(run["lower_bound"])
        self.lower_bounds_ = [float(value) for value in run["lower_bounds"]]
        self.fit_result_ = result

    # --- using the fit ----------------------------------------------------------------------

    def _weighted_log_prob(self, X):
        """``log w_k + log N(x_n; μ_k, Σ_k)`` ``[N, K]`` for new data, in float64."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        params = GaussianMixtureParams(self.weights_, self.means_, self.covariances_)
        with jax.enable_x64(True):
            return np.asarray(_log_joint_table(self._model(), params, X))

    def score_samples(self, X):
        """``log p(x_n)`` for each row of ``X``, ``[n_samples]``."""
        return scipy.special.logsumexp(self._weighted_log_prob(X), axis=1)

    def score(self, X, y=None):
        """The mean log-likelihood per sample of ``X`` (what ``GridSearchCV`` maximizes)."""
        del y
        return float(np.mean(self.score_samples(X)))

    def predict(self, X):
        """The most probable component of each row of ``X``, ``[n_samples]``."""
        return np.argmax(self._weighted_log_prob(X), axis=1)

    def predict_proba(self, X):
        """``P(component k | x_n)``, ``[n_samples, n_components]``."""
        table = self._weighted_log_prob(X)
        return np.exp(table - scipy.special.logsumexp(table, axis=1, keepdims=True))

    def sample(self, n_samples=1):
        """``(X [n_samples, D], labels [n_samples])`` drawn from the fitted mixture, grouped by component.

        Draws with ``random_state`` (a fresh generator from it on each call), as
        scikit-learn does: the same fitted parameters and ``random_state`` give
        scikit-learn's sample.
        """
        check_is_fitted(self)
        n_samples = _validation.as_int("n_samples", n_samples, minimum=1)
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        num_features = self.means_.shape[1]
        pieces = []
        for component, (mean, count) in enumerate(zip(self.means_, counts)):
            if self.covariance_type in ("full", "tied"):
                covariance = self.covariances_ if self.covariance_type == "tied" else self.covariances_[component]
                pieces.append(rng.multivariate_normal(mean, covariance, int(count)))
            else:
                scale = np.sqrt(self.covariances_[component])
                pieces.append(mean + rng.standard_normal(size=(count, num_features)) * scale)
        labels = np.concatenate([np.full(count, component) for component, count in enumerate(counts)])
        return np.vstack(pieces), labels

    def _criteria(self, X):
        """``(AIC, BIC)`` on ``X`` (:func:`stochem.selection.criteria_from_loglik`)."""
        table = self._weighted_log_prob(X)
        loglik = float(np.sum(scipy.special.logsumexp(table, axis=1)))
        params = GaussianMixtureParams(self.weights_, self.means_, self.covariances_)
        return criteria_from_loglik(loglik, num_free_params(self._model(), params), table.shape[0])

    def bic(self, X):
        """Bayesian information criterion on ``X``: ``−2 ℓ + k log n`` (lower is better)."""
        return self._criteria(X)[1]

    def aic(self, X):
        """Akaike information criterion on ``X``: ``−2 ℓ + 2 k`` (lower is better)."""
        return self._criteria(X)[0]
