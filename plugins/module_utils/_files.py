# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""File handling for files that must never be left half-written: keystores, EKM configuration, backups.

Every write goes to a temporary file in the target's own directory and is renamed over the
target only once it is complete and on disk, so a crash or a full disk leaves either the old
file or the new one, never a mixture.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import time

_CHUNK = 1024 * 1024

# Errors from os.link that mean "this filesystem has no hard links", not "something is wrong".
_NO_LINK_ERRNOS = frozenset(
    code for code in (getattr(errno, name, None) for name in ('EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK'))
    if code is not None
)


class FileError(Exception):
    """A file operation failed; the message names the path and the reason."""


def _reason(exc):
    return exc.strerror or str(exc)


def fsync_dir(directory):
    """Make a rename in ``directory`` durable (where the filesystem can sync a directory at all)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some filesystems (certain network and FUSE mounts) cannot fsync a directory at all;
        # the rename has still happened, and there is nothing better to do there.
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _keep_owner(fd, target):
    # EKM runs as its own user: a keystore replaced by root must still belong to that user, or the
    # server can no longer read its 0600 keys. Without the privilege to do so, keep what we can.
    try:
        target_stat = os.stat(target)
    except FileNotFoundError:
        return
    temp_stat = os.fstat(fd)
    if (temp_stat.st_uid, temp_stat.st_gid) == (target_stat.st_uid, target_stat.st_gid):
        return
    try:
        os.fchown(fd, target_stat.st_uid, target_stat.st_gid)
    except PermissionError:
        try:
            os.fchown(fd, -1, target_stat.st_gid)
        except PermissionError:
            pass


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably, with permissions ``mode``.

    A symlink at ``path`` is followed: its target is replaced and the link stays. An existing
    file's owner and group are kept where the privileges allow. On any error the original file
    is untouched and no temporary file is left behind.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError('atomic_write() needs bytes, not %s' % type(data).__name__)
    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    try:
        # mkstemp creates the file 0600, so key material is never readable by others, even briefly.
        fd, temp = tempfile.mkstemp(prefix='.%s.' % name, suffix='.tmp', dir=directory)
    except OSError as exc:
        raise FileError('Cannot write %s: cannot create a temporary file in %s: %s.' % (path, directory, _reason(exc))) from exc
    replaced = False
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            _keep_owner(fd, target)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
        replaced = True
    except OSError as exc:
        raise FileError('Cannot write %s: %s; the file was left unchanged.' % (path, _reason(exc))) from exc
    finally:
        if not replaced:
            _remove_quietly(temp)
    try:
        fsync_dir(directory)
    except OSError as exc:
        raise FileError('%s was written, but flushing its directory %s to disk failed: %s.'
                        % (path, directory, _reason(exc))) from exc


def read_bytes(path: str) -> bytes | None:
    """The content of ``path``; None when it does not exist."""
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FileError('Cannot read %s: %s.' % (path, _reason(exc))) from exc


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str | None:
    """Hex SHA-256 of the file at ``path``, read in chunks; None when it does not exist."""
    digest = hashlib.sha256()
    try:
        with open(path, 'rb') as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b''):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FileError('Cannot read %s: %s.' % (path, _reason(exc))) from exc
    return digest.hexdigest()


def _backup_name(path):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')
    return '%s.%s.bak' % (path, stamp)


def _install_new(temp, dest):
    """Give ``temp`` the name ``dest`` unless ``dest`` exists; False when it does."""
    try:
        os.link(temp, dest)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINK_ERRNOS:
            raise
    # Without hard links: claim the name exclusively first, then rename the finished copy onto it.
    try:
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    os.replace(temp, dest)
    return True


def backup_copy(path: str) -> str | None:
    """Copy ``path`` (content and mode) to ``<path>.<UTC timestamp>.bak`` beside it; None when it does not exist.

    The copy is complete and on disk before it gets its name, and an existing file of that name
    is never replaced.
    """
    if not os.path.exists(path):
        return None
    absolute = os.path.abspath(path)
    directory, name = os.path.split(absolute)
    try:
        fd, temp = tempfile.mkstemp(prefix='.%s.' % name, suffix='.tmp', dir=directory)
        os.close(fd)
    except OSError as exc:
        raise FileError('Cannot back up %s: cannot create a temporary file in %s: %s.' % (path, directory, _reason(exc))) from exc
    try:
        shutil.copy2(path, temp)
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        for _attempt in range(1000):
            dest = _backup_name(path)
            if _install_new(temp, dest):
                break
        else:
            raise FileError('Cannot back up %s: every backup name tried already exists.' % path)
        fsync_dir(directory)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and not os.path.exists(path):
            # Removed between the check and the copy: as if it had never been there.
            return None
        raise FileError('Cannot back up %s: %s.' % (path, _reason(exc))) from exc
    finally:
        _remove_quietly(temp)
    return dest


class DirLock:
    """Exclusive advisory lock on a directory, for a read-modify-write of the files in it.

    ``path`` is the directory itself or a file in it. The lock is taken on the directory's own
    file descriptor (``flock``), so no lock file is left among EKM's files. It is released when
    the ``with`` block ends or the process dies. Not re-entrant: a second DirLock on the same
    directory in the same process waits for the first, like any other holder.
    """

    def __init__(self, path: str, timeout: float = 60.0):
        self.path = path
        self.timeout = timeout
        self.directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        self._fd = None

    def __enter__(self):
        try:
            fd = os.open(self.directory, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
        except OSError as exc:
            raise FileError('Cannot lock the directory %s: %s.' % (self.directory, _reason(exc))) from exc
        deadline = time.monotonic() + max(0.0, self.timeout)
        delay = 0.01
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise FileError('The directory %s is locked by another process (waited %g seconds): another '
                                        'tapecrypt.ekm task is changing files there; try again once it has finished.'
                                        % (self.directory, self.timeout)) from None
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, 0.25)
        except OSError as exc:
            os.close(fd)
            raise FileError('Cannot lock the directory %s: %s.' % (self.directory, _reason(exc))) from exc
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        return False


def ensure_not_inside(path: str, parents: list[str]) -> None:
    """Refuse ``path`` when it resolves to one of ``parents`` or anywhere below one (symlinks resolved).

    Empty entries in ``parents`` are skipped, so optional paths can be passed as they are.
    """
    if isinstance(parents, str):
        parents = [parents]
    real = os.path.realpath(path)
    for parent in parents:
        if not parent:
            continue
        real_parent = os.path.realpath(parent)
        if real == real_parent or real.startswith(real_parent.rstrip(os.sep) + os.sep):
            shown = path if real == path else '%s (resolved to %s)' % (path, real)
            raise FileError('%s is inside %s; it must be outside that directory.' % (shown, parent))
