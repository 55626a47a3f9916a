"""Gradient transformations, one family per module."""
