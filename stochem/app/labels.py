"""The ``label`` column of tables and figures: a completion with the settings that tell it apart.

Each completion config has a ``title`` in which ``{option}`` (with an optional
format, ``{exponent:g}``) is replaced by the option's value; the options the
title does not name are appended as ``option=value`` when they differ from the
group file's own value, and ``avg>=N`` ends the label when Polyak–Ruppert
averaging is on. So ``saem`` is ``saem S=1 burn_in=20 exponent=1``, and with
``completion.sampler=mcmc completion.kernel=hmc`` it becomes
``saem S=1 burn_in=20 exponent=1 sampler=mcmc kernel=hmc``; a new completion
gets its label from its config file alone.
"""

from __future__ import annotations

import functools
import string

from omegaconf import DictConfig, OmegaConf

from stochem.app.paths import config_dir

# Keys of a completion config that are not options of the completion.
APP_KEYS = frozenset({"name", "label", "title", "fixed_num_samples", "factory", "average_from"})
# Sweeps cross it with every completion, and those that ignore it keep it in their file:
# only a title shows it.
_SWEPT_ACROSS_COMPLETIONS = frozenset({"num_samples"})


@functools.lru_cache(maxsize=None)
def _file_values(group: str, name: str) -> dict:
    """The plain option values written in ``configs/<group>/<name>.yaml`` (``{}`` if there is no such file)."""
    path = config_dir() / group / f"{name}.yaml"
    if not path.is_file():
        return {}
    values = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return {key: value for key, value in values.items()
            if key not in APP_KEYS | _SWEPT_ACROSS_COMPLETIONS and not (isinstance(value, str) and "${" in value)}


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def completion_label(cfg: DictConfig) -> str:
    """The label of the composed ``completion`` group ``cfg`` (see the module docstring)."""
    values = {key: value for key, value in OmegaConf.to_container(cfg, resolve=True).items() if key not in APP_KEYS}
    title = str(cfg.get("title") or cfg.name)
    named = {field for _, field, _, _ in string.Formatter().parse(title) if field}
    changed = [f"{key}={_text(values[key])}" for key, default in _file_values("completion", str(cfg.name)).items()
               if key not in named and key in values and values[key] != default]
    average_from = cfg.get("average_from")
    averaged = [] if average_from is None else [f"avg>={average_from}"]
    return " ".join([title.format_map(values), *changed, *averaged])
