"""EXIF extraction: exif-py's corpus against its own expected dump, RAW/CR3 containers, hostile input."""

from __future__ import annotations

import csv
import io
import os
import struct
import time
from pathlib import Path

import pytest
from PIL import Image

import vidpipe.extract.exif as exif_mod
from vidpipe.extract.exif import ExifRecord, read_exif
from vidpipe.extract.isobmff import CANON_CR3_UUID
from vidpipe.filetype import sniff

PROMPT_S = 5.0  # brief: hostile input must come back in under 5 s


def _read(path: Path) -> ExifRecord:
    with open(path, "rb") as fh:
        label = sniff(fh.read(4096)).label
    return read_exif(path, label)


def _rows(eval_data: Path) -> list[dict[str, str]]:
    with open(eval_data / "exif" / "expected_from_exifread_dump.csv", newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if (eval_data / "exif" / r["file"]).is_file()]


# ---- synthetic TIFF/EXIF builder ------------------------------------------------------------

def _entry(tag: int, kind: int, value) -> tuple[int, int, int, bytes]:
    """(tag, type, count, payload) in little-endian; value is str, int list or (num, den) list."""
    if kind == 2:
        raw = value.encode("latin-1") + b"\x00"
        return tag, kind, len(raw), raw
    if kind in (5, 10):
        return tag, kind, len(value), b"".join(struct.pack("<II", n, d) for n, d in value)
    fmt = {1: "B", 3: "H", 4: "I", 7: "B"}[kind]
    return tag, kind, len(value), struct.pack("<" + fmt * len(value), *value)


def tiff(ifd0: list, exif: list | None = None, gps: list | None = None) -> bytes:
    """A little-endian TIFF stream with IFD0 and optional EXIF and GPS sub-IFDs."""
    ifds = [list(ifd0), list(exif or []), list(gps or [])]
    if exif is not None:
        ifds[0].append((0x8769, 4, 1, b"\x00" * 4))
    if gps is not None:
        ifds[0].append((0x8825, 4, 1, b"\x00" * 4))
    offsets, pos = [], 8
    for entries in ifds:
        offsets.append(pos)
        pos += 2 + 12 * len(entries) + 4 if entries else 0
    data_start, out, data = pos, bytearray(b"II*\x00" + struct.pack("<I", 8)), bytearray()
    for entries in ifds:
        if not entries:
            continue
        out += struct.pack("<H", len(entries))
        for tag, kind, count, payload in sorted(entries):
            if tag == 0x8769:
                payload = struct.pack("<I", offsets[1])
            elif tag == 0x8825:
                payload = struct.pack("<I", offsets[2])
            if len(payload) <= 4:
                out += struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\x00")
            else:
                out += struct.pack("<HHII", tag, kind, count, data_start + len(data))
                data += payload + b"\x00" * (len(payload) & 1)
        out += b"\x00\x00\x00\x00"
    return bytes(out + data)


def jpeg_with(tiff_bytes: bytes) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "gray").save(buf, "JPEG", exif=b"Exif\x00\x00" + tiff_bytes)
    return buf.getvalue()


MAKE = [_entry(0x010F, 2, "Canon  "), _entry(0x0110, 2, "Canon EOS R5\x00\x00")]
GPS_PARIS = [_entry(1, 2, "N"), _entry(2, 5, [(48, 1), (51, 1), (2964, 100)]),
             _entry(3, 2, "W"), _entry(4, 5, [(2, 1), (17, 1), (4020, 100)]),
             _entry(5, 1, [1]), _entry(6, 5, [(35, 1)])]


# ---- (1)-(2) exif-py's corpus against its dump ------------------------------------------------

def test_exifpy_corpus_matches_expected_dump(eval_data: Path) -> None:
    rows = _rows(eval_data)
    assert len(rows) >= 100, "expected exif-py's ~110 present files"
    failures, started = [], time.perf_counter()
    for row in rows:
        rec = _read(eval_data / "exif" / row["file"])
        want_make = row["Make"].strip() or None
        if rec.make != want_make:
            failures.append(f"{row['file']}: make {rec.make!r} != {want_make!r}")
        if row["status"] == "no_exif" and (rec.make is not None or rec.gps is not None):
            failures.append(f"{row['file']}: no_exif but got {rec.make!r} {rec.gps!r}")
        if row["gps_lat_deg"]:
            got = rec.gps or {}
            if abs(got.get("lat", 1e9) - float(row["gps_lat_deg"])) > 1e-6 or \
                    abs(got.get("lon", 1e9) - float(row["gps_lon_deg"])) > 1e-6:
                failures.append(f"{row['file']}: gps {rec.gps} != {row['gps_lat_deg']},{row['gps_lon_deg']}")
        elif rec.gps is not None:
            failures.append(f"{row['file']}: unexpected gps {rec.gps}")
        if (row["DateTimeOriginal"].strip() or None) != rec.datetime_original:
            failures.append(f"{row['file']}: datetime {rec.datetime_original!r} != {row['DateTimeOriginal']!r}")
    elapsed = time.perf_counter() - started
    assert not failures, f"{len(failures)}/{len(rows)} rows differ:\n" + "\n".join(failures)
    assert elapsed / len(rows) < 0.5, f"{elapsed / len(rows) * 1000:.0f} ms per file"


