"""The content store: verified commits, resumable ingests, locking, crash safety, bounded memory."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.image import digest as digests
from dockyard.image import writeback
from dockyard.image.content import (
    WRITEBACK_STEP,
    ContentStore,
    DigestMismatch,
    Locked,
    NotFound,
    SizeMismatch,
)


@pytest.fixture
def root() -> Iterator[Path]:
    """A store root removed after the test (large blobs must not linger in pytest's tmp dirs)."""
    path = Path(tempfile.mkdtemp(prefix="dockyard-content-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def store(root: Path) -> ContentStore:
    return ContentStore(root)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Child:
    """A Python child process running a script against the store; killed and reaped on exit.
    Bulk data goes through the file INPUT (root/input: the store ignores it)."""

    def __init__(self, root: Path, script: str) -> None:
        prelude = ("import os, sys, time, shutil\n"
                   "from dockyard.image.content import ContentStore\n"
                   f"store = ContentStore({str(root)!r})\n"
                   f"INPUT = {str(root / 'input')!r}\n")
        self.proc = subprocess.Popen([sys.executable, "-c", prelude + textwrap.dedent(script)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def readline(self, timeout: float = 30) -> str:
        """The child's next line of output (it prints when it reaches the point we wait for)."""
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise AssertionError("child did not report in time")
        return self.proc.stdout.readline().strip()

    def sigkill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def finish(self) -> int:
        self.proc.stdin.close()
        return self.proc.wait(30)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


def ingest_dirs(store: ContentStore) -> list[Path]:
    return sorted(store.ingests_dir.iterdir())


def assert_empty(store: ContentStore) -> None:
    assert list(store.list()) == []
    assert ingest_dirs(store) == []


# -- basic operations ------------------------------------------------------------------------


def test_put_read_round_trip(store: ContentStore) -> None:
    data = b"hello dockyard"
    dgst = store.put(data)
    assert dgst == sha256(data)
    assert store.exists(dgst)
    assert store.size(dgst) == len(data)
    assert store.read(dgst) == data
    with store.open(dgst) as f:
        assert f.read(5) == b"hello"
    assert store.path(dgst) == store.root / "blobs" / "sha256" / dgst[7:]
    assert list(store.list()) == [(dgst, len(data))]
    assert ingest_dirs(store) == []
    assert store.path(dgst).stat().st_mode & 0o777 == 0o444


def test_missing_blob_raises_not_found(store: ContentStore) -> None:
    missing = sha256(b"nope")
    assert not store.exists(missing)
    for call in (store.size, store.open, store.read, store.delete, store.modified):
        with pytest.raises(NotFound, match=missing):
            call(missing)


def test_invalid_digest_is_rejected(store: ContentStore) -> None:
    with pytest.raises(digests.InvalidDigest):
        store.path("sha256:xyz")
    with pytest.raises(digests.InvalidDigest):
        store.writer("r", expected="md5:abc")


def test_delete(store: ContentStore) -> None:
    dgst = store.put(b"x")
    store.delete(dgst)
    assert not store.exists(dgst)
    assert list(store.list()) == []


def test_sha512(store: ContentStore) -> None:
    data = b"sixty-four bytes of hash"
    expected = "sha512:" + hashlib.sha512(data).hexdigest()
    assert store.put(data, expected) == expected
    assert store.path(expected).parent == store.root / "blobs" / "sha512"
    assert store.read(expected) == data
    with store.writer("s512", expected=expected) as w:
        w.write(data)
        assert w.commit() == expected
    assert list(store.list()) == [(expected, len(data))]


# -- verification --------------------------------------------------------------------------


def test_put_digest_mismatch_leaves_nothing(store: ContentStore) -> None:
    wrong = sha256(b"other")
    with pytest.raises(DigestMismatch) as err:
        store.put(b"data", wrong)
    assert err.value.expected == wrong and err.value.actual == sha256(b"data")
    assert wrong in str(err.value) and sha256(b"data") in str(err.value)
    assert_empty(store)


def test_writer_digest_mismatch_leaves_nothing(store: ContentStore) -> None:
    wrong = sha256(b"other")
    w = store.writer("ref", expected=wrong)
    w.write(b"data")
    with pytest.raises(DigestMismatch, match="expected " + wrong):
        w.commit()
    assert isinstance(DigestMismatch(wrong, wrong), ValueError)
    assert_empty(store)
    store.writer("ref").abort()  # the ref is free again


def test_writer_size_mismatch_leaves_nothing(store: ContentStore) -> None:
    w = store.writer("ref", expected=sha256(b"data"), size=10)
    w.write(b"data")
    with pytest.raises(SizeMismatch) as err:
        w.commit()
    assert (err.value.expected, err.value.actual) == (10, 4)
    assert "10" in str(err.value) and "4" in str(err.value)
    assert isinstance(err.value, ValueError)
    assert_empty(store)


def test_commit_without_expectations_returns_digest(store: ContentStore) -> None:
    with store.writer("free") as w:
        w.write(b"abc")
        w.write(b"def")
        assert w.offset == 6
        assert w.commit() == sha256(b"abcdef")


def test_idempotent_commit_refreshes_mtime(store: ContentStore) -> None:
    dgst = store.put(b"same")
    os.utime(store.path(dgst), (1000, 1000))
    with store.writer("again", expected=dgst) as w:
        w.write(b"same")
        assert w.commit() == dgst
    assert store.modified(dgst) > 1000
    os.utime(store.path(dgst), (1000, 1000))
    assert store.put(b"same") == dgst
    assert store.modified(dgst) > 1000
    assert list(store.list()) == [(dgst, 4)]
    assert ingest_dirs(store) == []


def test_two_refs_commit_same_content(store: ContentStore) -> None:
    a, b = store.writer("a"), store.writer("b")
    a.write(b"twin")
    b.write(b"twin")
    assert a.commit() == b.commit() == sha256(b"twin")
    assert list(store.list()) == [(sha256(b"twin"), 4)]
    assert ingest_dirs(store) == []


def test_writer_after_commit_is_closed(store: ContentStore) -> None:
    w = store.writer("r")
    w.write(b"x")
    w.commit()
    with pytest.raises(ValueError, match="closed"):
        w.write(b"y")


# -- resume and locking --------------------------------------------------------------------


def test_resume_in_process_keeps_hash_state(store: ContentStore) -> None:
    data = os.urandom(3 << 20)
    w = store.writer("layer", expected=sha256(data), size=len(data))
    w.write(data[:1234567])
    w.close()
    w = store.writer("layer")
    assert w.offset == 1234567
    assert (w.expected, w.size) == (sha256(data), len(data))  # remembered from the first open
    w.write(data[w.offset:])
    assert w.commit() == sha256(data)
    assert store.read(sha256(data)) == data


def test_writes_crossing_the_writeback_step_commit_intact(store: ContentStore) -> None:
    # The writer flushes and starts writeback every WRITEBACK_STEP bytes, also after a resume.
    data = os.urandom(WRITEBACK_STEP * 2 + 12345)
    w = store.writer("big", expected=sha256(data), size=len(data))
    w.write(data[:WRITEBACK_STEP - 1])
    w.write(data[WRITEBACK_STEP - 1:WRITEBACK_STEP + 7])
    w.close()
    w = store.writer("big")
    for i in range(w.offset, len(data), 777_777):
        w.write(data[i:i + 777_777])
    assert w.commit() == sha256(data)
    assert store.read(sha256(data)) == data
    writeback.start(-1, 0, 1)  # only a hint: a bad descriptor is no error


def test_context_manager_aborts_on_exception_and_keeps_on_close(store: ContentStore) -> None:
    with pytest.raises(RuntimeError), store.writer("boom") as w:
        w.write(b"partial")
        raise RuntimeError
    assert_empty(store)
    with store.writer("keep") as w:
        w.write(b"partial")
    [status] = store.ingests()
    assert (status.ref, status.offset) == ("keep", 7)
    assert store.writer("keep").offset == 7


def test_conflicting_expectation_restarts_ingest(store: ContentStore) -> None:
    with store.writer("r", expected=sha256(b"one")) as w:
        w.write(b"on")
    w = store.writer("r", expected=sha256(b"two"))
    assert w.offset == 0
    w.write(b"two")
    assert w.commit() == sha256(b"two")


def test_ingest_resumes_named_ref(store: ContentStore) -> None:
    data = os.urandom(100_000)
    with store.writer("pull", expected=sha256(data)) as w:
        w.write(data[:40_000])

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
            chunk = self.inner.read(len(b))
            b[:len(chunk)] = chunk
            return len(chunk)

    assert store.ingest(Unseekable(), sha256(data), ref="pull") == sha256(data)
    assert store.read(sha256(data)) == data
    with store.writer("pull2") as w:
        w.write(data[:10])
    assert store.ingest(io.BytesIO(data), ref="pull2") == sha256(data)  # seekable: seeks over
    assert ingest_dirs(store) == []


def test_ingest_failure_keeps_named_ref_and_drops_anonymous(store: ContentStore) -> None:
    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
            raise ConnectionError("network went away")

    with pytest.raises(ConnectionError):
        store.ingest(Failing())
    assert_empty(store)
    with pytest.raises(ConnectionError):
        store.ingest(Failing(), ref="named")
    assert [s.ref for s in store.ingests()] == ["named"]
    assert list(store.list()) == []


def test_second_writer_for_same_ref_is_locked(store: ContentStore) -> None:
    w = store.writer("busy")
    with pytest.raises(Locked, match="busy"):
        store.writer("busy")
    assert not store.abort_ingest("busy")
    w.close()
    store.writer("busy").abort()


def test_resume_across_processes(store: ContentStore, root: Path) -> None:
    data = os.urandom(2 << 20)
    (root / "input").write_bytes(data[:777_777])
    with Child(root, f"""
        w = store.writer("xproc", size={len(data)})
        w.write(open(INPUT, "rb").read())
        w.close()
        """) as child:
        assert child.finish() == 0
    w = store.writer("xproc")
    assert (w.offset, w.size) == (777_777, len(data))
    w.write(data[777_777:])
    assert w.commit() == sha256(data)


def test_concurrent_writer_in_other_process_is_locked(store: ContentStore, root: Path) -> None:
    with Child(root, """
        w = store.writer("shared-ref")
        w.write(b"child")
        print("ready", flush=True)
        sys.stdin.read()
        w.close()
        """) as child:
        assert child.readline() == "ready"
        with pytest.raises(Locked):
            store.writer("shared-ref")
        assert store.abort_stale(0) == 0  # a live writer's ingest is never stale
        assert child.finish() == 0
    w = store.writer("shared-ref")  # released when the child closed it
    assert w.offset == 5
    w.abort()


# -- crash safety --------------------------------------------------------------------------


def test_kill_during_write_leaves_resumable_ingest(store: ContentStore, root: Path) -> None:
    chunk = b"0123456789abcdef" * 4096  # 64 KiB
    total = 64 * len(chunk)
    data = chunk * 64
    with Child(root, f"""
        w = store.writer("crash", expected={sha256(data)!r}, size={total})
        chunk = b"0123456789abcdef" * 4096
        for i in range(64):
            w.write(chunk)
            if i == 20:  # 64 KiB writes bypass the file buffer: 21 chunks are on disk
                print("ready", flush=True)
                time.sleep(0.05)
        time.sleep(60)
        """) as child:
        assert child.readline() == "ready"
        child.sigkill()
    assert list(store.list()) == []
    store.cleanup()  # a named ingest survives start-up repair
    w = store.writer("crash")
    assert 21 * len(chunk) <= w.offset < total
    w.write(data[w.offset:])
    assert w.commit() == sha256(data)
    assert ingest_dirs(store) == []


def test_kill_between_fsync_and_rename(store: ContentStore, root: Path) -> None:
    data = os.urandom(300_000)
    (root / "input").write_bytes(data)
    with Child(root, f"""
        def stop(*args):
            print("ready", flush=True)
            time.sleep(60)
        w = store.writer("commit-crash", expected={sha256(data)!r})
        w.write(open(INPUT, "rb").read())
        os.rename = stop
        w.commit()
        """) as child:
        assert child.readline() == "ready"
        child.sigkill()
    assert not store.exists(sha256(data))
    assert list(store.list()) == []
    store.cleanup()
    w = store.writer("commit-crash")
    assert w.offset == len(data)
    assert w.commit() == sha256(data)
    assert store.read(sha256(data)) == data


def test_kill_between_rename_and_ingest_removal(store: ContentStore, root: Path) -> None:
    data = os.urandom(300_000)
    (root / "input").write_bytes(data)
    with Child(root, f"""
        def stop(*args, **kwargs):
            print("ready", flush=True)
            time.sleep(60)
        w = store.writer("after-rename", expected={sha256(data)!r})
        w.write(open(INPUT, "rb").read())
        shutil.rmtree = stop
        w.commit()
        """) as child:
        assert child.readline() == "ready"
        child.sigkill()
    assert hashlib.sha256(store.read(sha256(data))).hexdigest() == sha256(data)[7:]
    assert len(ingest_dirs(store)) == 1
    store.cleanup()  # the committed ingest's leftovers go
    assert ingest_dirs(store) == []
    assert list(store.list()) == [(sha256(data), len(data))]


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.07, 0.11, 0.17])
def test_kill_at_arbitrary_instants_leaves_only_verified_blobs(store: ContentStore, root: Path,
                                                               delay: float) -> None:
    with Child(root, """
        import random
        print("ready", flush=True)
        for i in range(10_000):
            data = os.urandom(random.randrange(1, 400_000))
            if i % 2:
                store.put(data)
            else:
                with store.writer(f"ref-{i % 3}") as w:
                    w.write(data)
                    w.commit()
        """) as child:
        assert child.readline() == "ready"
        time.sleep(0.05 + delay)
        child.sigkill()
    for dgst, size in store.list():
        data = store.read(dgst)
        assert (sha256(data), len(data)) == (dgst, size)
    store.cleanup()
    assert all(s.ref.startswith("ref-") for s in store.ingests())
    for status in list(store.ingests()):  # every survivor can be resumed and finished
        w = store.writer(status.ref)
        w.write(b"tail")
        w.commit()


def test_cleanup_drops_anonymous_and_half_created_ingests(store: ContentStore, root: Path) -> None:
    with Child(root, """
        def stop(*args):
            print("ready", flush=True)
            time.sleep(60)
        os.rename = stop
        store.put(b"anonymous data")
        """) as child:
        assert child.readline() == "ready"
        child.sigkill()
    (store.ingests_dir / "half").mkdir()  # crashed between mkdir and meta.json
    (store.blobs / "sha256").mkdir(exist_ok=True)
    (store.blobs / "sha256" / "stray.tmp").write_bytes(b"junk")
    with store.writer("keep-me") as w:
        w.write(b"resumable")
    assert len(ingest_dirs(store)) == 3
    store.cleanup()
    assert [s.ref for s in store.ingests()] == ["keep-me"]
    assert len(ingest_dirs(store)) == 1
    assert list(store.list()) == []
    assert not (store.blobs / "sha256" / "stray.tmp").exists()


def test_abort_stale(store: ContentStore) -> None:
    with store.writer("old") as w:
        w.write(b"old")
    with store.writer("new") as w:
        w.write(b"new")
    held = store.writer("held")
    held.write(b"x")
    for ref in ("old", "held"):
        directory = store.ingests_dir / hashlib.sha256(ref.encode()).hexdigest()
        os.utime(directory / "data", (time.time() - 7200,) * 2)
    assert store.abort_stale(3600) == 1
    assert sorted(s.ref for s in store.ingests()) == ["held", "new"]
    held.abort()


# -- large content -------------------------------------------------------------------------


def _ingest_generated(root: Path, size: int) -> int:
    """Ingest `size` generated bytes in a fresh interpreter; its peak RSS in KiB."""
    with Child(root, f"""
        import hashlib, resource

        class Generated:
            def __init__(self):
                self.left = {size}
                self.block = bytes(range(256)) * 4096
                self.hash = hashlib.sha256()
            def read(self, n=-1):
                n = self.left if n < 0 else min(n, self.left)
                out = (self.block * (n // len(self.block) + 1))[:n]
                self.left -= n
                self.hash.update(out)
                return out

        stream = Generated()
        dgst = store.ingest(stream, size={size})
        print(dgst, "sha256:" + stream.hash.hexdigest(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """) as child:
        got, expected, maxrss_kib = child.readline(timeout=120).split()
        assert child.finish() == 0
    assert got == expected
    assert ContentStore(root).size(got) == size
    return int(maxrss_kib)


def test_large_stream_uses_bounded_memory(root: Path) -> None:
    # Peak memory must not grow with the blob: compare a 20 MiB and a 200 MiB ingest (the
    # interpreter's own footprint varies with the machine, the difference must not).
    small = _ingest_generated(root, 20 << 20)
    large = _ingest_generated(root, 200 << 20)
    assert large - small < 32 * 1024, f"peak RSS {small // 1024} MiB for 20 MiB, {large // 1024} MiB for 200 MiB"


def test_oversized_stream_is_refused_while_writing(store: ContentStore) -> None:
    announced = 1024

    class Endless(io.RawIOBase):
        """A hostile stream far longer than announced; counts what was read from it."""

        read_total = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[override]
            self.read_total += len(b)
            b[:] = b"x" * len(b)
            return len(b)

    stream = Endless()
    with pytest.raises(SizeMismatch):
        store.ingest(io.BufferedReader(stream), size=announced)
    assert stream.read_total < 4 * 1024 * 1024  # stopped after the first chunk, not at EOF
    assert list(store.list()) == []
    assert list(store.ingests()) == []


def test_ingest_of_stored_content_does_not_read_the_stream(store: ContentStore) -> None:
    data = b"already here"
    d = store.put(data)

    class Unreadable(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[override]
            raise AssertionError("the stream was read although its content is stored")

    assert store.ingest(io.BufferedReader(Unreadable()), expected=d, size=len(data)) == d
