"""The ``terrawatch`` command line (Typer); entry point :func:`main` (``terrawatch`` / ``python -m terrawatch.cli``).

One module per command group; each command calls the same service function as the API route for it.
"""

from terrawatch.cli.root import app, main

# Imported for their commands (registered on ``app`` in this order, the order of ``terrawatch --help``).
from terrawatch.cli import stack, pipeline, api, models, streams  # noqa: E402,F401,I001
from terrawatch_dev.cli import bench  # noqa: E402,F401,I001
from terrawatch.cli import dlq, reprocess  # noqa: E402,F401,I001

__all__ = ["app", "main"]