def test_serial_numbers_from_dump(eval_data: Path) -> None:
    rows = [r for r in _rows(eval_data) if r["serial_number_tags"]]
    assert len(rows) >= 3
    priority = ("EXIF BodySerialNumber", "MakerNote SerialNumber", "MakerNote InternalSerialNumber")
    for row in rows:
        expected = dict(pair.split("=", 1) for pair in row["serial_number_tags"].split(";"))
        rec = _read(eval_data / "exif" / row["file"])
        body = next((expected[k] for k in priority if k in expected), None)
        assert rec.serial == body, row["file"]
        if "EXIF LensSerialNumber" in expected:
            assert rec.lens_serial == expected["EXIF LensSerialNumber"], row["file"]


def test_known_values_of_two_samples(eval_data: Path) -> None:
    kodak = _read(eval_data / "exif/exifpy/jpg/Kodak_CX7530.jpg")
    assert kodak.gps is not None and kodak.gps["lat"] < 0  # southern hemisphere, Ref "S"
    dng = _read(eval_data / "exif/exifpy/raw/nikon_z_9_high_efficiency_compressed_dx_cropped_max_overexposed.dng")
    assert (dng.make, dng.serial, dng.offset_time) == ("NIKON CORPORATION", "3020326", "+03:00")
    contract = dng.to_contract()
    assert set(contract) >= {"make", "model", "serial", "datetime_original", "offset_time", "gps"}


# ---- (3) RAW containers -----------------------------------------------------------------------

def test_exiftool_raw_samples_have_make_and_model(eval_data: Path) -> None:
    folder = eval_data / "exif" / "exiftool_t" / "images"
    files = [p for p in sorted(folder.glob("*")) if p.suffix.lower() in {".cr3", ".nef", ".cr2", ".dng", ".raf",
                                                                         ".rw2", ".orf", ".arw"}]
    if not files:
        pytest.skip("exiftool_t/images not in this snapshot of the evaluation data")
    for path in files:
        rec = _read(path)
        assert rec.make and rec.model, f"{path.name}: {rec}"


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def test_cr3_cmt_boxes() -> None:
    exif_ifd = [_entry(0x9003, 2, "2021:05:06 07:08:09"), _entry(0x9011, 2, "+02:00")]
    maker = [_entry(0x000C, 4, [123456789])]  # Canon MakerNote SerialNumber
    cmt = {b"CMT1": tiff(MAKE), b"CMT2": tiff(exif_ifd), b"CMT3": tiff(maker), b"CMT4": tiff(GPS_PARIS)}
    uuid = _box(b"uuid", CANON_CR3_UUID + _box(b"CNCV", b"CanonCR3_001/00.09.00/00.00.00")
                + b"".join(_box(k, v) for k, v in cmt.items()))
    data = _box(b"ftyp", b"crx \x00\x00\x00\x01crx isom") + _box(b"moov", uuid) + _box(b"mdat", b"\x00" * 64)
    rec = read_exif(data, sniff(data).label)
    assert sniff(data).label == "CR3"
    assert (rec.make, rec.model, rec.serial) == ("Canon", "Canon EOS R5", "123456789")
    assert (rec.datetime_original, rec.offset_time) == ("2021:05:06 07:08:09", "+02:00")
    assert rec.gps == pytest.approx({"lat": 48.8582333, "lon": -2.2945, "alt": -35.0}, abs=1e-6)


def test_raf_orf_rw2_containers() -> None:
    jpeg = jpeg_with(tiff([_entry(0x010F, 2, "FUJIFILM"), _entry(0x0110, 2, "X-T4")]))
    raf = b"FUJIFILMCCD-RAW 0201FF383501".ljust(84, b"\x00") + struct.pack(">II", 100, len(jpeg))
    raf = raf.ljust(100, b"\x00") + jpeg
    assert (read_exif(raf, "RAF").make, read_exif(raf, "RAF").model) == ("FUJIFILM", "X-T4")
    base = tiff(MAKE)
    for magic, label in ((b"IIRO", "ORF"), (b"IIU\x00", "RW2")):
        assert sniff(magic + base[4:]).label == label
        assert read_exif(magic + base[4:], label).make == "Canon"


