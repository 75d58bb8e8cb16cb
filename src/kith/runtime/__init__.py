"""What a running process holds and how work is done on it: the resources opened at start,
the unit of work (one transaction, then its jobs and live events), the e-mail outbox and the
periodic house-keeping. Domain-neutral; docs/architecture.md.
"""
