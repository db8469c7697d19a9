"""Content digests ("sha256:<64 hex>", "sha512:<128 hex>"): parsing, validation and hashing."""

from __future__ import annotations

import hashlib

ALGORITHMS = {"sha256": 64, "sha512": 128}


class InvalidDigest(ValueError):
    """A string that is not a digest this store accepts; the message says why."""


def validate(digest: str) -> str:
    """Return digest unchanged if it is a well-formed sha256/sha512 digest, else raise InvalidDigest."""
    if not isinstance(digest, str):
        raise InvalidDigest(f"invalid digest {digest!r}: not a string")
    algo, sep, hexpart = digest.partition(":")
    if not sep:
        raise InvalidDigest(f"invalid digest {digest!r}: missing algorithm prefix (e.g. sha256:)")
    length = ALGORITHMS.get(algo)
    if length is None:
        raise InvalidDigest(f"invalid digest {digest!r}: unsupported algorithm {algo!r}")
    if len(hexpart) != length or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidDigest(f"invalid digest {digest!r}: expected {length} lowercase hex characters")
    return digest


def split(digest: str) -> tuple[str, str]:
    """('sha256', hex) of a validated digest."""
    algo, _, hexpart = validate(digest).partition(":")
    return algo, hexpart


def hasher(algorithm: str = "sha256") -> hashlib._Hash:
    """A new hash object for an accepted algorithm."""
    if algorithm not in ALGORITHMS:
        raise InvalidDigest(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)


def of_bytes(data: bytes, algorithm: str = "sha256") -> str:
    """Digest of a byte string."""
    h = hasher(algorithm)
    h.update(data)
    return f"{algorithm}:{h.hexdigest()}"


def short_id(digest: str) -> str:
    """Docker's 12-character short id of a sha256 digest."""
    return split(digest)[1][:12]
