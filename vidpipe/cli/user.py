"""``vidpipe user add NAME --role ROLE --case DIR --password-stdin`` (and list, disable, enable).

Accounts of the review UI live in the case database; passwords are never taken from the
command line (where other users and shell history would see them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidpipe.cli.output import emit_json, info
from vidpipe.errors import UsageError, VidpipeError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("user", help="manage review-UI accounts of a case")
    actions = p.add_subparsers(dest="user_action", required=True)
    add = actions.add_parser("add", help="create an account")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["examiner", "analyst", "reviewer", "admin"])
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    for name, text in (("list", "list accounts"), ("disable", "disable an account"), ("enable", "re-enable one")):
        q = actions.add_parser(name, help=text)
        if name != "list":
            q.add_argument("name")
    for q in actions.choices.values():
        q.add_argument("--case", required=True, type=Path)
        q.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            raise UsageError("the passwords differ")
        return first
    raise UsageError("give --password-stdin to read the password from standard input")


def _actor() -> str:
    from vidpipe.provenance import run_environment

    return f"cli:{run_environment()['operator']}"


def run(args: argparse.Namespace) -> int:
    from vidpipe.accounts.users import add_user, find_user, list_users, set_disabled
    from vidpipe.store import audit
    from vidpipe.store.casedb import open_case

    _, conn = open_case(args.case, create=False)
    if args.user_action == "list":
        users = list_users(conn)
        if args.json:
            emit_json({"users": users})
        for u in users if not args.json else []:
            info(f"{u['name']:24s} {u['role']:9s} {'disabled' if u['disabled'] else 'enabled'}  {u['created_utc']}")
        return 0
    if args.user_action == "add":
        user, error = add_user(conn, args.name, args.role, _read_password(args))
        if error:
            raise UsageError(error)
        audit.append(conn, _actor(), "user_add", user.name, {"role": user.role})
        result = {"name": user.name, "role": user.role, "created": True}
    else:
        disabled = args.user_action == "disable"
        if not set_disabled(conn, args.name, disabled):
            raise VidpipeError(f"no user {args.name!r} in this case")  # one message (and --json object)
        name = find_user(conn, args.name)["name"]  # names are case-insensitive: the stored spelling
        audit.append(conn, _actor(), f"user_{args.user_action}", name)
        result = {"name": name, "disabled": disabled}
    if args.json:
        emit_json(result)
    else:
        info(f"user {args.name}: {args.user_action} done")
    return 0
