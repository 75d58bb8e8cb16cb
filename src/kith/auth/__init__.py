"""Accounts and authentication: registration, tokens, sessions, e-mail flows."""
