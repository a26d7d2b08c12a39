# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The sync decisions and the install, driven in-process: both "servers" are directories.

``Pair.sync()`` wires ``_sync_plan.Sync`` (controller) to ``_sync.run_phase`` (host) exactly as the action plugin wires
it to the module on two hosts (results go through JSON, as they do over a connection).
"""
from __future__ import annotations

import base64
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files, _jceks, _sync
from ansible_collections.tapecrypt.ekm.plugins.plugin_utils import _sync_plan
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.keystores import write_keystore

PW = 'changeit-store'
FAST = 1000  # PBE iterations in unit tests


class Crash(BaseException):
    """A process killed at this point: no ``except Exception`` cleanup runs, as with SIGKILL."""


def alias(n, prefix='dca'):
    return '%s%018x' % (prefix, n)


def make_keystore(path, numbers, password=PW, prefix='dca', keys=None, iterations=FAST):
    """A keystore with fresh keys (or the given ``keys``: alias -> bytes) for the given counters."""
    return write_keystore(path, numbers, password, keys, prefix, iterations).keystore


def add_keys(path, numbers, password=PW):
    """What tapecrypt.ekm.keystore does on the primary: old entries kept byte for byte, new ones appended."""
    write_keystore(path, numbers, password, existing=path)


def keys_of(path, password=PW):
    with open(path, 'rb') as f:
        ks = _jceks.load(f.read(), password)
    return {e.alias: _jceks.unseal(e, password)[1] for e in ks.entries}


def snapshot(directory):
    """Every file in the directory, hidden ones included, with its bytes."""
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), 'rb') as f:
            out[name] = f.read()
    return out


class Pair:
    """A primary and a redundant server as two directories, and the calls between them."""

    def __init__(self, tmp_path):
        self.p = tmp_path / 'primary'
        self.r = tmp_path / 'redundant'
        self.t = tmp_path / 'transfer'
        for d in (self.p, self.r, self.t):
            d.mkdir()
        self.calls = []
        self.transfers = []

    def pk(self, name='EKMKeys.jck'):
        return str(self.p / name)

    def rk(self, name='EKMKeys.jck'):
        return str(self.r / name)

    def params(self, side, password=PW, primary_password=None, backup=True):
        base = self.p if side == 'primary' else self.r
        return {'keystore_path': str(base / 'EKMKeys.jck'), 'keygroups_path': str(base / 'KeyGroups.xml'),
                'drivetable_path': str(base / 'filedrive.table'), 'sync_state_path': None, 'password': password,
                'primary_password': primary_password, 'backup': backup}

    def sync(self, check_mode=False, force=False, password=PW, primary_password=None, backup=True, install_runner=None):
        p_params = self.params('primary', password=primary_password or password)
        r_params = self.params('redundant', password=password, primary_password=primary_password, backup=backup)

        def caller(side, params):
            def call(phase):
                self.calls.append((side, phase['phase']))
                args = dict(params, _sync=json.loads(json.dumps(phase)))
                if install_runner and phase['phase'] == 'install':
                    return install_runner(args)
                res = _sync.run_phase(args, check_mode)
                return json.loads(json.dumps(res))
            return call

        def transfer(name, data):
            self.transfers.append(name)
            path = self.t / ('%s.from-primary' % name)
            path.write_bytes(data)
            return str(path)

        run = _sync_plan.Sync(caller('primary', p_params), caller('redundant', r_params), transfer, 'ekm1', force=force,
                              check_mode=check_mode, diff=True)
        return run.run()

    def fails(self, **kw):
        with pytest.raises(_sync.SyncError) as info:
            self.sync(**kw)
        return info.value


@pytest.fixture
def pair(tmp_path):
    return Pair(tmp_path)


@pytest.fixture
def synced(pair):
    """Primary with 5 keys, KeyGroups.xml and a drive table, already synced once."""
    make_keystore(pair.pk(), range(1, 6))
    (pair.p / 'KeyGroups.xml').write_bytes(b'<KeyGroups><group name="g1"/></KeyGroups>\n')
    (pair.p / 'filedrive.table').write_bytes(b'\x00\x01drive-table-v1')
    pair.sync()
    pair.calls.clear()
    pair.transfers.clear()
    return pair


def assert_same_files(a, b, names=('EKMKeys.jck', 'KeyGroups.xml', 'filedrive.table')):
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


# ---------------------------------------------------------------------------------------------
# Ordinary runs

def test_first_sync_copies_everything_and_records_it(pair):
    make_keystore(pair.pk(), range(1, 6))
    (pair.p / 'KeyGroups.xml').write_bytes(b'<KeyGroups/>\n')
    (pair.p / 'filedrive.table').write_bytes(b'\x00drives')
    res = pair.sync()
    assert res['changed'] is True and res['in_sync'] is True
    assert {d['status'] for d in res['drift'].values()} == {'missing'}
    assert sorted(pair.transfers) == ['drivetable', 'keygroups', 'keystore']
    assert res['aliases_added'] == ['DCA001-005']
    assert res['backup_files'] == []
    assert_same_files(pair.p, pair.r)
    assert res['redundant_digest'] == res['primary_digest']
    state = json.loads((pair.r / '.tapecrypt-sync.json').read_text())
    assert state['primary'] == 'ekm1'
    assert state['files']['keystore']['sha256'] == _sync._files.sha256_file(pair.pk())
    assert state['files']['keygroups']['path'] == str(pair.r / 'KeyGroups.xml')
    assert sorted(os.listdir(pair.r)) == ['.tapecrypt-sync.json', 'EKMKeys.jck', 'KeyGroups.xml', 'filedrive.table']
    assert oct(os.stat(pair.rk()).st_mode & 0o777) == '0o600'


def test_in_sync_nothing_travels_and_nothing_changes(synced):
    before = snapshot(synced.r)
    mtimes = {n: os.stat(synced.r / n).st_mtime_ns for n in before}
    res = synced.sync()
    assert res['changed'] is False and res['in_sync'] is True
    assert {d['status'] for d in res['drift'].values()} == {'same'}
    assert synced.transfers == []
    assert synced.calls == [('primary', 'inventory'), ('redundant', 'inventory')]
    assert snapshot(synced.r) == before
    assert {n: os.stat(synced.r / n).st_mtime_ns for n in before} == mtimes
    assert 'diff' not in res


def test_keys_added_on_primary_only_the_keystore_travels(synced):
    old_keys = keys_of(synced.rk())
    add_keys(synced.pk(), [6, 7])
    old_bytes = (synced.r / 'EKMKeys.jck').read_bytes()
    res = synced.sync()
    assert res['changed'] is True
    assert synced.transfers == ['keystore']
    assert res['aliases_added'] == ['DCA006-007']
    assert res['drift']['keystore']['status'] == 'primary_changed'
    assert res['drift']['keygroups']['status'] == 'same'
    assert res['changed_files'] == [os.path.realpath(synced.rk())]
    # No key was decrypted to decide: entry bytes were equal for every shared alias.
    assert ('primary', 'fingerprints') not in synced.calls and ('redundant', 'fingerprints') not in synced.calls
    assert_same_files(synced.p, synced.r)
    new_keys = keys_of(synced.rk())
    assert all(new_keys[a] == k for a, k in old_keys.items())
    assert len(res['backup_files']) == 1 and open(res['backup_files'][0], 'rb').read() == old_bytes
    assert res['diff'][0]['after'].endswith('added: DCA006-007\n')
    assert synced.sync()['changed'] is False


def test_backup_false_keeps_no_copy(synced):
    add_keys(synced.pk(), [6])
    res = synced.sync(backup=False)
    assert res['changed'] is True and res['backup_files'] == []
    assert not [n for n in os.listdir(synced.r) if n.endswith('.bak')]


def test_copies_of_replaced_key_groups_are_bounded_but_keystore_copies_stay(synced):
    made = {'keystore': [], 'keygroups': []}
    for n in range(6, 10):
        add_keys(synced.pk(), [n])
        (synced.p / 'KeyGroups.xml').write_bytes(b'<KeyGroups><group name="g%d"/></KeyGroups>\n' % n)
        res = synced.sync()
        assert res['changed'] is True and len(res['backup_files']) == 2
        for copy in res['backup_files']:
            made['keystore' if 'EKMKeys.jck' in copy else 'keygroups'].append(copy)
    # keep_copies defaults to 5 in the argument spec; the stand-in passes none, so nothing was removed yet.
    assert res['removed_copies'] == []
    synced_params = synced.params

    def keep_two(side, **kw):
        return dict(synced_params(side, **kw), keep_copies=2)

    synced.params = keep_two
    add_keys(synced.pk(), [10])
    (synced.p / 'KeyGroups.xml').write_bytes(b'<KeyGroups><group name="g10"/></KeyGroups>\n')
    res = synced.sync()
    assert sorted(res['removed_copies']) == sorted(made['keygroups'][:3])
    remaining = sorted(n for n in os.listdir(synced.r) if n.endswith('.bak'))
    assert len([n for n in remaining if n.startswith('KeyGroups.xml.')]) == 2
    assert len([n for n in remaining if n.startswith('EKMKeys.jck.')]) == 5


def test_check_mode_reports_drift_and_changes_nothing(synced):
    add_keys(synced.pk(), [6, 7, 8])
    (synced.p / 'KeyGroups.xml').write_bytes(b'<KeyGroups><group name="g2"/></KeyGroups>\n')
    before = snapshot(synced.r)
    res = synced.sync(check_mode=True)
    assert res['changed'] is True and res['in_sync'] is False
    assert res['drift']['keystore']['status'] == 'primary_changed'
    assert res['drift']['keygroups']['status'] == 'primary_changed'
    assert res['drift']['drivetable']['status'] == 'same'
    assert res['aliases_added'] == ['DCA006-008']
    assert res['conflicts'] == []
    assert res['changed_files'] == [synced.rk(), str(synced.r / 'KeyGroups.xml')]
    assert synced.transfers == [] and ('primary', 'export') not in synced.calls
    assert snapshot(synced.r) == before
    # The real run then does what check mode announced.
    res = synced.sync()
    assert res['changed'] is True and sorted(synced.transfers) == ['keygroups', 'keystore']
    assert synced.sync(check_mode=True)['changed'] is False


def test_check_mode_on_an_empty_redundant_writes_no_state(pair):
    make_keystore(pair.pk(), range(1, 3))
    res = pair.sync(check_mode=True)
    assert res['changed'] is True and res['drift']['keystore']['status'] == 'missing'
    assert res['aliases_added'] == ['DCA001-002']
    assert os.listdir(pair.r) == []


def test_same_key_resealed_is_not_a_conflict(pair):
    """Different entry bytes (another salt) for the same key: compared by fingerprint, then synced."""
    make_keystore(pair.pk(), range(1, 4))
    keys = keys_of(pair.pk())
    make_keystore(pair.rk(), range(1, 3), keys=keys)
    (pair.r / '.tapecrypt-sync.json').unlink(missing_ok=True)
    res = pair.sync()
    assert res['changed'] is True and res['conflicts'] == []
    assert ('primary', 'fingerprints') in pair.calls and ('redundant', 'fingerprints') in pair.calls
    assert res['aliases_added'] == ['dca000000000000000003']  # a single alias stays as it is
    assert_same_files(pair.p, pair.r, names=('EKMKeys.jck',))


def test_primary_password_differs_after_store_password_change(synced):
    """The primary's store password was changed: the copy carries it, and the redundant opens with it afterwards."""
    with open(synced.pk(), 'rb') as f:
        ks = _jceks.load(f.read(), PW)
    with open(synced.pk(), 'wb') as f:
        f.write(_jceks.dump(ks, 'new-store-pw'))
    res = synced.sync(primary_password='new-store-pw')
    assert res['changed'] is True and res['aliases_added'] == []
    with open(synced.rk(), 'rb') as f:
        _jceks.load(f.read(), 'new-store-pw')