def test_png_webp_heif_containers() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    raw = tiff(MAKE, gps=GPS_PARIS)
    for fmt in ("PNG", "WEBP", "HEIF", "AVIF", "TIFF"):
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), "red").save(buf, fmt, exif=b"Exif\x00\x00" + raw)
        data = buf.getvalue()
        rec = read_exif(data, sniff(data).label)
        assert rec.make == "Canon" and rec.gps is not None, (fmt, rec)
        if fmt in ("HEIF", "AVIF"):  # brands exifread does not know: our ISO-BMFF walker finds the item
            other = data[:8] + (b"heix" if fmt == "HEIF" else b"avis") + data[12:]
            assert read_exif(other, sniff(other).label).make == "Canon", fmt


# ---- normalisation rules -------------------------------------------------------------------

def test_gps_rules() -> None:
    def gps(entries: list) -> ExifRecord:
        return read_exif(jpeg_with(tiff(MAKE, gps=entries)), "JPEG")

    rec = gps(GPS_PARIS)
    assert rec.gps == pytest.approx({"lat": 48.8582333, "lon": -2.2945, "alt": -35.0}, abs=1e-6)
    null = gps([_entry(1, 2, "N"), _entry(2, 5, [(0, 1)] * 3), _entry(3, 2, "E"), _entry(4, 5, [(0, 1)] * 3)])
    assert null.gps == {"lat": 0.0, "lon": 0.0, "alt": None} and "gps_null_island" in null.warnings
    zero_den = gps([_entry(1, 2, "N"), _entry(2, 5, [(40, 1), (30, 0), (0, 1)]), _entry(3, 2, "E"),
                    _entry(4, 5, [(3, 1), (0, 1), (0, 1)])])
    assert zero_den.gps is None and any(w.startswith("gps_invalid") for w in zero_den.warnings)
    too_far = gps([_entry(1, 2, "N"), _entry(2, 5, [(91, 1), (0, 1), (0, 1)]), _entry(3, 2, "E"),
                   _entry(4, 5, [(3, 1), (0, 1), (0, 1)])])
    assert too_far.gps is None and too_far.warnings
    no_ref = gps([_entry(2, 5, [(40, 1), (0, 1), (0, 1)]), _entry(4, 5, [(3, 1), (0, 1), (0, 1)])])
    assert no_ref.gps is None and no_ref.warnings  # hemisphere unknown: never guessed
    assert rec.make == "Canon" and rec.model == "Canon EOS R5"  # trailing spaces and NULs stripped


def test_blank_and_out_of_range_values_become_none() -> None:
    entries = [*MAKE, _entry(0x0112, 3, [9]), _entry(0x0131, 2, "   ")]
    rec = read_exif(jpeg_with(tiff(entries, exif=[_entry(0x9003, 2, "0000:00:00 00:00:00")])), "JPEG")
    assert rec.orientation is None and rec.software is None and rec.datetime_original is None
    assert any(w.startswith("orientation_invalid") for w in rec.warnings)


# ---- (4) hostile input ----------------------------------------------------------------------

def _prompt(data: bytes, label: str = "JPEG") -> ExifRecord:
    started = time.perf_counter()
    rec = read_exif(data, label)
    assert time.perf_counter() - started < PROMPT_S
    return rec


def test_ifd_cycles() -> None:
    raw = bytearray(tiff(MAKE, exif=[_entry(0x9003, 2, "2020:01:01 00:00:00")]))
    exif_at = struct.unpack("<I", raw[8 + 2 + 12 * 2 + 8:8 + 2 + 12 * 2 + 12])[0]
    ifd0_next = 8 + 2 + 12 * 3
    raw[ifd0_next:ifd0_next + 4] = struct.pack("<I", exif_at)  # IFD0 -> EXIF IFD -> IFD0 -> ...
    exif_next = exif_at + 2 + 12
    raw[exif_next:exif_next + 4] = struct.pack("<I", 8)
    rec = _prompt(bytes(raw), "TIFF")
    assert rec.make == "Canon" and any("loop" in w for w in rec.warnings)
    self_ref = bytearray(tiff(MAKE, exif=[]))  # ExifOffset pointing back at IFD0 itself
    self_ref[8 + 2 + 12 * 2 + 8:8 + 2 + 12 * 2 + 12] = struct.pack("<I", 8)
    assert _prompt(bytes(self_ref), "TIFF").make == "Canon"


def test_absurd_counts() -> None:
    maker = tiff(MAKE, exif=[(0x927C, 7, 0x7FFFFFFF, struct.pack("<I", 8))])  # MakerNote, 2 GiB
    rec = _prompt(jpeg_with(maker))
    assert rec.make == "Canon" and "exif_makernote_skipped" in rec.warnings
    ascii_huge = tiff([(0x010F, 2, 0x7FFFFFFF, struct.pack("<I", 8)), MAKE[1]])
    assert _prompt(ascii_huge, "TIFF").model == "Canon EOS R5"
    entries = bytearray(tiff(MAKE))
    entries[8:10] = b"\xff\xff"  # IFD0 claims 65535 entries in a tiny file
    assert isinstance(_prompt(bytes(entries), "TIFF"), ExifRecord)


