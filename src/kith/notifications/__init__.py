"""Notifications: stored, counted, marked read, and pushed live over a WebSocket."""