# ---------------------------------------------------------------------------------------------
# Conflicts: the task fails, names the aliases, and nothing changes (force or not)

@pytest.mark.parametrize('force', [False, True])
def test_conflict_extra_alias_on_redundant(synced, force):
    add_keys(synced.rk(), [40, 41])
    add_keys(synced.pk(), [6])
    before = snapshot(synced.r)
    err = synced.fails(force=force)
    assert 'DCA028-029' in str(err) and 'not copied from the primary' in str(err)
    assert 'cannot be merged' in str(err) and 'Nothing was changed' in str(err)
    assert err.result['conflicts'][0]['kind'] == 'extra_aliases'
    assert err.result['conflicts'][0]['aliases'] == ['DCA028-029']
    assert err.result['drift']['keystore']['status'] == 'conflict'
    assert err.result['in_sync'] is False
    assert synced.transfers == [] and ('primary', 'export') not in synced.calls
    assert snapshot(synced.r) == before


@pytest.mark.parametrize('force', [False, True])
def test_conflict_independent_keystore_same_aliases(pair, force):
    make_keystore(pair.pk(), range(1, 11))
    make_keystore(pair.rk(), range(1, 11))  # the same aliases, its own keys
    before = snapshot(pair.r)
    err = pair.fails(force=force)
    assert 'different keys' in str(err) and 'DCA001-00A' in str(err)
    assert err.result['conflicts'][0]['aliases'] == ['DCA001-00A']
    assert snapshot(pair.r) == before
    assert pair.transfers == []


