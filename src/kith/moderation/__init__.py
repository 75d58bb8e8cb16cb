"""Reports and moderation of posts, comments and users."""
