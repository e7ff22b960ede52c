# Example upstream tree for model-migrate-flagos: only the files the bundled example needs.
