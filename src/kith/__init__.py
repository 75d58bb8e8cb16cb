"""Kith: a self-hostable, friends-based social network backend."""

__version__ = "0.1.0"
