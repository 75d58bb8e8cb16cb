"""The audit log: what staff did, written in the same transaction as the action itself.

Any domain whose staff actions must be on record (admin, moderation, posts' removals) calls
`record_action`; the admin API reads the log. A small module of its own, below every domain
that writes to it, so recording an action never pulls in the admin domain.
"""
