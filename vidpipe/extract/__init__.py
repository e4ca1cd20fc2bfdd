"""Per-file feature extraction (EXIF, hashes, faces, scenes) run inside worker processes."""
