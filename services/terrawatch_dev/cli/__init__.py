"""Dev command groups of the ``terrawatch`` CLI (registered on :data:`terrawatch.cli.root.app` by
:mod:`terrawatch.cli`)."""
