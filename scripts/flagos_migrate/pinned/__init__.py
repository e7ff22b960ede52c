"""The pinned API index: reading library sources, building and querying the static index."""
