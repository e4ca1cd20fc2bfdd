"""Models: the base class of every detector and embedder (`base`), the one loader of a case's
models (`registry.load_case_models`), device selection, and model weights: where they are found,
what they are (name, licence, SHA-256), and offline conversion."""
