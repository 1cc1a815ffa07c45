"""Data builders for the scenarios: shipped CSV files and seeded synthetic data.

Each builder is a plain function returning a numpy array in the form the
scenario's model takes; a scenario config names it with ``_target_`` and gives
its arguments, so the seed of every synthetic data set is recorded in the
job's ``.hydra/config.yaml``. Synthetic draws use ``numpy.random.default_rng(seed)``
(the red/blue data use the legacy global-state stream, as the notebook did).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from stochem.app.paths import data_file
from stochem.models.hidden_markov import casino_params


def csv_columns(file: str, columns: Sequence[str], standardize: bool = False) -> np.ndarray:
    """Columns of a CSV file shipped in ``stochem/data``; empty cells become NaN.

    Args:
        file: file name, e.g. ``"faithful.csv"``.
        columns: column names, in the order wanted.
        standardize: center and scale each column by the mean and standard
            deviation of its observed entries, so that every column weighs
            the same in the distance between parameters.

    Returns:
        ``[N, len(columns)]`` float array, or ``[N]`` for a single column.
    """
    frame = pd.read_csv(data_file(file))
    unknown = [name for name in columns if name not in frame.columns]
    if unknown:
        raise ValueError(f"scenario.data.columns: {file} has no column(s) {unknown}; "
                         f"it has {list(frame.columns)}.")
    values = frame[list(columns)].to_numpy(dtype=float)
    if standardize:
        values = (values - np.nanmean(values, axis=0)) / np.nanstd(values, axis=0)
    return values[:, 0] if len(columns) == 1 else values


def red_blue(seed: int = 110, red_mean: float = 3.0, red_std: float = 0.8, blue_mean: float = 7.0,
             blue_std: float = 2.0, num_each: int = 20) -> np.ndarray:
    """The 1-D red/blue data of the seed notebook: ``num_each`` points from each Gaussian.

    Drawn exactly as the notebook did (``np.random.seed(seed)``, then the red
    points, then the blue ones), so ``seed=110`` gives its 40 points.
    """
    stream = np.random.RandomState(seed)
    red = stream.normal(red_mean, red_std, size=num_each)
    blue = stream.normal(blue_mean, blue_std, size=num_each)
    return np.concatenate([red, blue])


def gaussian_clusters(num_points: int, num_components: int, dim: int, separation: float,
                      seed: int) -> np.ndarray:
    """Points from K Gaussian clusters in ``R^dim`` with equal weights.

    The means sit on a circle in the first two coordinates (on a line when
    ``dim == 1``) with neighbouring means ``separation`` apart; each covariance
    is a random rotation of a diagonal with variances in [0.5, 1.5], so the
    separation is measured in units of about one standard deviation.
    """
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(num_components) / num_components
    means = np.zeros((num_components, dim))
    if dim == 1:
        means[:, 0] = separation * np.arange(num_components)
    else:
        radius = separation / (2 * np.sin(np.pi / num_components)) if num_components > 1 else 0.0
        means[:, 0], means[:, 1] = radius * np.cos(angles), radius * np.sin(angles)
    factors = []
    for _ in range(num_components):
        rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        factors.append(rotation * np.sqrt(rng.uniform(0.5, 1.5, dim)))
    labels = rng.integers(0, num_components, num_points)
    noise = rng.standard_normal((num_points, dim))
    return means[labels] + np.einsum("nij,nj->ni", np.asarray(factors)[labels], noise)


def loaded_dice_sessions(num_sessions: int, rolls_per_session: int, weights: Sequence[float],
                         probs: Sequence[Sequence[float]], seed: int) -> np.ndarray:
    """Face counts ``[N, C]``: each session one gambler (chosen by ``weights``) rolls their die.

    ``rolls_per_session=1`` is a crier calling single numbers; more rolls per
    session make the two dice identifiable.
    """
    rng = np.random.default_rng(seed)
    weights, probs = np.asarray(weights, float), np.asarray(probs, float)
    gamblers = rng.choice(len(weights), size=num_sessions, p=weights / weights.sum())
    return np.stack([rng.multinomial(rolls_per_session, probs[g] / probs[g].sum()) for g in gamblers])


def gaussian_with_missing(num_points: int, mean: Sequence[float], covariance: Sequence[Sequence[float]],
                          missing_rate: float, pattern: str, seed: int) -> np.ndarray:
    """Draws of ``N(mean, covariance)`` with entries hidden (NaN), missing completely at random.

    Args:
        pattern: ``"mcar"``: each entry is hidden with probability
            ``missing_rate``, independently (a row that would lose every entry
            keeps one, chosen at random); ``"monotone"``: column 0 is always
            seen, and with probability ``missing_rate`` a row loses all columns
            from a random ``j >= 1`` on.
    """
    if pattern not in ("mcar", "monotone"):
        raise ValueError(f"scenario.data.pattern must be one of ['mcar', 'monotone'], got {pattern!r}.")
    if not 0 <= missing_rate < 1:
        raise ValueError(f"scenario.data.missing_rate must be in [0, 1), got {missing_rate}.")
    rng = np.random.default_rng(seed)
    mean = np.asarray(mean, float)
    values = rng.multivariate_normal(mean, np.asarray(covariance, float), size=num_points)
    dim = mean.shape[0]
    if pattern == "mcar":
        hidden = rng.random(values.shape) < missing_rate
        all_hidden = hidden.all(axis=1)
        hidden[all_hidden, rng.integers(0, dim, all_hidden.sum())] = False
    else:
        first_hidden = rng.integers(1, dim, num_points) if dim > 1 else np.full(num_points, dim)
        drops = rng.random(num_points) < missing_rate
        hidden = drops[:, None] & (np.arange(dim)[None, :] >= first_hidden[:, None])
    return np.where(hidden, np.nan, values)


def shifted_die_shouts(num_rolls: int, p_heads: float, face_probs: Sequence[float], seed: int) -> np.ndarray:
    """Shouts in ``1..F+1``: the face on heads, the face + 1 on tails."""
    rng = np.random.default_rng(seed)
    face_probs = np.asarray(face_probs, float)
    faces = rng.choice(len(face_probs), size=num_rolls, p=face_probs / face_probs.sum()) + 1
    tails = rng.random(num_rolls) >= p_heads
    return faces + tails


def dice_sums(num_rolls: int, probs1: Sequence[float], probs2: Sequence[float], seed: int) -> np.ndarray:
    """Sums in ``2..2F`` of two dice with face probabilities ``probs1`` and ``probs2``."""
    rng = np.random.default_rng(seed)
    probs1, probs2 = np.asarray(probs1, float), np.asarray(probs2, float)
    die1 = rng.choice(len(probs1), size=num_rolls, p=probs1 / probs1.sum()) + 1
    die2 = rng.choice(len(probs2), size=num_rolls, p=probs2 / probs2.sum()) + 1
    return die1 + die2


def _check_counts(**counts) -> None:
    """Each keyword must be a whole number >= 1 (the error names the scenario option)."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}.")


