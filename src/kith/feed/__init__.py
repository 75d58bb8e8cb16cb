"""The news feed: the caller's and friends' posts, newest first."""
