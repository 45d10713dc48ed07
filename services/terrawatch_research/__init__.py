"""Research code of terrawatch: model training (``train/``) and evaluation / cross-validation (``eval/``).

Part of the ``terrawatch`` distribution but not of the runtime: it imports the served models' code
(``terrawatch.ml``) to train and measure it, and no module of ``terrawatch`` that the worker, the API server
or the dispatcher imports reaches this package (tests/unit/test_boundaries.py); only the ``terrawatch eval``
and ``terrawatch cv`` commands run it."""
