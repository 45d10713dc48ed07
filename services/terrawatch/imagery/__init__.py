"""Imagery access: windowed reads of scene assets onto one pixel grid."""

from terrawatch.imagery.gdal_env import apply_defaults as _apply_gdal_defaults

_apply_gdal_defaults()
