"""OCI / Docker image documents: descriptors, manifests, indexes, image configs and platforms.

Parsing is strict: every error names the offending field (`layers[1].digest: ...`)."""

from __future__ import annotations

import json
import platform as _host
from dataclasses import dataclass, field
from typing import Any

from dockyard.image import digest as digestmod
from dockyard.image import mediatypes as mt


class InvalidManifest(ValueError):
    """A manifest, index, descriptor or image config that does not follow the spec."""


class NoMatchingPlatform(LookupError):
    """No entry of an index fits the wanted platform."""


# ---- field checks ---------------------------------------------------------------------------

def _fail(where: str, problem: str) -> InvalidManifest:
    return InvalidManifest(f"{where}: {problem}" if where else problem)


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, "must be a JSON object")
    return value


def _str(doc: dict[str, Any], key: str, where: str, required: bool = False) -> str:
    value = doc.get(key)
    if value is None:
        if required:
            raise _fail(_join(where, key), "is required")
        return ""
    if not isinstance(value, str):
        raise _fail(_join(where, key), "must be a string")
    return value


def _str_list(doc: dict[str, Any], key: str, where: str) -> list[str] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(_join(where, key), "must be a list of strings")
    return value


def _str_map(doc: dict[str, Any], key: str, where: str) -> dict[str, str] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _fail(_join(where, key), "must be an object of strings")
    return value


def _set_map(doc: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    """Docker's "set" objects ({"80/tcp": {}}): keys matter, values must be objects."""
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise _fail(_join(where, key), "must be an object whose values are {}")
    return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _digest(doc: dict[str, Any], key: str, where: str) -> str:
    value = _str(doc, key, where, required=True)
    try:
        return digestmod.validate(value)
    except digestmod.InvalidDigest as err:
        raise _fail(_join(where, key), str(err)) from None


def _load(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise InvalidManifest(f"invalid {what}: not valid JSON: {err}") from None
    return _obj(doc, f"{what}")


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


# ---- platforms ------------------------------------------------------------------------------

_KNOWN_OS = frozenset({
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux", "nacl",
    "netbsd", "openbsd", "plan9", "solaris", "windows", "zos",
})
_KNOWN_ARCH = frozenset({
    "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le", "loong64", "mips",
    "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64", "s390", "s390x",
    "sparc", "sparc64", "wasm",
})


def normalize_arch(arch: str, variant: str = "") -> tuple[str, str]:
    """containerd's canonical (architecture, variant): x86_64 → amd64, aarch64 → arm64, arm → arm/v7."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


@dataclass(frozen=True)
class Platform:
    """An OCI platform; construct through `parse_platform`/`from_dict` to get the canonical form."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def normalized(self) -> Platform:
        """The canonical spelling used for comparisons."""
        os = self.os.lower()
        arch, variant = normalize_arch(self.architecture, self.variant)
        return Platform("darwin" if os == "macos" else os, arch, variant, self.os_version,
                        tuple(sorted(set(self.os_features))))

    @classmethod
    def from_dict(cls, doc: Any, where: str = "platform") -> Platform:
        """Read an OCI platform object (architecture and os required)."""
        doc = _obj(doc, where)
        features = _str_list(doc, "os.features", where) or []
        return cls(_str(doc, "os", where, required=True), _str(doc, "architecture", where, required=True),
                   _str(doc, "variant", where), _str(doc, "os.version", where), tuple(features))

    def to_dict(self) -> dict[str, Any]:
        """The OCI JSON form."""
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out


def host_platform() -> Platform:
    """The platform of this machine (linux/<arch>[/variant])."""
    return Platform("linux", _host.machine() or "amd64").normalized()


def parse_platform(spec: str) -> Platform:
    """Parse "os", "arch", "os/arch" or "os/arch/variant" as docker's --platform does (normalised)."""
    parts = spec.split("/")
    if "*" in spec or len(parts) > 3 or not all(parts) or any(not _is_component(p) for p in parts):
        raise ValueError(f"invalid platform {spec!r}: expected os[/arch[/variant]]")
    host = host_platform()
    if len(parts) == 1:
        os = parts[0].lower()
        if os in _KNOWN_OS or os == "macos":
            return Platform(os, host.architecture, host.variant).normalized()
        arch, variant = normalize_arch(parts[0])
        if arch not in _KNOWN_ARCH:
            raise ValueError(f"invalid platform {spec!r}: unknown operating system or architecture")
        return Platform(host.os, arch, variant).normalized()
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "").normalized()


def _is_component(part: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in "_.-") for c in part)


