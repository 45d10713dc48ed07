"""Network architectures in plain torch."""
