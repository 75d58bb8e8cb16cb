"""Users: profiles, search, password change, account deletion, API keys."""
