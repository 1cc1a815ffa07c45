"""Slow imports wait until they are needed: numpyro, scipy.stats, scipy.optimize and matplotlib are not
loaded by ``import stochem`` or by the app's entry point, and are loaded by what uses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
HEAVY = ("numpyro", "scipy.stats", "scipy.optimize", "matplotlib", "PIL")
STEPS = {
    "import": "import stochem, stochem.models, stochem.app.main, stochem.app.job, stochem.app.report",
    "constraints": "stochem.models.BinomialMixture(2, 10).constraints",
    "figures": "import stochem.app.figures",
    "quadrature": "import stochem.app.quadrature",  # the GLMM scenarios' reference
}


def test_heavy_modules_are_loaded_by_what_uses_them_only():
    lines = ["import json, sys"]
    for code in STEPS.values():
        lines += [code, f"print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))"]
    output = subprocess.run([sys.executable, "-c", "\n".join(lines)], cwd=REPOSITORY, capture_output=True,
                            text=True, check=True, timeout=300).stdout
    loaded = dict(zip(STEPS, (set(json.loads(line)) for line in output.strip().splitlines()[-len(STEPS):])))
    assert loaded["import"] == set(), loaded
    assert loaded["constraints"] == {"numpyro"}  # parameters in unconstrained space need numpyro
    assert {"matplotlib", "PIL"} <= loaded["figures"]
    assert "scipy.optimize" in loaded["quadrature"]


def test_the_numpyro_names_are_there_when_asked_for():
    import stochem as se
    from stochem.models import from_numpyro
    from stochem.models.numpyro_model import importance_loglik

    assert se.models.from_numpyro is from_numpyro and se.importance_loglik is importance_loglik
    assert "from_numpyro" in se.models.__all__ and "importance_loglik" in se.__all__
