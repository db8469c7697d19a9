"""Docker's volume population: the first mount of an empty volume gets the image's content at the
mount's destination, with ownership, modes, times, xattrs, hard links and symlinks (as symlinks)
kept. Every step works on directory file descriptors with O_NOFOLLOW, so neither a symlink in the
image nor one planted in the volume leads the copy out of either tree."""

from __future__ import annotations

import contextlib
import os
import stat

from dockyard.runtime.paths import secure_join

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
Links = dict[tuple[int, int], str]  # (dev, inode) of a source file -> its copy, relative to the volume


def populate(rootfs: str, destination: str, volume_path: str) -> bool:
    """Copy rootfs/destination (resolved inside rootfs) into volume_path if the former is a
    directory and the latter is empty; whether anything was copied."""
    try:
        src = os.open(secure_join(rootfs, destination), _DIR)
    except OSError:  # missing, not a directory, or a symlink that raced in
        return False
    try:
        dst = os.open(volume_path, _DIR)
        try:
            if os.listdir(dst):
                return False
            _copy_children(src, dst, dst, "", {})
            _copy_meta(src, dst, os.fstat(src))
            return True
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_children(src: int, dst: int, top: int, prefix: str, links: Links) -> None:
    for name in os.listdir(src):
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            child_src, child_dst = os.open(name, _DIR, dir_fd=src), os.open(name, _DIR, dir_fd=dst)
            try:
                _copy_children(child_src, child_dst, top, prefix + name + "/", links)
                _copy_meta(child_src, child_dst, st)
            finally:
                os.close(child_src)
                os.close(child_dst)
        elif stat.S_ISREG(mode):
            first = links.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
            if first is not None:
                os.link(first, name, src_dir_fd=top, dst_dir_fd=dst, follow_symlinks=False)
                continue
            _copy_file(src, dst, name, st)
            if st.st_nlink > 1:
                links[(st.st_dev, st.st_ino)] = prefix + name
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            os.mknod(name, mode, st.st_rdev, dir_fd=dst)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
            os.chmod(name, stat.S_IMODE(mode), dir_fd=dst)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
        # sockets are not copied (as Docker's archiver skips them)


def _copy_file(src: int, dst: int, name: str, st: os.stat_result) -> None:
    fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
    try:
        fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dst)
        try:
            try:
                while os.copy_file_range(fin, fout, 1 << 30):
                    pass
            except OSError:  # not supported between these filesystems: a plain copy
                os.lseek(fin, 0, os.SEEK_SET)
                os.lseek(fout, 0, os.SEEK_SET)
                os.ftruncate(fout, 0)
                while chunk := os.read(fin, 1 << 20):
                    os.write(fout, chunk)
            _copy_meta(fin, fout, st)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_meta(src: int, dst: int, st: os.stat_result) -> None:
    """Ownership, then mode (chown clears set-id bits), xattrs and times, from src to dst."""
    os.fchown(dst, st.st_uid, st.st_gid)
    os.fchmod(dst, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):
        for key in os.listxattr(src):
            with contextlib.suppress(OSError):
                os.setxattr(dst, key, os.getxattr(src, key))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
