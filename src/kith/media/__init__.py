"""Image uploads: validation, re-encoding, storage and serving."""
