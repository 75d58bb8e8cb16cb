"""Fault tests (issue 7): real processes, real PostgreSQL and Redis, faults injected, and
an invariant checker run after each. `make test-resilience` runs them."""
