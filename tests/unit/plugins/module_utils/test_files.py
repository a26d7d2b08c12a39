# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime
import errno
import hashlib
import os
import re
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files
from ansible_collections.tapecrypt.ekm.plugins.module_utils._files import (
    DirLock,
    FileError,
    atomic_write,
    backup_copy,
    ensure_not_inside,
    read_bytes,
    sha256_bytes,
    sha256_file,
)

ORIGINAL = b'original keystore bytes \x00\xff' * 100


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _names(directory):
    return sorted(os.listdir(str(directory)))


@pytest.fixture
def keystore(tmp_path):
    path = tmp_path / 'EKMKeys.jck'
    path.write_bytes(ORIGINAL)
    os.chmod(str(path), 0o640)
    return path


# --- atomic_write ------------------------------------------------------------------------------

def test_atomic_write_creates_file_with_default_mode(tmp_path):
    path = tmp_path / 'new.jck'
    old_umask = os.umask(0)
    try:
        atomic_write(str(path), b'data')
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b'data'
    assert _mode(path) == 0o600
    assert _names(tmp_path) == ['new.jck']


def test_atomic_write_replaces_and_applies_mode(keystore, tmp_path):
    inode_before = os.stat(str(keystore)).st_ino
    atomic_write(str(keystore), b'new content', mode=0o644)
    assert keystore.read_bytes() == b'new content'
    assert _mode(keystore) == 0o644
    # A new inode: readers that opened the old file keep reading a complete old version.
    assert os.stat(str(keystore)).st_ino != inode_before
    assert _names(tmp_path) == ['EKMKeys.jck']


def test_atomic_write_accepts_bytearray_and_empty(tmp_path):
    path = tmp_path / 'f'
    atomic_write(str(path), bytearray(b'abc'))
    assert path.read_bytes() == b'abc'
    atomic_write(str(path), b'')
    assert path.read_bytes() == b''


def test_atomic_write_refuses_text(tmp_path):
    with pytest.raises(TypeError):
        atomic_write(str(tmp_path / 'f'), 'text')
    assert _names(tmp_path) == []


def _failing(exc_errno, calls=None):
    def fail(*args, **kwargs):
        if calls is not None:
            calls.append(args)
        raise OSError(exc_errno, os.strerror(exc_errno))
    return fail


@pytest.mark.parametrize('function', ['replace', 'fsync', 'fchmod', 'write'])
def test_atomic_write_failure_leaves_original_untouched(keystore, tmp_path, monkeypatch, function):
    calls = []
    monkeypatch.setattr(os, function, _failing(errno.ENOSPC, calls))
    with pytest.raises(FileError) as info:
        atomic_write(str(keystore), b'half-written new content')
    monkeypatch.undo()
    assert calls, 'the patched call was never reached'
    assert str(keystore) in str(info.value)
    assert 'No space left on device' in str(info.value)
    assert 'left unchanged' in str(info.value)
    assert keystore.read_bytes() == ORIGINAL
    assert _mode(keystore) == 0o640
    assert _names(tmp_path) == ['EKMKeys.jck']


def test_atomic_write_failure_after_partial_write(keystore, tmp_path, monkeypatch):
    real_write = os.write
    writes = []

    def short_then_fail(fd, data):
        if writes:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        writes.append(len(data))
        return real_write(fd, bytes(data[:10]))

    monkeypatch.setattr(os, 'write', short_then_fail)
    with pytest.raises(FileError):
        atomic_write(str(keystore), b'x' * 1000)
    monkeypatch.undo()
    assert writes == [1000]
    assert keystore.read_bytes() == ORIGINAL
    assert _names(tmp_path) == ['EKMKeys.jck']


def test_atomic_write_short_writes_are_completed(tmp_path, monkeypatch):
    real_write = os.write

    def short(fd, data):
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(os, 'write', short)
    atomic_write(str(tmp_path / 'f'), bytes(range(256)) * 4)
    monkeypatch.undo()
    assert (tmp_path / 'f').read_bytes() == bytes(range(256)) * 4


