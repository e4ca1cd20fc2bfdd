"""External anchors of the audit chain: signed checkpoints, and exports used as anchors.

The hash chain shows an edited or deleted entry, but not a chain cut short at its end, nor one
re-hashed from the start after an edit: both leave a chain that holds. An anchor kept outside
the case pins the head as it was: ``{seq, hash}`` of the last entry at that moment. Checking
the case against it fails when the chain is now shorter than the anchor's seq, or when the
entry at that seq has another hash.

A checkpoint (``vidpipe audit checkpoint``) is signed with a per-case Ed25519 key. The key file
lives outside the case, readable by its owner only (0600), optionally passphrase-protected; the
public key is written into the checkpoint and recorded in the audit trail itself (an
``audit_checkpoint`` entry), so a checkpoint signed with some other key is rejected. Every
decision export also names the head it was made at; it can serve as an anchor, unsigned (it
proves the head only as far as the copy itself is trusted).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import sqlite3
import stat
from pathlib import Path
from typing import Any

from vidpipe.errors import UsageError
from vidpipe.store import audit
from vidpipe.store.casedb import utc_now

FORMAT = "vidpipe-audit-checkpoint"
CHECKPOINT_ACTION = "audit_checkpoint"
UNSIGNED_NOTE = ("unsigned anchor (an export): it pins the head it names, but nothing proves who made it; "
                 "use a signed checkpoint (`vidpipe audit checkpoint`) for that")


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def fingerprint(public_raw: bytes) -> str:
    """SHA-256 of the raw 32-byte Ed25519 public key, hex."""
    return hashlib.sha256(public_raw).hexdigest()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _passphrase(env_var: str | None) -> bytes | None:
    if not env_var:
        return None
    value = os.environ.get(env_var)
    if not value:
        raise UsageError(f"--passphrase-env {env_var}: the environment variable is not set or empty")
    return value.encode("utf-8")


def keygen(key_path: Path, *, passphrase_env: str | None = None, case_dir: Path | None = None) -> dict[str, Any]:
    """Create a new Ed25519 signing key at ``key_path`` (mode 0600, never overwriting) and its public
    key beside it (``<key>.pub``). Refuses a path inside ``case_dir``: a key kept with the case it
    vouches for protects nothing from whoever can rewrite the case."""
    from cryptography.hazmat.primitives import serialization  # lazy: heavy
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # lazy: heavy

    key_path = Path(key_path).absolute()
    if case_dir is not None and _inside(key_path, Path(case_dir)):
        raise UsageError(f"refusing to keep the signing key inside the case ({key_path}): store it elsewhere")
    if key_path.exists():
        raise UsageError(f"{key_path} exists already; refusing to overwrite a key")
    secret = Ed25519PrivateKey.generate()
    password = _passphrase(passphrase_env)
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    pem = secret.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL with mode 0600: the key is never readable by others, not even for a moment.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(key_path, 0o600)  # in case the umask was stricter than asked, or the FS ignores it
    public_raw = secret.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pub_path = key_path.with_name(key_path.name + ".pub")
    pub_path.write_text(public_raw.hex() + "\n")
    return {"key": str(key_path), "public_key_file": str(pub_path), "public_key": public_raw.hex(),
            "fingerprint": fingerprint(public_raw), "passphrase": bool(password)}


def load_key(key_path: Path, *, case_dir: Path, passphrase_env: str | None = None):
    """The signing key, after refusing one inside the case or readable by group/other."""
    from cryptography.hazmat.primitives import serialization  # lazy: heavy

    key_path = Path(key_path).absolute()
    if not key_path.is_file():
        raise UsageError(f"no key file at {key_path} (create one with `vidpipe audit keygen --key FILE`)")
    if _inside(key_path, Path(case_dir)):
        raise UsageError(f"refusing a signing key inside the case ({key_path}): move it out of the case")
    mode = key_path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{key_path} is accessible by group/other (mode {stat.S_IMODE(mode):04o}); "
                         f"run chmod 600 {key_path}")
    data = key_path.read_bytes()
    password = _passphrase(passphrase_env)
    try:
        return serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:  # encrypted without a passphrase, or a passphrase for a plain key
        raise UsageError(f"{key_path}: {exc} (use --passphrase-env VAR)") from exc
    except ValueError as exc:
        raise UsageError(f"{key_path}: cannot load the key ({exc}); wrong passphrase?") from exc


def chain_id(conn: sqlite3.Connection) -> str | None:
    """Identifies a case's trail: the hash of its first entry (None for an empty trail)."""
    row = conn.execute("SELECT entry_hash FROM audit WHERE seq = 1").fetchone()
    return row[0] if row else None