def test_conflict_in_check_mode_fails_with_the_report(pair):
    make_keystore(pair.pk(), range(1, 3))
    make_keystore(pair.rk(), [1])
    err = pair.fails(check_mode=True)
    assert err.result['conflicts'][0]['kind'] == 'different_keys'
    assert err.result['drift']['keystore']['status'] == 'conflict'


def test_local_keygroups_edit_refused_without_force_replaced_with_force(synced):
    local = b'<KeyGroups><group name="edited-on-redundant"/></KeyGroups>\n'
    (synced.r / 'KeyGroups.xml').write_bytes(local)
    (synced.p / 'KeyGroups.xml').write_bytes(b'<KeyGroups><group name="g2"/></KeyGroups>\n')
    add_keys(synced.pk(), [6])
    before = snapshot(synced.r)
    err = synced.fails()
    assert 'changed locally since the last sync' in str(err) and 'force: true' in str(err)
    assert err.result['drift']['keygroups']['status'] == 'local_change'
    assert err.result['conflicts'] == [{'file': 'keygroups', 'kind': 'local_change', 'path': str(synced.r / 'KeyGroups.xml'),
                                        'reason': err.result['conflicts'][0]['reason']}]
    assert snapshot(synced.r) == before and synced.transfers == []

    res = synced.sync(force=True, backup=False)  # a forced replacement is backed up even so
    assert res['forced'] == ['keygroups']
    assert sorted(synced.transfers) == ['keygroups', 'keystore']
    assert_same_files(synced.p, synced.r)
    backups = [b for b in res['backup_files'] if 'KeyGroups.xml' in b]
    assert len(backups) == 1 and open(backups[0], 'rb').read() == local
    assert synced.sync()['changed'] is False


