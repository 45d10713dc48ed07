"""Service layer: use cases that orchestrate the domain through ports (store, tiler, publisher)."""
