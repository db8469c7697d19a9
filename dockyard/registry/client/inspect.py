"""Reading what a registry holds without pulling: the raw manifest (`manifest inspect`) and the
descriptor with platforms that dockerd's GET /distribution/{name}/json answers."""

from __future__ import annotations

import json
from typing import Any

from dockyard.image import reference
from dockyard.image.manifest import Index, InvalidManifest, parse_any, parse_config
from dockyard.registry.client.auth import Credentials
from dockyard.registry.client.endpoint import RegistryConfig
from dockyard.registry.client.pull import PullError, fetch_manifest, pull_error, scope
from dockyard.registry.client.transport import RegistryError, Transport


def raw_manifest(name: str, credentials: Credentials | None = None, config: RegistryConfig | None = None
                 ) -> tuple[bytes, str, str]:
    """(bytes, media type, digest) of the manifest or index name points at; PullError."""
    ref = reference.parse_docker_ref(name)
    transport = Transport(ref.domain, credentials, config)
    try:
        return fetch_manifest(transport, ref, ref.digest or ref.tag or reference.DEFAULT_TAG)
    except RegistryError as err:
        raise pull_error(err, ref) from None
    except OSError as err:
        raise PullError(str(err)) from None
    finally:
        transport.close()


def distribution_info(name: str, credentials: Credentials | None = None,
                      config: RegistryConfig | None = None) -> dict[str, Any]:
    """GET /distribution/{name}/json: {"Descriptor": ..., "Platforms": [...]}."""
    data, media_type, digest = raw_manifest(name, credentials, config)
    ref = reference.parse_docker_ref(name)
    try:
        doc = parse_any(data, media_type or None)
        if isinstance(doc, Index):
            platforms = [d.platform.to_dict() for d in doc.manifests if d.platform is not None]
        else:
            transport = Transport(ref.domain, credentials, config)
            try:
                resp = transport.request("GET", f"/v2/{ref.path}/blobs/{doc.config.digest}", [scope(ref)])
                image = parse_config(resp.read(8 << 20))
            finally:
                transport.close()
            platforms = [{"architecture": image.architecture, "os": image.os,
                          **({"variant": image.variant} if image.variant else {})}]
    except (InvalidManifest, RegistryError) as err:
        raise PullError(f"{ref}: {err}") from None
    return {"Descriptor": {"mediaType": doc.media_type, "digest": digest, "size": len(data)}, "Platforms": platforms}


def list_tags(name: str, credentials: Credentials | None = None, config: RegistryConfig | None = None,
              limit: int = 10_000) -> list[str]:
    """The repository's tags (following the registry's pagination); PullError."""
    ref = reference.parse_normalized(name).trim()
    transport = Transport(ref.domain, credentials, config)
    tags: list[str] = []
    path = f"/v2/{ref.path}/tags/list?n=1000"
    try:
        while path and len(tags) < limit:
            resp = transport.request("GET", path, [scope(ref)])
            doc = json.loads(resp.read(8 << 20))
            tags += [t for t in doc.get("tags") or [] if isinstance(t, str) and reference.is_tag(t)]
            link = resp.getheader("Link", "")
            path = link[link.index("<") + 1:link.index(">")] if link.startswith("<") and ">" in link else ""
    except RegistryError as err:
        raise pull_error(err, reference.with_default_tag(ref)) from None
    except (OSError, ValueError, AttributeError) as err:
        raise PullError(f"{ref}: {err}") from None
    finally:
        transport.close()
    return tags


def pretty(data: bytes) -> str:
    """A manifest as `docker manifest inspect` prints it: tab-indented, keys in their order."""
    return json.dumps(json.loads(data), indent="\t", ensure_ascii=False)