def test_local_drivetable_edit_when_primary_unchanged(synced):
    (synced.r / 'filedrive.table').write_bytes(b'local drive edit')
    err = synced.fails()
    assert err.result['drift']['drivetable']['status'] == 'local_change'
    assert str(err).startswith('Sync from the primary ekm1 refused. The drive table on this redundant server')


def test_first_sync_with_differing_opaque_file_needs_force(pair):
    make_keystore(pair.pk(), range(1, 3))
    (pair.p / 'KeyGroups.xml').write_bytes(b'<primary/>')
    (pair.r / 'KeyGroups.xml').write_bytes(b'<redundant-own/>')
    err = pair.fails()
    assert 'no record of an earlier sync' in str(err)
    assert err.result['drift']['keygroups']['status'] == 'untracked_difference'
    assert sorted(os.listdir(pair.r)) == ['KeyGroups.xml']
    res = pair.sync(force=True)
    assert res['forced'] == ['keygroups']
    assert (pair.r / 'KeyGroups.xml').read_bytes() == b'<primary/>'


def test_unreadable_state_counts_as_no_record(synced):
    (synced.r / '.tapecrypt-sync.json').write_text('{not json')
    (synced.p / 'KeyGroups.xml').write_bytes(b'<changed-on-primary/>')
    err = synced.fails()
    assert err.result['drift']['keygroups']['status'] == 'untracked_difference'
    assert any('unreadable' in w for w in err.result['warnings'])


def test_opaque_file_absent_on_primary_is_not_synced(pair):
    make_keystore(pair.pk(), range(1, 3))
    (pair.r / 'KeyGroups.xml').write_bytes(b'<redundant-only/>')
    res = pair.sync()
    assert res['drift']['keygroups']['status'] == 'not_on_primary'
    assert res['drift']['drivetable']['status'] == 'not_on_primary'
    assert pair.transfers == ['keystore']
    assert (pair.r / 'KeyGroups.xml').read_bytes() == b'<redundant-only/>'
    state = json.loads((pair.r / '.tapecrypt-sync.json').read_text())
    assert sorted(state['files']) == ['keystore']


# ---------------------------------------------------------------------------------------------
# Bad input: clear error, nothing changes

