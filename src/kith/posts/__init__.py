"""Posts with visibility, likes and comments."""
