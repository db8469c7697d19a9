"""Container IDs and names: random 64-hex IDs, Docker's name grammar, `adjective_scientist` names."""

from __future__ import annotations

import re
import secrets

from dockyard.engine.containers.errors import InvalidParameter

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

# Our own word lists (describing moods and famous engineers and scientists).
ADJECTIVES = (
    "agile", "amber", "ample", "bold", "brave", "brisk", "calm", "candid", "cheery", "civil", "clever",
    "cosmic", "crisp", "daring", "dapper", "eager", "earnest", "epic", "fair", "fancy", "fearless", "festive",
    "fluent", "gentle", "glad", "golden", "grand", "hardy", "hearty", "humble", "jolly", "keen", "kind",
    "lively", "loyal", "lucid", "mellow", "merry", "mighty", "modest", "nimble", "noble", "patient",
    "placid", "plucky", "polite", "proud", "quick", "quiet", "radiant", "rapid", "ready", "serene",
    "sharp", "shiny", "silent", "sincere", "smooth", "snappy", "solid", "spry", "steady", "stoic", "sunny",
    "swift", "tender", "thrifty", "tidy", "upbeat", "vivid", "warm", "wise", "witty", "zealous", "zesty",
)
SURNAMES = (
    "abel", "agnesi", "ampere", "babbage", "banach", "bernoulli", "bohr", "boole", "cantor", "cauchy",
    "cerf", "clarke", "dijkstra", "dirac", "euclid", "euler", "faraday", "fermat", "feynman", "fourier",
    "franklin", "galois", "gauss", "germain", "goodall", "hamming", "hilbert", "hopper", "huffman",
    "hypatia", "jacobi", "joule", "kelvin", "kepler", "knuth", "kovalevskaya", "lagrange", "lamarr",
    "laplace", "leibniz", "liskov", "lovelace", "maxwell", "meitner", "mendel", "minsky", "napier",
    "neumann", "newton", "noether", "ohm", "pascal", "pauli", "planck", "poincare", "ramanujan", "ritchie",
    "riemann", "shannon", "somerville", "stallman", "tesla", "thompson", "torvalds", "turing", "volta",
    "wiles", "wirth", "wozniak", "yalow", "zuse",
)


def new_id() -> str:
    """A random 64-hex ID that is not all digits (short IDs must not look like numbers)."""
    while True:
        cid = secrets.token_hex(32)
        if not cid[:12].isdigit():
            return cid


def random_name(attempt: int = 0) -> str:
    """`adjective_surname`; after a few collisions a digit is appended, as Docker does."""
    name = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(SURNAMES)}"
    return f"{name}{secrets.randbelow(10)}" if attempt else name


def check_name(name: str) -> str:
    """Validate a user-given name; return it without the leading slash."""
    if not NAME_RE.match(name):
        raise InvalidParameter(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")
