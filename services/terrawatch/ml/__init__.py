"""Machine learning: datasets, networks, training and evaluation (TorchGeo-style split)."""
