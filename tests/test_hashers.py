"""Perceptual hashers: the shared plug-in suite, and agreement with published reference values."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidpipe import filetype
from vidpipe.decode.image import decode_image
from vidpipe.extract.hashers import HASHERS, PDQ_MATCH_DISTANCE, Hasher, PDQHasher, get_hasher


def pipeline_hash(path: Path, name: str):
    """Hash a file exactly as ingest does: sniff, safe decode (reduced for hashing), hash."""
    data = path.read_bytes()
    decoded = decode_image(data, filetype.sniff(data[:4096]).label)
    return get_hasher(name).compute(decoded.rgb)


def _checkerboard(size: int = 256, cells: int = 8, shift: int = 0) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size]
    board = (((x + shift) // (size // cells) + y // (size // cells)) % 2 * 255).astype(np.uint8)
    return Image.fromarray(np.stack([board, board // 2, 255 - board], axis=-1))


def _smooth_scene(size: int = 256, seed: int = 7) -> Image.Image:
    """A smooth random colour field: structure at every scale, like a photo, unlike noise."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    return coarse.resize((size, size), Image.Resampling.BICUBIC)


@pytest.mark.parametrize("name", sorted(HASHERS))
class TestEveryHasher:
    """One suite that every registered hasher must pass."""

    def test_hex_length_and_determinism(self, name: str) -> None:
        hasher = get_hasher(name)
        a, b = hasher.compute(_checkerboard()), hasher.compute(_checkerboard())
        assert a == b
        assert len(a.hex) == hasher.bits // 4
        int(a.hex, 16)

    def test_resized_copy_is_close_and_other_image_is_far(self, name: str) -> None:
        hasher = get_hasher(name)
        base = _smooth_scene(512)
        small = base.resize((256, 256), Image.Resampling.LANCZOS)
        near = Hasher.distance(hasher.compute(base).hex, hasher.compute(small).hex)
        far = Hasher.distance(hasher.compute(base).hex, hasher.compute(_checkerboard(512)).hex)
        assert near <= hasher.bits // 16
        assert far > hasher.bits // 8
        assert near < far


def _pdq_rows(eval_data: Path) -> list[dict]:
    with open(eval_data / "phash" / "pdq" / "expected_pdq_hashes.csv", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["file_present"] == "yes"]


def test_pdq_matches_python_threatexchange_bit_for_bit(eval_data: Path) -> None:
    rows = [r for r in _pdq_rows(eval_data) if r["implementation"].startswith("python-threatexchange")]
    assert len(rows) == 4
    for row in rows:
        value = pipeline_hash(eval_data / "phash" / row["file"], "pdq")
        assert value.hex == row["pdq_hex"], row["file"]
        if row["quality"]:
            assert value.quality == int(row["quality"]), row["file"]


def test_pdq_within_10_bits_of_meta_cpp_reference(eval_data: Path) -> None:
    rows = [r for r in _pdq_rows(eval_data) if r["implementation"].startswith("pdq-cpp")]
    assert rows, "no C++ reference vectors found"
    distances = []
    for row in rows:
        value = pipeline_hash(eval_data / "phash" / row["file"], "pdq")
        assert value.quality >= 80
        distances.append(PDQHasher.distance(value.hex, row["pdq_hex"]))
    assert max(distances) <= 10, distances


def test_pdq_close_to_every_other_reference_at_quality_80(eval_data: Path) -> None:
    # Meta: an implementation is correct within Hamming 10 of the reference for quality >= 80.
    # The python reference differs by up to 12 on two rotated bridges (decoder differences, see
    # shared/data/phash/SOURCE_MANIFEST.md); those stay far inside the match threshold.
    for row in _pdq_rows(eval_data):
        value = pipeline_hash(eval_data / "phash" / row["file"], "pdq")
        if value.quality < 80:
            continue
        d = PDQHasher.distance(value.hex, row["pdq_hex"])
        limit = 12 if row["implementation"].startswith("pdq-python") else 10
        assert d <= limit, (row["implementation"], row["file"], d)


def test_imagehash_reference_constants(eval_data: Path) -> None:
    path = eval_data / "phash" / "imagehash" / "imagehash.png"
    assert pipeline_hash(path, "phash").hex == "ba8c84536bd3c366"
    assert pipeline_hash(path, "dhash").hex == "0026273b2b19550e"


def test_bridge_edits_and_modes_stay_within_pdq_match_distance(eval_data: Path) -> None:
    root = eval_data / "phash" / "pdq"
    original = pipeline_hash(root / "bridge-mods" / "aaa-orig.jpg", "pdq").hex
    variants = sorted((root / "bridge-mods").glob("*.jpg")) + sorted(p for p in (root / "misc-images" / "modes").iterdir()
                                                          if p.suffix in (".jpg", ".png", ".webp"))
    assert len(variants) >= 20
    for path in variants:
        d = PDQHasher.distance(original, pipeline_hash(path, "pdq").hex)
        assert d <= PDQ_MATCH_DISTANCE, (path.name, d)


def test_dihedral_pdq_matches_rotations(eval_data: Path) -> None:
    root = eval_data / "phash" / "pdq" / "reg-test-input" / "dih"
    original = pipeline_hash(root / "bridge-1-original.jpg", "pdq").hex
    for path in sorted(root.glob("bridge-*.jpg")):
        data = path.read_bytes()
        variants = PDQHasher.dihedral(decode_image(data, "JPEG").rgb)
        assert min(PDQHasher.distance(original, v.hex) for v in variants) <= PDQ_MATCH_DISTANCE, path.name
    rotated = pipeline_hash(root / "bridge-2-rotate-90.jpg", "pdq").hex
    assert PDQHasher.distance(original, rotated) > PDQ_MATCH_DISTANCE  # plain PDQ is not rotation-invariant
