"""Label symmetry: which parts of θ may be relabelled without changing the likelihood.

A mixture's likelihood does not change when its components are relabelled, so
EM runs from different seeds may end at the same fixed point with the
components in another order. A model declares its symmetry (its
``label_symmetry``, :class:`stochem.capabilities.LabelSymmetry`) and whoever
compares fitted parameters (the app's distance to θ*) matches the components
first.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Symmetry:
    """Which parts of θ may be relabelled without changing the likelihood.

    Attributes:
        component_fields: fields whose leading axis indexes the exchangeable
            components (a mixture's ``weights``, ``means``, ...).
        exchangeable_fields: fields that are themselves exchangeable copies of
            one another (the two dice of ``DiceSum``: ``probs1``, ``probs2``).
        square_fields: fields whose first two axes both index the components
            (an HMM's ``transition_matrix``); relabelled as ``P A Pᵀ``.
    """

    component_fields: tuple[str, ...] = ()
    exchangeable_fields: tuple[str, ...] = ()
    square_fields: tuple[str, ...] = ()


NO_SYMMETRY = Symmetry()