def compatible_platforms(wanted: Platform) -> list[Platform]:
    """Platforms that can run on `wanted`, best first (containerd's Only()): amd64 also runs 386,
    arm/vN runs arm/v(N-1)…v5, arm64/v8.x runs older v8 minors and arm/v8…v5."""
    wanted = wanted.normalized()
    out = [wanted]

    def same(arch: str, variant: str) -> Platform:
        return Platform(wanted.os, arch, variant, wanted.os_version, wanted.os_features)

    arch, variant = wanted.architecture, wanted.variant
    if arch == "amd64":
        level = _version(variant)
        out += [same("amd64", f"v{n}") for n in range(level - 1, 0, -1)] if level > 1 else []
        out.append(same("386", ""))
    elif arch == "arm":
        level = _version(variant)
        out += [same("arm", f"v{n}") for n in range(level - 1, 4, -1)] if level > 5 else []
    elif arch == "arm64":
        out += _arm64_vector(wanted, variant or "v8")
    return [p.normalized() for p in out]


def _version(variant: str) -> int:
    try:
        return int(variant.removeprefix("v"))
    except ValueError:
        return 0


def _arm64_vector(wanted: Platform, variant: str) -> list[Platform]:
    major_s, _, minor_s = variant.removeprefix("v").partition(".")
    out: list[Platform] = []
    if major_s.isdigit() and int(major_s) >= 8:
        major, minor = int(major_s), int(minor_s) if minor_s.isdigit() and len(variant) == 4 else 0
        if major == 9:
            out += [Platform(wanted.os, "arm64", f"v9.{m}" if m else "v9") for m in range(minor - 1, -1, -1)]
            major, minor = 8, minor + 5
            out.append(Platform(wanted.os, "arm64", f"v8.{minor}"))
        out += [Platform(wanted.os, "arm64", f"v{major}.{m}" if m else f"v{major}") for m in range(minor - 1, -1, -1)]
    arm_variant = "v8" if variant.startswith(("v8.", "v9.")) else variant
    return out + compatible_platforms(Platform(wanted.os, "arm", arm_variant))


def _matches(candidate: Platform, wanted: Platform) -> bool:
    c = candidate.normalized()
    if (c.os, c.architecture, c.variant) != (wanted.os, wanted.architecture, wanted.variant):
        return False
    return not wanted.os_version or c.os_version == wanted.os_version


# ---- descriptors ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Descriptor:
    """A content descriptor: what a blob is, its digest and size, and optional extras."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    artifact_type: str = ""

    @classmethod
    def from_dict(cls, doc: Any, where: str = "descriptor") -> Descriptor:
        """Read and validate a descriptor object; `where` prefixes error messages."""
        doc = _obj(doc, where)
        size = doc.get("size")
        if isinstance(size, bool) or not isinstance(size, int):
            raise _fail(_join(where, "size"), "is required and must be an integer")
        if size < 0:
            raise _fail(_join(where, "size"), "must not be negative")
        platform = doc.get("platform")
        return cls(
            media_type=_str(doc, "mediaType", where, required=True),
            digest=_digest(doc, "digest", where),
            size=size,
            urls=tuple(_str_list(doc, "urls", where) or ()),
            annotations=_str_map(doc, "annotations", where),
            platform=None if platform is None else Platform.from_dict(platform, _join(where, "platform")),
            artifact_type=_str(doc, "artifactType", where),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, omitting empty optional fields."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out


def _descriptors(doc: dict[str, Any], key: str) -> tuple[Descriptor, ...]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise _fail(key, "is required and must be a list")
    return tuple(Descriptor.from_dict(d, f"{key}[{i}]") for i, d in enumerate(value))


def _check_schema(doc: dict[str, Any], kind: str, header: str | None, default_type: str) -> str:
    """Validate schemaVersion and mediaType against the expected kind; return the media type."""
    if doc.get("schemaVersion") != 2 or isinstance(doc.get("schemaVersion"), bool):
        raise _fail("schemaVersion", f"must be 2, got {doc.get('schemaVersion')!r}")
    media_type = _str(doc, "mediaType", "")
    if header and media_type and mt.base_type(header) != media_type:
        raise _fail("mediaType", f"{media_type!r} does not match the content type {header!r}")
    media_type = media_type or (mt.base_type(header) if header else "") or default_type
    allowed = mt.MANIFESTS if kind == "manifest" else mt.INDEXES
    if media_type not in allowed:
        raise _fail("mediaType", f"{media_type!r} is not an image {kind} media type")
    return media_type


@dataclass(frozen=True)
class Manifest:
    """An image manifest (OCI or Docker schema 2)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] | None = None
    subject: Descriptor | None = None
    artifact_type: str = ""
    schema_version: int = 2


