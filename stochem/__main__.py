"""``python -m stochem [experiment=NAME] [overrides...]``: the Hydra app (see ``stochem.app``)."""

from stochem.app.main import main

if __name__ == "__main__":
    main()
