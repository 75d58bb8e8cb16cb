"""Friend requests, friendships and blocks."""
