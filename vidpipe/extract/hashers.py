"""Perceptual hashers behind one plug-in contract (cf. thorn-oss/perception's Hasher and
python-threatexchange's SignalType): a name, a bit length, a distance, one ``compute``.

Every registered hasher passes the shared suite in tests/test_hashers.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image

# Meta's PDQ defaults (ThreatExchange pdq/README.md, hasher-matcher-actioner):
PDQ_MATCH_DISTANCE = 31   # a match is Hamming distance <= 31 of 256 bits
PDQ_MIN_QUALITY = 50      # hashes of quality < 50 are too featureless to match on
# Meta's reference loaders shrink images larger than 512 px before hashing, because the Jarosz
# filter's cost grows with the pixel count (pdq/cpp/io/pdqio.cpp: DOWNSAMPLE_DIMS = 512). We keep
# the aspect ratio and use an area filter; measured on shared/data/phash: <= 10 bits from the C++,
# Java, WASM and Python reference vectors, bit-exact with python-threatexchange, and 4 ms instead
# of 70 ms for a 1600x1004 image.
PDQ_DOWNSAMPLE_DIMS = 512


@dataclass(frozen=True)
class HashValue:
    """A hash as hex plus an optional quality score (PDQ: 0-100)."""

    signal: str
    hex: str
    quality: int | None = None

    @property
    def low_quality(self) -> bool:
        return self.signal == "pdq" and self.quality is not None and self.quality < PDQ_MIN_QUALITY


class Hasher(ABC):
    """A perceptual hash over an RGB image. Distance is Hamming over ``bits`` bits."""

    name: ClassVar[str]
    bits: ClassVar[int]
    version: ClassVar[str]

    @abstractmethod
    def compute(self, rgb: Image.Image) -> HashValue:
        """Hash an RGB PIL image."""

    @staticmethod
    def distance(a_hex: str, b_hex: str) -> int:
        """Hamming distance between two hex hashes of equal length."""
        return (int(a_hex, 16) ^ int(b_hex, 16)).bit_count()


# imagehash resizes the whole image to 32x32 (pHash) or 9x8 (dHash) with a Lanczos filter whose
# support grows with the reduction, ~10 ms for a 1000 px image. An integer box reduction to a
# short side of at least IMAGEHASH_PRESHRINK_MIN px first gives the same low frequencies for a
# fraction of the cost; images already that small hash exactly as imagehash alone does.
IMAGEHASH_PRESHRINK_MIN = 128


def _preshrink(img: Image.Image) -> Image.Image:
    factor = min(img.size) // IMAGEHASH_PRESHRINK_MIN
    return img.reduce(factor) if factor >= 2 else img


class PHasher(Hasher):
    """imagehash.phash, 64 bits (DCT of a 32x32 greyscale), after an integer pre-shrink."""

    name, bits, version = "phash", 64, "imagehash-phash-8-pre128"

    def compute(self, rgb: Image.Image) -> HashValue:
        import imagehash

        return HashValue(self.name, str(imagehash.phash(_preshrink(rgb), hash_size=8)))


class DHasher(Hasher):
    """imagehash.dhash, 64 bits (horizontal gradient of a 9x8 greyscale), after an integer pre-shrink."""

    name, bits, version = "dhash", 64, "imagehash-dhash-8-pre128"

    def compute(self, rgb: Image.Image) -> HashValue:
        import imagehash

        return HashValue(self.name, str(imagehash.dhash(_preshrink(rgb), hash_size=8)))


class PDQHasher(Hasher):
    """Meta's PDQ, 256 bits with a quality score, via the pdqhash C++ binding."""

    name, bits, version = "pdq", 256, "pdqhash-0.2"

    def compute(self, rgb: Image.Image) -> HashValue:
        vector, quality = _pdq(np.asarray(_downsample(rgb), dtype=np.uint8))
        return HashValue(self.name, bits_to_hex(vector), int(quality))

    @staticmethod
    def dihedral(rgb: Image.Image) -> list[HashValue]:
        """The 8 rotation/flip variants' hashes (PDQ's dihedral hashing), for matching rotated copies."""
        import pdqhash

        arr = np.ascontiguousarray(np.asarray(_downsample(rgb), dtype=np.uint8))
        vectors, quality = pdqhash.compute_dihedral(arr)
        return [HashValue("pdq", bits_to_hex(v), int(quality)) for v in vectors]


def _downsample(rgb: Image.Image) -> Image.Image:
    if max(rgb.size) <= PDQ_DOWNSAMPLE_DIMS:
        return rgb
    scale = PDQ_DOWNSAMPLE_DIMS / max(rgb.size)
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return rgb.resize(size, Image.Resampling.BOX)


def _pdq(arr: np.ndarray) -> tuple[np.ndarray, int]:
    import pdqhash

    return pdqhash.compute(np.ascontiguousarray(arr))


def bits_to_hex(vector: np.ndarray) -> str:
    """Bit vector (element 0 = most significant bit) to lower-case hex."""
    packed = np.packbits(np.asarray(vector, dtype=np.uint8).astype(bool))
    return packed.tobytes().hex()


HASHERS: dict[str, type[Hasher]] = {cls.name: cls for cls in (PHasher, DHasher, PDQHasher)}


def get_hasher(name: str) -> Hasher:
    """Instantiate a registered hasher by name."""
    try:
        return HASHERS[name]()
    except KeyError:
        raise KeyError(f"unknown hasher {name!r}; known: {sorted(HASHERS)}") from None
