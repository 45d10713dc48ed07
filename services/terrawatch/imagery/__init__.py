"""Imagery access: windowed reads of scene assets onto one pixel grid."""
