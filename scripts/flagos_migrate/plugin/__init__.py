"""The plugin checkout (vllm_fl): its files, registrations and provenance records."""
