# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one way tapecrypt.ekm puts a file in place: keystores, EKM configuration, sync state, backups.

* ``atomic_write`` replaces one file: every byte goes to a temporary file in the target's own
  directory, which gets its owner, group and mode and is flushed to disk before it is renamed
  over the target. A crash or a full disk leaves the old file or the new one, never a mixture.
* ``FileSet`` installs several files all or nothing: every file is staged complete, then a
  journal is written, then the files are renamed into place. A run killed at any moment is
  completed (or undone) from the journal by ``recover`` on the next run.
* ``backup_copy`` keeps the file about to be replaced as ``<file>.<UTC time>.bak``, 0600.
* ``FileAttributes`` is the one owner, group and mode policy (see there).

Every temporary name this module makes starts with ``MARK``, a prefix EKM never uses, so
``remove_temporaries`` and ``remove_strays`` remove only the project's own leftovers and never a
file that EKM itself is writing (it writes ``.KeyGroups.xml.<random>.tmp`` files of its own).
Writers hold the directory's ``DirLock`` while their temporary files exist, so a marked file
found under the lock belongs to a run that died.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import grp
import hashlib
import json
import os
import pwd
import shutil
import signal
import stat
import tempfile
import time
import uuid

_CHUNK = 1024 * 1024

MARK = '.tapecrypt-'
TEMP_SUFFIX = '.tmp'
TEMP_DIR_SUFFIX = '.tmpdir'
STAGED_SUFFIX = '.staged'
UNDO_SUFFIX = '.undo'
ROLLED_BACK_SUFFIX = '.rolled-back'
BACKUP_SUFFIX = '.bak'
JOURNAL_VERSION = 1
DEFAULT_MODE = 0o600

# Errors from os.link that mean "this filesystem has no hard links", not "something is wrong".
_NO_LINK_ERRNOS = frozenset(
    code for code in (getattr(errno, name, None) for name in ('EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK'))
    if code is not None
)


# The fault suite (tests/fault) kills a run at a named point: the environment variable names the point and,
# after a colon, which of its occurrences (``rename:2``). Read once at import; unset (always, outside that
# suite) every fault_point() call is one comparison with None. Not a module option, nothing a task can set.
_FAULT_ENV = 'TAPECRYPT_FAULT_POINT'
_FAULT = os.environ.get(_FAULT_ENV) or None
_FAULT_SEEN = {}


