"""Training entry points (``python -m terrawatch_research.train.<model>``)."""