@dataclass(frozen=True)
class Index:
    """An OCI image index or Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] | None = None
    subject: Descriptor | None = None
    artifact_type: str = ""
    schema_version: int = 2


def _schema1_error() -> InvalidManifest:
    return InvalidManifest(
        "Docker Image manifest version 2, schema 1 is not supported: republish the image as an OCI or "
        "Docker schema 2 image")


def parse_manifest(data: bytes | str, media_type: str | None = None) -> Manifest:
    """Parse and validate an image manifest; `media_type` is the Content-Type it came with."""
    if media_type and mt.is_schema1(media_type):
        raise _schema1_error()
    doc = _load(data, "manifest")
    kind = _check_schema(doc, "manifest", media_type, mt.OCI_MANIFEST)
    if "manifests" in doc:
        raise _fail("manifests", "not allowed in an image manifest")
    if "config" not in doc:
        raise _fail("config", "is required")
    subject = doc.get("subject")
    return Manifest(
        media_type=kind,
        config=Descriptor.from_dict(doc["config"], "config"),
        layers=_descriptors(doc, "layers"),
        annotations=_str_map(doc, "annotations", ""),
        subject=None if subject is None else Descriptor.from_dict(subject, "subject"),
        artifact_type=_str(doc, "artifactType", ""),
    )


def parse_index(data: bytes | str, media_type: str | None = None) -> Index:
    """Parse and validate an image index / manifest list."""
    doc = _load(data, "index")
    kind = _check_schema(doc, "index", media_type, mt.OCI_INDEX)
    if "config" in doc or "layers" in doc:
        raise _fail("config" if "config" in doc else "layers", "not allowed in an image index")
    subject = doc.get("subject")
    return Index(
        media_type=kind,
        manifests=_descriptors(doc, "manifests"),
        annotations=_str_map(doc, "annotations", ""),
        subject=None if subject is None else Descriptor.from_dict(subject, "subject"),
        artifact_type=_str(doc, "artifactType", ""),
    )


def detect_media_type(data: bytes | str) -> str:
    """The media type of a manifest-like document without a usable Content-Type (as containerd):
    its own mediaType field, else "manifests" → index, "config" → manifest, fsLayers → schema 1."""
    doc = _load(data, "manifest")
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc or "layers" in doc:
        return mt.OCI_MANIFEST
    if "fsLayers" in doc or "signatures" in doc:
        return mt.DOCKER_SCHEMA1_MANIFEST
    raise InvalidManifest("cannot tell the document's media type: no mediaType, manifests or config")


def parse_any(data: bytes | str, media_type: str | None = None) -> Manifest | Index:
    """Parse a manifest or an index, using the Content-Type when it names one, else detecting it."""
    known = media_type if media_type and (mt.is_manifest(media_type) or mt.is_index(media_type)
                                          or mt.is_schema1(media_type)) else None
    kind = known or detect_media_type(data)
    if mt.is_schema1(kind):
        raise _schema1_error()
    if mt.is_index(kind):
        return parse_index(data, known)
    if mt.is_manifest(kind):
        return parse_manifest(data, known)
    raise InvalidManifest(f"mediaType: {kind!r} is not an image manifest or index media type")


def select_platform(index: Index, wanted: Platform | str | None = None) -> Descriptor:
    """Pick the index entry for `wanted` (default: this host): an exact match first, then the
    compatible platforms in containerd's order; entries earlier in the index win ties."""
    target = (parse_platform(wanted) if isinstance(wanted, str) else (wanted or host_platform())).normalized()
    entries = [d for d in index.manifests if mt.is_manifest(d.media_type) or mt.is_index(d.media_type)]
    for candidate in compatible_platforms(target):
        for entry in entries:
            if entry.platform is not None and _matches(entry.platform, candidate):
                return entry
    untyped = [d for d in entries if d.platform is None]
    if untyped:
        return untyped[0]
    available = ", ".join(str(d.platform) for d in entries if d.platform is not None) or "none"
    raise NoMatchingPlatform(
        f"no matching manifest for {target} in the manifest list entries (available: {available})")


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI ChainIDs: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        digestmod.validate(diff_id)
        out.append(diff_id if not out else digestmod.of_bytes(f"{out[-1]} {diff_id}".encode()))
    return out


