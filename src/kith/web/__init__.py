"""Kith's web client: one page and its static assets, served at `/` (docs/web-client.md)."""
