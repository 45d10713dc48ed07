"""Dev tooling of terrawatch: the local stack, the demo, synthetic samples, the bench commands.

Part of the ``terrawatch`` distribution but not of the runtime: no module of ``terrawatch`` that the worker,
the API server or the dispatcher imports reaches this package (tests/unit/test_boundaries.py); only the
``terrawatch`` CLI registers its commands here."""
