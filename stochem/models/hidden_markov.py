"""Hidden Markov models with categorical or Gaussian emissions.

A hidden chain ``z_0 → z_1 → …`` over K states starts from ``initial_probs``
and moves by ``transition_matrix`` (``A_ij = p(z_{t+1} = j | z_t = i)``); at
every step the current state emits one observation ``x_t``: a category
(``emission_probs[z_t]``) or a vector ``x_t ~ N(means[z_t], covariances[z_t])``.
The missing data is the whole hidden path. Several independent sequences of
different lengths share the parameters.

Latent encoding (the feature map of the hidden path that the statistics are
linear in), :class:`HMMLatent`::

    states[b, t, i]         = 1{z_bt = i}                  [B, T, K]
    transitions[b, t, i, j] = 1{z_bt = i, z_b,t+1 = j}     [B, T − 1, K, K]

A sampled path (forward-filtering backward-sampling) gives one-hot arrays; the
exact completion passes their posterior expectations (the smoothed state and
pairwise marginals of forward–backward) to the same ``suff_stats``. The
pairwise array is stored factored, ``transitions[b, t, i, j] = left[b, t, i] ·
W[b, i, j] · right[b, t, j]`` (:class:`~stochem.models.hmm_inference.FactoredPairs`;
``W = 1`` for a one-hot path, ``W = A`` for the posterior), so that the
transition counts cost a ``[K, T] × [T, K]`` product and ``[B, T − 1, K, K]``
is never materialized. The pure inference functions live in
:mod:`stochem.models.hmm_inference`.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy
from numpyro.distributions import constraints

from stochem import _validation
from stochem.models import _gaussian
from stochem.models import hmm_inference
from stochem.models.base import ModelBase
from stochem.models.symmetry import Symmetry

EMISSIONS = ("categorical", "gaussian")
_FULL = _gaussian.STRUCTURES["full"]


class CategoricalHMMParams(NamedTuple):
    initial_probs: jax.Array  # [K], p(z_0 = i)
    transition_matrix: jax.Array  # [K, K], p(z_{t+1} = j | z_t = i); rows sum to 1
    emission_probs: jax.Array  # [K, C], p(x_t = c | z_t = i); rows sum to 1


class GaussianHMMParams(NamedTuple):
    initial_probs: jax.Array  # [K]
    transition_matrix: jax.Array  # [K, K]
    means: jax.Array  # [K, D]
    covariances: jax.Array  # [K, D, D], full


class CategoricalHMMStats(NamedTuple):
    initial_counts: jax.Array  # [K]     Σ_b states[b, 0, i]
    transition_counts: jax.Array  # [K, K]  Σ_b Σ_t transitions[b, t, i, j]
    emission_counts: jax.Array  # [K, C]  Σ_b Σ_t states[b, t, i] 1{x_bt = c}


class GaussianHMMStats(NamedTuple):
    initial_counts: jax.Array  # [K]
    transition_counts: jax.Array  # [K, K]
    state_counts: jax.Array  # [K]        N_i  = Σ_b Σ_t states[b, t, i]
    first_moments: jax.Array  # [K, D]     S1_i = Σ_b Σ_t states[b, t, i] x_bt
    second_moments: jax.Array  # [K, D, D]  S2_i = Σ_b Σ_t states[b, t, i] x_bt x_btᵀ


class HMMData(NamedTuple):
    """Sequences padded to a common length (static shapes).

    Attributes:
        observations: ``[B, T]`` ints (categorical) or ``[B, T, D]`` floats
            (Gaussian); entries past a sequence's length are 0 and ignored.
        lengths: ``[B]`` ints, each in ``1..T``.
    """

    observations: jax.Array
    lengths: jax.Array


class HMMLatent(NamedTuple):
    """A hidden path (one-hot) or its posterior marginals; zero at padded steps.

    Attributes:
        states: ``[B, T, K]``.
        transitions: :class:`~stochem.models.hmm_inference.FactoredPairs` with
            ``left``, ``right`` ``[B, T − 1, K]`` and ``weights`` ``[B, K, K]``;
            ``transitions.dense()`` is the ``[B, T − 1, K, K]`` array.
    """

    states: jax.Array
    transitions: hmm_inference.FactoredPairs


def casino_params() -> CategoricalHMMParams:
    """The occasionally dishonest casino of Durbin, Eddy, Krogh & Mitchison (1998), §3.2.

    State 0 is a fair die, state 1 a loaded die that shows a six half of the
    time and each other face with probability 1/10. The casino switches from
    fair to loaded with probability 0.05 and back with probability 0.1.
    Categories ``0..5`` are the faces ``1..6``; the chain starts in either
    state with probability 1/2.
    """
    return CategoricalHMMParams(
        initial_probs=jnp.array([0.5, 0.5]),
        transition_matrix=jnp.array([[0.95, 0.05], [0.10, 0.90]]),
        emission_probs=jnp.array([[1 / 6] * 6, [0.1] * 5 + [0.5]]),
    )


@dataclasses.dataclass(frozen=True)
class HiddenMarkovModel(ModelBase):
    """A K-state hidden Markov chain with categorical or Gaussian emissions.

    Data: one sequence, or a Python list (or tuple) of sequences of possibly
    different lengths. A sequence is a 1-D array of category indices
    ``0..num_categories−1`` (categorical), or a float array ``[T]`` (one
    feature) or ``[T, D]`` (Gaussian). A single sequence must be an array or a
    flat list of numbers; a list whose items are themselves sequences is read
    as several sequences (so give one multivariate sequence as an array
    ``[T, D]``, not a list of rows). ``prepare_data`` pads them into
    :class:`HMMData`; data already prepared passes through unchanged.

    Parameters: :class:`CategoricalHMMParams` (``initial_probs [K]``,
    ``transition_matrix [K, K]``, ``emission_probs [K, C]``) or
    :class:`GaussianHMMParams` (``initial_probs``, ``transition_matrix``,
    ``means [K, D]``, ``covariances [K, D, D]``), according to ``emission``;
    ``params_type`` is the right one for the instance. With one feature,
    ``init`` may give means ``[K]`` and variances ``[K]``.

    Args:
        num_states: ``K``.
        emission: ``"categorical"`` or ``"gaussian"``.
        num_categories: ``C``, needed for categorical emissions only.
        reg_covar: Gaussian only: added to the diagonal of every covariance in
            the M-step, so a state left with few points keeps a positive
            definite covariance. ``0`` gives plain EM (and hmmlearn's
            ``GaussianHMM`` update with ``covars_prior=0``).

    Example:
        >>> import stochem as se
        >>> from stochem.models.hidden_markov import casino_params
        >>> model = se.models.HiddenMarkovModel(2, "categorical", num_categories=6)
        >>> rolls = [0, 5, 5, 5, 2, 5, 5, 1, 3, 0]
        >>> result = se.fit(model, rolls, init=casino_params(), num_iters=5)
        >>> bool(result.trace.loglik[-1] >= result.trace.loglik[0])
        True
    """

    num_states: int
    emission: str = "categorical"
    num_categories: int | None = None
    reg_covar: float = 1e-6

    def __post_init__(self):
        object.__setattr__(self, "num_states", _validation.as_int("num_states", self.num_states, minimum=1))
        if self.emission not in EMISSIONS:
            raise ValueError(f"emission must be one of {list(EMISSIONS)}, got {self.emission!r}.")
        if self.emission == "categorical":
            if self.num_categories is None:
                raise ValueError("categorical emissions need num_categories (the number of symbols C), "
                                 "e.g. HiddenMarkovModel(2, 'categorical', num_categories=6).")
            object.__setattr__(self, "num_categories",
                               _validation.as_int("num_categories", self.num_categories, minimum=1))
        elif self.num_categories is not None:
            raise ValueError("num_categories applies to categorical emissions only; leave it None "
                             "for emission='gaussian'.")
        object.__setattr__(self, "reg_covar", _gaussian.check_reg_covar(self.reg_covar))

    @property
    def _categorical(self) -> bool:
        return self.emission == "categorical"

    @property
    def params_type(self):
        """:class:`CategoricalHMMParams` or :class:`GaussianHMMParams`, by ``emission``."""
        return CategoricalHMMParams if self._categorical else GaussianHMMParams

    linear_statistics = True

    @property
    def label_symmetry(self) -> Symmetry:
        """The states are exchangeable; relabelling them permutes rows and columns of A (``P A Pᵀ``)."""
        emission = ("emission_probs",) if self._categorical else ("means", "covariances")
        return Symmetry(component_fields=("initial_probs",) + emission, square_fields=("transition_matrix",))

    @property
    def constraints(self):
        """Field -> numpyro constraint (simplex acts on the last axis: each row of A)."""
        chain = {"initial_probs": constraints.simplex, "transition_matrix": constraints.simplex}
        if self._categorical:
            return {**chain, "emission_probs": constraints.simplex}
        return {**chain, "means": constraints.real, "covariances": constraints.positive_definite}

    # --- user input -------------------------------------------------------------------------

    def prepare_data(self, data) -> HMMData:
        """Check the sequences and pad them into :class:`HMMData` (static shapes)."""
        if isinstance(data, HMMData):
            return data
        several = isinstance(data, (list, tuple)) and len(data) > 0 and all(
            np.ndim(item) >= 1 for item in data)
        sequences = list(data) if several else [data]
        if isinstance(data, (list, tuple)) and len(data) == 0:
            raise ValueError("data is empty; pass one sequence or a non-empty list of sequences.")
        arrays = [self._check_sequence(f"data[{b}]" if several else "data", sequence)
                  for b, sequence in enumerate(sequences)]
        if not self._categorical:
            widths = {array.shape[1] for array in arrays}
            if len(widths) > 1:
                raise ValueError(f"data: every sequence must have the same number of features D; "
                                 f"got {sorted(widths)}.")
            total = sum(array.shape[0] for array in arrays)
            if total < self.num_states:
                raise ValueError(
                    f"data has {total} observations but the model has {self.num_states} states; "
                    "use fewer states (num_states) or more data.")
        lengths = np.array([array.shape[0] for array in arrays])
        padded = np.zeros((len(arrays), lengths.max()) + arrays[0].shape[1:], dtype=arrays[0].dtype)
        for b, array in enumerate(arrays):
            padded[b, : array.shape[0]] = array
        observations = jnp.asarray(padded) if self._categorical else jnp.asarray(padded, dtype=float)
        return HMMData(observations, jnp.asarray(lengths))

    def _check_sequence(self, name, sequence) -> np.ndarray:
        if self._categorical:
            array = _validation.as_count_array(name, sequence, low=0, high=self.num_categories - 1)
            _validation.check_ndim(name, array, (1,), "a 1-D array of category indices (one sequence; "
                                   "pass several sequences as a list of 1-D arrays)")
        else:
            array = _validation.as_float_array(name, sequence)
            _validation.check_ndim(name, array, (1, 2), "a float array [T] or [T, D] (one sequence; "
                                   "pass several sequences as a list of arrays)")
            if array.ndim == 1:
                array = array[:, None]
            if array.shape[1] == 0:
                raise ValueError(f"{name} must have at least one feature; got shape {array.shape}.")
        if array.shape[0] == 0:
            raise ValueError(f"{name} is an empty sequence; every sequence needs at least one observation.")
        return array

    def prepare_params(self, params, data):
        """Check user parameters; with one feature accept means ``[K]`` and variances ``[K]``."""
        params = _validation.params_from_user(self.params_type, params)
        if not self._categorical and _num_features(data) == 1:
            params = self._with_feature_axes(params)
        return super().prepare_params(params, data)

    def _with_feature_axes(self, params):
        means = _validation.as_float_array("init.means", params.means)
        covariances = _validation.as_float_array("init.covariances", params.covariances)
        if means.shape == (self.num_states,):
            means = means[:, None]
        if covariances.shape == (self.num_states,):
            covariances = covariances[:, None, None]
        return params._replace(means=means, covariances=covariances)

    def check_params(self, arrays, data):
        num_states = self.num_states
        _validation.check_shape("init.initial_probs", arrays["initial_probs"], (num_states,),
                                "(one probability per state)")
        _validation.check_distribution("init.initial_probs", arrays["initial_probs"])
        _validation.check_shape("init.transition_matrix", arrays["transition_matrix"],
                                (num_states, num_states), "(row i: the next-state distribution from i)")
        _validation.check_distribution("init.transition_matrix (each row)", arrays["transition_matrix"])
        if self._categorical:
            _validation.check_shape("init.emission_probs", arrays["emission_probs"],
                                    (num_states, self.num_categories),
                                    "(row i: state i's symbol distribution)")
            _validation.check_distribution("init.emission_probs (each row)", arrays["emission_probs"])
            if data is not None:
                self._check_symbols_possible(arrays["emission_probs"], data)
            return
        num_features = arrays["means"].shape[-1] if data is None else _num_features(data)
        _validation.check_shape("init.means", arrays["means"], (num_states, num_features),
                                f"(one row per state, {num_features} columns like the data)")
        _validation.check_shape("init.covariances", arrays["covariances"],
                                (num_states, num_features, num_features),
                                f"(full covariances, K={num_states}, D={num_features})")
        _FULL.check("init.covariances", arrays["covariances"])

    def _check_symbols_possible(self, emission_probs, data):
        """Every symbol seen in the data can be emitted by some state."""
        data = self.prepare_data(data)
        observations = np.asarray(data.observations)
        seen = observations[np.arange(observations.shape[1]) < np.asarray(data.lengths)[:, None]]
        impossible = np.setdiff1d(np.unique(seen), np.flatnonzero(emission_probs.max(axis=0) > 0))
        if impossible.size:
            raise ValueError(
                f"init.emission_probs gives probability zero in every state to symbol(s) "
                f"{impossible.tolist()} that the data contain, so the log-likelihood would be -inf; "
                "make those emission probabilities positive.")

    # --- initialization ----------------------------------------------------------------------

    def init_params(self, key, data: HMMData):
        """A seeded start.

        * ``initial_probs``: uniform ``1/K``.
        * ``transition_matrix``: ``A = ½ I + ½ R`` with each row of ``R`` drawn from a flat
          Dirichlet(1, …, 1): states are sticky (``A_ii ≥ ½``), the rest random.
        * categorical ``emission_probs``: each row from Dirichlet(2, …, 2).
        * Gaussian ``means``: K distinct observations drawn uniformly (without replacement)
          from all real steps; ``covariances``: the covariance of all observations plus
          ``reg_covar · I`` for every state (as hmmlearn's ``GaussianHMM`` does with ``min_covar``).
        """
        num_states = self.num_states
        transition_key, emission_key = jax.random.split(key)
        dtype = jnp.result_type(float)
        initial_probs = jnp.full((num_states,), 1.0 / num_states, dtype)
        random_rows = _dirichlet_rows(transition_key, (num_states, num_states), 1, dtype)
        transition_matrix = 0.5 * jnp.eye(num_states, dtype=dtype) + 0.5 * random_rows
        if self._categorical:
            emission_probs = _dirichlet_rows(emission_key, (num_states, self.num_categories), 2, dtype)
            return CategoricalHMMParams(initial_probs, transition_matrix, emission_probs)
        observations = data.observations.reshape(-1, data.observations.shape[-1])
        real = _mask(data).reshape(-1).astype(observations.dtype)
        indices = jax.random.choice(emission_key, observations.shape[0], (num_states,), replace=False,
                                    p=real / jnp.sum(real))
        mean = real @ observations / jnp.sum(real)
        centered = (observations - mean) * jnp.sqrt(real)[:, None]
        covariance = centered.T @ centered / (jnp.sum(real) - 1.0) if observations.shape[0] > 1 else (
            jnp.zeros((observations.shape[1],) * 2, observations.dtype))
        covariance = covariance + self.reg_covar * jnp.eye(observations.shape[1])
        covariances = jnp.broadcast_to(covariance, (num_states,) + covariance.shape)
        return GaussianHMMParams(initial_probs, transition_matrix, observations[indices], covariances)

    def num_observations(self, data: HMMData) -> int:
        """``n`` in BIC's ``k log n``: every time step of every sequence (as hmmlearn's ``bic``)."""
        return int(np.sum(np.asarray(data.lengths)))

    # --- inference -----------------------------------------------------------------------------

    def emission_log_likelihoods(self, params, data: HMMData):
        """``log p(x_bt | z_bt = i)``, shape ``[B, T, K]`` (padded steps hold harmless values)."""
        observations = data.observations
        if self._categorical:
            return jnp.log(params.emission_probs).T[observations]
        flat = observations.reshape(-1, observations.shape[-1])
        log_density = _FULL.log_density(flat, params.means, params.covariances)
        return log_density.reshape(observations.shape[:2] + (self.num_states,))

    def _per_sequence(self, function, params, data, *leading):
        """``function(*leading, π, A, log-likelihoods, length)`` vmapped over the sequences."""
        log_likelihoods = self.emission_log_likelihoods(params, data)
        batched_args = (0,) * len(leading) + (None, None, 0, 0)
        return jax.vmap(function, in_axes=batched_args)(
            *leading, params.initial_probs, params.transition_matrix, log_likelihoods, data.lengths)

    def log_marginal(self, params, data: HMMData):
        """ℓ(θ) = Σ_b log p(x_b; θ), by the forward recursion."""
        return jnp.sum(self._per_sequence(hmm_inference.log_likelihood, params, data))

    def posterior(self, params, data: HMMData) -> HMMLatent:
        """Smoothed marginals ``p(z_bt = i | x_b)`` and ``p(z_bt = i, z_b,t+1 = j | x_b)``."""
        result = self._per_sequence(hmm_inference.smoother, params, data)
        return HMMLatent(result.state_probs, result.pair_probs)

    def sample_paths(self, key, params, data: HMMData):
        """Hidden paths ``z_b ~ p(z_b | x_b; θ)`` by FFBS, ``[B, T]`` ints, ``-1`` at padded steps."""
        keys = jax.random.split(key, data.lengths.shape[0])
        return self._per_sequence(hmm_inference.sample_path, params, data, keys)

    def sample_latent(self, key, params, data: HMMData) -> HMMLatent:
        """One posterior path per sequence (FFBS), one-hot encoded as :class:`HMMLatent`."""
        return _one_hot_path(self.sample_paths(key, params, data), self.num_states,
                             jnp.result_type(params.transition_matrix))

    def expected_stats(self, params, data: HMMData):
        """E[T(o, m) | o; θ] = ``suff_stats(data, posterior marginals)``."""
        return self.suff_stats(data, self.posterior(params, data))

    def expected_stats_and_loglik(self, params, data: HMMData):
        """``(E[T(o, m) | o; θ], ℓ(θ))`` from one forward–backward pass."""
        result = self._per_sequence(hmm_inference.smoother, params, data)
        latent = HMMLatent(result.state_probs, result.pair_probs)
        return self.suff_stats(data, latent), jnp.sum(result.log_likelihood)

    def log_joint(self, params, data: HMMData, latent: HMMLatent):
        """log p(o, m; θ) for a one-hot path (its expectation for soft ``latent``)."""
        return self.complete_loglik(params, data, self.suff_stats(data, latent))

    # --- statistics and M-step -------------------------------------------------------------

    def suff_stats(self, data: HMMData, latent: HMMLatent):
        """Complete-data statistics, linear in ``latent``; padded steps are masked out here."""
        mask = _mask(data).astype(latent.states.dtype)
        states = latent.states * mask[:, :, None]  # [B, T, K]
        pairs = latent.transitions
        pairs = pairs._replace(left=pairs.left * mask[:, 1:, None])  # no pair ends on a padded step
        initial_counts = jnp.sum(states[:, 0], axis=0)
        transition_counts = jnp.sum(pairs.summed(), axis=0)
        flat_states = states.reshape(-1, self.num_states)
        if self._categorical:
            emission_counts = jax.ops.segment_sum(flat_states, data.observations.reshape(-1),
                                                  num_segments=self.num_categories).T
            return CategoricalHMMStats(initial_counts, transition_counts, emission_counts)
        flat_x = data.observations.reshape(-1, data.observations.shape[-1])
        return GaussianHMMStats(
            initial_counts, transition_counts,
            state_counts=jnp.sum(flat_states, axis=0),
            first_moments=flat_states.T @ flat_x,
            second_moments=_FULL.second_moments(flat_x, flat_states),
        )

    def m_step(self, stats):
        """argmax_θ Q(θ) in closed form.

        ``π_i = n_i / Σ_j n_j`` (initial counts); ``A_ij = n_ij / Σ_j' n_ij'``
        (transition counts; a row with no expected transitions becomes uniform,
        since Q does not depend on it); categorical ``B_ic = n_ic / Σ_c' n_ic'``
        (likewise uniform for a state with no expected visits); Gaussian, with
        ``ñ_i = N_i + 10 ε``: ``μ_i = S1_i / ñ_i`` and
        ``Σ_i = S2_i / ñ_i − μ_i μ_iᵀ + reg_covar · I``.
        """
        initial_probs = _normalize_rows(stats.initial_counts)
        transition_matrix = _normalize_rows(stats.transition_counts)
        if self._categorical:
            return CategoricalHMMParams(initial_probs, transition_matrix,
                                        _normalize_rows(stats.emission_counts))
        padded_counts = stats.state_counts + 10 * jnp.finfo(stats.state_counts.dtype).eps
        means = stats.first_moments / padded_counts[:, None]
        covariances = _FULL.m_step(padded_counts, means, stats.second_moments, self.reg_covar)
        return GaussianHMMParams(initial_probs, transition_matrix, means, covariances)

    def complete_loglik(self, params, data, stats):
        """``Q(θ) = Σ_i n_i log π_i + Σ_ij n_ij log A_ij + emission term``.

        Categorical: ``Σ_ic n_ic log B_ic``. Gaussian:
        ``−½ Σ_i [N_i (D log 2π + log|Σ_i|) + tr(Σ_i⁻¹ C_i)]`` with the scatter
        ``C_i = S2_i − S1_i μ_iᵀ − μ_i S1_iᵀ + N_i μ_i μ_iᵀ`` (Cholesky factors).
        With one-hot statistics this is exactly ``log p(o, m; θ)``.
        """
        chain = (jnp.sum(xlogy(stats.initial_counts, params.initial_probs))
                 + jnp.sum(xlogy(stats.transition_counts, params.transition_matrix)))
        if self._categorical:
            return chain + jnp.sum(xlogy(stats.emission_counts, params.emission_probs))
        return chain + _FULL.expected_log_density(stats.state_counts, stats.first_moments,
                                                  stats.second_moments, params.means, params.covariances)

    # --- simulation ---------------------------------------------------------------------------

    def sample(self, key, params, num_steps: int):
        """Simulate one sequence: ``(states [T], observations)``, ints ``[T]`` or floats ``[T, D]``.

        Args:
            key: a JAX PRNG key.
            params: the model's parameters.
            num_steps: ``T`` (a Python int).
        """
        num_steps = _validation.as_int("num_steps", num_steps, minimum=1)
        chain_key, emission_key = jax.random.split(key)
        first_key, step_key = jax.random.split(chain_key)
        first = jax.random.categorical(first_key, jnp.log(params.initial_probs))
        log_transitions = jnp.log(params.transition_matrix)

        def step(state, step_key):
            following = jax.random.categorical(step_key, log_transitions[state])
            return following, following

        _, rest = jax.lax.scan(step, first, jax.random.split(step_key, num_steps - 1))
        states = jnp.concatenate([first[None], rest])
        if self._categorical:
            observations = jax.random.categorical(emission_key, jnp.log(params.emission_probs)[states])
        else:
            observations = jax.random.multivariate_normal(
                emission_key, params.means[states], params.covariances[states])
        return states, observations


def _num_features(data) -> int:
    """``D`` of prepared data (``HMMData``) or of raw user data."""
    if data is None:
        return 1
    if isinstance(data, HMMData):
        return data.observations.shape[-1]
    if isinstance(data, (list, tuple)) and data and all(np.ndim(item) >= 1 for item in data):
        data = data[0]
    shape = np.shape(data)
    return 1 if len(shape) <= 1 else shape[-1]


def _dirichlet_rows(key, shape, concentration: int, dtype):
    """Rows from a symmetric Dirichlet with a whole-number concentration ``a``.

    A Gamma(a) variable is a sum of ``a`` Exp(1) variables, and normalized Gammas
    are Dirichlet; this avoids compiling ``jax.random.gamma``'s rejection loop.
    """
    gammas = jnp.sum(jax.random.exponential(key, (concentration,) + shape, dtype), axis=0)
    return gammas / jnp.sum(gammas, axis=-1, keepdims=True)


def _mask(data: HMMData):
    """``[B, T]`` booleans, true at real (unpadded) steps."""
    return jnp.arange(data.observations.shape[1])[None, :] < data.lengths[:, None]


def _normalize_rows(counts):
    """Divide by the sum over the last axis; all-zero rows become uniform."""
    totals = jnp.sum(counts, axis=-1, keepdims=True)
    uniform = jnp.full_like(counts, 1.0 / counts.shape[-1])
    return jnp.where(totals > 0, counts / jnp.where(totals > 0, totals, 1.0), uniform)


def _one_hot_path(paths, num_states, dtype) -> HMMLatent:
    """One-hot encoding of int paths ``[B, T]`` (``-1`` at padded steps gives zero rows)."""
    states = jax.nn.one_hot(paths, num_states, dtype=dtype)
    ones = jnp.ones((paths.shape[0], num_states, num_states), dtype)
    return HMMLatent(states, hmm_inference.FactoredPairs(states[:, :-1], ones, states[:, 1:]))

