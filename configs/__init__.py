"""Hydra configs of the stochem app (a package so that Hydra can find them as ``stochem.app.configs``)."""
