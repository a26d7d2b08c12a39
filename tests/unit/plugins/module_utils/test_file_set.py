# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``_files.FileSet``: a set of files installed all or nothing, and its journal.

A kill is simulated by raising a ``BaseException`` at a named step: no ``except Exception``
cleanup runs, as with SIGKILL. After every kill the next run (``recover``) leaves either the
complete old set or the complete new one, never a mix.
"""
from __future__ import annotations

import errno
import json
import os
import stat

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files
from ansible_collections.tapecrypt.ekm.plugins.module_utils._files import FileError, FileSet, InstallError

OLD = {'EKMKeys.jck': b'old keystore', 'KeyGroups.xml': b'<old/>', 'filedrive.table': b'old table'}
NEW = {'EKMKeys.jck': b'new keystore', 'KeyGroups.xml': b'<new/>', 'filedrive.table': b'new table'}


class Killed(BaseException):
    pass


@pytest.fixture
def home(tmp_path):
    (tmp_path / 'keystore').mkdir()
    return tmp_path


def paths(home):
    return {'EKMKeys.jck': str(home / 'keystore' / 'EKMKeys.jck'), 'KeyGroups.xml': str(home / 'KeyGroups.xml'),
            'filedrive.table': str(home / 'filedrive.table')}


def write_old(home, names=tuple(OLD)):
    for name, path in paths(home).items():
        if name in names:
            with open(path, 'wb') as f:
                f.write(OLD[name])
            os.chmod(path, 0o640)


def contents(home):
    """Every file under ``home`` with its bytes."""
    found = {}
    for root, _dirs, files in os.walk(str(home)):
        for name in files:
            with open(os.path.join(root, name), 'rb') as f:
                found[os.path.relpath(os.path.join(root, name), str(home))] = f.read()
    return found


def journal_of(home):
    return str(home / 'keystore' / '.tapecrypt-test.journal')


def install(home, backup=(), after=None, payload=None):
    with FileSet(journal_of(home), 'test') as file_set:
        for name, path in paths(home).items():
            old = _files.sha256_bytes(OLD[name]) if os.path.exists(path) else None
            file_set.stage(name, path, NEW[name], old)
        return file_set.install(backup=backup, payload=payload, after=after)


def assert_new(home):
    for name, path in paths(home).items():
        with open(path, 'rb') as f:
            assert f.read() == NEW[name], name


def assert_old(home):
    for name, path in paths(home).items():
        with open(path, 'rb') as f:
            assert f.read() == OLD[name], name


def assert_clean(home):
    marked = [p for p in contents(home) if os.path.basename(p).startswith(_files.MARK)]
    assert marked == []


def test_install_replaces_every_file_and_leaves_nothing(home):
    write_old(home)
    backups = install(home, backup=('EKMKeys.jck',))
    assert_new(home)
    assert list(backups) == ['EKMKeys.jck']
    assert open(backups['EKMKeys.jck'], 'rb').read() == OLD['EKMKeys.jck']
    assert stat.S_IMODE(os.stat(backups['EKMKeys.jck']).st_mode) == 0o600
    assert_clean(home)
    # Replaced files keep their mode.
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in paths(home).values()} == {0o640}


def test_owner_and_mode_are_on_the_staged_files_before_any_rename(home, monkeypatch):
    write_old(home, names=('EKMKeys.jck',))
    seen = []
    real = _files._put_in_place

    def watch(source, target):
        st = os.stat(source)
        seen.append((os.path.basename(source), stat.S_IMODE(st.st_mode)))
        return real(source, target)

    monkeypatch.setattr(_files, '_put_in_place', watch)
    with FileSet(journal_of(home), 'test') as file_set:
        for name, path in paths(home).items():
            old = _files.sha256_bytes(OLD[name]) if os.path.exists(path) else None
            attributes = _files.FileAttributes(mode=0o604) if name == 'KeyGroups.xml' else None
            file_set.stage(name, path, NEW[name], old, attributes=attributes)
        file_set.install()
    assert sorted(m for _n, m in seen) == [0o600, 0o604, 0o640]
    assert all(n.startswith('.tapecrypt-test-') and n.endswith('.staged') for n, _m in seen)


def test_an_ordinary_failure_while_staging_changes_nothing_and_leaves_nothing(home, monkeypatch):
    write_old(home)
    real = _files.create_file
    calls = []

    def full(path, data, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real(path, data, **kwargs)

    monkeypatch.setattr(_files, 'create_file', full)
    with pytest.raises(_files.FileError) as info:
        install(home)
    monkeypatch.undo()
    # The message names the file whose new version did not fit (os.write names none).
    staged = os.path.basename(calls[1])
    target = os.path.join(os.path.dirname(os.path.realpath(calls[1])), 'KeyGroups.xml')
    assert staged.endswith('.KeyGroups.xml.staged')
    assert str(info.value).startswith('Cannot write the new version of %s beside it (%s): ' % (target, staged))
    assert 'No space left on device' in str(info.value)
    assert_old(home)
    assert_clean(home)


def test_a_failed_rename_puts_back_what_was_renamed(home, monkeypatch):
    write_old(home)
    real = _files._put_in_place
    calls = []

    def flaky(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(errno.EIO, 'Input/output error')
        return real(source, target)

    monkeypatch.setattr(_files, '_put_in_place', flaky)
    with pytest.raises(InstallError) as info:
        install(home)
    assert info.value.rolled_back is True
    assert 'put back; nothing was changed' in str(info.value)
    assert_old(home)
    assert_clean(home)
    assert not os.path.exists(journal_of(home))


def test_a_failure_after_the_renames_keeps_the_journal_and_the_next_run_finishes(home):
    write_old(home)
    recorded = []

    def after(payload):
        if not recorded:
            recorded.append('failed')
            raise OSError(errno.ENOSPC, 'No space left on device')
        recorded.append(payload)

    with pytest.raises(InstallError) as info:
        install(home, after=after, payload={'record': 1})
    assert info.value.rolled_back is False and 'journal' in str(info.value)
    assert_new(home)
    report = _files.recover(journal_of(home), after=after)
    assert report['action'] == 'completed'
    assert recorded == ['failed', {'record': 1}]
    assert_clean(home)


# --- a kill at each step ------------------------------------------------------------------------

def _kill_on_call(monkeypatch, name, n):
    real = getattr(_files, name)
    count = {'n': 0}

    def wrapper(*args, **kwargs):
        count['n'] += 1
        if count['n'] == n:
            raise Killed()
        return real(*args, **kwargs)

    monkeypatch.setattr(_files, name, wrapper)


KILL_POINTS = [
    # (function, call number, journal exists afterwards)
    ('create_file', 1, False),       # while staging the first file
    ('create_file', 3, False),       # while staging the last file
    ('backup_copy', 1, False),       # staged, backing up
    ('_link_or_copy', 2, False),     # keeping the undo links
    ('_write_journal', 1, False),    # everything staged, journal not yet written
    ('_put_in_place', 1, True),      # journal written, nothing renamed
    ('_put_in_place', 2, True),      # between renames
    ('_put_in_place', 3, True),      # before the last rename
    ('_finish', 1, True),            # all renamed and recorded, journal not yet removed
]


@pytest.mark.parametrize('function,call,journaled', KILL_POINTS)
def test_a_kill_at_each_step_then_the_next_run_rolls_forward_or_finds_the_old_set(home, monkeypatch, function, call,
                                                                                  journaled):
    write_old(home)
    recorded = []
    _kill_on_call(monkeypatch, function, call)
    with pytest.raises(Killed):
        install(home, backup=('EKMKeys.jck', 'KeyGroups.xml', 'filedrive.table'), after=recorded.append,
                payload={'state': 'new'})
    monkeypatch.undo()
    assert os.path.exists(journal_of(home)) is journaled
    with _files.lock_dirs(paths(home).values()):
        report = _files.recover(journal_of(home), after=recorded.append)
        if journaled:
            assert report['action'] == 'completed'
            assert_new(home)
            assert recorded[-1] == {'state': 'new'}
        else:
            assert report is None
            assert_old(home)
            _files.remove_strays(paths(home).values(), 'test')
            _files.remove_temporaries(str(home))
            _files.remove_temporaries(str(home / 'keystore'))
    assert_clean(home)
    assert not os.path.exists(journal_of(home))
    # And a run afterwards installs normally.
    install(home)
    assert_new(home)


def test_a_lost_staged_file_rolls_the_set_back(home, monkeypatch):
    write_old(home)
    _kill_on_call(monkeypatch, '_put_in_place', 2)
    with pytest.raises(Killed):
        install(home)
    monkeypatch.undo()
    journal = json.loads(open(journal_of(home)).read())
    pending = [i for i in journal['files'] if os.path.exists(i['staged'])]
    os.unlink(pending[0]['staged'])
    report = _files.recover(journal_of(home))
    assert report['action'] == 'rolled_back' and len(report['files']) == 1
    assert_old(home)
    assert_clean(home)


def test_rolling_back_a_file_that_did_not_exist_keeps_it_under_a_visible_name(home, monkeypatch):
    write_old(home, names=('KeyGroups.xml', 'filedrive.table'))
    _kill_on_call(monkeypatch, '_put_in_place', 2)
    with pytest.raises(Killed):
        install(home)
    monkeypatch.undo()
    journal = json.loads(open(journal_of(home)).read())
    for item in journal['files'][1:]:
        os.unlink(item['staged'])
    report = _files.recover(journal_of(home))
    assert report['action'] == 'rolled_back'
    kept = os.listdir(str(home / 'keystore'))
    assert kept == ['EKMKeys.jck.tapecrypt-test-%s.rolled-back' % journal['txid']]
    assert open(str(home / 'keystore' / kept[0]), 'rb').read() == NEW['EKMKeys.jck']


def test_a_file_changed_by_someone_else_stops_the_recovery(home, monkeypatch):
    write_old(home)
    _kill_on_call(monkeypatch, '_put_in_place', 2)
    with pytest.raises(Killed):
        install(home)
    monkeypatch.undo()
    with open(paths(home)['filedrive.table'], 'wb') as f:
        f.write(b'rewritten by EKM meanwhile')
    before = contents(home)
    with pytest.raises(FileError, match='neither the version before nor the one after'):
        _files.recover(journal_of(home))
    assert contents(home) == before


def test_an_unreadable_journal_stops_the_recovery(home):
    with open(journal_of(home), 'w') as f:
        f.write('garbage')
    with pytest.raises(FileError, match='unreadable'):
        _files.recover(journal_of(home))
    assert open(journal_of(home)).read() == 'garbage'


def test_strays_of_another_tag_and_foreign_files_are_left_alone(home, monkeypatch):
    write_old(home)
    _kill_on_call(monkeypatch, '_write_journal', 1)
    with pytest.raises(Killed):
        install(home)
    monkeypatch.undo()
    other = home / '.tapecrypt-sync-20260101T000000-abcdef12.KeyGroups.xml.staged'
    other.write_bytes(b'a sync of its own')
    ekm = home / '.KeyGroups.xml.4711.tmp'
    ekm.write_bytes(b"EKM's own")
    removed = _files.remove_strays(paths(home).values(), 'test')
    assert len(removed) == 6  # three staged files and three undo links
    assert all(os.path.basename(p).startswith('.tapecrypt-test-') for p in removed)
    assert other.exists() and ekm.exists()
    assert_old(home)


def test_without_hard_links_an_undo_still_puts_back_the_file_as_it_was(home, monkeypatch):
    write_old(home)
    real_link = os.link

    def no_links(source, dest):
        if '.undo' in os.path.basename(dest):
            raise OSError(errno.EPERM, 'Operation not permitted')
        return real_link(source, dest)

    monkeypatch.setattr(os, 'link', no_links)
    _kill_on_call(monkeypatch, '_put_in_place', 3)
    with pytest.raises(Killed):
        install(home)
    monkeypatch.undo()
    journal = json.loads(open(journal_of(home)).read())
    os.unlink(journal['files'][2]['staged'])
    assert _files.recover(journal_of(home))['action'] == 'rolled_back'
    assert_old(home)
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in paths(home).values()} == {0o640}


def test_a_module_exit_in_a_prepare_step_leaves_nothing(home):
    """fail_json (SystemExit) while the module's file options are applied to a staged file: nothing is left."""
    write_old(home)

    def fail_json(staged):
        raise SystemExit(1)

    with pytest.raises(SystemExit):
        with FileSet(journal_of(home), 'test') as file_set:
            for name, path in paths(home).items():
                file_set.stage(name, path, NEW[name], _files.sha256_bytes(OLD[name]), prepare=fail_json)
    assert_old(home)
    assert_clean(home)
