"""The ingest runner: discovery, sandboxed workers, and the single database writer."""
