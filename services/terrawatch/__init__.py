"""terrawatch: near-real-time hazard monitoring for Sentinel scenes."""
__version__ = "0.1.0"
