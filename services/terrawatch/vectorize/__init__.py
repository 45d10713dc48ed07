"""Masks to polygons: polygonize, minimum mapping unit, reprojection to EPSG:4326."""
