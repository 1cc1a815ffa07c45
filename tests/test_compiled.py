"""A model method called on concrete values through ``stochem.compiled.call_compiled``: one program per model."""

from __future__ import annotations

import numpy as np

import stochem as se
from stochem.compiled import call_compiled
from tests.tracing import count_traces

POINTS = np.random.default_rng(0).normal(size=(41, 3))  # shapes no other test uses: a cold program
START = {"weights": [0.4, 0.6], "means": [[-1.0, 0.0, 0.0], [1.0, 0.5, 0.0]],
         "covariances": [np.eye(3), 2 * np.eye(3)]}


def test_call_compiled_runs_a_bound_method_as_one_program_that_equal_models_share():
    model = se.models.GaussianMixture(2)
    data = model.prepare_data(POINTS)
    params = model.prepare_params(START, data)
    with count_traces() as counted:
        table = call_compiled(model.log_joint_table, params, data)
        call_compiled(se.models.GaussianMixture(2).log_joint_table, params, data)
    assert counted.traces == 1  # the second, equal model reused the program
    np.testing.assert_allclose(table, model.log_joint_table(params, data), rtol=1e-12)  # op by op
