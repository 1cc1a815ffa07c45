"""Reference problems with their data builders and independently computed answers.

Each module holds one published problem: the data (shipped in ``stochem/data``
with its provenance), the model written as a plain numpyro model or a stochem
model, and the reference the fits are judged against (an exact maximum
likelihood estimate computed here with numpy/scipy only, plus published
estimates where they exist). The experiments and the tests use them; the
Hydra app can wrap them as scenarios.
"""
