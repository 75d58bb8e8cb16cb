"""The Mastodon-compatible face of Kith (docs/mastodon.md).

An adapter at the edge: routes and response shapes of Mastodon's client API and of NodeInfo,
answered from Kith's own services and settings. No rule lives here: limits, counts and
defaults come from the domains that own them.
"""
