"""Real checks of migrated files in a Python with the pinned vLLM."""