def test_primary_keystore_failing_integrity_is_never_copied(synced):
    add_keys(synced.pk(), [6])
    data = bytearray((synced.p / 'EKMKeys.jck').read_bytes())
    data[40] ^= 0x01
    (synced.p / 'EKMKeys.jck').write_bytes(bytes(data))
    before = snapshot(synced.r)
    err = synced.fails()
    assert 'primary cannot be used as the source of a sync' in str(err) and 'never copied' in str(err)
    assert synced.transfers == [] and snapshot(synced.r) == before


def test_wrong_primary_password(synced):
    before = snapshot(synced.r)
    err = synced.fails(primary_password='not-the-password')
    assert 'primary' in str(err) and 'password' in str(err)
    assert snapshot(synced.r) == before


def test_wrong_redundant_password(synced):
    add_keys(synced.pk(), [6])
    before = snapshot(synced.r)
    err = synced.fails(password='wrong-on-redundant', primary_password=PW)
    assert 'this redundant server cannot be opened with the given password' in str(err)
    assert synced.transfers == [] and snapshot(synced.r) == before


def test_no_keystore_on_primary(pair):
    (pair.p / 'KeyGroups.xml').write_bytes(b'<x/>')
    err = pair.fails()
    assert 'nothing to sync from' in str(err)
    assert os.listdir(pair.r) == []


def test_missing_redundant_directory(pair, tmp_path):
    make_keystore(pair.pk(), [1])
    pair.r.rmdir()
    err = pair.fails()
    assert 'does not exist on this redundant server' in str(err)


def test_primary_changing_between_plan_and_export(synced, monkeypatch):
    add_keys(synced.pk(), [6])
    real_export = _sync.export

    def export_after_change(paths, expected):
        add_keys(synced.pk(), [7])
        return real_export(paths, expected)

    monkeypatch.setattr(_sync, 'export', export_after_change)
    before = snapshot(synced.r)
    err = synced.fails()
    assert 'changed while the sync was running' in str(err)
    assert snapshot(synced.r) == before


def test_redundant_changing_between_plan_and_install(synced, monkeypatch):
    add_keys(synced.pk(), [6])
    real_install = _sync.install

    def install_after_edit(paths, *args, **kwargs):
        (synced.r / 'KeyGroups.xml').write_bytes(b'<edited-meanwhile/>')
        return real_install(paths, *args, **kwargs)

    monkeypatch.setattr(_sync, 'install', install_after_edit)
    err = synced.fails()
    assert 'changed while the sync was running' in str(err)
    assert (synced.r / 'KeyGroups.xml').read_bytes() == b'<edited-meanwhile/>'
    assert [n for n in os.listdir(synced.r) if _sync.MARK in n] == []


def test_transfer_damaged_on_the_way(synced, monkeypatch):
    add_keys(synced.pk(), [6])
    real_read = _sync._read_transferred

    def damaged(name, source, *args):
        with open(source, 'r+b') as f:
            f.write(b'\xff')
        return real_read(name, source, *args)

    monkeypatch.setattr(_sync, '_read_transferred', damaged)
    before = snapshot(synced.r)
    err = synced.fails()
    assert 'arrived damaged' in str(err)
    assert snapshot(synced.r) == before


def test_staged_keystore_is_verified_before_install(synced, monkeypatch):
    """The redundant re-applies the subset rule to the staged file itself, not only to the plan."""
    add_keys(synced.pk(), [6])
    monkeypatch.setattr(_sync._keystore, 'compare', lambda *a: ([], ['dca000000000000000001']))
    before = snapshot(synced.r)
    err = synced.fails()
    assert 'differ from the primary' in str(err)
    assert snapshot(synced.r) == before


# ---------------------------------------------------------------------------------------------
# Interrupted installs: the next run completes or rolls back; never a mix

def _crash_on_call(monkeypatch, target, n):
    """Crash at the ``n``-th call of ``_files.<target>`` (where the install's steps are)."""
    real = getattr(_files, target)
    count = {'n': 0}

    def wrapper(*args, **kwargs):
        count['n'] += 1
        if count['n'] == n:
            raise Crash()
        return real(*args, **kwargs)

    monkeypatch.setattr(_files, target, wrapper)


def _change_everything_on_primary(pair):
    add_keys(pair.pk(), [6, 7])
    (pair.p / 'KeyGroups.xml').write_bytes(b'<KeyGroups><group name="g2"/></KeyGroups>\n')
    (pair.p / 'filedrive.table').write_bytes(b'\x00\x01drive-table-v2')