def checkpoint(conn: sqlite3.Connection, case_root: Path, key, actor: str) -> dict[str, Any]:
    """Record the signing key's use in the trail, then sign the head (that very entry).

    Returns the checkpoint document (to be kept outside the case).
    """
    from cryptography.hazmat.primitives import serialization  # lazy: heavy

    public_raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    seq = audit.append(conn, actor, CHECKPOINT_ACTION, str(case_root),
                       {"public_key": public_raw.hex(), "fingerprint": fingerprint(public_raw)})
    row = conn.execute("SELECT seq, entry_hash FROM audit WHERE seq = ?", (seq,)).fetchone()
    head = {"case": str(case_root), "case_id": chain_id(conn), "seq": row[0], "hash": row[1],
            "time_utc": utc_now()}
    return {"format": FORMAT, "version": 1, "head": head, "public_key": public_raw.hex(),
            "fingerprint": fingerprint(public_raw), "algorithm": "Ed25519",
            "signature": key.sign(_canonical(head)).hex()}


def _from_json_doc(doc: Any) -> dict[str, Any] | None:
    """The anchor in a JSON document: a checkpoint, a decisions export (JSON / Project VIC), a
    trailer line of `vidpipe export --format jsonl --audit-head`."""
    if not isinstance(doc, dict):
        return None
    if doc.get("format") == FORMAT:
        head = doc.get("head") if isinstance(doc.get("head"), dict) else {}  # hostile file: any JSON shape
        return {"kind": "checkpoint", "signed": True, "seq": head.get("seq"), "hash": head.get("hash"),
                "case_id": head.get("case_id"), "time_utc": head.get("time_utc"), "doc": doc}
    if isinstance(doc.get("audit_head"), dict):
        h = doc["audit_head"]
        return {"kind": "export (JSON)", "signed": False, "seq": h.get("seq"), "hash": h.get("hash"),
                "time_utc": doc.get("exported_utc")}
    value = doc.get("value")
    if isinstance(value, list) and value and isinstance(value[0], dict) and isinstance(value[0].get("AuditHead"), dict):
        h = value[0]["AuditHead"]
        return {"kind": "export (Project VIC)", "signed": False, "seq": h.get("seq"), "hash": h.get("hash"),
                "time_utc": value[0].get("ExportedUtc")}
    return None


def load_anchor(path: Path) -> dict[str, Any]:
    """Read an anchor file: a checkpoint, or an export carrying the chain head (decisions JSON, HTML
    or Project VIC; `vidpipe export` vics, or jsonl/csv with ``--audit-head``; a decisions CSV pins
    the entry of its newest decision)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the anchor {path}: {exc}") from exc
    try:
        found = _from_json_doc(json.loads(text))
    except ValueError:
        found = None
    if found is None:  # JSONL: the head is on a line of its own (the last, by convention)
        for line in reversed(text.splitlines()):
            try:
                found = _from_json_doc(json.loads(line))
            except ValueError:
                break
            if found is not None:
                found["kind"] = "export (JSONL)"
                break
    if found is None:
        found = _from_text(text)
    if found is None:
        found = _from_csv(text)
    if found is None:
        raise UsageError(f"{path} holds no audit head: expected a checkpoint from `vidpipe audit checkpoint` or "
                         "an export that names the audit head")
    seq = found.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(found.get("hash"), str):
        raise UsageError(f"{path}: the audit head in it is malformed")
    found["file"] = str(path.absolute())
    return found


# At the start of a line only: a reason or a file name in some cell of a CSV row must not pass for the head
# (csv_cell escapes line breaks inside cells, and no export's first column is free text).
_HEAD_LINE = re.compile(r"^# audit_head seq=(\d+) hash=([0-9a-f]{64})", re.MULTILINE)
_HEAD_HTML = re.compile(r"Audit chain head</th><td[^>]*>seq (\d+), ([0-9a-f]{64})<")


def _from_text(text: str) -> dict[str, Any] | None:
    """The head line of `vidpipe export --format csv --audit-head`, or the head in an HTML report."""
    for pattern, kind in ((_HEAD_LINE, "export (CSV head line)"), (_HEAD_HTML, "export (HTML report)")):
        match = pattern.search(text)
        if match:
            return {"kind": kind, "signed": False, "seq": int(match.group(1)), "hash": match.group(2)}
    return None


def _from_csv(text: str) -> dict[str, Any] | None:
    """A decisions CSV pins the chain up to its newest decision: that decision's entry (seq, hash)."""
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error:
        return None
    best = None
    for r in rows:
        seq, digest = (r.get("audit_seq") or "").strip(), (r.get("audit_entry_hash") or "").strip()
        if seq.isdigit() and len(digest) == 64 and (best is None or int(seq) > best[0]):
            best = (int(seq), digest)
    if best is None:
        return None
    return {"kind": "export (CSV: newest decision's entry)", "signed": False, "seq": best[0], "hash": best[1]}


