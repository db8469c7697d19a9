"""Remote build inputs: git repositories (Docker's `URL#ref:subdir` form) and files over HTTP(S),
for remote contexts (`/build?remote=`, `dockyard build URL`) and `ADD <url>`."""

from __future__ import annotations

import email.utils
import hashlib
import os
import posixpath
import re
import shutil
import subprocess
import urllib.parse
import urllib.request

from dockyard.build import fsops

GIT_PROTOCOLS = "http:https:git:ssh"  # never file:// or ext:: (submodules of a hostile repository)


class RemoteError(Exception):
    """A remote input that could not be fetched (the message names it)."""


def is_url(src: str) -> bool:
    """An HTTP(S) URL or a git repository."""
    return src.startswith(("http://", "https://")) or is_git_url(src)


def is_git_url(src: str) -> bool:
    """A remote git repository as Docker recognises one (never a local path such as `repo.git`)."""
    if src.startswith(("git@", "git://", "ssh://")):
        return True
    if not src.startswith(("http://", "https://")):
        return False
    path = src.partition("#")[0].partition("?")[0]
    return path.endswith(".git")


def split_git_url(url: str) -> tuple[str, str, str]:
    """`remote#ref:subdir`, or BuildKit's `remote?ref=R&subdir=D` (also tag=, branch=) →
    (remote, ref, subdir); ref and subdir may be empty."""
    remote, _, fragment = url.partition("#")
    ref, _, subdir = fragment.partition(":")
    remote, _, query = remote.partition("?")
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key in ("ref", "tag", "branch"):
            ref = value
        elif key == "subdir":
            subdir = value
        else:
            raise RemoteError(f"unsupported parameter {key!r} in git URL {url}")
    return remote, ref, subdir


def _git(args: list[str], cwd: str) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": cwd, "GIT_TERMINAL_PROMPT": "0",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_ALLOW_PROTOCOL": GIT_PROTOCOLS,
           "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}
    try:
        return subprocess.run(["git", "-c", "advice.detachedHead=false", *args], cwd=cwd, env=env,
                              capture_output=True, timeout=600, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RemoteError(f"git {args[0]}: {e}") from None


def _check(proc: subprocess.CompletedProcess[bytes], what: str) -> None:
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise RemoteError(f"{what}: {err or f'git exited with {proc.returncode}'}")


def git_commit(url: str, work: str) -> str:
    """The commit url's ref names now (`git ls-remote`; a full commit ID as is), without
    fetching anything; "" when ls-remote cannot tell (an abbreviated commit)."""
    remote, ref, _subdir = split_git_url(url)
    if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", ref):
        return ref
    proc = _git(["ls-remote", "--", remote, ref or "HEAD"], work)
    _check(proc, f"failed to read {remote}")
    found = dict(reversed(line.split("\t", 1)) for line in proc.stdout.decode().splitlines() if "\t" in line)
    wanted = ["HEAD"] if not ref else [f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", ref]
    for name in wanted:
        if name in found:
            return found[name]
    return ""


def git_clone(url: str, dest: str, keep_git_dir: bool = False, expect: str = "") -> tuple[str, str]:
    """Check out url (`remote#ref:subdir`) into the new directory dest: a shallow fetch of the
    ref (the remote's HEAD by default; a branch, tag or commit), submodules included. (The
    directory to use: dest or its subdir; the commit ID); .git is removed unless keep_git_dir.
    expect: the commit git_commit found (RemoteError if the ref moved since)."""
    remote, ref, subdir = split_git_url(url)
    os.makedirs(dest)
    _check(_git(["init", "-q", "."], dest), "git init")
    _check(_git(["remote", "add", "origin", remote], dest), f"invalid git URL {remote}")
    fetched = _git(["fetch", "-q", "--depth", "1", "origin", ref or "HEAD"], dest)
    if fetched.returncode == 0:
        _check(_git(["checkout", "-q", "FETCH_HEAD"], dest), f"git checkout of {ref or 'HEAD'}")
    elif ref:  # a commit the server will not send by itself: fetch everything, then look it up
        _check(_git(["fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"],
                    dest), f"failed to fetch {remote}")
        _check(_git(["checkout", "-q", ref], dest), f"git checkout of {ref}: no such branch, tag or commit")
    else:
        _check(fetched, f"failed to fetch {remote}")
    if os.path.exists(os.path.join(dest, ".gitmodules")):
        _check(_git(["submodule", "update", "-q", "--init", "--recursive", "--depth", "1"], dest),
               "git submodule update")
    head = _git(["rev-parse", "HEAD"], dest)
    _check(head, "git rev-parse")
    commit = head.stdout.decode().strip()
    if expect and commit != expect:
        raise RemoteError(f"{remote}: {ref or 'HEAD'} moved from {expect} to {commit} during the build")
    if not keep_git_dir:
        shutil.rmtree(os.path.join(dest, ".git"))
    if not subdir:
        return dest, commit
    inside = fsops.resolve(dest, subdir)
    if not os.path.isdir(inside):
        raise RemoteError(f"subdirectory {subdir} not found in {remote}")
    return inside, commit


def download(url: str, directory: str, checksum: str = "") -> str:
    """Fetch url into directory under its path's base name (mode 0600, mtime from
    Last-Modified); checked against checksum (`sha256:hex`) when given. The file's name."""
    name = posixpath.basename(urllib.parse.urlparse(url).path) or "__unnamed__"
    path = os.path.join(directory, name)
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as f:  # noqa: S310
            while chunk := resp.read(1 << 20):
                h.update(chunk)
                f.write(chunk)
            modified = resp.headers.get("Last-Modified")
    except OSError as e:
        raise RemoteError(f"failed to download {url}: {e}") from None
    if checksum:
        algo, _, want = checksum.partition(":")
        if algo != "sha256" or not want:
            raise RemoteError(f"unsupported digest format {checksum!r}")
        if h.hexdigest() != want:
            raise RemoteError(f"digest mismatch sha256:{h.hexdigest()}: {checksum}")
    os.chmod(path, 0o600)
    if modified:
        try:
            ts = email.utils.parsedate_to_datetime(modified).timestamp()
            os.utime(path, (ts, ts))
        except (TypeError, ValueError):
            pass
    return name