def test_crash_while_staging_leaves_old_set_and_no_usable_strays(synced, monkeypatch):
    _change_everything_on_primary(synced)
    before = snapshot(synced.r)
    _crash_on_call(monkeypatch, 'create_file', 2)
    with pytest.raises(Crash):
        synced.sync()
    monkeypatch.undo()
    strays = [n for n in os.listdir(synced.r) if _sync.MARK in n]
    assert len(strays) == 1 and strays[0].endswith('.staged')
    assert {n: v for n, v in snapshot(synced.r).items() if n not in strays} == before
    # Check mode still reports drift and leaves the stray alone; the next real run removes it and syncs.
    assert synced.sync(check_mode=True)['in_sync'] is False
    res = synced.sync()
    assert res['removed_stray_files'] == [str(synced.r / strays[0])]
    assert res['changed'] is True
    assert_same_files(synced.p, synced.r)
    assert [n for n in os.listdir(synced.r) if _sync.MARK in n] == []


@pytest.mark.parametrize('crash_at', [1, 2, 3])
def test_crash_during_renames_next_run_completes(synced, monkeypatch, crash_at):
    """crash_at=1: journal written, nothing renamed yet; 2 and 3: between renames."""
    _change_everything_on_primary(synced)
    old_state = (synced.r / '.tapecrypt-sync.json').read_bytes()
    _crash_on_call(monkeypatch, '_put_in_place', crash_at)
    with pytest.raises(Crash):
        synced.sync()
    monkeypatch.undo()
    # The state file is written last: still the old one.
    assert (synced.r / '.tapecrypt-sync.json').read_bytes() == old_state
    assert (synced.r / '.tapecrypt-sync.json.journal').exists()

    report = synced.sync(check_mode=True)
    assert report['interrupted']['files'] and report['in_sync'] is False and report['changed'] is True
    assert (synced.r / '.tapecrypt-sync.json.journal').exists()

    res = synced.sync()
    assert res['recovered']['action'] == 'completed'
    assert_same_files(synced.p, synced.r)
    assert not (synced.r / '.tapecrypt-sync.json.journal').exists()
    assert [n for n in os.listdir(synced.r) if _sync.MARK in n] == []
    state = json.loads((synced.r / '.tapecrypt-sync.json').read_text())
    assert state['files']['keystore']['sha256'] == _sync._files.sha256_file(synced.pk())
    assert res['in_sync'] is True
    again = synced.sync()
    assert again['changed'] is False and 'recovered' not in again


def test_interrupted_install_with_a_lost_staged_file_rolls_back(synced, monkeypatch):
    _change_everything_on_primary(synced)
    before = snapshot(synced.r)
    _crash_on_call(monkeypatch, '_put_in_place', 2)
    with pytest.raises(Crash):
        synced.sync()
    monkeypatch.undo()
    journal = json.loads((synced.r / '.tapecrypt-sync.json.journal').read_text())
    pending = [i for i in journal['files'] if os.path.exists(i['staged'])]
    os.unlink(pending[0]['staged'])  # a staged file lost: the install cannot be completed
    report = _sync.recover(str(synced.r / '.tapecrypt-sync.json'))
    assert report['action'] == 'rolled_back'
    after = snapshot(synced.r)
    for name in ('EKMKeys.jck', 'KeyGroups.xml', 'filedrive.table', '.tapecrypt-sync.json'):
        assert after[name] == before[name], name
    assert [n for n in after if _sync.MARK in n] == []
    # An ordinary run afterwards syncs from scratch.
    synced.sync()
    assert_same_files(synced.p, synced.r)


def test_interrupted_install_then_file_changed_by_someone_else_stops_recovery(synced, monkeypatch):
    _change_everything_on_primary(synced)
    _crash_on_call(monkeypatch, '_put_in_place', 2)
    with pytest.raises(Crash):
        synced.sync()
    monkeypatch.undo()
    (synced.r / 'filedrive.table').write_bytes(b'rewritten by EKM meanwhile')
    before = snapshot(synced.r)
    err = synced.fails()
    assert 'neither the version before nor the one after' in str(err)
    assert snapshot(synced.r) == before


def test_unreadable_journal_stops_the_run(synced):
    (synced.r / '.tapecrypt-sync.json.journal').write_text('garbage')
    before = snapshot(synced.r)
    err = synced.fails()
    assert 'journal' in str(err) and 'unreadable' in str(err)
    assert snapshot(synced.r) == before


