"""FAISS indexes and search over a case."""
