"""``fit(..., progress=True)``: a bar moved from inside the compiled loop, once for all seeds, free when off."""

import numpy as np
import pytest

import stochem as se
from stochem import driver, progress
from stochem._validation import ArgumentTypeError

HEADS = [5, 9, 8, 4, 7, 6, 2, 9]
MODEL = se.models.BinomialMixture(num_components=2, num_trials=10)
START = {"weights": [0.5, 0.5], "probs": [0.6, 0.5]}


@pytest.fixture
def reports(monkeypatch):
    """The counts the compiled loop sends to the host, in the order they arrive."""
    received = []
    advance = progress._advance

    def spy(iterations):
        received.append(int(iterations))
        advance(iterations)

    monkeypatch.setattr(progress, "_advance", spy)
    return received


def test_the_bar_advances_from_inside_the_loop_about_a_hundred_times(reports, capsys):
    se.fit(MODEL, HEADS, init=START, num_iters=300, progress=True)
    every = progress.every_for(300)
    inside = reports[:-1]  # the last one is the driver's closing report
    assert sorted(inside) == list(range(every, 301, every))
    assert reports[-1] == 300
    assert "300/300" in capsys.readouterr().err


def test_several_seeds_report_once_not_once_per_seed(reports):
    se.fit(MODEL, HEADS, init=START, key=list(range(6)), num_iters=300, progress=True)
    every = progress.every_for(300)
    assert sorted(reports[:-1]) == list(range(every, 301, every))


def test_seeds_that_stop_early_report_the_furthest_and_the_bar_ends_at_the_last_iteration(reports, capsys):
    runs = se.fit(MODEL, HEADS, key=[0, 1, 2], num_iters=300, tol=1e-10, progress=True)
    last = int(np.max(runs.num_iters))
    assert last < 300
    assert reports[-1] == last and max(reports) == last
    assert len(reports[:-1]) <= last  # at most one report per loop pass, not one per seed
    assert f"{last}/300" in capsys.readouterr().err


def _program_text(monkeypatch, progress_on: bool) -> str:
    """The text of the program ``fit`` compiles, caught from the driver's cache of compiled runs."""
    caught = {}
    compiled = driver._compiled

    def catching(*args, **kwargs):
        runner, stops_early = compiled(*args, **kwargs)

        def run(*arguments):
            caught["text"] = runner.lower(*arguments).as_text()
            return runner(*arguments)

        return run, stops_early

    with monkeypatch.context() as patch:
        patch.setattr(driver, "_compiled", catching)
        se.fit(MODEL, HEADS, init=START, num_iters=7, progress=progress_on)
    return caught["text"]


def test_without_progress_nothing_is_traced_into_the_program(monkeypatch):
    assert "callback" in _program_text(monkeypatch, True)
    assert "callback" not in _program_text(monkeypatch, False)

    def refuse(*args):
        raise AssertionError("progress.report traced with progress=False")

    monkeypatch.setattr(progress, "report", refuse)
    driver._compiled.cache_clear()
    se.fit(MODEL, HEADS, init=START, num_iters=7)


def test_progress_must_be_a_bool():
    with pytest.raises(ArgumentTypeError) as error:
        se.fit(MODEL, HEADS, init=START, num_iters=2, progress="yes")
    assert error.value.argument == "progress"
