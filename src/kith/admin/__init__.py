"""Administration: the user directory, roles, suspension, and the audit log."""
