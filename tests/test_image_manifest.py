"""Media types, manifests, indexes, image configs, platforms, chain IDs and the API shapes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from dockyard.image import inspect, manifest
from dockyard.image import mediatypes as mt
from dockyard.image.manifest import Descriptor, Index, InvalidManifest, NoMatchingPlatform, Platform

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def _desc(media_type: str, digest: str = D1, size: int = 10, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


OCI_DOC = {
    "schemaVersion": 2,
    "mediaType": mt.OCI_MANIFEST,
    "config": _desc(mt.OCI_CONFIG, D1, 1469),
    "layers": [_desc(mt.OCI_LAYER_GZIP, D2, 2479), _desc(mt.OCI_LAYER_ZSTD, D3, 100)],
    "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
}
DOCKER_DOC = {
    "schemaVersion": 2,
    "mediaType": mt.DOCKER_MANIFEST,
    "config": _desc(mt.DOCKER_CONFIG, D1, 1457),
    "layers": [_desc(mt.DOCKER_LAYER_GZIP, D2, 2220094),
               _desc(mt.DOCKER_FOREIGN_LAYER_GZIP, D3, 5, urls=["https://example.com/layer"])],
}


def _index(*entries: tuple[str, str, str]) -> Index:
    manifests = [_desc(mt.OCI_MANIFEST, "sha256:" + f"{i:x}" * 64, 500,
                       platform={k: v for k, v in (("os", o), ("architecture", a), ("variant", v)) if v})
                 for i, (o, a, v) in enumerate(entries, start=1)]
    return manifest.parse_index(json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": manifests}))


# ---- media types -----------------------------------------------------------------------------

def test_media_type_questions() -> None:
    assert mt.is_manifest(mt.OCI_MANIFEST) and mt.is_manifest(mt.DOCKER_MANIFEST + "; charset=utf-8")
    assert not mt.is_manifest(mt.OCI_INDEX)
    assert mt.is_index(mt.OCI_INDEX) and mt.is_index(mt.DOCKER_MANIFEST_LIST)
    assert mt.is_schema1(mt.DOCKER_SCHEMA1_SIGNED_MANIFEST) and not mt.is_manifest(mt.DOCKER_SCHEMA1_MANIFEST)
    assert mt.is_config(mt.DOCKER_CONFIG) and mt.is_config(mt.OCI_CONFIG)
    assert all(mt.is_layer(t) for t in (mt.OCI_LAYER, mt.DOCKER_LAYER_GZIP, mt.DOCKER_FOREIGN_LAYER,
                                         mt.OCI_LAYER_NONDISTRIBUTABLE_ZSTD))
    assert not mt.is_layer(mt.OCI_CONFIG)
    assert mt.is_nondistributable(mt.DOCKER_FOREIGN_LAYER_GZIP) and not mt.is_nondistributable(mt.OCI_LAYER)


@pytest.mark.parametrize("media_type,compression", [
    (mt.OCI_LAYER, ""), (mt.OCI_LAYER_GZIP, "gzip"), (mt.OCI_LAYER_ZSTD, "zstd"),
    (mt.DOCKER_LAYER, ""), (mt.DOCKER_LAYER_GZIP, "gzip"), (mt.DOCKER_LAYER_ZSTD, "zstd"),
    (mt.DOCKER_FOREIGN_LAYER_GZIP, "gzip"), (mt.OCI_LAYER_NONDISTRIBUTABLE, ""),
])
def test_layer_compression(media_type: str, compression: str) -> None:
    assert mt.layer_compression(media_type) == compression


def test_layer_compression_rejects_non_layers() -> None:
    with pytest.raises(ValueError, match="not a layer media type"):
        mt.layer_compression(mt.OCI_MANIFEST)


# ---- manifests -------------------------------------------------------------------------------

def test_parse_oci_manifest() -> None:
    m = manifest.parse_manifest(json.dumps(OCI_DOC).encode(), mt.OCI_MANIFEST)
    assert m.media_type == mt.OCI_MANIFEST and m.schema_version == 2
    assert m.config == Descriptor(mt.OCI_CONFIG, D1, 1469)
    assert [layer.media_type for layer in m.layers] == [mt.OCI_LAYER_GZIP, mt.OCI_LAYER_ZSTD]
    assert m.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    assert m.subject is None


def test_parse_docker_manifest() -> None:
    m = manifest.parse_manifest(json.dumps(DOCKER_DOC))
    assert m.media_type == mt.DOCKER_MANIFEST
    assert m.layers[1].urls == ("https://example.com/layer",)
    assert m.layers[1].to_dict() == DOCKER_DOC["layers"][1]


def test_manifest_subject_and_artifact_type() -> None:
    doc = dict(OCI_DOC, artifactType="application/vnd.example+json", subject=_desc(mt.OCI_MANIFEST, D3, 7))
    m = manifest.parse_manifest(json.dumps(doc))
    assert m.subject == Descriptor(mt.OCI_MANIFEST, D3, 7)
    assert m.artifact_type == "application/vnd.example+json"


def _broken(**changes: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(OCI_DOC))
    for path, value in changes.items():
        target = doc
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = keys[-1]
        if value is KeyError:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return doc


@pytest.mark.parametrize("doc,message", [
    (_broken(schemaVersion=1), "schemaVersion: must be 2"),
    (_broken(schemaVersion=True), "schemaVersion: must be 2"),
    (_broken(config=KeyError), "config: is required"),
    (_broken(layers=KeyError), "layers: is required and must be a list"),
    (_broken(layers="x"), "layers: is required and must be a list"),
    (_broken(layers__1__digest="sha256:abc"), "layers[1].digest: invalid digest"),
    (_broken(layers__0__digest=KeyError), "layers[0].digest: is required"),
    (_broken(layers__0__size=-1), "layers[0].size: must not be negative"),
    (_broken(layers__0__size="12"), "layers[0].size: is required and must be an integer"),
    (_broken(layers__0__mediaType=KeyError), "layers[0].mediaType: is required"),
    (_broken(config__urls="x"), "config.urls: must be a list of strings"),
    (_broken(annotations={"a": 1}), "annotations: must be an object of strings"),
    (_broken(config__platform={"os": "linux"}), "config.platform.architecture: is required"),
    (_broken(mediaType=mt.OCI_INDEX), "mediaType: 'application/vnd.oci.image.index.v1+json' is not an image manifest"),
    (_broken(manifests=[]), "manifests: not allowed in an image manifest"),
    (_broken(layers__0="x"), "layers[0]: must be a JSON object"),
])
def test_invalid_manifests(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidManifest) as err:
        manifest.parse_manifest(json.dumps(doc))
    assert str(err.value).startswith(message)


def test_manifest_not_json_or_not_object() -> None:
    with pytest.raises(InvalidManifest, match="not valid JSON"):
        manifest.parse_manifest(b"{")
    with pytest.raises(InvalidManifest, match="must be a JSON object"):
        manifest.parse_manifest(b"[]")


def test_header_must_agree_with_document() -> None:
    with pytest.raises(InvalidManifest, match="does not match the content type"):
        manifest.parse_manifest(json.dumps(OCI_DOC), mt.DOCKER_MANIFEST)


def test_parse_any_detects_kind() -> None:
    no_type = {k: v for k, v in OCI_DOC.items() if k != "mediaType"}
    assert isinstance(manifest.parse_any(json.dumps(no_type)), manifest.Manifest)
    assert manifest.parse_any(json.dumps(no_type)).media_type == mt.OCI_MANIFEST
    assert manifest.parse_any(json.dumps(DOCKER_DOC), "application/octet-stream").media_type == mt.DOCKER_MANIFEST
    index = {"schemaVersion": 2, "manifests": []}
    assert isinstance(manifest.parse_any(json.dumps(index)), Index)
    listing = dict(index, mediaType=mt.DOCKER_MANIFEST_LIST)
    assert manifest.parse_any(json.dumps(listing), mt.DOCKER_MANIFEST_LIST).media_type == mt.DOCKER_MANIFEST_LIST


@pytest.mark.parametrize("doc,header", [
    ({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": [], "signatures": []}, None),
    ({"schemaVersion": 1, "fsLayers": []}, mt.DOCKER_SCHEMA1_SIGNED_MANIFEST),
])
def test_schema1_is_refused_clearly(doc: dict[str, Any], header: str | None) -> None:
    with pytest.raises(InvalidManifest, match="schema 1 is not supported"):
        manifest.parse_any(json.dumps(doc), header)


def test_parse_any_unknown_document() -> None:
    with pytest.raises(InvalidManifest, match="cannot tell"):
        manifest.parse_any(b'{"schemaVersion": 2}')
    with pytest.raises(InvalidManifest, match="is not an image manifest or index"):
        manifest.parse_any(json.dumps({"mediaType": "text/plain"}))


def test_index_rejects_manifest_fields() -> None:
    with pytest.raises(InvalidManifest, match="^config: not allowed"):
        manifest.parse_index(json.dumps({"schemaVersion": 2, "manifests": [], "config": {}}))
    with pytest.raises(InvalidManifest, match=r"^manifests\[0\].platform.os: is required"):
        manifest.parse_index(json.dumps({"schemaVersion": 2, "manifests": [
            _desc(mt.OCI_MANIFEST, platform={"architecture": "amd64"})]}))


# ---- building --------------------------------------------------------------------------------

def test_build_manifest_round_trip() -> None:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layers = [Descriptor(mt.OCI_LAYER_GZIP, D2, 42)]
    raw = manifest.build_manifest(config, layers)
    assert raw == manifest.build_manifest(config, layers)  # deterministic
    m = manifest.parse_manifest(raw, mt.OCI_MANIFEST)
    assert m.config == Descriptor(mt.OCI_CONFIG, "sha256:" + hashlib.sha256(config).hexdigest(), len(config))
    assert m.layers == tuple(layers)
    assert list(json.loads(raw)) == ["schemaVersion", "mediaType", "config", "layers"]
    docker = manifest.parse_manifest(manifest.build_manifest(config, layers, mt.DOCKER_MANIFEST))
    assert docker.media_type == mt.DOCKER_MANIFEST and docker.config.media_type == mt.DOCKER_CONFIG
    with pytest.raises(ValueError):
        manifest.build_manifest(config, layers, mt.OCI_INDEX)


def test_chain_ids_by_hand() -> None:
    diff_ids = [D1, D2, D3]
    second = "sha256:" + hashlib.sha256(f"{D1} {D2}".encode()).hexdigest()
    third = "sha256:" + hashlib.sha256(f"{second} {D3}".encode()).hexdigest()
    assert manifest.chain_ids(diff_ids) == [D1, second, third]
    assert manifest.chain_ids([]) == []


# ---- image config ----------------------------------------------------------------------------

BUSYBOX_CONFIG = {
    "architecture": "amd64",
    "config": {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["sh"],
        "WorkingDir": "/",
        "ExposedPorts": {"80/tcp": {}},
        "Labels": {"maintainer": "me"},
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30000000000, "Retries": 0},
        "ArgsEscaped": True,
    },
    "created": "2023-05-18T22:34:17.4254Z",
    "history": [
        {"created": "2023-05-18T22:34:17.27893Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
        {"created": "2023-05-18T22:34:17.4254Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]",
         "empty_layer": True},
    ],
    "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": [D1]},
}


def test_parse_config() -> None:
    cfg = manifest.parse_config(json.dumps(BUSYBOX_CONFIG))
    assert (cfg.architecture, cfg.os, cfg.diff_ids) == ("amd64", "linux", (D1,))
    assert cfg.config["Cmd"] == ["sh"]
    assert cfg.history[1].empty_layer and not cfg.history[0].empty_layer
    assert str(cfg.platform) == "linux/amd64"
    raw = cfg.to_bytes()
    assert json.loads(raw) == BUSYBOX_CONFIG and raw == manifest.parse_config(raw).to_bytes()


def _config(**changes: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(BUSYBOX_CONFIG))
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            doc[section][name] = value
        elif value is KeyError:
            del doc[section]
        else:
            doc[section] = value
    return doc


@pytest.mark.parametrize("doc,message", [
    (_config(rootfs=KeyError), "rootfs: must be a JSON object"),
    (_config(rootfs={"type": "tar", "diff_ids": []}), "rootfs.type: must be \"layers\""),
    (_config(rootfs={"type": "layers", "diff_ids": ["nope"]}), "rootfs.diff_ids[0]: invalid digest"),
    (_config(architecture=KeyError), "architecture: is required"),
    (_config(os=3), "os: must be a string"),
    (_config(config__Env="PATH=/bin"), "config.Env: must be a list of strings"),
    (_config(config__Cmd=[1]), "config.Cmd: must be a list of strings"),
    (_config(config__ExposedPorts=["80/tcp"]), "config.ExposedPorts: must be an object"),
    (_config(config__Labels={"a": 1}), "config.Labels: must be an object of strings"),
    (_config(config__User=0), "config.User: must be a string"),
    (_config(config__ArgsEscaped="yes"), "config.ArgsEscaped: must be a boolean"),
    (_config(config__Healthcheck={"Interval": "30s"}), "config.Healthcheck.Interval: must be an integer"),
    (_config(history=[{"empty_layer": "no"}]), "history[0].empty_layer: must be a boolean"),
    (_config(history=[{}, {}]), "history: has more non-empty layers"),
])
def test_invalid_configs(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidManifest) as err:
        manifest.parse_config(json.dumps(doc))
    assert str(err.value).startswith(message)


# ---- platforms -------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,expected", [
    ("linux/amd64", "linux/amd64"),
    ("linux/x86_64", "linux/amd64"),
    ("linux/aarch64", "linux/arm64"),
    ("linux/arm64/v8", "linux/arm64"),
    ("linux/arm", "linux/arm/v7"),
    ("linux/arm/7", "linux/arm/v7"),
    ("linux/arm/v6", "linux/arm/v6"),
    ("linux/armhf", "linux/arm/v7"),
    ("linux/armel", "linux/arm/v6"),
    ("linux/i386", "linux/386"),
    ("Linux/AMD64", "linux/amd64"),
    ("linux/amd64/v1", "linux/amd64"),
    ("linux/amd64/v3", "linux/amd64/v3"),
    ("aarch64", "linux/arm64"),
    ("x86_64", "linux/amd64"),
    ("windows/amd64", "windows/amd64"),
])
def test_parse_platform(spec: str, expected: str) -> None:
    assert str(manifest.parse_platform(spec)) == expected


def test_parse_platform_os_only_uses_host_arch() -> None:
    assert manifest.parse_platform("linux") == manifest.host_platform()


@pytest.mark.parametrize("spec", ["", "linux/", "nonsense", "linux/amd64/v1/extra", "linux/*", "linux/am d64"])
def test_parse_platform_errors(spec: str) -> None:
    with pytest.raises(ValueError, match="invalid platform"):
        manifest.parse_platform(spec)


def test_compatible_platforms_order() -> None:
    def names(spec: str) -> list[str]:
        return [str(p) for p in manifest.compatible_platforms(manifest.parse_platform(spec))]

    assert names("linux/amd64") == ["linux/amd64", "linux/386"]
    assert names("linux/amd64/v3") == ["linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"]
    assert names("linux/arm/v7") == ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    assert names("linux/arm64") == ["linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    assert names("linux/arm64/v8.2")[:3] == ["linux/arm64/v8.2", "linux/arm64/v8.1", "linux/arm64"]
    assert names("linux/arm64/v9")[:3] == ["linux/arm64/v9", "linux/arm64/v8.5", "linux/arm64/v8.4"]


MULTI = [("linux", "amd64", ""), ("linux", "arm", "v6"), ("linux", "arm", "v7"),
         ("linux", "arm64", "v8"), ("linux", "386", ""), ("linux", "s390x", "")]


@pytest.mark.parametrize("wanted,index_position", [
    ("linux/amd64", 0), ("linux/x86_64", 0), ("linux/arm64", 3), ("linux/arm64/v8", 3), ("aarch64", 3),
    ("linux/arm/v7", 2), ("linux/arm", 2), ("linux/arm/v6", 1), ("linux/386", 4), ("linux/s390x", 5),
    (Platform("linux", "aarch64"), 3),
])
def test_select_platform(wanted: str | Platform, index_position: int) -> None:
    index = _index(*MULTI)
    assert manifest.select_platform(index, wanted) == index.manifests[index_position]


def test_select_platform_compatible_fallbacks() -> None:
    only_v6 = _index(("linux", "arm", "v6"), ("linux", "386", ""))
    assert manifest.select_platform(only_v6, "linux/arm64").platform == Platform("linux", "arm", "v6")
    assert manifest.select_platform(only_v6, "linux/amd64").platform == Platform("linux", "386")
    arm64_plain = _index(("linux", "arm64", ""))
    assert manifest.select_platform(arm64_plain, "linux/arm64/v8") == arm64_plain.manifests[0]


def test_select_platform_default_is_host() -> None:
    host = manifest.host_platform()
    index = _index(("linux", "s390x", ""), (host.os, host.architecture, host.variant))
    assert manifest.select_platform(index) == index.manifests[1]


def test_select_platform_no_match_lists_available() -> None:
    index = _index(("linux", "s390x", ""), ("linux", "ppc64le", ""), ("windows", "amd64", ""))
    with pytest.raises(NoMatchingPlatform) as err:
        manifest.select_platform(index, "linux/amd64")
    assert str(err.value) == ("no matching manifest for linux/amd64 in the manifest list entries "
                              "(available: linux/s390x, linux/ppc64le, windows/amd64)")


def test_select_platform_skips_attestations() -> None:
    doc = {"schemaVersion": 2, "manifests": [
        _desc(mt.OCI_MANIFEST, D1, platform={"os": "unknown", "architecture": "unknown"},
              annotations={"vnd.docker.reference.type": "attestation-manifest"}),
        _desc(mt.OCI_MANIFEST, D2, platform={"os": "linux", "architecture": "amd64"}),
    ]}
    index = manifest.parse_index(json.dumps(doc))
    assert manifest.select_platform(index, "linux/amd64").digest == D2


def test_platform_dict_round_trip() -> None:
    doc = {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert Platform.from_dict(doc).to_dict() == doc


# ---- Engine API shapes -----------------------------------------------------------------------

IMAGE_ID = "sha256:" + "a" * 64
INSPECT_FIELDS = ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "DockerVersion", "Author",
                  "Config", "Architecture", "Os", "Size", "GraphDriver", "RootFS", "Metadata",
                  "Container", "ContainerConfig"]  # the last two: only API versions before 1.45 show them


def test_image_inspect_shape() -> None:
    driver = {"Name": "overlay2", "Data": {"MergedDir": "/m", "UpperDir": "/u", "WorkDir": "/w"}}
    out = inspect.image_inspect(IMAGE_ID, BUSYBOX_CONFIG, ["busybox:latest"],
                                ["busybox@sha256:" + "b" * 64], 4261550, driver, None)
    assert list(out) == INSPECT_FIELDS
    assert out["Created"] == "2023-05-18T22:34:17.4254Z"
    assert out["RepoTags"] == ["busybox:latest"]
    assert (out["Parent"], out["Comment"], out["DockerVersion"], out["Author"]) == ("", "", "", "")
    assert out["RootFS"] == {"Type": "layers", "Layers": [D1]}
    assert out["GraphDriver"] == driver
    assert out["Metadata"] == {"LastTagTime": "0001-01-01T00:00:00Z"}
    config = out["Config"]
    assert config["Cmd"] == ["sh"] and config["WorkingDir"] == "/"
    assert config["Entrypoint"] is None and config["Volumes"] is None and config["OnBuild"] is None
    assert config["Hostname"] == "" and config["Image"] == "" and config["AttachStdin"] is False
    assert config["ExposedPorts"] == {"80/tcp": {}} and config["ArgsEscaped"] is True
    assert config["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 30000000000}
    assert "StopSignal" not in config and "Shell" not in config


def test_image_inspect_empty_conventions() -> None:
    config = {"architecture": "arm64", "variant": "v8", "os": "linux", "rootfs": {"type": "layers"},
              "config": {"Env": [], "Labels": {}}, "comment": "", "history": [{"comment": "imported"}]}
    out = inspect.image_inspect(IMAGE_ID, config, [], [], 0, {"Name": "overlay2"}, "2024-02-03T04:05:06.5Z")
    assert "Created" not in out
    assert out["Variant"] == "v8"
    assert out["RepoTags"] == [] and out["RepoDigests"] == []
    assert out["Comment"] == "imported"
    assert out["Config"]["Env"] is None and out["Config"]["Labels"] is None
    assert "ExposedPorts" not in out["Config"]
    assert out["RootFS"] == {"Type": "layers"}
    assert out["GraphDriver"] == {"Name": "overlay2", "Data": None}
    assert out["Metadata"] == {"LastTagTime": "2024-02-03T04:05:06.5Z"}


@pytest.mark.parametrize("value,expected", [
    ("2023-05-18T22:34:17.425400000Z", "2023-05-18T22:34:17.4254Z"),
    ("2023-05-18T22:34:17.000Z", "2023-05-18T22:34:17Z"),
    ("2023-05-18T22:34:17.1234567891Z", "2023-05-18T22:34:17.123456789Z"),
    ("2023-05-18T22:34:17+00:00", "2023-05-18T22:34:17Z"),
    ("2023-05-18T22:34:17+02:00", "2023-05-18T22:34:17+02:00"),
])
def test_rfc3339nano(value: str, expected: str) -> None:
    assert inspect.rfc3339nano(value) == expected


def test_image_history_shape() -> None:
    config = dict(BUSYBOX_CONFIG, history=BUSYBOX_CONFIG["history"] + [
        {"created": "2023-05-19T00:00:00Z", "created_by": "RUN echo hi", "comment": "buildkit.dockerfile.v0"}],
        rootfs={"type": "layers", "diff_ids": [D1, D2]})
    out = inspect.image_history(config, [4261550, 12], IMAGE_ID, ["busybox:latest"])
    assert [list(e) for e in out] == [["Comment", "Created", "CreatedBy", "Id", "Size", "Tags"]] * 3
    assert [e["Id"] for e in out] == [IMAGE_ID, "<missing>", "<missing>"]
    assert [e["Size"] for e in out] == [12, 0, 4261550]
    assert [e["Tags"] for e in out] == [["busybox:latest"], None, None]
    assert out[0]["Comment"] == "buildkit.dockerfile.v0"
    assert out[0]["Created"] == 1684454400
    assert out[2]["Created"] == 1684449257
    assert out[1]["CreatedBy"] == "/bin/sh -c #(nop)  CMD [\"sh\"]"


def test_image_history_untagged_and_empty() -> None:
    out = inspect.image_history(BUSYBOX_CONFIG, [5], IMAGE_ID, [])
    assert out[0]["Tags"] is None and out[0]["Id"] == IMAGE_ID
    assert inspect.image_history({"rootfs": {"type": "layers"}}, [], IMAGE_ID, ["x:1"]) == []


def test_image_summary_shape() -> None:
    out = inspect.image_summary(IMAGE_ID, BUSYBOX_CONFIG, ["busybox:latest"], [], 4261550)
    assert out == {
        "Containers": -1, "Created": 1684449257, "Id": IMAGE_ID, "Labels": {"maintainer": "me"},
        "ParentId": "", "RepoDigests": [], "RepoTags": ["busybox:latest"], "SharedSize": -1, "Size": 4261550,
    }
    bare = inspect.image_summary(IMAGE_ID, {"rootfs": {"type": "layers"}}, [], [], 0)
    assert bare["Labels"] is None and bare["Created"] == 0
