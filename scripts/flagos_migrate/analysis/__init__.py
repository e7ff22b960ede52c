"""Static checks of one file against the pinned API index."""
