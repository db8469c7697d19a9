"""Image names as the store keeps them: normalised tags ("docker.io/library/busybox:latest") and
repo digests ("docker.io/library/busybox@sha256:...")."""

from __future__ import annotations

from dockyard.image.reference import InvalidReference, Reference, parse_normalized, with_default_tag


def normalize_tag(name: str) -> Reference:
    """A name to tag with: normalised, "latest" added; digest references refused (as docker tag)."""
    ref = parse_normalized(name)
    if ref.digest is not None:
        raise InvalidReference("refusing to create a tag with a digest reference")
    return with_default_tag(ref)


def normalize_repo_digest(name: str) -> Reference:
    """"repository@digest" normalised (a tag in it is dropped)."""
    ref = parse_normalized(name)
    if ref.digest is None:
        raise InvalidReference(f"{name}: a repo digest needs @digest")
    return Reference(ref.domain, ref.path, None, ref.digest)


def stored_name(ref: Reference) -> Reference:
    """The name under which a parsed reference is stored: "latest" added to a bare name, the
    tag dropped when a digest is present (as Docker's reference store looks names up)."""
    if ref.digest is not None:
        return Reference(ref.domain, ref.path, None, ref.digest)
    return with_default_tag(ref)
