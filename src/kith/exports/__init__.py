"""Exports of an account's data: a zip archive built in the background (docs/export.md)."""
