"""Tiling scenes on Ray: bounded in-flight tile windows, stitched by centre crop."""
