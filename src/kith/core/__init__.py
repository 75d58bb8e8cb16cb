"""Cross-cutting mechanisms shared by every domain."""
