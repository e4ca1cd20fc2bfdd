"""Read-side views of a case: exports, reports, verification."""
