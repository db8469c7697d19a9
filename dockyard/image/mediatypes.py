"""Media types of OCI and Docker image documents and layers, and questions about them."""

from __future__ import annotations

# OCI image-spec
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

# Docker image manifest v2 schema 2 and manifest list
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"

# Docker schema 1: recognised only to refuse it clearly
DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED_MANIFEST = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})
SCHEMA1 = frozenset({DOCKER_SCHEMA1_MANIFEST, DOCKER_SCHEMA1_SIGNED_MANIFEST})

# layer media type → compression ("" for a plain tar)
_LAYERS = {
    OCI_LAYER: "",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDISTRIBUTABLE: "",
    OCI_LAYER_NONDISTRIBUTABLE_GZIP: "gzip",
    OCI_LAYER_NONDISTRIBUTABLE_ZSTD: "zstd",
    DOCKER_LAYER: "",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_LAYER_ZSTD: "zstd",
    DOCKER_FOREIGN_LAYER: "",
    DOCKER_FOREIGN_LAYER_GZIP: "gzip",
}
_NONDISTRIBUTABLE = frozenset({
    OCI_LAYER_NONDISTRIBUTABLE, OCI_LAYER_NONDISTRIBUTABLE_GZIP, OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
    DOCKER_FOREIGN_LAYER, DOCKER_FOREIGN_LAYER_GZIP,
})


def base_type(media_type: str) -> str:
    """The media type without parameters ("; charset=utf-8") and surrounding blanks."""
    return media_type.split(";", 1)[0].strip()


def is_manifest(media_type: str) -> bool:
    """True for an OCI image manifest or a Docker schema 2 manifest."""
    return base_type(media_type) in MANIFESTS


def is_index(media_type: str) -> bool:
    """True for an OCI index or a Docker manifest list."""
    return base_type(media_type) in INDEXES


def is_config(media_type: str) -> bool:
    """True for an OCI or Docker image config."""
    return base_type(media_type) in CONFIGS


def is_schema1(media_type: str) -> bool:
    """True for Docker's legacy schema 1 manifests, which dockyard does not support."""
    return base_type(media_type) in SCHEMA1


def is_layer(media_type: str) -> bool:
    """True for any known layer type, including foreign and non-distributable ones."""
    return base_type(media_type) in _LAYERS


def is_nondistributable(media_type: str) -> bool:
    """True for foreign / non-distributable layers, which registries may not serve."""
    return base_type(media_type) in _NONDISTRIBUTABLE


def layer_compression(media_type: str) -> str:
    """"gzip", "zstd" or "" (uncompressed) for a layer media type; ValueError if not a layer."""
    try:
        return _LAYERS[base_type(media_type)]
    except KeyError:
        raise ValueError(f"not a layer media type: {media_type!r}") from None