def test_state_written_only_after_complete_install(synced, monkeypatch):
    _change_everything_on_primary(synced)
    old_state = (synced.r / '.tapecrypt-sync.json').read_bytes()
    seen = []
    real_replace = _files._put_in_place

    def watching(source, target):
        seen.append((os.path.basename(target), (synced.r / '.tapecrypt-sync.json').read_bytes() == old_state))
        return real_replace(source, target)

    monkeypatch.setattr(_files, '_put_in_place', watching)
    synced.sync()
    assert [s for s in seen if not s[1]] == []
    assert sorted(s[0] for s in seen) == ['EKMKeys.jck', 'KeyGroups.xml', 'filedrive.table']
    assert (synced.r / '.tapecrypt-sync.json').read_bytes() != old_state


def test_a_failed_rename_puts_the_redundant_back(synced, monkeypatch):
    _change_everything_on_primary(synced)
    before = snapshot(synced.r)
    calls = []
    real = _files._put_in_place

    def flaky(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(5, 'Input/output error')
        return real(source, target)

    monkeypatch.setattr(_files, '_put_in_place', flaky)
    err = synced.fails()
    monkeypatch.undo()
    assert 'put back; nothing was changed' in str(err)
    after = snapshot(synced.r)
    assert {n: v for n, v in after.items() if not n.endswith('.bak')} == before
    assert synced.sync()['changed'] is True
    assert_same_files(synced.p, synced.r)


def test_a_failure_after_the_renames_reports_the_change(synced, monkeypatch):
    _change_everything_on_primary(synced)
    real = _sync._write_state

    def full(*args):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(_sync, '_write_state', full)
    err = synced.fails()
    monkeypatch.undo()
    # Every file is in place; the redundant's result says so, and the next run records the state.
    assert err.result['changed'] is True
    names = ('EKMKeys.jck', 'KeyGroups.xml', 'filedrive.table')
    assert sorted(err.result['changed_files']) == sorted(str(synced.r / n) for n in names)
    assert_same_files(synced.p, synced.r)
    monkeypatch.setattr(_sync, '_write_state', real)
    res = synced.sync()
    assert res['recovered']['action'] == 'completed'
    assert synced.sync()['changed'] is False


def test_a_full_disk_before_the_renames_names_the_file_and_changes_nothing(synced, monkeypatch):
    # Issue 14 (regression): the message was 'file operation: No space left on device.', naming no file and not
    # saying that nothing changed; a failed backup copy also left the copies made before it behind.
    _change_everything_on_primary(synced)
    before = snapshot(synced.r)
    real_write, real_install = os.write, _sync.install
    failed_at = []

    def full_at(nth):
        writes = []

        def write(fd, data):
            writes.append(fd)
            if len(writes) == nth:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)
        return write

    for nth in range(1, 50):
        write = full_at(nth)

        def install(*args, write=write, **kw):
            monkeypatch.setattr(os, 'write', write)
            try:
                return real_install(*args, **kw)
            finally:
                monkeypatch.setattr(os, 'write', real_write)

        monkeypatch.setattr(_sync, 'install', install)
        err = synced.fails()
        if err.result.get('changed'):
            break  # the renames are done: the state file is the first write after them (tested above)
        message = str(err)
        assert 'No space left on device' in message
        assert message.endswith('Nothing was changed on this redundant server; free space (or fix the cause) and run '
                                'the sync again.'), message
        assert str(synced.r) in message, message
        assert snapshot(synced.r) == before, message
        failed_at.append(message.split(':', maxsplit=1)[0])
    monkeypatch.setattr(_sync, 'install', real_install)
    # Each staged file, each backup copy and the journal was a place where the disk ran full.
    assert len(failed_at) == 7, failed_at
    assert sum(m.startswith('Cannot write the new version of') for m in failed_at) == 3
    assert sum(m.startswith('Cannot back up') for m in failed_at) == 3
    res = synced.sync()  # the journal left by the last case completes the install, then the files are in sync
    assert res['recovered']['action'] == 'completed' and res['in_sync'] is True
    assert_same_files(synced.p, synced.r)


def test_ekm_own_temporary_files_are_left_alone(synced, monkeypatch):
    _change_everything_on_primary(synced)
    (synced.r / '.KeyGroups.xml.4711.tmp').write_bytes(b"EKM's own")
    (synced.r / '.tapecrypt-0123456789ab.KeyGroups.xml.tmp').write_bytes(b'left by a killed run')
    res = synced.sync()
    assert res['removed_stray_files'] == [str(synced.r / '.tapecrypt-0123456789ab.KeyGroups.xml.tmp')]
    assert (synced.r / '.KeyGroups.xml.4711.tmp').read_bytes() == b"EKM's own"


