"""Stand-ins for heavy external programs (a vLLM server) used by the tests."""
