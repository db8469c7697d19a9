"""RUN --mount: parsing the specs (cache, secret, tmpfs, bind; heredoc script files) and turning
them into OCI mounts for the step's process."""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from typing import TYPE_CHECKING, Any

from dockyard.build import fsops
from dockyard.build.parser import Command, ParseError
from dockyard.build.sources import SourceSet, mount_from

if TYPE_CHECKING:
    from dockyard.build.builder import Builder, _State


def mount_spec(builder: Builder, state: _State, spec: str, cmd: Command, ssh_index: int = 0) -> dict[str, Any]:
    """A RUN --mount value parsed and checked (its "key" goes into the step's cache key);
    ssh_index: how many ssh mounts the step has before this one."""
    opts: dict[str, str] = {}
    for part in spec.split(","):
        k, eq, v = part.partition("=")
        opts[k.strip().lower()] = builder.expand(state, v) if eq else "true"
    kind = opts.get("type", "bind")
    target = opts.get("target") or opts.get("dst") or opts.get("destination") or ""
    if kind == "secret":
        sid = opts.get("id") or posixpath.basename(target) or opts.get("env", "")
        target = target or f"/run/secrets/{sid}"
        if sid not in builder.opts.secrets and opts.get("required", "false") == "true":
            raise ParseError(f"secret {sid} not found", cmd.start_line)
        env_name = opts.get("env", "")
        return {"type": "secret", "id": sid, "target": target, "key": f"secret:{target}:{env_name}",
                "mode": int(opts.get("mode", "0400"), 8), "env": env_name,
                "file": not env_name or bool(opts.get("target") or opts.get("dst"))}
    if kind == "ssh":  # an agent socket (--ssh ID=...); skipped when not forwarded unless required
        sid = opts.get("id") or "default"
        target = target or f"/run/buildkit/ssh_agent.{ssh_index}"
        present = sid in builder.opts.ssh
        if not present and opts.get("required", "false") == "true":
            raise ParseError(f"no SSH key {sid!r} forwarded from the client (--ssh {sid}=...)", cmd.start_line)
        return {"type": "ssh", "id": sid, "target": target, "key": f"ssh:{sid}:{target}", "file": present}
    if not target:
        raise ParseError(f"mount type={kind} requires a target", cmd.start_line)
    if not target.startswith("/"):
        target = posixpath.join(state.cfg.get("WorkingDir") or "/", target)
    if kind == "cache":
        cid = opts.get("id") or target
        sharing = opts.get("sharing", "shared")
        if sharing not in ("shared", "private", "locked"):
            raise ParseError(f"invalid cache sharing mode {sharing!r}", cmd.start_line)
        try:
            owner = (int(opts.get("uid", "0")), int(opts.get("gid", "0")), int(opts.get("mode", "755"), 8))
        except ValueError:
            raise ParseError("invalid uid, gid or mode for a cache mount", cmd.start_line) from None
        return {"type": "cache", "id": cid, "target": target, "key": f"cache:{cid}:{target}",
                "readonly": opts.get("readonly", opts.get("ro", "false")) == "true", "sharing": sharing,
                "owner": owner}
    if kind == "tmpfs":
        return {"type": "tmpfs", "target": target, "key": f"tmpfs:{target}", "size": opts.get("size", "")}
    if kind == "bind":
        source = opts.get("source") or opts.get("src") or "/"
        frm = opts.get("from", "")
        spec = {"type": "bind", "target": target, "source": source, "from": frm, "src_root": builder.context,
                "rw": opts.get("rw", opts.get("readwrite", "false")) == "true"}
        named = builder.opts.contexts.get(frm.lower()) if frm else None
        if named is not None and named.directory:  # a --build-context directory
            spec["src_root"], frm = named.directory, ""
        identity = "context:" + json.dumps(_context_digest(spec["src_root"], source,
                                                           named.digests if named else builder.context_digests))
        if frm:
            spec["src_root"], identity, spec["release"] = mount_from(builder, state, frm)
        spec["key"] = f"bind:{frm}:{source}:{target}:{identity}"
        return spec
    raise ParseError(f"unsupported mount type {kind!r}", cmd.start_line)

def _context_digest(root: str, source: str, known: dict[str, str]) -> dict[str, str]:
    sources = SourceSet(root, [source], "context", [], True, set())
    sources.known = known
    return sources.digest([])

def oci_mount(builder: Builder, m: dict[str, Any]) -> dict[str, Any]:
    """The OCI mount entry of a parsed mount, its data prepared (cache dirs, secret files)."""
    if m["type"] == "cache":
        source, m["release"] = builder.cache.acquire(m["id"], m["sharing"], m["owner"])
        opts = ["rbind", "ro" if m["readonly"] else "rw"]
        return {"destination": m["target"], "type": "bind", "source": source, "options": opts}
    if m["type"] == "ssh":
        return {"destination": m["target"], "type": "bind", "source": builder.opts.ssh[m["id"]], "options": ["bind"]}
    if m["type"] == "tmpfs":
        opts = ["nosuid", "nodev"] + ([f"size={m['size']}"] if m["size"] else [])
        return {"destination": m["target"], "type": "tmpfs", "source": "tmpfs", "options": opts}
    if m["type"] in ("secret", "file"):
        holder = os.path.join(builder.work_root, "mountfile-" + uuid.uuid4().hex)
        os.makedirs(holder, mode=0o700)
        path = os.path.join(holder, "data")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as f:
            f.write(builder.opts.secrets.get(m["id"], b"") if m["type"] == "secret" else m["content"].encode())
        os.chmod(path, m["mode"] if m["type"] == "secret" else 0o755)
        m["cleanup"] = holder
        return {"destination": m["target"], "type": "bind", "source": path, "options": ["rbind", "ro"]}
    src = fsops.resolve(m["src_root"], m["source"])
    return {"destination": m["target"], "type": "bind", "source": src,
            "options": ["rbind", "rw" if m["rw"] else "ro"]}