def check_anchor(conn: sqlite3.Connection, anchor: dict[str, Any], public_key_hex: str | None = None
                 ) -> dict[str, Any]:
    """The case against an anchor: ``{ok, problems, ...}``. ``public_key_hex`` pins the key the
    checkpoint must be signed with (else the key must be one the case's trail recorded)."""
    problems: list[str] = []
    seq, digest = anchor["seq"], anchor["hash"]
    head_seq, _ = audit.head(conn)
    out: dict[str, Any] = {"file": anchor.get("file"), "kind": anchor["kind"], "signed": anchor["signed"],
                           "anchor_seq": seq, "anchor_hash": digest, "chain_head_seq": head_seq}
    if seq > 0:
        row = conn.execute("SELECT entry_hash FROM audit WHERE seq = ?", (seq,)).fetchone()
        if head_seq < seq:
            problems.append(f"the chain is shorter than the anchor: it ends at entry {head_seq}, the anchor pins "
                            f"entry {seq} (entries were deleted from its end)")
        elif row is None:
            problems.append(f"entry {seq}, pinned by the anchor, is missing from the chain")
        elif row[0] != digest:
            problems.append(f"entry {seq} has hash {row[0]}, the anchor says {digest} (the chain was changed and "
                            "re-hashed)")
    elif digest != audit.GENESIS_HASH:
        problems.append("the anchor pins an empty chain with a hash other than the genesis hash")
    if anchor["signed"]:
        problems += _check_signature(conn, anchor, public_key_hex, out)
    else:
        out["note"] = UNSIGNED_NOTE
    out["ok"] = not problems
    out["problems"] = problems
    return out


def _check_signature(conn: sqlite3.Connection, anchor: dict[str, Any], public_key_hex: str | None,
                     out: dict[str, Any]) -> list[str]:
    from cryptography.exceptions import InvalidSignature  # lazy: heavy
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # lazy: heavy

    doc = anchor["doc"]
    problems = []
    try:
        public_raw = bytes.fromhex(doc.get("public_key") or "")
        key = Ed25519PublicKey.from_public_bytes(public_raw)
        key.verify(bytes.fromhex(doc.get("signature") or ""), _canonical(doc.get("head")))
        out["signature"] = "valid"
    except (ValueError, TypeError, InvalidSignature):  # TypeError: a key or signature that is not a string
        out["signature"] = "INVALID"
        return ["the checkpoint's signature does not verify: its head or its key was changed, or it was forged"]
    fp = fingerprint(public_raw)
    out["fingerprint"] = fp
    if public_key_hex is not None:
        out["key_source"] = "given (--public-key)"
        if public_key_hex.strip().lower() != public_raw.hex():
            problems.append("the checkpoint is signed with another key than the one given by --public-key")
    else:
        out["key_source"] = "recorded in the case's audit trail"
        recorded = set()
        for (detail,) in conn.execute("SELECT detail FROM audit WHERE action = ? AND seq <= ?",
                                      (CHECKPOINT_ACTION, anchor["seq"])):
            try:
                recorded.add(json.loads(detail).get("fingerprint"))
            except (ValueError, AttributeError):
                continue
        if fp not in recorded:
            problems.append(f"the checkpoint's key ({fp[:16]}...) is not recorded in this case's audit trail "
                            "up to the anchored entry")
    case_id = anchor.get("case_id")
    if case_id is not None and chain_id(conn) is not None and case_id != chain_id(conn):
        problems.append("the checkpoint belongs to another case (its case_id is not this trail's first entry)")
    return problems
