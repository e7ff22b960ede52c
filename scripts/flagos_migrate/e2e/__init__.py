"""End-to-end comparison of the plugin's server with an upstream (GT) server."""
