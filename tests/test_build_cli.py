"""`dockyard build` and `dockyard builder prune` against a private dockyardd."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.daemon import Dockyardd, build_busybox_daemon, daemon_children_only  # noqa: F401 (fixtures)

DOCKYARD = str(Path(sys.executable).parent / "dockyard")


def dockyard(d: Dockyardd, *args: str, input: bytes | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "DOCKYARD_HOST": d.host, "DOCKYARD_NO_AUTOSTART": "1", **(env or {})}
    proc = subprocess.run([DOCKYARD, *args], input=input, capture_output=True, env=full, timeout=180)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def context(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    return root


def test_secrets_from_file_and_env(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox\n"
        "RUN --mount=type=secret,id=file cat /run/secrets/file > /dev/null && echo file-ok\n"
        "RUN --mount=type=secret,id=envsec,target=/s wc -c < /s > /size\n")})
    (tmp_path / "secret.txt").write_text("from-a-file")
    proc = dockyard(daemon, "build", "-t", "sec:1", "--secret", f"id=file,src={tmp_path / 'secret.txt'}",
                    "--secret", "id=envsec,env=MY_SECRET", str(ctx), env={"MY_SECRET": "from-env-var"})
    assert proc.returncode == 0, proc.stderr
    assert "file-ok" in proc.stdout and "from-a-file" not in proc.stdout
    saved = daemon.docker("save", "sec:1")
    assert saved.returncode == 0
    assert "from-a-file" not in saved.stdout and "from-env-var" not in saved.stdout
    out = daemon.docker("run", "--rm", "sec:1", "cat", "/size").stdout
    assert out.strip() == str(len("from-env-var"))


def test_dockerfile_from_stdin_outputs_and_iidfile(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {"data.txt": "payload"})
    iid = tmp_path / "iid"
    proc = dockyard(daemon, "build", "-f", "-", "--iidfile", str(iid), "-o", f"type=local,dest={tmp_path / 'out'}",
                    "-o", f"type=tar,dest={tmp_path / 'fs.tar'}", str(ctx),
                    input=b"FROM busybox\nCOPY data.txt /data.txt\nRUN rm /bin/ls\n")
    assert proc.returncode == 0, proc.stderr
    assert iid.read_text().startswith("sha256:")
    assert (tmp_path / "out" / "data.txt").read_text() == "payload"
    assert not (tmp_path / "out" / "bin" / "ls").exists() and (tmp_path / "out" / "bin" / "sh").exists()
    with tarfile.open(tmp_path / "fs.tar") as tar:
        names = tar.getnames()
    assert "data.txt" in names and "bin/ls" not in names


def test_quiet_platform_and_errors(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo hi\n"})
    proc = dockyard(daemon, "build", "-q", str(ctx))
    assert proc.returncode == 0 and proc.stdout.startswith("sha256:") and "Step" not in proc.stdout
    proc = dockyard(daemon, "build", "--platform", "linux/s390x", str(ctx))
    assert proc.returncode == 1 and "not supported" in proc.stderr
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 4\n")
    proc = dockyard(daemon, "build", str(ctx))
    assert proc.returncode == 4 and "returned a non-zero code: 4" in proc.stderr


def test_progress_explains_misses_and_prune(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nARG V=1\nRUN echo $V\n"})
    assert dockyard(daemon, "build", "--progress=plain", str(ctx)).returncode == 0
    proc = dockyard(daemon, "build", "--progress=plain", "--build-arg", "V=2", str(ctx))
    assert "Cache miss: build arg V changed" in proc.stdout, proc.stdout
    proc = dockyard(daemon, "builder", "prune", "-f")
    assert proc.returncode == 0 and "Total reclaimed space" in proc.stdout


def test_tty_progress_view(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN sleep 0.3 && echo slow\n"})
    proc = dockyard(daemon, "build", "--progress=tty", "--no-cache", str(ctx))
    assert proc.returncode == 0, proc.stderr
    assert "\r\x1b[K[+] Building" in proc.stdout and "(2/2) RUN sleep 0.3" in proc.stdout
    assert proc.stdout.rstrip().endswith("FINISHED") and "slow\n" in proc.stdout


def test_incremental_context_follows_edits(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY . /ctx/\nCMD [\"sh\", \"-c\", "
                                                   "\"cd /ctx && find . | sort && cat a.txt\"]\n",
                                     "a.txt": "one", "gone.txt": "x", "d/f": "f", "swap": "file"})
    os.symlink("a.txt", ctx / "link")
    assert dockyard(daemon, "build", "-q", "-t", "inc:1", str(ctx)).returncode == 0
    (ctx / "a.txt").write_text("two")
    (ctx / "gone.txt").unlink()
    (ctx / "swap").unlink()
    (ctx / "swap").mkdir()
    (ctx / "swap" / "inner").write_text("")
    (ctx / "link").unlink()
    os.symlink("d/f", ctx / "link")
    proc = dockyard(daemon, "build", "-t", "inc:1", str(ctx))
    assert proc.returncode == 0, proc.stderr
    out = daemon.docker("run", "--rm", "inc:1").stdout.split()
    assert out == [".", "./Dockerfile", "./a.txt", "./d", "./d/f", "./link", "./swap", "./swap/inner", "two"]
    assert daemon.docker("run", "--rm", "inc:1", "readlink", "/ctx/link").stdout == "d/f\n"
    # an mtime-only change is resent, hashed again and still hits the cache
    os.utime(ctx / "a.txt", (1, 1))
    proc = dockyard(daemon, "build", "-t", "inc:1", str(ctx))
    assert proc.stdout.count("Using cache") == 2, proc.stdout


IGNORE_CASE = {
    "Dockerfile": "FROM busybox\nCOPY . /ctx\nCMD [\"sh\", \"-c\", \"cd /ctx && find . -type f | sort\"]\n",
    ".dockerignore": "# comment\n**/*.tmp\n/secret\ndocs\n!docs/README.md\n*.md\n!keep.md\nsub/**/x\n!sub/a/x\n",
    "a.tmp": "", "deep/er/b.tmp": "", "secret/key": "", "sub/secret": "", "docs/README.md": "",
    "docs/other.txt": "", "x.md": "", "keep.md": "", "main.c": "", "sub/a/x": "", "sub/b/x": "", "sub/b/y": ""}


def test_dockerignore_same_as_the_docker_cli(daemon: Dockyardd, tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx", IGNORE_CASE)
    assert dockyard(daemon, "build", "-q", "-t", "ign:dockyard", str(ctx)).returncode == 0
    assert daemon.docker("build", "-q", "-t", "ign:docker", str(ctx)).returncode == 0
    ours = daemon.docker("run", "--rm", "ign:dockyard").stdout
    theirs = daemon.docker("run", "--rm", "ign:docker").stdout
    assert ours == theirs and "./sub/a/x" in ours and "./sub/b/x" not in ours


def test_copy_of_the_context_root_hides_what_buildkit_hides(daemon: Dockyardd, tmp_path: Path) -> None:
    """`COPY .` sees neither a Dockerfile given on stdin nor the Dockerfile and .dockerignore the
    ignore file excludes (BuildKit's behaviour); an unignored Dockerfile and a subdirectory's
    files of the same names are copied."""
    listing = "FROM busybox\nCOPY . /ctx\nCMD find /ctx -type f\n"
    ctx = context(tmp_path / "ctx", {"app.txt": "a\n", "sub/Dockerfile": "x\n", "sub/.dockerignore": "y\n"})
    proc = dockyard(daemon, "build", "-q", "-t", "hide:stdin", "-f", "-", str(ctx), input=listing.encode())
    assert proc.returncode == 0, proc.stderr
    files = sorted(daemon.docker("run", "--rm", "hide:stdin").stdout.split())
    assert files == ["/ctx/app.txt", "/ctx/sub/.dockerignore", "/ctx/sub/Dockerfile"]
    (ctx / "Dockerfile").write_text(listing)
    (ctx / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
    assert dockyard(daemon, "build", "-q", "-t", "hide:ignored", str(ctx)).returncode == 0
    assert sorted(daemon.docker("run", "--rm", "hide:ignored").stdout.split()) == files
    (ctx / ".dockerignore").write_text("nothing-matches\n")
    assert dockyard(daemon, "build", "-q", "-t", "hide:kept", str(ctx)).returncode == 0
    assert sorted(daemon.docker("run", "--rm", "hide:kept").stdout.split()) == sorted(
        [*files, "/ctx/Dockerfile", "/ctx/.dockerignore"])
