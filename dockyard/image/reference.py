"""Image references ("name[:tag][@digest]") parsed and normalised exactly as docker does.

Grammar (distribution/reference):
    reference := name [ ":" tag ] [ "@" digest ]
    name      := [ domain "/" ] path-component [ "/" path-component ]*
    domain    := host [ ":" port ]           host: DNS name or "[IPv6]"
    tag       := [\\w][\\w.-]{0,127}
Docker's normalisation puts bare names under docker.io/library, reads "localhost", anything with a
"." or ":" and anything with an uppercase letter before the first "/" as a registry, and maps
index.docker.io to docker.io.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from dockyard.image import digest as digestmod

NAME_TOTAL_LENGTH_MAX = 255
DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_NAME_RE = re.compile(rf"(?:({_DOMAIN})/)?({_REMOTE_NAME})", re.ASCII)
_REFERENCE_RE = re.compile(rf"((?:{_DOMAIN}/)?{_REMOTE_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}", re.ASCII)
_PATH_RE = re.compile(_REMOTE_NAME, re.ASCII)


class InvalidReference(ValueError):
    """A string that is not a valid image reference; the message is docker's."""


@dataclass(frozen=True)
class Reference:
    """A parsed reference. `domain` is "" only for non-normalised parses; a digest-only reference
    (an image ID given to parse_any) has neither domain nor path."""

    domain: str = ""
    path: str = ""
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Repository name: domain/path (just path when there is no domain)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def is_name_only(self) -> bool:
        """True when the reference has neither tag nor digest."""
        return self.tag is None and self.digest is None

    def __str__(self) -> str:
        return _format(self.name, self.tag, self.digest)

    def familiar_name(self) -> str:
        """The repository name as docker prints it: docker.io/ and library/ dropped."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        remainder = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
        if remainder != self.path and "/" not in remainder:
            return remainder
        return self.path

    def familiar(self) -> str:
        """The short form docker prints, e.g. "busybox:latest" or "localhost:5000/a/b:t"."""
        return _format(self.familiar_name(), self.tag, self.digest)

    def with_tag(self, tag: str) -> Reference:
        """This reference with `tag` set (a digest is kept)."""
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReference("invalid tag format")
        return replace(self, tag=tag)

    def with_digest(self, digest: str) -> Reference:
        """This reference with `digest` set (a tag is kept)."""
        try:
            digestmod.validate(digest)
        except digestmod.InvalidDigest:
            raise InvalidReference("invalid digest format") from None
        return replace(self, digest=digest)

    def trim(self) -> Reference:
        """The repository alone, without tag or digest."""
        return Reference(self.domain, self.path)


def _format(name: str, tag: str | None, digest: str | None) -> str:
    out = name
    if tag is not None:
        out += ":" + tag
    if digest is not None:
        out = f"{out}@{digest}" if out else digest
    return out


def _check_digest(value: str) -> str:
    """Validate a digest from a reference with go-digest's error texts."""
    algorithm, _, hexpart = value.partition(":")
    length = digestmod.ALGORITHMS.get(algorithm)
    if length is None:
        raise InvalidReference("unsupported digest algorithm")
    if len(hexpart) != length:
        raise InvalidReference("invalid checksum digest length")
    try:
        return digestmod.validate(value)
    except digestmod.InvalidDigest:
        raise InvalidReference("invalid checksum digest format") from None


def _split_name(name: str) -> tuple[str, str]:
    match = _NAME_RE.fullmatch(name)
    if match is None:
        return "", name
    return match.group(1) or "", match.group(2)


def parse(s: str) -> Reference:
    """Parse s by the grammar alone, without normalising (distribution's Parse)."""
    if s == "":
        raise InvalidReference("repository name must have at least one component")
    match = _REFERENCE_RE.fullmatch(s)
    if match is None:
        if s.lower() != s and _REFERENCE_RE.fullmatch(s.lower()):
            raise InvalidReference("repository name must be lowercase")
        raise InvalidReference("invalid reference format")
    domain, path = _split_name(match.group(1))
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    found_digest = match.group(3)
    return Reference(domain, path, match.group(2), _check_digest(found_digest) if found_digest else None)


def with_name(name: str) -> Reference:
    """A name-only reference from a repository name (no tag, no digest, no normalising)."""
    match = _NAME_RE.fullmatch(name)
    if match is None:
        raise InvalidReference("invalid reference format")
    if len(match.group(2)) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    return Reference(match.group(1) or "", match.group(2))


def is_repository_path(path: str) -> bool:
    """Whether path is a valid repository path as a registry sees it ("library/busybox")."""
    return len(path) <= NAME_TOTAL_LENGTH_MAX and _PATH_RE.fullmatch(path) is not None


def is_tag(tag: str) -> bool:
    """Whether tag is a valid tag."""
    return _TAG_RE.fullmatch(tag) is not None


def domain_and_remainder(name: str) -> tuple[str, str]:
    """Split a familiar name into (registry domain, remainder) the way docker does.

    The remainder keeps any tag or digest; bare Docker Hub names gain the "library/" prefix."""
    maybe_domain, sep, maybe_remainder = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, maybe_remainder
    elif (
        maybe_domain == "localhost"
        or "." in maybe_domain
        or ":" in maybe_domain
        or maybe_domain.lower() != maybe_domain
    ):
        domain, remainder = maybe_domain, maybe_remainder
    else:
        domain, remainder = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse_normalized(s: str) -> Reference:
    """Parse a name as the docker CLI and daemon do: busybox → docker.io/library/busybox."""
    if _IDENTIFIER_RE.fullmatch(s):
        raise InvalidReference(f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = domain_and_remainder(s)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise InvalidReference(f"invalid reference format: repository name ({remote}) must be lowercase")
    return parse(f"{domain}/{remainder}")


def parse_named(s: str) -> Reference:
    """Parse a reference that must already be in canonical form (docker.io/library/x)."""
    ref = parse_normalized(s)
    if str(ref) != s:
        raise InvalidReference("repository name must be canonical")
    return ref


def with_default_tag(ref: Reference) -> Reference:
    """Add the "latest" tag when the reference has neither tag nor digest."""
    return replace(ref, tag=DEFAULT_TAG) if ref.is_name_only else ref


def parse_docker_ref(s: str) -> Reference:
    """Normalise for pulling: default tag added, and a tag dropped when a digest is present."""
    ref = parse_normalized(s)
    if ref.tag is not None and ref.digest is not None:
        return replace(ref, tag=None)
    return with_default_tag(ref)


def parse_any(s: str) -> Reference:
    """Parse an image ID (64 hex), a bare digest, or a familiar name (ParseAnyReference)."""
    if _IDENTIFIER_RE.fullmatch(s):
        return Reference(digest="sha256:" + s)
    try:
        return Reference(digest=digestmod.validate(s))
    except digestmod.InvalidDigest:
        return parse_normalized(s)
