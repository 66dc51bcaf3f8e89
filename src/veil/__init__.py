"""veil: find every face and make it unrecognizable."""

__version__ = "0.1.0"
