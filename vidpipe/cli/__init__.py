"""Command-line wiring. The only place that configures logging and maps errors to exit codes."""
