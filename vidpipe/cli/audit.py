"""``vidpipe audit keygen|checkpoint``: an external, signed anchor of the case's audit chain.

    vidpipe audit keygen --key FILE [--passphrase-env VAR] [--case DIR] [--json]
    vidpipe audit checkpoint --case DIR --key FILE [--out FILE] [--passphrase-env VAR] [--json]

``keygen`` creates a per-case Ed25519 signing key (mode 0600, never inside the case, optionally
encrypted with the passphrase in environment variable VAR) and ``FILE.pub`` beside it.
``checkpoint`` records the key in the audit trail and signs the head (seq, hash, time, case id);
keep the checkpoint file outside the case. ``vidpipe verify --case DIR --expect-head FILE`` then
fails when the chain was cut short or re-hashed (see `vidpipe.store.anchor`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from vidpipe.cli.output import emit_json, info


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="audit trail anchors: a signing key, signed checkpoints of the chain head",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    asub = p.add_subparsers(dest="audit_command", required=True)
    kg = asub.add_parser("keygen", help="create a per-case Ed25519 signing key (0600, outside the case)")
    kg.add_argument("--key", required=True, type=Path, help="key file to create (FILE.pub gets the public key)")
    kg.add_argument("--passphrase-env", metavar="VAR", help="encrypt the key with the passphrase in $VAR")
    kg.add_argument("--case", type=Path, help="the case the key is for (the key may not live inside it)")
    kg.add_argument("--json", action="store_true")
    kg.set_defaults(handler=run_keygen)
    cp = asub.add_parser("checkpoint", help="sign the audit chain head; keep the file outside the case")
    cp.add_argument("--case", required=True, type=Path)
    cp.add_argument("--key", required=True, type=Path, help="signing key from `vidpipe audit keygen`")
    cp.add_argument("--out", type=Path, help="checkpoint file to write (default: print it on stdout)")
    cp.add_argument("--passphrase-env", metavar="VAR", help="the key's passphrase is in $VAR")
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(handler=run_checkpoint)


def run_keygen(args: argparse.Namespace) -> int:
    """``vidpipe audit keygen``: create the signing key and its ``.pub``."""
    from vidpipe.store.anchor import keygen

    result = keygen(args.key, passphrase_env=args.passphrase_env, case_dir=args.case)
    if args.json:
        emit_json(result)
    else:
        info(f"signing key written to {result['key']} (mode 0600{', passphrase-protected' if result['passphrase'] else ''})")
        info(f"public key {result['public_key']} in {result['public_key_file']}")
        info(f"fingerprint {result['fingerprint']}")
    return 0


def run_checkpoint(args: argparse.Namespace) -> int:
    """``vidpipe audit checkpoint``: record the key in the trail, sign the head, write it out."""
    from vidpipe.provenance import run_environment
    from vidpipe.store.anchor import checkpoint, load_key
    from vidpipe.store.casedb import open_case

    paths, conn = open_case(args.case, create=False)
    try:
        key = load_key(args.key, case_dir=paths.root, passphrase_env=args.passphrase_env)
        doc = checkpoint(conn, paths.root, key, f"cli:{run_environment()['operator']}")
    finally:
        conn.close()
    text = json.dumps(doc, indent=1, ensure_ascii=True) + "\n"
    if args.out is None:
        if args.json:
            emit_json(doc)
        else:
            print(text, end="")
        return 0
    out = args.out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, out)
    head = doc["head"]
    if args.json:
        emit_json({"checkpoint": str(out), **head, "fingerprint": doc["fingerprint"]})
    else:
        info(f"checkpoint of entry {head['seq']} (hash {head['hash']}) written to {out}")
        if paths.root in out.parents:
            info("warning: the checkpoint is inside the case; keep a copy elsewhere, or it anchors nothing")
    return 0
