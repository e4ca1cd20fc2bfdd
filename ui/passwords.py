"""The password policy's old home: it is ``vidpipe/accounts/passwords.py`` now (below the CLI,
which checks new passwords too); these names stay importable from here for the UI and its tests."""

from __future__ import annotations

from vidpipe.accounts.passwords import COMMON_FILE, MIN_LENGTH, common_passwords, password_problem

__all__ = ["COMMON_FILE", "MIN_LENGTH", "common_passwords", "password_problem"]
