"""vidpipe: offline forensic media pipeline (ingest, extract, index, search, review)."""

__version__ = "0.1.0"
