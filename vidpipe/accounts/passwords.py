"""Password policy for review-UI accounts: long enough, not common, not the user name, not a pattern.

NIST SP 800-63B §3.1.1.2 asks verifiers to refuse passwords found in lists of commonly used or
compromised values, repetitive or sequential characters, and context-specific words (the user
name); it advises against composition rules, so there are none here. The list is a small offline
file (``vidpipe/accounts/common_passwords.txt``); nothing is looked up on the network.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

MIN_LENGTH = 12  # our choice, above NIST's 8: a passphrase of three words passes, "Summer2024!" does not
COMMON_FILE = Path(__file__).resolve().parent / "common_passwords.txt"
# Keyboard rows and alphabets that "sequences" are cut from (forwards and backwards).
_SEQUENCES = ("abcdefghijklmnopqrstuvwxyz", "0123456789012345678901", "qwertyuiopasdfghjklzxcvbnm",
              "qwertzuiop", "azertyuiop", "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p", "!@#$%^&*()")
# Look-alike substitutions people use to dress up a common word ("P@ssw0rd").
_LEET = str.maketrans({"@": "a", "4": "a", "0": "o", "1": "i", "!": "i", "3": "e", "$": "s", "5": "s",
                       "7": "t", "+": "t", "8": "b", "9": "g"})


@functools.cache
def common_passwords() -> frozenset[str]:
    """The refused list, lower case (comment lines skipped)."""
    lines = COMMON_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip().lower() for w in lines if w.strip() and not w.startswith("#"))


def _is_sequence(text: str) -> bool:
    """True when ``text`` (3+ chars) is a run of one keyboard row or alphabet, either way round."""
    if len(text) < 3:
        return False
    return any(text in seq or text in seq[::-1] for seq in _SEQUENCES)


def _period(text: str) -> int:
    """Length of the shortest unit that ``text`` repeats ("abcabcabc" -> 3, "aaaa" -> 1)."""
    for n in range(1, len(text) // 2 + 1):
        if len(text) % n == 0 and text[:n] * (len(text) // n) == text:
            return n
    return len(text)


def _cores(password: str) -> set[str]:
    """The word a password is built around: lower case, without digits/symbols at the ends or spaces,
    with and without look-alike substitutions ("P@ssw0rd2024!" -> "password")."""
    low = password.lower()
    out = {low, low.replace(" ", "")}
    for text in list(out):
        stripped = re.sub(r"^[\W\d_]+|[\W\d_]+$", "", text)
        out |= {stripped, text.translate(_LEET), re.sub(r"^[\W\d_]+|[\W\d_]+$", "", text.translate(_LEET))}
        # A trailing year or number dressed up with look-alikes still counts as decoration.
        out.add(re.sub(r"[\W\d_]+$", "", text).translate(_LEET))
    return {c for c in out if c}


def password_problem(password: str, user_name: str = "") -> str | None:
    """Why ``password`` is refused for ``user_name``, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"password must have at least {MIN_LENGTH} characters"
    if password.strip() != password:
        return "password must not start or end with white space"
    low = password.lower()
    compact = re.sub(r"\s+", "", low)
    name = user_name.strip().lower()
    # The name, or the name with a little added ("admin2024admin"); a passphrase that merely
    # mentions it ("frank's long password") keeps enough of its own.
    if name and (compact in name or name in _cores(password) or
                 (name in compact and len(compact.replace(name, "")) < MIN_LENGTH - 4)):
        return "password must not be the user name or built around it"
    if _period(compact) <= max(3, len(compact) // 3):
        return "password must not be one character or a short group repeated"
    if _is_sequence(compact) or len(set(compact)) <= 3:
        return "password must not be a keyboard or alphabet sequence or use only a few characters"
    common = common_passwords()
    cores = _cores(password)
    if cores & common:
        return "password is too common (it is on the list of frequently used passwords)"
    # Two or three common words glued together, e.g. "passwordpassword", "iloveyouiloveyou".
    for core in cores:
        if _period(core) < len(core) and core[:_period(core)] in common:
            return "password is too common (it is on the list of frequently used passwords)"
    return None
