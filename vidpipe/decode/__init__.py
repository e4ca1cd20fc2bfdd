"""Safe decoding of untrusted media, meant to run inside sandboxed worker processes."""