def test_truncated_and_garbage() -> None:
    data = jpeg_with(tiff(MAKE, exif=[_entry(0x9003, 2, "2020:01:01 00:00:00")], gps=GPS_PARIS))
    app1 = data.index(b"Exif\x00\x00")
    segment_end = app1 - 2 + struct.unpack(">H", data[app1 - 2:app1])[0]
    for cut in range(app1 + 6, segment_end):  # every cut inside the TIFF stream is reported
        rec = _prompt(data[:cut])
        assert rec.warnings, cut - app1
        assert rec.datetime_original in (None, "2020:01:01 00:00:00")  # never a truncated stamp
        assert rec.gps is None or rec.gps["lat"] == pytest.approx(48.8582333, abs=1e-6)
    assert _prompt(data[:segment_end]).warnings == []  # whole segment, image data cut: EXIF intact
    for junk in (b"", b"\xff\xd8\xff", b"II*\x00\xff\xff\xff\xff", os.urandom(4096), b"RIFF\x00\x00\x00\x00WEBP"):
        for label in ("JPEG", "TIFF", "WEBP", "HEIC", "CR3", "RAF", "PNG"):
            assert isinstance(_prompt(junk, label), ExifRecord)
    assert read_exif("/nonexistent/x.jpg", "JPEG").warnings[0].startswith("exif_unreadable")


def test_timeout_returns_empty_record(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*args, **kwargs):
        time.sleep(30)

    monkeypatch.setattr(exif_mod.exifread, "process_file", slow)
    started = time.perf_counter()
    rec = read_exif(jpeg_with(tiff(MAKE)), "JPEG", timeout_s=0.3)
    assert time.perf_counter() - started < 2
    assert rec.make is None and rec.warnings == ["exif_timeout"]


# ---- (5) exif-py's broken samples -----------------------------------------------------------

def test_broken_exifpy_samples_never_raise(eval_data: Path) -> None:
    jpg = eval_data / "exif" / "exifpy" / "jpg"
    files = [jpg / "corrupted.jpg", *sorted((jpg / "invalid").glob("*")), *sorted((jpg / "tests").glob("*"))]
    assert len(files) >= 15
    for path in files:
        started = time.perf_counter()
        rec = _read(path)
        assert time.perf_counter() - started < PROMPT_S, path.name
        assert isinstance(rec.warnings, list)
    assert _read(jpg / "corrupted.jpg").make == "OLYMPUS IMAGING CORP."
    assert all(_read(p).make is None for p in sorted((jpg / "invalid").glob("*")))


def test_mutated_files_never_raise() -> None:
    """Seeded byte mutations of every synthetic container: no exception, bounded time, a record."""
    import random

    cmt = {b"CMT1": tiff(MAKE), b"CMT3": tiff([_entry(0x000C, 4, [7])]), b"CMT4": tiff(GPS_PARIS)}
    cr3 = _box(b"ftyp", b"crx \x00\x00\x00\x01") + _box(b"moov", _box(b"uuid", CANON_CR3_UUID + b"".join(
        _box(k, v) for k, v in cmt.items())))
    seeds = [jpeg_with(tiff(MAKE, exif=[_entry(0x9003, 2, "2020:01:01 00:00:00")], gps=GPS_PARIS)),
             tiff(MAKE, gps=GPS_PARIS), cr3]
    for fmt in ("WEBP", "PNG", "AVIF"):
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, fmt, exif=b"Exif\x00\x00" + tiff(MAKE))
        seeds.append(buf.getvalue())
    rng = random.Random(20240601)
    for _ in range(400):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i:i + 4] = rng.choice([bytes([rng.randrange(256)]), b"\xff\xff\xff\x7f", b"\x00\x00\x00\x00",
                                        struct.pack("<I", rng.randrange(1 << 32))])
        rec = _prompt(bytes(data), sniff(bytes(data)).label)
        assert rec.gps is None or (abs(rec.gps["lat"]) <= 90 and abs(rec.gps["lon"]) <= 180)


def test_contract_dict_and_worker_thread() -> None:
    import threading

    data = jpeg_with(tiff(MAKE, gps=GPS_PARIS))
    results: list[ExifRecord] = []
    worker = threading.Thread(target=lambda: results.append(read_exif(data, "JPEG")))  # no SIGALRM there
    worker.start()
    worker.join(PROMPT_S)
    assert results and results[0].make == "Canon"
    contract = results[0].to_contract()
    assert set(contract) == {"make", "model", "serial", "datetime_original", "offset_time", "gps",
                             "lens", "software", "orientation"}
    assert contract["gps"]["alt"] == -35.0 and contract["serial"] is None
