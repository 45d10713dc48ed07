"""Dev tooling of terrawatch: the local stack (``stack/``: Kafka, PostGIS, Triton, Ray on 127.0.0.1, and the
API on Ray Serve), ``demo.py`` (``terrawatch demo``), synthetic scenes (``samples.py``) and seeded layer rows
(``api_samples.py``) for tests, benches and the demo, ``api_launch.py`` (the demo's API process) and the
``terrawatch bench`` commands (``cli/bench.py``).

Part of the ``terrawatch`` distribution but not of the runtime: no module of ``terrawatch`` that the worker,
the API server or the dispatcher imports reaches this package (tests/unit/test_boundaries.py); only the
``terrawatch`` CLI runs it, along an allow-list of command edges."""