def build_manifest(config_bytes: bytes, layers: list[Descriptor], media_type: str = mt.OCI_MANIFEST,
                   annotations: dict[str, str] | None = None) -> bytes:
    """Serialise a manifest for a config blob and its layers (deterministic JSON)."""
    if media_type not in mt.MANIFESTS:
        raise ValueError(f"not an image manifest media type: {media_type!r}")
    config_type = mt.OCI_CONFIG if media_type == mt.OCI_MANIFEST else mt.DOCKER_CONFIG
    config = Descriptor(config_type, digestmod.of_bytes(config_bytes), len(config_bytes))
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.to_dict(),
        "layers": [layer.to_dict() for layer in layers],
    }
    if annotations:
        doc["annotations"] = dict(sorted(annotations.items()))
    return _dumps(doc)


# ---- image config ---------------------------------------------------------------------------

@dataclass(frozen=True)
class History:
    """One entry of an image config's history."""

    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False


_CONFIG_LISTS = ("Env", "Cmd", "Entrypoint", "OnBuild", "Shell")
_CONFIG_STRINGS = ("User", "WorkingDir", "StopSignal")


@dataclass(frozen=True)
class ImageConfig:
    """A validated image config. `raw` is the whole document, unknown fields included."""

    architecture: str
    os: str
    diff_ids: tuple[str, ...]
    variant: str = ""
    os_version: str = ""
    created: str = ""
    author: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: tuple[History, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def platform(self) -> Platform:
        """The platform the image was built for."""
        return Platform(self.os, self.architecture, self.variant, self.os_version)

    def to_bytes(self) -> bytes:
        """Canonical serialisation: compact JSON with sorted keys (stable image IDs)."""
        return json.dumps(self.raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _validate_run_config(doc: dict[str, Any]) -> dict[str, Any]:
    where = "config"
    for key in _CONFIG_LISTS:
        _str_list(doc, key, where)
    for key in _CONFIG_STRINGS:
        _str(doc, key, where)
    _set_map(doc, "ExposedPorts", where)
    _set_map(doc, "Volumes", where)
    _str_map(doc, "Labels", where)
    if "ArgsEscaped" in doc and not isinstance(doc["ArgsEscaped"], bool):
        raise _fail("config.ArgsEscaped", "must be a boolean")
    health = doc.get("Healthcheck")
    if health is not None:
        health = _obj(health, "config.Healthcheck")
        _str_list(health, "Test", "config.Healthcheck")
        for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
            value = health.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise _fail(f"config.Healthcheck.{key}", "must be an integer")
    return doc


def _history(doc: dict[str, Any]) -> tuple[History, ...]:
    value = doc.get("history")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail("history", "must be a list")
    out = []
    for i, entry in enumerate(value):
        where = f"history[{i}]"
        entry = _obj(entry, where)
        empty = entry.get("empty_layer", False)
        if not isinstance(empty, bool):
            raise _fail(f"{where}.empty_layer", "must be a boolean")
        out.append(History(_str(entry, "created", where), _str(entry, "created_by", where),
                           _str(entry, "author", where), _str(entry, "comment", where), empty))
    return tuple(out)


def parse_config(data: bytes | str) -> ImageConfig:
    """Parse and validate an image config JSON document."""
    doc = _load(data, "image config")
    rootfs = _obj(doc.get("rootfs"), "rootfs")
    if rootfs.get("type") != "layers":
        raise _fail("rootfs.type", f"must be \"layers\", got {rootfs.get('type')!r}")
    raw_ids = rootfs.get("diff_ids")
    if raw_ids is None:
        raw_ids = []
    if not isinstance(raw_ids, list):
        raise _fail("rootfs.diff_ids", "must be a list")
    diff_ids = []
    for i, value in enumerate(raw_ids):
        try:
            diff_ids.append(digestmod.validate(value))
        except digestmod.InvalidDigest as err:
            raise _fail(f"rootfs.diff_ids[{i}]", str(err)) from None
    history = _history(doc)
    if sum(not h.empty_layer for h in history) > len(diff_ids):
        raise _fail("history", "has more non-empty layers than rootfs.diff_ids")
    run_config = doc.get("config")
    return ImageConfig(
        architecture=_str(doc, "architecture", "", required=True),
        os=_str(doc, "os", "", required=True),
        diff_ids=tuple(diff_ids),
        variant=_str(doc, "variant", ""),
        os_version=_str(doc, "os.version", ""),
        created=_str(doc, "created", ""),
        author=_str(doc, "author", ""),
        config={} if run_config is None else _validate_run_config(_obj(run_config, "config")),
        history=history,
        raw=doc,
    )
