"""The case database: one SQLite file per case, the system of record."""
