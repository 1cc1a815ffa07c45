"""A check the label-matching tests share."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stochem.app.matching import distance, match_components


def assert_every_relabelling_matches_back(reference: dict, relabel, symmetry, num_components: int) -> None:
    """Every relabelling ``relabel(reference, order)`` is at distance 0 and is matched back exactly."""
    for order in itertools.permutations(range(num_components)):
        shuffled = relabel(reference, order)
        assert distance(shuffled, reference, symmetry) == pytest.approx(0.0, abs=1e-12)
        matched = match_components(shuffled, reference, symmetry)
        for name in reference:
            np.testing.assert_array_equal(matched[name], reference[name])
