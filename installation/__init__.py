"""Tapestry: a generative light-art installation controller (the Nutrient Network made visible)."""

__version__ = "0.1.0"
