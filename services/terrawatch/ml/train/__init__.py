"""Training entry points (``python -m terrawatch.ml.train.<model>``)."""
