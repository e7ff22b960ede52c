"""The migration engine: upstream closure, rewrites, vendored helpers and back-ports."""
