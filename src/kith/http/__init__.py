"""HTTP plumbing shared by every route: middleware, request-scoped dependencies, response helpers.

Knows FastAPI and Starlette; knows no domain. Domains attach what is here declaratively
(a dependency, a decorator); `kith.main` installs the middleware. docs/architecture.md.
"""