def fault_point(name):
    """Kill this process with SIGKILL here when the fault suite asks for it (see ``_FAULT_ENV``)."""
    if _FAULT is None:
        return
    wanted, _sep, nth = _FAULT.partition(':')
    if wanted != name:
        return
    _FAULT_SEEN[name] = _FAULT_SEEN.get(name, 0) + 1
    if _FAULT_SEEN[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


class FileError(Exception):
    """A file operation failed; the message names the path and the reason.

    ``replaced`` is True when the file had already been replaced when a later step failed.
    """

    replaced = False


class InstallError(FileError):
    """A set install failed after its journal was written.

    ``rolled_back`` says whether the files already renamed were put back (and the journal
    removed); when False the journal is kept and the next run completes or undoes the install.
    """

    def __init__(self, message, rolled_back, reason=None):
        super().__init__(message)
        self.rolled_back = rolled_back
        self.reason = reason or message


def _reason(exc):
    return getattr(exc, 'strerror', None) or str(exc)


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


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _new_id():
    return uuid.uuid4().hex[:12]


def temp_path(target, kind=TEMP_SUFFIX, tag=None):
    """A fresh marked name beside ``target`` (already resolved): ``.tapecrypt-[<tag>-]<id>.<name><kind>``."""
    directory, name = os.path.split(target)
    label = '%s-%s' % (tag, _new_id()) if tag else _new_id()
    return os.path.join(directory, '%s%s.%s%s' % (MARK, label, name, kind))


def create_file(path, data, mode=DEFAULT_MODE, after_write=None):
    """Create ``path`` (it must not exist; a symlink there is refused) with ``data``, flushed to the device.

    ``after_write(fd)`` runs after the bytes are written and before the flush: the place to set
    the owner and mode of a file that is renamed into place later.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError('create_file() needs bytes, not %s' % type(data).__name__)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), mode)
    try:
        _write_all(fd, data)
        if after_write is not None:
            after_write(fd)
        os.fsync(fd)
    finally:
        os.close(fd)
    fault_point('temporary-written')


# ---------------------------------------------------------------------------------------------
# The owner, group and mode policy


def _account_id(kind, value):
    """The numeric id of a user (``kind`` 'user') or group ('group') given by name or number."""
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid if kind == 'user' else grp.getgrnam(value).gr_gid
    except KeyError:
        raise FileError('There is no %s %r on this host for the file; create it first (the tapecrypt.ekm.server role '
                        'does) or give another one. Nothing was changed.' % (kind, value)) from None


def parse_mode(mode):
    """A numeric mode from an int or an octal string; None for None and for symbolic modes (``u=rw,g=r``)."""
    if mode is None or isinstance(mode, int):
        return mode
    text = str(mode).strip()
    if text and all(c in '01234567' for c in text):
        return int(text, 8)
    return None


class FileAttributes:
    """Owner, group and mode of a file being put in place, applied to the temporary file before its rename.

    The policy, the same for every file tapecrypt.ekm writes: a value that is given wins (and
    failing to apply it is an error, before anything is replaced); otherwise the replaced file's
    owner, group and mode are kept (the owner where the privileges allow: EKM runs as its own
    user and must still read its 0600 keystore); a new file gets ``default_mode`` (0600) and the
    writer's own user. Symbolic modes are not handled here (``mode`` is None for them); the
    Ansible module applies them after the rename, starting from the private default.
    """

    def __init__(self, owner=None, group=None, mode=None, default_mode=DEFAULT_MODE):
        self.owner = owner
        self.group = group
        self.mode = parse_mode(mode)
        self.default_mode = default_mode

    @classmethod
    def from_params(cls, params):
        """From an Ansible module's file options (``owner``, ``group``, ``mode``)."""
        return cls(params.get('owner'), params.get('group'), params.get('mode'))

    def check(self):
        """Refuse an owner or group that does not exist on this host (FileError), before anything is written."""
        for kind, value in (('user', self.owner), ('group', self.group)):
            if value is not None:
                _account_id(kind, value)

    def apply(self, fd, path, replaced):
        """Give the open file ``fd`` (about to become ``path``) its owner, group and mode.

        ``replaced`` is the ``os.stat`` of the file it replaces, or None.
        """
        uid = _account_id('user', self.owner) if self.owner is not None else (replaced.st_uid if replaced else -1)
        gid = _account_id('group', self.group) if self.group is not None else (replaced.st_gid if replaced else -1)
        current = os.fstat(fd)
        if (uid in (-1, current.st_uid)) and (gid in (-1, current.st_gid)):
            pass
        elif self.owner is not None or self.group is not None:
            try:
                os.fchown(fd, uid, gid)
            except OSError as exc:
                raise FileError('Cannot give %s the owner %s and group %s: %s. Nothing was changed.'
                                % (path, self.owner or uid, self.group or gid, _reason(exc))) from exc
        else:
            _keep_owner(fd, uid, gid)
        # After the chown, which clears set-id bits.
        mode = self.mode
        if mode is None:
            mode = stat.S_IMODE(replaced.st_mode) if replaced is not None else self.default_mode
        os.fchmod(fd, mode)


def _keep_owner(fd, uid, gid):
    try:
        os.fchown(fd, uid, gid)
    except PermissionError:
        # Without the privilege to give the file away, keep the group at least, where we belong to it.
        try:
            os.fchown(fd, -1, gid)
        except PermissionError:
            pass


def _stat_or_none(path):
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------
# One file


def atomic_write(path, data, owner=None, group=None, mode=None, attributes=None, prepare=None):
    """Replace ``path`` with ``data`` atomically and durably.

    Owner, group and mode follow ``FileAttributes`` (``attributes``, or one made from ``owner``,
    ``group`` and ``mode``) and are set on the temporary file before the rename; so are the file
    options Ansible applies itself, through ``prepare(temporary_path)``. A symlink at
    ``path`` is followed: its target is replaced and the link stays. The caller holds the
    directory's ``DirLock``. On any error the original file is untouched and no temporary file
    is left behind.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError('atomic_write() needs bytes, not %s' % type(data).__name__)
    attributes = attributes or FileAttributes(owner, group, mode)
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    temp = temp_path(target)
    replaced = _stat_or_none(target)
    try:
        create_file(temp, data, after_write=lambda fd: attributes.apply(fd, path, replaced))
        if prepare is not None:
            prepare(temp)
    except FileNotFoundError as exc:
        raise FileError('Cannot write %s: cannot create a temporary file in %s: %s.' % (path, directory, _reason(exc))) from exc
    except OSError as exc:
        _remove_quietly(temp)
        raise FileError('Cannot write %s: %s; the file was left unchanged.' % (path, _reason(exc))) from exc
    except BaseException:
        _remove_quietly(temp)
        raise
    try:
        fault_point('rename')
        os.replace(temp, target)
    except OSError as exc:
        _remove_quietly(temp)
        raise FileError('Cannot write %s: %s; the file was left unchanged.' % (path, _reason(exc))) from exc
    try:
        fsync_dir(directory)
    except OSError as exc:
        error = FileError('%s was written, but flushing its directory %s to disk failed: %s.'
                          % (path, directory, _reason(exc)))
        error.replaced = True
        raise error from exc


def _backup_name(path):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')
    return '%s.%s%s' % (path, stamp, BACKUP_SUFFIX)


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
    """Copy ``path`` to ``<file>.<UTC timestamp>.bak`` beside the real file; None when it does not exist.

    The one backup copy of the project, for every file replaced: mode 0600 from the start (a
    keystore's or a configuration's secrets are never readable by others, not even for a
    moment), owned by the writer, the original's modification time kept; complete and on disk
    before it gets its name, and an existing file of that name is never replaced. The caller
    holds the directory's ``DirLock``.
    """
    real = os.path.realpath(path)
    try:
        source_stat = os.stat(real)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FileError('Cannot back up %s: %s.' % (path, _reason(exc))) from exc
    data = read_bytes(real)
    if data is None:
        # Removed between the check and the copy: as if it had never been there.
        return None
    temp = temp_path(real)
    try:
        create_file(temp, data, mode=0o600,
                    after_write=lambda fd: os.utime(fd, ns=(source_stat.st_atime_ns, source_stat.st_mtime_ns)))
        for _attempt in range(1000):
            dest = _backup_name(real)
            if _install_new(temp, dest):
                break
        else:
            raise FileError('Cannot back up %s: every backup name tried already exists.' % path)
        fsync_dir(os.path.dirname(real))
    except OSError as exc:
        raise FileError('Cannot back up %s: %s.' % (path, _reason(exc))) from exc
    finally:
        _remove_quietly(temp)
    return dest


def remove_temporaries(directory):
    """Remove the project's temporary files (``.tapecrypt-*.tmp``) and work directories (``.tapecrypt-*.tmpdir``,
    ``private_workdir``) that a killed run left in ``directory``.

    Call it under the directory's ``DirLock``. Names without the marker (EKM's own temporary
    files) and anything that is neither a regular file nor a directory (a symlink, say) are never
    touched. Returns the removed paths.
    """
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in sorted(names):
        if not name.startswith(MARK):
            continue
        path = os.path.join(directory, name)
        mode = os.lstat(path).st_mode
        if name.endswith(TEMP_SUFFIX) and stat.S_ISREG(mode):
            os.unlink(path)
            removed.append(path)
        elif name.endswith(TEMP_DIR_SUFFIX) and stat.S_ISDIR(mode):
            shutil.rmtree(path)
            removed.append(path)
    return removed


@contextlib.contextmanager
def private_workdir(beside, label):
    """A new directory (mode 0700) beside the file ``beside``, ``.tapecrypt-<label>-<random>.tmpdir``, removed at the end.

    For copies of a keystore that a tool must read or write as a file. The caller holds the
    directory's ``DirLock``, so a run killed before the removal leaves a marked directory that the
    next run removes under the lock (``remove_temporaries``); files in it are created 0600
    (``create_file``).
    """
    directory = os.path.dirname(os.path.realpath(beside))
    path = tempfile.mkdtemp(prefix='%s%s-' % (MARK, label), suffix=TEMP_DIR_SUFFIX, dir=directory)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_FILE_TYPES = ((stat.S_ISFIFO, 'a FIFO'), (stat.S_ISCHR, 'a character device'), (stat.S_ISBLK, 'a block device'),
               (stat.S_ISSOCK, 'a socket'), (stat.S_ISDIR, 'a directory'))


def _file_type(mode):
    return next((name for test, name in _FILE_TYPES if test(mode)), 'not a regular file')


def open_regular(path: str):
    """Open ``path`` for reading (a symlink followed), refusing anything that is not a regular file.

    EKM's files are regular files; a FIFO would block a reader forever and a device such as
    ``/dev/zero`` never ends. The file is opened without waiting (``O_NONBLOCK``, so a FIFO does not
    block the open) and checked on the open descriptor, so nothing is read from anything else.
    Returns a binary file object; FileNotFoundError when it does not exist.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileError('%s is %s, not a regular file; an EKM file must be a regular file (or a symlink to '
                            'one). Nothing was read or changed.' % (path, _file_type(mode)))
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, 'rb')


