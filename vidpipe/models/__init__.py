"""Model weights: where they are found, what they are (name, licence, SHA-256), and offline conversion."""
