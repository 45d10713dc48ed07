"""Inference adapters: Triton over gRPC (the service) and in-process runners (tests, eval)."""