def read_bytes(path: str) -> bytes | None:
    """The content of ``path``; None when it does not exist. Anything but a regular file is refused (FileError)."""
    try:
        with open_regular(path) as handle:
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
        with open_regular(path) as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b''):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FileError('Cannot read %s: %s.' % (path, _reason(exc))) from exc
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# A set of files, all or nothing


def _put_in_place(source, target):
    """The one rename that installs a staged file; tests break it to simulate a kill."""
    fault_point('rename')
    os.replace(source, target)
    fsync_dir(os.path.dirname(target))


def _link_or_copy(source, dest):
    try:
        os.link(source, dest)
    except OSError:
        # Without hard links, a copy with the same owner and mode, so that an undo puts back the file as it was.
        replaced = os.stat(source)
        create_file(dest, read_bytes(source), after_write=lambda fd: FileAttributes().apply(fd, source, replaced))


def _write_journal(path, journal):
    atomic_write(path, (json.dumps(journal, indent=2, sort_keys=True) + '\n').encode('utf-8'), mode=0o600)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


class FileSet:
    """Files staged beside their targets and installed all or nothing, with a journal.

    ``stage`` each file (complete, flushed, with its owner, group and mode), check the staged
    files if needed (``staged``), then ``install``: back up, write the journal, rename every file
    into place, run ``after`` (for example to record what was installed), drop the journal. A
    process killed before the journal leaves only marked stray files (``remove_strays``); after
    it, ``recover`` completes the install, or undoes it when a staged file was lost. The caller
    holds the ``DirLock`` of every directory involved (``lock_dirs``).
    """

    def __init__(self, journal, tag):
        self.journal = journal
        self.tag = tag
        self.txid = '%s-%s' % (datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S'), uuid.uuid4().hex[:8])
        self.items = []
        self._journal_written = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        # An ordinary failure before the journal leaves nothing behind (SystemExit included: an Ansible module's
        # fail_json, from a prepare step); once the journal exists its files are the journal's, and a kill (no
        # exception handling at all) leaves them to remove_strays().
        if exc_type is not None and issubclass(exc_type, (Exception, SystemExit)) and not self._journal_written:
            self.discard()
        return False

    @property
    def label(self):
        return 'tapecrypt-%s-%s' % (self.tag, self.txid)

    def _aside(self, target, suffix):
        directory, name = os.path.split(target)
        return os.path.join(directory, '.%s.%s%s' % (self.label, name, suffix))

    def stage(self, name, path, data, old, attributes=None, prepare=None):
        """Write ``data`` complete beside ``path`` (symlinks resolved); ``old`` is the sha256 the
        target has now (None: it does not exist). ``prepare(staged_path)`` runs last, for file
        options Ansible applies itself (SELinux context, attributes). Returns the staged path."""
        target = os.path.realpath(path)
        replaced = _stat_or_none(target)
        attributes = attributes or FileAttributes()
        item = {'name': name, 'path': target, 'old': old, 'new': sha256_bytes(data), 'undo': None,
                'staged': self._aside(target, STAGED_SUFFIX)}
        self.items.append(item)
        try:
            create_file(item['staged'], data, after_write=lambda fd: attributes.apply(fd, path, replaced))
        except OSError as exc:
            # os.write names no file (a full disk says only "No space left on device").
            raise FileError('Cannot write the new version of %s beside it (%s): %s.'
                            % (target, os.path.basename(item['staged']), _reason(exc))) from exc
        if prepare is not None:
            prepare(item['staged'])
        return item['staged']

    def staged(self, name):
        return [item['staged'] for item in self.items if item['name'] == name][0]

    def discard(self):
        """Remove what this set left beside its targets (after an ordinary failure before the journal)."""
        for item in self.items:
            _remove_quietly(item['staged'])
            if item['undo']:
                _remove_quietly(item['undo'])

    def install(self, backup=(), payload=None, after=None):
        """Install every staged file; ``backup``: names of the files to keep a ``backup_copy`` of.

        Returns the backup copies made, name -> path. A failure before the journal exists changes nothing; one
        during the renames puts back what was renamed (``InstallError``); one after them (in
        ``after``) leaves the journal for ``recover``.
        """
        backups = {}
        try:
            self._prepare(backup, backups)
            _write_journal(self.journal, {'version': JOURNAL_VERSION, 'tag': self.tag, 'txid': self.txid,
                                          'started': _now(), 'files': self.items, 'payload': payload})
        except Exception:
            # An ordinary failure cleans up after itself, the backup copies it made included (no file was replaced,
            # so nothing was changed); a killed process leaves these to remove_strays().
            self.discard()
            for copy in backups.values():
                if copy:
                    _remove_quietly(copy)
            raise
        self._journal_written = True
        fault_point('journal-written')
        renamed = 0
        try:
            for item in self.items:
                _put_in_place(item['staged'], item['path'])
                renamed += 1
            if after is not None:
                after(payload)
        except (OSError, FileError) as exc:
            if renamed < len(self.items):
                self._roll_back_now(exc)
            raise InstallError('Installing the files failed after all of them were in place (%s). The journal %s is '
                               'kept: the next run completes the install before anything else.'
                               % (_reason(exc), self.journal), rolled_back=False, reason=_reason(exc)) from exc
        _finish(self.journal, self.items)
        return backups

    def _prepare(self, backup, backups):
        """Flush the staged files' directories, then make the backup copies (into ``backups``) and undo links."""
        for directory in sorted({os.path.dirname(item['staged']) for item in self.items}):
            fsync_dir(directory)
        for item in self.items:
            if item['old'] is None:
                continue
            if item['name'] in backup:
                backups[item['name']] = backup_copy(item['path'])
            item['undo'] = self._aside(item['path'], UNDO_SUFFIX)
            try:
                _link_or_copy(item['path'], item['undo'])
            except OSError as exc:
                raise FileError('Cannot keep the current %s aside (%s) for an undo: %s.'
                                % (item['path'], os.path.basename(item['undo']), _reason(exc))) from exc

    def _roll_back_now(self, exc):
        try:
            states = [_item_state(item, self.tag, self.journal) for item in self.items]
            _roll_back(self.journal, self.items, states, self.label)
        except (OSError, FileError) as second:
            raise InstallError('Installing the files failed (%s), and putting back the files already installed failed '
                               'too (%s). The journal %s is kept: the next run completes or undoes the install before '
                               'anything else.' % (_reason(exc), _reason(second), self.journal), rolled_back=False,
                               reason=_reason(exc)) from exc
        raise InstallError('Installing the files failed (%s). The files already installed were put back; nothing was '
                           'changed.' % _reason(exc), rolled_back=True, reason=_reason(exc)) from exc


def read_journal(journal):
    """The journal of an interrupted install at ``journal``, or None."""
    data = read_bytes(journal)
    if data is None:
        return None
    try:
        content = json.loads(data.decode('utf-8'))
        if not isinstance(content, dict) or not isinstance(content.get('files'), list):
            raise ValueError('unknown layout')
    except ValueError:
        raise FileError('The journal %s of an interrupted install is unreadable, so it cannot be told how far that '
                        'install got. Inspect the files it names by hand, then remove it. Nothing was changed.' % journal) from None
    return content


def _item_state(item, tag, journal):
    current = sha256_file(item['path'])
    if current == item['new']:
        return 'done'
    if current == item['old']:
        return 'pending' if sha256_file(item['staged']) == item['new'] else 'lost'
    raise FileError('A previous %s was interrupted during its install, and %s has since been changed by something else '
                    '(it is neither the version before nor the one after that %s). Nothing was touched; compare it with '
                    'the backups, then remove %s and run again.' % (tag, item['path'], tag, journal))


def _finish(journal, items):
    for item in items:
        _remove_quietly(item['staged'])
        if item.get('undo'):
            _remove_quietly(item['undo'])
    _remove_quietly(journal)
    fsync_dir(os.path.dirname(os.path.abspath(journal)))


def recover(journal, after=None):
    """Complete or undo the install that ``journal`` records; a report, or None when there is no journal.

    The journal is written only once every staged file is complete, so completing is the normal
    way out (and ``after`` runs with the journal's payload, as it would have). Undoing (from the
    undo links) is for a staged file that disappeared. A file that is neither the old nor the new
    version was changed by someone else and stops the recovery, touching nothing.
    """
    content = read_journal(journal)
    if content is None:
        return None
    tag = content.get('tag') or 'install'
    items = content['files']
    states = [_item_state(item, tag, journal) for item in items]
    if 'lost' not in states:
        for item, state in zip(items, states):
            if state == 'pending':
                _put_in_place(item['staged'], item['path'])
        if after is not None:
            after(content.get('payload'))
        _finish(journal, items)
        return {'action': 'completed', 'txid': content.get('txid'), 'files': [i['path'] for i in items]}
    rolled = _roll_back(journal, items, states, 'tapecrypt-%s-%s' % (tag, content.get('txid')))
    return {'action': 'rolled_back', 'txid': content.get('txid'), 'files': rolled}


def _roll_back(journal, items, states, label):
    for item, state in zip(items, states):
        if state == 'done' and item['old'] is not None and (not item['undo'] or sha256_file(item['undo']) != item['old']):
            raise FileError('A previous install was interrupted; it can neither be completed (a staged file is missing) '
                            'nor undone (the earlier version of %s is gone). Nothing was touched; restore a consistent '
                            'set from a backup, then remove %s.' % (item['path'], journal))
    rolled = []
    for item, state in zip(items, states):
        if state == 'done':
            if item['old'] is None:
                # Nothing to go back to: keep the new file under a visible name rather than delete it.
                _put_in_place(item['path'], '%s.%s%s' % (item['path'], label, ROLLED_BACK_SUFFIX))
            else:
                _put_in_place(item['undo'], item['path'])
            rolled.append(item['path'])
    _finish(journal, items)
    return rolled


def remove_strays(paths, tag):
    """Remove staged and undo files of ``tag`` that no journal refers to (a run killed before its journal).

    Call it under the lock, after ``recover`` found no journal. Returns the removed paths.
    """
    removed = []
    prefix = '%s%s-' % (MARK, tag)
    for directory in sorted({os.path.dirname(os.path.realpath(p)) for p in paths if p}):
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            continue
        for name in sorted(names):
            path = os.path.join(directory, name)
            if name.startswith(prefix) and name.endswith((STAGED_SUFFIX, UNDO_SUFFIX)) and stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(path)
                removed.append(path)
    return removed


class DirLock:
    """Exclusive advisory lock on a directory, for a read-modify-write of the files in it.

    ``path`` is the directory itself or a file in it. The lock is taken where the write happens:
    on the directory of the real file, a symlink resolved (two writers, one through a link, must
    exclude each other), with ``flock`` on the directory's own file descriptor, so no lock file is
    left among EKM's files. It is released when
    the ``with`` block ends or the process dies. Not re-entrant: a second DirLock on the same
    directory in the same process waits for the first, like any other holder.
    """

    def __init__(self, path: str, timeout: float = 60.0):
        self.path = path
        self.timeout = timeout
        real = os.path.realpath(path)
        self.directory = real if os.path.isdir(real) else os.path.dirname(real)
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


@contextlib.contextmanager
def lock_dirs(paths, timeout=60.0):
    """``DirLock`` on the real directory of every path in ``paths`` (files or directories; None skipped), each once,
    in a fixed order so that two runs locking overlapping sets cannot deadlock."""
    directories = set()
    for path in paths:
        if path:
            real = os.path.realpath(path)
            directories.add(real if os.path.isdir(real) else os.path.dirname(real))
    with contextlib.ExitStack() as stack:
        for directory in sorted(directories):
            stack.enter_context(DirLock(directory, timeout))
        yield sorted(directories)


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