def casino_rolls(num_sequences: int, num_rolls: int, seed: int) -> list[np.ndarray]:
    """Rolls of the occasionally dishonest casino (Durbin et al. 1998): faces ``0..5`` for ``1..6``.

    Each sequence starts with the fair or the loaded die with probability 1/2
    and follows the casino's hidden Markov chain
    (:func:`stochem.models.hidden_markov.casino_params`): the fair die is
    swapped for the loaded one with probability 0.05 after a roll, and back
    with probability 0.1; the loaded die shows a six half of the time.

    Returns:
        A list of ``num_sequences`` int arrays of length ``num_rolls`` (what
        ``HiddenMarkovModel`` takes as several sequences).
    """
    _check_counts(num_sequences=num_sequences, num_rolls=num_rolls)
    initial, transition, emission = (np.asarray(value, float) for value in casino_params())
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(num_sequences):
        die = rng.choice(2, p=initial)
        switches = rng.random(num_rolls)
        faces = np.empty(num_rolls, dtype=int)
        for step in range(num_rolls):
            faces[step] = rng.choice(6, p=emission[die])
            if switches[step] < transition[die, 1 - die]:
                die = 1 - die
        sequences.append(faces)
    return sequences


def poisson_groups(num_groups: int, group_size: int, intercept: float, slope: float, group_sd: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts with log-normal group effects: ``y_gi ~ Poisson(exp(β₀ + β₁ x_gi + u_g))``, ``u_g ~ N(0, σ²)``.

    The covariate ``x_gi`` is standard normal; every group has ``group_size``
    counts.

    Returns:
        ``(covariate [N], group [N] in 0..num_groups−1, counts [N])`` with
        ``N = num_groups · group_size``.
    """
    _check_counts(num_groups=num_groups, group_size=group_size)
    if not group_sd >= 0:
        raise ValueError(f"group_sd must be >= 0 (the spread of the group effects), got {group_sd}.")
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(num_groups), group_size)
    covariate = rng.standard_normal(group.shape[0])
    effects = group_sd * rng.standard_normal(num_groups)
    counts = rng.poisson(np.exp(intercept + slope * covariate + effects[group]))
    return covariate, group, counts


def missing_completely_at_random(rng, values: np.ndarray, rate: float, keep: Sequence[int] = (0,)) -> np.ndarray:
    """A copy of ``values`` with each entry outside the ``keep`` columns set to NaN with probability ``rate`` (MCAR)."""
    values = np.array(values, dtype=float)
    removed = rng.random(values.shape) < rate
    removed[:, list(keep)] = False
    values[removed] = np.nan
    return values


def missing_at_random(rng, values: np.ndarray, rate: float, driver: int = 0, slope: float = 2.0) -> np.ndarray:
    """A copy of ``values`` with entries outside column ``driver`` removed more often where ``driver`` is large.

    Each such entry of row n is set to NaN with probability
    ``sigmoid(a + slope · z_n)``, ``z_n`` the standardized ``driver`` value,
    and ``a`` chosen (by bisection) so that the average probability is
    ``rate``. Column ``driver`` is always observed, so the entries are missing
    at random (given the observed data) but not completely at random (MAR).
    """
    values = np.array(values, dtype=float)
    standardized = (values[:, driver] - values[:, driver].mean()) / values[:, driver].std()

    def probability(intercept):
        return 1.0 / (1.0 + np.exp(-(intercept + slope * standardized)))

    low, high = -20.0, 20.0
    for _ in range(100):
        intercept = 0.5 * (low + high)
        low, high = (intercept, high) if np.mean(probability(intercept)) < rate else (low, intercept)
    removed = rng.random(values.shape) < probability(intercept)[:, None]
    removed[:, driver] = False
    values[removed] = np.nan
    return values


def _remove_entries(values: np.ndarray, missing_rate: float, mechanism: str, seed: int) -> np.ndarray:
    """``values`` with entries of every column but 0 removed, ``"mcar"`` or ``"mar"`` (driven by column 0)."""
    if mechanism not in ("mcar", "mar"):
        raise ValueError(f"scenario.data.mechanism must be one of ['mcar', 'mar'], got {mechanism!r}.")
    if not 0 <= missing_rate < 1:
        raise ValueError(f"scenario.data.missing_rate must be in [0, 1), got {missing_rate}.")
    rng = np.random.default_rng(seed)
    if mechanism == "mcar":
        return missing_completely_at_random(rng, values, missing_rate, keep=(0,))
    return missing_at_random(rng, values, missing_rate, driver=0)


def csv_with_missing(file: str, columns: Sequence[str], missing_rate: float, mechanism: str, seed: int,
                     standardize: bool = False) -> np.ndarray:
    """:func:`csv_columns` with entries of every column but the first removed (NaN).

    ``mechanism="mcar"``: each entry with probability ``missing_rate``;
    ``"mar"``: more often where the first column is large
    (:func:`missing_at_random`, average rate ``missing_rate``). Standardizing
    uses the full columns, before removal.
    """
    return _remove_entries(csv_columns(file, columns, standardize), missing_rate, mechanism, seed)


def clusters_with_missing(num_points: int, num_components: int, dim: int, separation: float, missing_rate: float,
                          mechanism: str, seed: int) -> np.ndarray:
    """:func:`gaussian_clusters` with entries of every column but the first removed, as :func:`csv_with_missing`."""
    return _remove_entries(gaussian_clusters(num_points, num_components, dim, separation, seed),
                           missing_rate, mechanism, seed + 1)


def repeat_counts(num_rows: int, max_count: int, seed: int) -> np.ndarray:
    """Whole-number weights ``1..max_count``, uniform: each row stands for that many identical rows."""
    _check_counts(num_rows=num_rows, max_count=max_count)
    return np.random.default_rng(seed).integers(1, max_count + 1, num_rows).astype(float)
