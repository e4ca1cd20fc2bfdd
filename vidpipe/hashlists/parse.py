"""Reading known-hash list files: CSV (``list,category,md5,sha1,sha256,pdq``) and Project VIC JSON.

Parsing streams rows and yields each one as a value: a ``ListEntry`` or a ``BadRow`` that says
where and why. A malformed row never stops an import; a file that is not a hash list at all
(no hash column, not a VIC document) is a usage error. Categories are kept as the list gives
them (a code or a string); vidpipe never decides what a category code means.
"""

from __future__ import annotations

import csv
import json
import string
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from vidpipe.errors import UsageError

# Hex digits per hash: MD5 128 bits, SHA-1 160, SHA-256 256, PDQ 256 (Meta's PDQ hash, hex form).
HEX_LENGTHS: dict[str, int] = {"md5": 32, "sha1": 40, "sha256": 64, "pdq": 64}
HASH_KINDS: tuple[str, ...] = tuple(HEX_LENGTHS)
CSV_COLUMNS = ("list", "category", *HASH_KINDS)

class ListEntry(NamedTuple):
    """One known item: the list it belongs to, its category as given, and its (lower-case hex) hashes.

    A named tuple rather than a dataclass: lists hold millions of rows, and this is ~3x cheaper to build.
    """

    list_name: str
    category: str | None
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    pdq: str | None = None


class BadRow(NamedTuple):
    """A row that was not imported: where it is (``line 7`` or ``value[0].Media[3]``) and why."""

    where: str
    reason: str   # bad_md5 | bad_sha1 | bad_sha256 | bad_pdq | no_hash | column_count | not_a_record


Row = ListEntry | BadRow


def detect_format(path: Path) -> str:
    """``json`` or ``csv``, by extension, else by the first non-blank character of the file."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "json" if head[:1] in (b"{", b"[") else "csv"


def iter_rows(path: Path, default_name: str) -> Iterator[Row]:
    """Every row of a list file; ``default_name`` names the list where the file does not.

    Not lazy about the file's shape: a file that is no hash list raises UsageError here, before
    the caller has touched a case; malformed rows come later, as BadRow values.
    """
    if detect_format(path) == "json":
        return iter_vic_json(path, default_name)
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
        _csv_header(csv.reader(fh), path)
    return iter_csv(path, default_name)


def normalise_category(value: Any) -> str | None:
    """The category exactly as given, as text (VIC gives integers); empty means none."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def make_entry(list_name: str, category: Any, hashes: Sequence[Any], where: str) -> Row:
    """Validate one record's hashes (given in HASH_KINDS order; None or blank when absent).

    Hashes must be strings of exactly the right number of hex digits. Any malformed hash rejects
    the whole row (a damaged row must not match on its remaining cells); so does a row with none.
    """
    clean: list[str | None] = []
    for (kind, length), value in zip(HEX_LENGTHS.items(), hashes):
        if value is None:
            clean.append(None)
            continue
        if not isinstance(value, str):
            return BadRow(where, f"bad_{kind}")
        text = value.strip()
        if not text:
            clean.append(None)
        elif len(text) != length or text.strip(string.hexdigits):   # strip leaves whatever is not hex
            return BadRow(where, f"bad_{kind}")
        else:
            clean.append(text.lower())
    if not any(clean):
        return BadRow(where, "no_hash")
    return ListEntry(list_name, normalise_category(category), *clean)


def iter_csv(path: Path, default_name: str) -> Iterator[Row]:
    """Rows of a CSV list. Column names are case-insensitive and may come in any order; the
    ``list`` column names each row's list (empty or absent: ``default_name``)."""
    # errors="replace": odd bytes make a hash cell invalid (counted) instead of aborting the import.
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        header = _csv_header(reader, path)
        columns = {name: i for i, name in enumerate(header) if name in CSV_COLUMNS}
        list_i, category_i = columns.get("list"), columns.get("category")
        hash_i = [columns.get(kind) for kind in HASH_KINDS]
        try:
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                where = f"line {reader.line_num}"
                if len(row) != len(header):
                    yield BadRow(where, "column_count")
                    continue
                name = (row[list_i].strip() if list_i is not None else "") or default_name
                yield make_entry(name, row[category_i] if category_i is not None else None,
                                 [row[i] if i is not None else None for i in hash_i], where)
        except csv.Error as exc:
            raise UsageError(f"{path}: unreadable CSV at line {reader.line_num}: {exc}") from None


def _csv_header(reader: Any, path: Path) -> list[str]:
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                header = [cell.strip().lower() for cell in row]
                if not set(header) & set(HASH_KINDS):
                    raise UsageError(f"{path}: CSV header has no hash column (expected {','.join(CSV_COLUMNS)})")
                return header
    except csv.Error as exc:
        raise UsageError(f"{path}: unreadable CSV header: {exc}") from None
    raise UsageError(f"{path}: empty hash list")


def iter_vic_json(path: Path, default_name: str) -> Iterator[Row]:
    """Media records of a Project VIC JSON document: ``{"value": [{"Media": [...]}, ...]}`` or
    ``{"value": [media, ...]}`` (also a bare list of media). Keys are case-insensitive.
    Reads the document now (raising UsageError when it is none) and yields its records lazily."""
    return _vic_rows(_vic_values(path), default_name)


def _vic_values(path: Path) -> list[Any]:
    try:
        with path.open("r", encoding="utf-8-sig") as fh:
            doc = json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a JSON document: {exc}") from None
    if isinstance(doc, dict):
        keys = _lower_keys(doc)
        values = keys.get("value", keys.get("media"))
    else:
        values = doc
    if not isinstance(values, list):
        raise UsageError(f"{path}: not a Project VIC document (no \"value\" list)")
    return values


def _vic_rows(values: list[Any], default_name: str) -> Iterator[Row]:
    for i, element in enumerate(values):
        media = _lower_keys(element).get("media") if isinstance(element, dict) else None
        if isinstance(media, list):
            for j, record in enumerate(media):
                yield _vic_record(record, default_name, f"value[{i}].Media[{j}]")
        else:
            yield _vic_record(element, default_name, f"value[{i}]")


def _vic_record(record: Any, list_name: str, where: str) -> Row:
    if not isinstance(record, dict):
        return BadRow(where, "not_a_record")
    keys = _lower_keys(record)
    return make_entry(list_name, keys.get("category"), [keys.get(kind) for kind in HASH_KINDS], where)


def _lower_keys(d: dict[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in d.items()}


def read_category_map(path: Path) -> dict[str, str]:
    """``code,label`` rows (an optional ``code,label`` header) into {code: label}, as given."""
    out: dict[str, str] = {}
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
        for n, row in enumerate(csv.reader(fh)):
            if not row or not row[0].strip():
                continue
            if len(row) < 2:
                raise UsageError(f"{path}: line {n + 1}: expected code,label")
            code, label = row[0].strip(), row[1].strip()
            if n == 0 and (code.lower(), label.lower()) == ("code", "label"):
                continue
            out[code] = label
    return out