def test_atomic_write_missing_directory(tmp_path):
    path = tmp_path / 'missing' / 'EKMKeys.jck'
    with pytest.raises(FileError) as info:
        atomic_write(str(path), b'data')
    assert str(path) in str(info.value)
    assert 'temporary file' in str(info.value)
    assert not (tmp_path / 'missing').exists()


def test_atomic_write_follows_symlink(keystore, tmp_path):
    link_dir = tmp_path / 'links'
    link_dir.mkdir()
    link = link_dir / 'EKMKeys.jck'
    link.symlink_to(keystore)
    atomic_write(str(link), b'through the link')
    assert link.is_symlink()
    assert keystore.read_bytes() == b'through the link'
    assert _names(link_dir) == ['EKMKeys.jck']
    assert _names(tmp_path) == ['EKMKeys.jck', 'links']


def test_atomic_write_directory_fsync_failure_is_reported(keystore, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_fsync(fd)

    monkeypatch.setattr(os, 'fsync', fsync)
    with pytest.raises(FileError) as info:
        atomic_write(str(keystore), b'new')
    monkeypatch.undo()
    assert 'was written, but flushing its directory' in str(info.value)
    assert keystore.read_bytes() == b'new'


def test_atomic_write_tolerates_filesystems_without_directory_fsync(keystore, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real_fsync(fd)

    monkeypatch.setattr(os, 'fsync', fsync)
    atomic_write(str(keystore), b'new')
    monkeypatch.undo()
    assert keystore.read_bytes() == b'new'


def _pretend_owned_by(monkeypatch, target, uid, gid):
    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if os.fspath(path) == str(target):
            values = list(result)
            values[stat.ST_UID] = uid
            values[stat.ST_GID] = gid
            return os.stat_result(values)
        return result

    monkeypatch.setattr(os, 'stat', fake_stat)


def test_atomic_write_keeps_owner_and_group(keystore, monkeypatch):
    chowns = []
    _pretend_owned_by(monkeypatch, keystore, 4321, 8765)
    monkeypatch.setattr(os, 'fchown', lambda fd, uid, gid: chowns.append((uid, gid)))
    atomic_write(str(keystore), b'new')
    assert chowns == [(4321, 8765)]


def test_atomic_write_keeps_group_when_owner_cannot_be_kept(keystore, monkeypatch):
    chowns = []

    def fchown(fd, uid, gid):
        chowns.append((uid, gid))
        if uid != -1:
            raise PermissionError(errno.EPERM, 'Operation not permitted')

    _pretend_owned_by(monkeypatch, keystore, 4321, 8765)
    monkeypatch.setattr(os, 'fchown', fchown)
    atomic_write(str(keystore), b'new')
    assert chowns == [(4321, 8765), (-1, 8765)]


def test_atomic_write_without_privileges_still_writes(keystore, monkeypatch):
    _pretend_owned_by(monkeypatch, keystore, 4321, 8765)
    monkeypatch.setattr(os, 'fchown', _failing(errno.EPERM))
    atomic_write(str(keystore), b'new')
    monkeypatch.undo()
    assert keystore.read_bytes() == b'new'


def test_atomic_write_does_not_chown_needlessly(keystore, monkeypatch):
    chowns = []
    monkeypatch.setattr(os, 'fchown', lambda *args: chowns.append(args))
    atomic_write(str(keystore), b'new')
    atomic_write(str(keystore.parent / 'brand-new'), b'new')
    assert chowns == []


# --- reading and hashing -----------------------------------------------------------------------

def test_read_bytes(keystore, tmp_path):
    assert read_bytes(str(keystore)) == ORIGINAL
    assert read_bytes(str(tmp_path / 'missing')) is None


def test_read_bytes_of_a_directory_is_an_error(tmp_path):
    with pytest.raises(FileError) as info:
        read_bytes(str(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_sha256(tmp_path):
    data = os.urandom(1024 * 1024 * 2 + 12345)  # more than two 1 MiB chunks
    path = tmp_path / 'big'
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == expected
    assert sha256_bytes(data) == expected
    assert sha256_bytes(b'') == 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    assert sha256_file(str(tmp_path / 'missing')) is None
    with pytest.raises(FileError) as info:
        sha256_file(str(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_sha256_file_reads_in_chunks(tmp_path, monkeypatch):
    path = tmp_path / 'big'
    path.write_bytes(b'a' * (3 * 1024 * 1024))
    sizes = []
    real_open = _files.open_regular

    class Recorder:
        def __init__(self, handle):
            self._handle = handle

        def read(self, size=-1):
            sizes.append(size)
            return self._handle.read(size)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._handle.close()

    monkeypatch.setattr(_files, 'open_regular', lambda *args, **kwargs: Recorder(real_open(*args, **kwargs)))
    sha256_file(str(path))
    assert sizes and set(sizes) == {1024 * 1024}


# --- backup_copy -------------------------------------------------------------------------------

def test_backup_copy(keystore, tmp_path):
    before = datetime.datetime.now(datetime.timezone.utc)
    backup = backup_copy(str(keystore))
    after = datetime.datetime.now(datetime.timezone.utc)
    match = re.fullmatch(re.escape(str(keystore)) + r'\.(\d{8}T\d{12})Z\.bak', backup)
    assert match, backup
    stamp = datetime.datetime.strptime(match.group(1), '%Y%m%dT%H%M%S%f').replace(tzinfo=datetime.timezone.utc)
    assert before <= stamp <= after
    assert open(backup, 'rb').read() == ORIGINAL
    # Private whatever the original's mode: a backup of a keystore or a configuration holds secrets.
    assert _mode(backup) == 0o600
    assert os.stat(backup).st_mtime_ns == os.stat(str(keystore)).st_mtime_ns
    assert keystore.read_bytes() == ORIGINAL
    assert _names(tmp_path) == sorted(['EKMKeys.jck', os.path.basename(backup)])


def test_backup_copy_twice_gives_two_backups(keystore, tmp_path):
    first = backup_copy(str(keystore))
    second = backup_copy(str(keystore))
    assert first != second
    assert len(_names(tmp_path)) == 3


def test_backup_copy_of_missing_file(tmp_path):
    assert backup_copy(str(tmp_path / 'missing')) is None
    assert _names(tmp_path) == []


def _names_from(monkeypatch, names):
    queue = list(names)
    monkeypatch.setattr(_files, '_backup_name', lambda path: queue.pop(0))


@pytest.mark.parametrize('hard_links', [True, False])
def test_backup_copy_never_overwrites(keystore, tmp_path, monkeypatch, hard_links):
    taken = tmp_path / 'taken.bak'
    taken.write_bytes(b'an older backup')
    free = str(tmp_path / 'free.bak')
    _names_from(monkeypatch, [str(taken), free])
    if not hard_links:
        monkeypatch.setattr(os, 'link', _failing(errno.EPERM))
    assert backup_copy(str(keystore)) == free
    monkeypatch.undo()
    assert taken.read_bytes() == b'an older backup'
    assert open(free, 'rb').read() == ORIGINAL
    assert _names(tmp_path) == ['EKMKeys.jck', 'free.bak', 'taken.bak']


def test_backup_copy_failure_leaves_nothing_behind(keystore, tmp_path, monkeypatch):
    monkeypatch.setattr(os, 'write', _failing(errno.ENOSPC))
    with pytest.raises(FileError) as info:
        backup_copy(str(keystore))
    monkeypatch.undo()
    assert str(keystore) in str(info.value)
    assert 'No space left on device' in str(info.value)
    assert _names(tmp_path) == ['EKMKeys.jck']
    assert keystore.read_bytes() == ORIGINAL


def test_backup_copy_of_a_directory_is_an_error(tmp_path):
    directory = tmp_path / 'dir'
    directory.mkdir()
    with pytest.raises(FileError):
        backup_copy(str(directory))
    assert _names(tmp_path) == ['dir']


# --- DirLock -----------------------------------------------------------------------------------

HOLDER = '''
import sys
from ansible_collections.tapecrypt.ekm.plugins.module_utils._files import DirLock
with DirLock(sys.argv[1], timeout=5):
    print('locked', flush=True)
    sys.stdin.readline()
'''


@pytest.fixture
def holder(tmp_path):
    """A second process that holds the lock on tmp_path until its stdin gets a line."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    process = subprocess.Popen([sys.executable, '-c', HOLDER, str(tmp_path / 'EKMKeys.jck')], env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert process.stdout.readline() == 'locked\n'
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stdin.close()
        process.stdout.close()


def test_dirlock_excludes_another_process_and_times_out(tmp_path, holder):
    started = time.monotonic()
    with pytest.raises(FileError) as info:
        with DirLock(str(tmp_path), timeout=0.3):
            pytest.fail('acquired a lock that another process holds')
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 3
    message = str(info.value)
    assert str(tmp_path) in message
    assert 'locked by another process' in message
    assert 'waited 0.3 seconds' in message


def test_dirlock_waits_for_the_other_process(tmp_path, holder):
    holder.stdin.write('release\n')
    holder.stdin.flush()
    with DirLock(str(tmp_path / 'KeyGroups.xml'), timeout=10) as lock:
        assert lock.directory == str(tmp_path)
    assert holder.wait(10) == 0


def test_dirlock_is_released_when_the_holder_dies(tmp_path, holder):
    holder.kill()
    holder.wait(10)
    with DirLock(str(tmp_path), timeout=5):
        pass


def test_dirlock_released_on_exit_and_not_reentrant(tmp_path):
    with DirLock(str(tmp_path), timeout=0.1):
        with pytest.raises(FileError):
            with DirLock(str(tmp_path / 'file'), timeout=0.05):
                pass
    with DirLock(str(tmp_path), timeout=0.1):
        pass


def test_dirlock_released_after_an_exception(tmp_path):
    with pytest.raises(RuntimeError):
        with DirLock(str(tmp_path), timeout=0.1):
            raise RuntimeError('boom')
    with DirLock(str(tmp_path), timeout=0.1):
        pass


def test_dirlock_missing_directory(tmp_path):
    with pytest.raises(FileError) as info:
        with DirLock(str(tmp_path / 'missing' / 'EKMKeys.jck'), timeout=0.1):
            pass
    assert str(tmp_path / 'missing') in str(info.value)


# --- ensure_not_inside -------------------------------------------------------------------------

def test_ensure_not_inside(tmp_path):
    home = tmp_path / 'ekm'
    (home / 'keystore').mkdir(parents=True)
    backup = tmp_path / 'ekm-backup'
    backup.mkdir()
    ensure_not_inside(str(backup), [str(home)])  # a shared name prefix is not containment
    ensure_not_inside(str(backup), [])
    ensure_not_inside(str(backup), [None, '', str(home / 'keystore')])
    for inside in (home, home / 'keystore', home / 'keystore' / 'not-yet-there'):
        with pytest.raises(FileError) as info:
            ensure_not_inside(str(inside), [str(backup), str(home)])
        assert str(inside) in str(info.value)
        assert 'is inside %s' % home in str(info.value)
    with pytest.raises(FileError):
        ensure_not_inside(str(home / 'keystore'), str(home))


def test_ensure_not_inside_resolves_symlinks(tmp_path):
    home = tmp_path / 'ekm'
    home.mkdir()
    sneaky = tmp_path / 'backup-link'
    sneaky.symlink_to(home / 'backups', target_is_directory=True)
    with pytest.raises(FileError) as info:
        ensure_not_inside(str(sneaky), [str(home)])
    assert 'resolved to %s' % (home / 'backups') in str(info.value)
    home_link = tmp_path / 'home-link'
    home_link.symlink_to(home, target_is_directory=True)
    with pytest.raises(FileError):
        ensure_not_inside(str(home / 'backups'), [str(home_link)])


def test_everything_is_inside_the_root(tmp_path):
    with pytest.raises(FileError):
        ensure_not_inside(str(tmp_path), ['/'])


# --- the owner, group and mode policy; the marker ----------------------------------------------

def _watch_renames(monkeypatch):
    """Record, for every os.replace, the source's name, mode and owner at the moment of the rename."""
    seen = []
    real_replace = os.replace

    def replace(source, target):
        st = os.lstat(source)
        seen.append({'name': os.path.basename(source), 'target': os.path.basename(target),
                     'mode': stat.S_IMODE(st.st_mode), 'uid': st.st_uid, 'gid': st.st_gid})
        return real_replace(source, target)

    monkeypatch.setattr(os, 'replace', replace)
    return seen


def test_mode_is_on_the_temporary_file_before_the_rename(keystore, monkeypatch):
    seen = _watch_renames(monkeypatch)
    atomic_write(str(keystore), b'new', mode=0o640)
    atomic_write(str(keystore), b'newer', mode='0604')
    assert [s['mode'] for s in seen] == [0o640, 0o604]
    assert _mode(keystore) == 0o604


def test_temporary_files_carry_the_marker(keystore, monkeypatch):
    seen = _watch_renames(monkeypatch)
    atomic_write(str(keystore), b'new')
    assert len(seen) == 1 and seen[0]['target'] == 'EKMKeys.jck'
    assert seen[0]['name'].startswith(_files.MARK) and seen[0]['name'].endswith('.EKMKeys.jck.tmp')
    # EKM's own temporary files look like .KeyGroups.xml.<random>.tmp: ours never do.
    assert not seen[0]['name'].startswith('.EKMKeys.jck.')


def test_existing_mode_is_kept_and_a_new_file_is_private(keystore, tmp_path):
    old_umask = os.umask(0)
    try:
        atomic_write(str(keystore), b'new')
        atomic_write(str(tmp_path / 'fresh'), b'new')
    finally:
        os.umask(old_umask)
    assert _mode(keystore) == 0o640
    assert _mode(tmp_path / 'fresh') == 0o600


def test_given_owner_and_group_are_on_the_temporary_file_before_the_rename(keystore, monkeypatch):
    events = []
    monkeypatch.setattr(os, 'fchown', lambda fd, uid, gid: events.append(('fchown', uid, gid)))
    real_replace = os.replace

    def replace(source, target):
        events.append(('replace', os.path.basename(target)))
        return real_replace(source, target)

    monkeypatch.setattr(os, 'replace', replace)
    atomic_write(str(keystore), b'new', owner='4321', group=8765)
    assert events == [('fchown', 4321, 8765), ('replace', 'EKMKeys.jck')]


def test_a_given_owner_that_cannot_be_set_fails_before_anything_changes(keystore, tmp_path, monkeypatch):
    monkeypatch.setattr(os, 'fchown', _failing(errno.EPERM))
    with pytest.raises(FileError) as info:
        atomic_write(str(keystore), b'new', owner='4321')
    monkeypatch.undo()
    assert 'Cannot give %s the owner 4321' % keystore in str(info.value)
    assert 'Nothing was changed' in str(info.value)
    assert keystore.read_bytes() == ORIGINAL
    assert _names(tmp_path) == ['EKMKeys.jck']


def test_an_unknown_owner_or_group_fails_before_anything_changes(keystore, tmp_path):
    with pytest.raises(FileError, match="no user 'no-such-user-here'"):
        atomic_write(str(keystore), b'new', owner='no-such-user-here')
    with pytest.raises(FileError, match="no group 'no-such-group-here'"):
        atomic_write(str(keystore), b'new', group='no-such-group-here')
    assert keystore.read_bytes() == ORIGINAL
    assert _names(tmp_path) == ['EKMKeys.jck']


def test_own_user_and_group_by_name(keystore):
    import grp
    import pwd
    me = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    atomic_write(str(keystore), b'new', owner=me, group=group, mode=0o600)
    assert (os.stat(str(keystore)).st_uid, os.stat(str(keystore)).st_gid) == (os.getuid(), os.getgid())


def test_parse_mode():
    assert _files.parse_mode(None) is None
    assert _files.parse_mode(0o640) == 0o640
    assert _files.parse_mode('0640') == 0o640
    assert _files.parse_mode('600') == 0o600
    assert _files.parse_mode('u=rw,g=r') is None  # symbolic: applied by Ansible after the rename
    attributes = _files.FileAttributes.from_params({'owner': 'ekm', 'group': None, 'mode': '0640', 'other': 1})
    assert (attributes.owner, attributes.group, attributes.mode) == ('ekm', None, 0o640)


def test_backup_copy_is_private_whatever_the_umask(keystore, monkeypatch):
    os.chmod(str(keystore), 0o644)
    seen = []
    real_link = os.link

    def link(source, dest):
        seen.append((os.path.basename(source), _mode(source)))
        return real_link(source, dest)

    monkeypatch.setattr(os, 'link', link)
    old_umask = os.umask(0)
    try:
        backup = backup_copy(str(keystore))
    finally:
        os.umask(old_umask)
    assert _mode(backup) == 0o600
    # The copy is complete and 0600 under its marked temporary name before it gets the backup name.
    assert len(seen) == 1 and seen[0][0].startswith(_files.MARK) and seen[0][1] == 0o600


def test_backup_copy_beside_the_real_file(keystore, tmp_path):
    link_dir = tmp_path / 'links'
    link_dir.mkdir()
    (link_dir / 'EKMKeys.jck').symlink_to(keystore)
    backup = backup_copy(str(link_dir / 'EKMKeys.jck'))
    assert os.path.dirname(backup) == str(tmp_path)
    assert _names(link_dir) == ['EKMKeys.jck']


# --- remove_temporaries ------------------------------------------------------------------------

def test_remove_temporaries_touches_only_marked_files(tmp_path):
    ours = ['.tapecrypt-0123456789ab.EKMKeys.jck.tmp', '.tapecrypt-ffffffffffff.KeyGroups.xml.tmp']
    foreign = ['.KeyGroups.xml.48151623.tmp', 'KeyGroups.xml', '.EKMKeys.jck.abc.tmp', 'tapecrypt-x.tmp',
               '.tapecrypt-sync-20260101T000000-abcdef12.EKMKeys.jck.staged']
    for name in ours + foreign:
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / '.tapecrypt-000000000000.dir.tmp').mkdir()
    (tmp_path / '.tapecrypt-111111111111.link.tmp').symlink_to(tmp_path / 'KeyGroups.xml')
    removed = _files.remove_temporaries(str(tmp_path))
    assert sorted(removed) == sorted(str(tmp_path / n) for n in ours)
    assert _names(tmp_path) == sorted(foreign + ['.tapecrypt-000000000000.dir.tmp', '.tapecrypt-111111111111.link.tmp'])
    assert _files.remove_temporaries(str(tmp_path / 'missing')) == []


def test_remove_temporaries_removes_marked_work_directories_only(tmp_path):
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    (elsewhere / 'keep').write_bytes(b'not ours')
    with _files.private_workdir(str(tmp_path / 'EKMKeys.jck'), 'verify') as workdir:
        assert os.path.dirname(workdir) == str(tmp_path) and os.stat(workdir).st_mode & 0o777 == 0o700
        assert os.path.basename(workdir).startswith('.tapecrypt-verify-') and workdir.endswith('.tmpdir')
        _files.create_file(os.path.join(workdir, 'candidate.jck'), b'copy')
        assert os.stat(os.path.join(workdir, 'candidate.jck')).st_mode & 0o777 == 0o600
    assert not os.path.exists(workdir)
    # What a killed run leaves: a marked directory with a copy in it. Unmarked directories, a marked file that is
    # no work directory, and a marked symlink to a directory are left alone.
    (tmp_path / '.tapecrypt-verify-abc.tmpdir').mkdir()
    (tmp_path / '.tapecrypt-verify-abc.tmpdir' / 'candidate.jck').write_bytes(b'copy')
    (tmp_path / 'tapecrypt-verify-def.tmpdir').mkdir()
    (tmp_path / '.tapecrypt-file.tmpdir').write_bytes(b'x')
    (tmp_path / '.tapecrypt-link.tmpdir').symlink_to(elsewhere)
    removed = _files.remove_temporaries(str(tmp_path))
    assert removed == [str(tmp_path / '.tapecrypt-verify-abc.tmpdir')]
    assert _names(tmp_path) == ['.tapecrypt-file.tmpdir', '.tapecrypt-link.tmpdir', 'elsewhere', 'tapecrypt-verify-def.tmpdir']
    assert (elsewhere / 'keep').read_bytes() == b'not ours'


def test_a_killed_write_leaves_a_marked_file_that_cleanup_removes(keystore, tmp_path, monkeypatch):
    class Killed(BaseException):
        pass

    def killed(*args):
        raise Killed()

    # A kill runs no cleanup at all; simulate it by making the cleanup itself impossible.
    monkeypatch.setattr(os, 'replace', killed)
    monkeypatch.setattr(_files, '_remove_quietly', lambda path: None)
    with pytest.raises(Killed):
        atomic_write(str(keystore), b'new')
    monkeypatch.undo()
    (tmp_path / '.EKMKeys.jck.999.tmp').write_bytes(b"EKM's own")
    left = [n for n in _names(tmp_path) if n.startswith(_files.MARK)]
    assert len(left) == 1
    with DirLock(str(keystore)):
        assert _files.remove_temporaries(str(tmp_path)) == [str(tmp_path / left[0])]
    assert _names(tmp_path) == ['.EKMKeys.jck.999.tmp', 'EKMKeys.jck']
    assert keystore.read_bytes() == ORIGINAL


# --- locks where the write happens -------------------------------------------------------------

def test_dirlock_locks_the_directory_of_the_real_file(tmp_path):
    real_dir = tmp_path / 'real'
    real_dir.mkdir()
    (real_dir / 'EKMKeys.jck').write_bytes(b'x')
    link_dir = tmp_path / 'links'
    link_dir.mkdir()
    (link_dir / 'EKMKeys.jck').symlink_to(real_dir / 'EKMKeys.jck')
    with DirLock(str(link_dir / 'EKMKeys.jck')) as lock:
        assert lock.directory == str(real_dir)
        with pytest.raises(FileError):
            with DirLock(str(real_dir / 'EKMKeys.jck'), timeout=0.05):
                pass


def test_lock_dirs_locks_each_directory_once(tmp_path):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    paths = [str(tmp_path / 'b' / 'x'), None, str(tmp_path / 'a' / 'y'), str(tmp_path / 'a' / 'z'), str(tmp_path / 'b')]
    with _files.lock_dirs(paths) as locked:
        assert locked == [str(tmp_path / 'a'), str(tmp_path / 'b')]
        with pytest.raises(FileError):
            with DirLock(str(tmp_path / 'a'), timeout=0.05):
                pass
    with DirLock(str(tmp_path / 'a'), timeout=0.05):
        pass


def test_prepare_runs_on_the_temporary_file_and_its_failure_changes_nothing(keystore, tmp_path):
    seen = []

    def prepare(temp):
        seen.append((os.path.basename(temp), open(temp, 'rb').read()))

    atomic_write(str(keystore), b'new', prepare=prepare)
    assert seen == [(seen[0][0], b'new')] and seen[0][0].startswith(_files.MARK)

    class ModuleFailed(Exception):
        pass

    def failing(temp):
        raise ModuleFailed('setting the SELinux context failed')

    with pytest.raises(ModuleFailed):
        atomic_write(str(keystore), b'newer', prepare=failing)
    assert keystore.read_bytes() == b'new'
    assert _names(tmp_path) == ['EKMKeys.jck']
