"""Evaluation: metrics, corruptions and ``evaluate(dataset, root, model, corrupt)``."""
