"""The Hydra app behind ``python -m stochem``: configs in, convergence tables and figures out.

Only this subpackage (and ``stochem/__main__.py``) imports Hydra; the library
does not. One module per job:

====================  ===========================================================
``paths``             where the configs and the shipped data live
``settings``          the job's settings: completion and M-step instantiated from their configs
``builders``          the few completion / M-step choices that are not one library call
``labels``            the label column: a completion's title and the options that tell it apart
``errors``            ConfigError, and instantiate() whose failures name the option
``datasets``          data builders: shipped CSV files and seeded synthetic data
``scenarios``         a scenario config -> model, data, shared start θ₀
``matching``          component matching (label switching) and distance in θ
``reference``         θ* of a scenario: exact EM's fixed point (kept on disk), or the scenario's own
``random_effects``    random-intercept GLMMs as plain numpyro models (cbpp, Poisson counts)
``quadrature``        their maximum likelihood θ* by adaptive Gauss–Hermite quadrature (numpy/scipy)
``timing``            compile time vs. run time of a fit
``cache``             the cache folder: compiled programs, θ* and θ₀, figures kept between runs
``files``             atomic writes
``job``               one Hydra job: fit all seeds at once, write table + final θ
``summary``           gather job tables, summary table
``figures``           convergence figures (matplotlib, Agg)
``report``            the Hydra callback that writes the sweep report (unchanged figures not redrawn)
``main``              the entry point and its error handling
====================  ===========================================================
"""