KILLED_INSTALL = textwrap.dedent('''
    import json, os, sys, time
    sys.path[:0] = json.loads(sys.argv[1])
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files, _sync
    real = _files._put_in_place
    calls = []
    def slow(source, target):
        calls.append(target)
        if len(calls) == 2:
            print('renamed-one', flush=True)
            time.sleep(60)
        return real(source, target)
    _files._put_in_place = slow
    params, phase = json.loads(sys.argv[2]), json.loads(sys.argv[3])
    _sync.run_phase(dict(params, _sync=phase))
''')


def test_sigkill_between_renames_then_next_run_completes(synced):
    """A real SIGKILL: no cleanup code runs, and the directory lock dies with the process."""
    _change_everything_on_primary(synced)

    def killed_install(params):
        child = subprocess.Popen([sys.executable, '-c', KILLED_INSTALL, json.dumps(sys.path),
                                  json.dumps({k: v for k, v in params.items() if k != '_sync'}), json.dumps(params['_sync'])],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = child.stdout.readline()
            assert line.strip() == b'renamed-one', child.stderr.read()
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        raise Crash()

    with pytest.raises(Crash):
        synced.sync(install_runner=killed_install)
    assert (synced.r / '.tapecrypt-sync.json.journal').exists()
    res = synced.sync()
    assert res['recovered']['action'] == 'completed'
    assert_same_files(synced.p, synced.r)
    assert synced.sync()['changed'] is False


# ---------------------------------------------------------------------------------------------
# No key material in results; the no-change path decrypts nothing and moves nothing

def test_results_carry_no_key_material(pair):
    make_keystore(pair.pk(), range(1, 4))
    make_keystore(pair.rk(), [1], keys=keys_of(pair.pk()))
    res = pair.sync()
    text = json.dumps(res)
    for key in keys_of(pair.pk()).values():
        assert key.hex() not in text and base64.b64encode(key).decode() not in text
    data = (pair.p / 'EKMKeys.jck').read_bytes()
    assert base64.b64encode(data[:64]).decode()[:40] not in text


def test_no_change_sync_of_10000_keys_decrypts_nothing_and_moves_nothing(pair, monkeypatch):
    ks = _jceks.new_keystore()
    for n in range(1, 10001):
        ks.add(_jceks.seal_secret_key(alias(n), _jceks.generate_aes_key(), PW, iteration_count=1))
    data = _jceks.dump(ks, PW)
    (pair.p / 'EKMKeys.jck').write_bytes(data)
    (pair.r / 'EKMKeys.jck').write_bytes(data)
    (pair.p / 'KeyGroups.xml').write_bytes(b'<g/>')
    (pair.r / 'KeyGroups.xml').write_bytes(b'<g/>')
    pair.sync()  # records the state
    pair.calls.clear()

    def no_decrypt(*args, **kwargs):
        raise AssertionError('a key was decrypted')

    monkeypatch.setattr(_jceks, 'unseal', no_decrypt)
    monkeypatch.setattr(_sync._jceks, 'unseal', no_decrypt)
    res = pair.sync()
    assert res['changed'] is False and res['in_sync'] is True
    assert pair.calls == [('primary', 'inventory'), ('redundant', 'inventory')]
    assert pair.transfers == []


# ---------------------------------------------------------------------------------------------
# Odd cases

def test_module_cannot_run_alone(pair):
    params = dict(pair.params('redundant'), _sync=None)
    with pytest.raises(_sync.SyncError, match='action plugin'):
        _sync.run_phase(params)


def test_symlinked_keystore_keeps_its_link(synced, tmp_path):
    real_dir = tmp_path / 'real'
    real_dir.mkdir()
    os.replace(synced.rk(), real_dir / 'EKMKeys.jck')
    os.symlink(real_dir / 'EKMKeys.jck', synced.rk())
    add_keys(synced.pk(), [6])
    res = synced.sync()
    assert res['changed'] is True and res['aliases_added'] == ['dca000000000000000006']
    assert os.path.islink(synced.rk())
    assert (real_dir / 'EKMKeys.jck').read_bytes() == (synced.p / 'EKMKeys.jck').read_bytes()
    assert [n for n in os.listdir(real_dir) if _sync.MARK in n] == []
    assert synced.sync()['changed'] is False
