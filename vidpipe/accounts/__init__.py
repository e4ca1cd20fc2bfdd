"""Review-UI accounts below the CLI and the UI: password policy, scrypt hashes, roles, logins."""
