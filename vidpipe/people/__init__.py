"""People across a case: face clusters under reviewer constraints."""
