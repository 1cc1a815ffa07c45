"""Brute-force oracle for hidden Markov chains: enumerate all K^T hidden paths.

Written from the definition with plain numpy and itertools,
p(z, x) = π_{z_0} e_0(z_0) Π_{t≥1} A_{z_{t−1} z_t} e_t(z_t), where
e_t(k) = p(x_t | z_t = k); it shares no code with stochem.
"""

import itertools

import numpy as np


def enumerate_paths(initial_probs, transition_matrix, emission_likelihoods):
    """All paths with their joint probabilities p(z, x); emission_likelihoods[t, k] = p(x_t | z_t = k)."""
    num_steps, num_states = emission_likelihoods.shape
    paths = list(itertools.product(range(num_states), repeat=num_steps))
    joint = []
    for path in paths:
        probability = initial_probs[path[0]] * emission_likelihoods[0, path[0]]
        for t in range(1, num_steps):
            probability *= transition_matrix[path[t - 1], path[t]] * emission_likelihoods[t, path[t]]
        joint.append(probability)
    return paths, np.array(joint)


def brute_force(initial_probs, transition_matrix, emission_likelihoods):
    """Log-likelihood, state marginals [T, K], pair marginals [T−1, K, K], path posterior."""
    num_steps, num_states = emission_likelihoods.shape
    paths, joint = enumerate_paths(initial_probs, transition_matrix, emission_likelihoods)
    evidence = joint.sum()
    posterior = joint / evidence
    states = np.zeros((num_steps, num_states))
    pairs = np.zeros((max(num_steps - 1, 0), num_states, num_states))
    for path, probability in zip(paths, posterior):
        for t in range(num_steps):
            states[t, path[t]] += probability
        for t in range(num_steps - 1):
            pairs[t, path[t], path[t + 1]] += probability
    return np.log(evidence), states, pairs, dict(zip(paths, posterior))


def brute_force_filter(initial_probs, transition_matrix, emission_likelihoods):
    """p(z_t | x_{0:t}) for each t, by enumerating the prefixes."""
    rows = []
    for t in range(emission_likelihoods.shape[0]):
        _, states, _, _ = brute_force(initial_probs, transition_matrix, emission_likelihoods[: t + 1])
        rows.append(states[t])
    return np.array(rows)
