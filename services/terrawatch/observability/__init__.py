"""Metrics and logging shared by every terrawatch process."""
