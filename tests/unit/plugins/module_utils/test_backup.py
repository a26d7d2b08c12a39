# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat
import time

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _backup, _keystore
from ansible_collections.tapecrypt.ekm.plugins.module_utils._backup import BackupError
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.keystores import write_keystore

PW = 'changeit-backup'


def make_keystore(path, first, last, password=PW, keys=None):
    """A keystore with aliases dca<first..last>; ``keys`` (alias -> bytes) pins some keys."""
    return write_keystore(path, range(first, last + 1), password, keys).data


@pytest.fixture
def server(tmp_path):
    home = tmp_path / 'ekm'
    (home / 'keystore').mkdir(parents=True)
    paths = {
        'keystore': str(home / 'keystore' / 'EKMKeys.jck'),
        'config': str(home / 'KeyManagerConfig.properties'),
        'keygroups': str(home / 'KeyGroups.xml'),
        'drivetable': str(home / 'filedrive.table'),
    }
    make_keystore(paths['keystore'], 1, 3)
    with open(paths['config'], 'w') as f:
        f.write('TransportListener.tcp.port=3801\n')
    with open(paths['keygroups'], 'w') as f:
        f.write('<keyGroups/>\n')
    # No drive table yet: EKM writes it once a drive has asked for a key.
    return paths


@pytest.fixture
def dest(tmp_path):
    path = tmp_path / 'backup'
    path.mkdir()
    return str(path)


def clock(start=datetime.datetime(2026, 1, 31, 12, 0, 0, tzinfo=datetime.timezone.utc)):
    """A fake clock: one second later on every call."""
    state = {'t': start}

    def now():
        state['t'] += datetime.timedelta(seconds=1)
        return state['t']
    return now


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def tree(path):
    """Every file under ``path`` with its bytes: the whole state of a backup destination."""
    found = {}
    for root, dirs, files in os.walk(path):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), path) + '/'] = None
        for name in files:
            with open(os.path.join(root, name), 'rb') as f:
                found[os.path.relpath(os.path.join(root, name), path)] = f.read()
    return found


def run(server, dest, **kw):
    kw.setdefault('now', clock())
    return _backup.backup(server, PW, dest, 'dc1', 'ekm1', **kw)


# --- making a set ------------------------------------------------------------------------------------------------


def test_a_set_holds_byte_copies_and_a_verified_manifest(server, dest):
    res = run(server, dest, now=clock())
    assert res['changed'] is True and res['created'] is True
    assert res['set_path'] == os.path.join(dest, 'dc1', 'ekm1', '20260131T120001Z')
    assert res['sets'] == [res['set_path']]
    for role in ('keystore', 'config', 'keygroups'):
        copy = os.path.join(res['set_path'], os.path.basename(server[role]))
        assert sha(copy) == sha(server[role])
        assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(res['set_path']).st_mode) == 0o700
    assert sorted(os.listdir(res['set_path'])) == ['EKMKeys.jck', 'KeyGroups.xml', 'KeyManagerConfig.properties',
                                                   'MANIFEST.json']
    with open(os.path.join(res['set_path'], 'MANIFEST.json')) as f:
        on_disk = json.load(f)
    assert on_disk['verified'] is True and on_disk['site'] == 'dc1' and on_disk['host'] == 'ekm1'
    assert on_disk['created'] == '2026-01-31T12:00:01.000000Z'
    assert on_disk['files']['EKMKeys.jck'] == {'role': 'keystore', 'sha256': sha(server['keystore']),
                                               'size': os.path.getsize(server['keystore']), 'source': server['keystore']}
    assert on_disk['absent'] == {'filedrive.table': {'role': 'drivetable', 'source': server['drivetable']}}
    ks, _data = _keystore.read(server['keystore'], PW)
    assert on_disk['keystore'] == {'file': 'EKMKeys.jck', 'count': 3, 'digest': _keystore.digest(ks), 'ranges': ['DCA001-003']}
    assert on_disk['hmac'] == _backup.manifest_mac(on_disk, PW)
    # The HMAC stays in the file; the result (which ends up in logs) does not carry it.
    assert 'hmac' not in res['manifest'] and res['manifest'] == {k: v for k, v in on_disk.items() if k != 'hmac'}
    assert not [n for n in os.listdir(os.path.dirname(res['set_path'])) if n.startswith('.')]


def test_ten_runs_without_a_change_leave_exactly_one_set(server, dest):
    now = clock()
    first = run(server, dest, now=now, keep=30)
    results = [run(server, dest, now=now, keep=30) for _run in range(9)]
    assert [r['changed'] for r in results] == [False] * 9
    assert {r['set_path'] for r in results} == {first['set_path']}
    assert os.listdir(os.path.join(dest, 'dc1', 'ekm1')) == [os.path.basename(first['set_path'])]


def test_any_changed_or_new_file_makes_a_new_set(server, dest):
    now = clock()
    first = run(server, dest, now=now)
    with open(server['keygroups'], 'a') as f:
        f.write('<!-- last used key changed -->\n')
    second = run(server, dest, now=now)
    assert second['created'] is True and second['sets'] == [second['set_path'], first['set_path']]
    with open(server['drivetable'], 'wb') as f:
        f.write(b'\x00drive')
    third = run(server, dest, now=now)
    assert third['created'] is True and 'filedrive.table' in third['manifest']['files']
    assert third['manifest']['absent'] == {}
    make_keystore(server['keystore'], 1, 5)
    fourth = run(server, dest, now=now)
    assert fourth['created'] is True and fourth['manifest']['keystore']['ranges'] == ['DCA001-005']
    assert len(fourth['sets']) == 4


def test_keep_prunes_the_oldest_sets_and_never_the_newest(server, dest):
    now = clock()
    made = []
    for n in range(4):
        with open(server['config'], 'a') as f:
            f.write('# change %d\n' % n)
        made.append(run(server, dest, now=now, keep=2))
    assert made[2]['pruned'] == [made[0]['set_path']]
    assert made[3]['pruned'] == [made[1]['set_path']]
    assert made[3]['sets'] == [made[3]['set_path'], made[2]['set_path']]
    assert sorted(os.listdir(os.path.join(dest, 'dc1', 'ekm1'))) == sorted(
        os.path.basename(m['set_path']) for m in made[2:])
    # keep: 1 on an unchanged server keeps the newest set only.
    last = run(server, dest, now=now, keep=1)
    assert last['created'] is False and last['changed'] is True and last['pruned'] == [made[2]['set_path']]
    assert last['sets'] == [made[3]['set_path']]


def test_a_set_whose_removal_fails_is_not_reported_as_pruned(server, dest, monkeypatch):
    now = clock()
    made = []
    for n in range(2):
        with open(server['config'], 'a') as f:
            f.write('# change %d\n' % n)
        made.append(run(server, dest, now=now))
    host_dir = os.path.join(dest, 'dc1', 'ekm1')
    # A file that cannot be removed (a read-only filesystem, an immutable flag): rmtree gives up part-way.
    monkeypatch.setattr(_backup.shutil, 'rmtree', lambda path, ignore_errors=False: None)
    res = run(server, dest, now=now, keep=1)
    monkeypatch.undo()
    # The set was renamed aside (a change), but it is not reported removed.
    assert res['pruned'] == [] and res['changed'] is True
    assert res['sets'] == [made[1]['set_path']]
    doomed = os.path.join(host_dir, '.%s.pruning' % os.path.basename(made[0]['set_path']))
    assert any(made[0]['set_path'] in w and doomed in w for w in res['warnings'])
    # No longer a set; the next run removes what is left, and reports it as a leftover, not as a pruned set.
    again = run(server, dest, now=now, keep=1)
    assert again['removed_leftovers'] == [doomed] and again['pruned'] == []
    assert sorted(os.listdir(host_dir)) == [os.path.basename(made[1]['set_path'])]


def test_keep_below_one_is_refused(server, dest):
    with pytest.raises(BackupError, match='keep must be at least 1'):
        run(server, dest, keep=0)
    assert os.listdir(dest) == []


def test_a_failed_set_removes_nothing_and_leaves_nothing(server, dest, monkeypatch):
    now = clock()
    for n in range(3):
        with open(server['config'], 'a') as f:
            f.write('# change %d\n' % n)
        run(server, dest, now=now)
    before = tree(dest)
    with open(server['config'], 'a') as f:
        f.write('# one more\n')
    real = _backup._read_back

    def damaged(path):
        # The destination hands back different bytes than were written: a bad disk or a full one.
        data = real(path)
        return data[:-1] + b'X' if path.endswith('.properties') else data
    monkeypatch.setattr(_backup, '_read_back', damaged)
    with pytest.raises(BackupError) as err:
        run(server, dest, now=now, keep=1)
    assert 'KeyManagerConfig.properties has sha256' in str(err.value)
    assert 'No set was made and no old set was removed' in str(err.value)
    assert tree(dest) == before


def test_a_crash_before_the_manifest_never_counts_as_a_set(server, dest, monkeypatch):
    now = clock()
    good = run(server, dest, now=now)
    with open(server['config'], 'a') as f:
        f.write('# change\n')

    def crash(*_args):
        raise KeyboardInterrupt  # the process dies mid-copy; nothing gets to clean up
    monkeypatch.setattr(_backup, 'verify_keystore', crash)
    with pytest.raises(KeyboardInterrupt):
        run(server, dest, now=now)
    monkeypatch.undo()
    host_dir = os.path.join(dest, 'dc1', 'ekm1')
    partial = [n for n in os.listdir(host_dir) if n.endswith('.partial')]
    assert len(partial) == 1
    sets, invalid = _backup.list_sets(host_dir, PW)
    assert [s.path for s in sets] == [good['set_path']] and invalid == []
    # A young partial may belong to a run still in progress: left alone. An old one is removed.
    res = run(server, dest, now=now)
    assert res['created'] is True and res['removed_leftovers'] == []
    old = time.time() - _backup.STALE_SECONDS - 60
    os.utime(os.path.join(host_dir, partial[0]), (old, old))
    res = run(server, dest, now=now)
    assert res['created'] is False and res['removed_leftovers'] == [os.path.join(host_dir, partial[0])]
    assert not [n for n in os.listdir(host_dir) if n.startswith('.')]


def test_directories_without_a_valid_manifest_are_listed_as_invalid_and_never_pruned(server, dest):
    now = clock()
    good = run(server, dest, now=now)
    host_dir = os.path.dirname(good['set_path'])
    no_manifest = os.path.join(host_dir, '20250101T000000Z')
    os.mkdir(no_manifest)
    unverified = os.path.join(host_dir, '20250102T000000Z')
    os.mkdir(unverified)
    with open(os.path.join(good['set_path'], 'MANIFEST.json')) as f:
        manifest = json.load(f)
    manifest['verified'] = False
    with open(os.path.join(unverified, 'MANIFEST.json'), 'w') as f:
        json.dump(manifest, f)
    with open(server['config'], 'a') as f:
        f.write('# change\n')
    res = run(server, dest, now=now, keep=1)
    assert res['pruned'] == [good['set_path']]
    assert {i['path']: i['reason'] for i in res['invalid_sets']} == {
        no_manifest: 'MANIFEST.json is missing',
        unverified: 'the manifest does not say the set was verified',
    }
    assert os.path.isdir(no_manifest) and os.path.isdir(unverified)


def test_an_altered_manifest_does_not_list(server, dest):
    good = run(server, dest)
    path = os.path.join(good['set_path'], 'MANIFEST.json')
    with open(path) as f:
        manifest = json.load(f)
    manifest['host'] = 'ekm2'
    with open(path, 'w') as f:
        json.dump(manifest, f)
    sets, invalid = _backup.list_sets(os.path.dirname(good['set_path']), PW)
    assert sets == []
    assert invalid == [(good['set_path'], 'the manifest was altered, or it was written with another keystore password')]
    # Without the password only the structure can be judged.
    assert [s.path for s in _backup.list_sets(os.path.dirname(good['set_path']))[0]] == [good['set_path']]


def test_a_damaged_newest_set_is_replaced_by_a_new_one(server, dest):
    now = clock()
    first = run(server, dest, now=now)
    copy = os.path.join(first['set_path'], 'KeyGroups.xml')
    with open(copy, 'r+b') as f:
        f.write(b'X')
    res = run(server, dest, now=now)
    assert res['created'] is True and res['set_path'] != first['set_path']
    assert len(res['warnings']) == 1 and first['set_path'] in res['warnings'][0]
    assert 'KeyGroups.xml has sha256' in res['warnings'][0]


def test_sets_made_in_the_same_second_get_distinct_names(server, dest):
    fixed = datetime.datetime(2026, 1, 31, 12, 0, 0, 123, tzinfo=datetime.timezone.utc)
    first = run(server, dest, now=lambda: fixed)
    with open(server['config'], 'a') as f:
        f.write('# change\n')
    second = run(server, dest, now=lambda: fixed + datetime.timedelta(microseconds=1))
    assert os.path.basename(first['set_path']) == '20260131T120000Z'
    assert os.path.basename(second['set_path']) == '20260131T120000Z-2'
    assert second['sets'] == [second['set_path'], first['set_path']]


def test_a_set_made_while_the_clock_is_behind_is_never_pruned(server, dest):
    first = run(server, dest, now=lambda: datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc))
    with open(server['config'], 'a') as f:
        f.write('# change\n')
    second = run(server, dest, now=lambda: datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc), keep=1)
    assert second['pruned'] == [first['set_path']] and os.path.isdir(second['set_path'])


# --- check mode ------------------------------------------------------------------------------------------------


def test_check_mode_writes_nothing(server, dest):
    res = run(server, dest, check_mode=True)
    assert res['changed'] is True and res['created'] is True and res['set_path'] is None
    assert os.listdir(dest) == []
    now = clock()
    made = run(server, dest, now=now)
    res = run(server, dest, check_mode=True)
    assert res['changed'] is False and res['set_path'] == made['set_path'] and res['sets'] == [made['set_path']]
    with open(server['config'], 'a') as f:
        f.write('# change\n')
    before = tree(dest)
    res = run(server, dest, check_mode=True, keep=1)
    assert res['created'] is True and res['pruned'] == [made['set_path']]
    assert tree(dest) == before


# --- refusals ------------------------------------------------------------------------------------------------------


def test_a_destination_that_does_not_exist_is_refused(server, tmp_path):
    missing = str(tmp_path / 'not-mounted')
    with pytest.raises(BackupError, match='The backup destination .*not-mounted does not exist'):
        run(server, missing)
    assert not os.path.exists(missing)


def test_a_destination_that_is_not_writable_is_refused(server, dest, monkeypatch):
    os.chmod(dest, 0o500)
    if os.geteuid() == 0:
        # root writes through permission bits; what it cannot write to (a read-only mount) os.access reports.
        real = os.access
        monkeypatch.setattr(_backup.os, 'access', lambda p, m: False if p == dest else real(p, m))
    try:
        with pytest.raises(BackupError, match='is not writable by this user. Nothing was backed up.'):
            run(server, dest)
    finally:
        os.chmod(dest, 0o700)
    assert os.listdir(dest) == []


def test_a_set_directory_that_cannot_be_made_is_a_clear_error(server, dest):
    with open(os.path.join(dest, 'dc1'), 'w') as f:
        f.write('a file where the site directory should be')
    with pytest.raises(BackupError, match='Cannot create the backup directory .*dc1/ekm1'):
        run(server, dest)


def test_a_destination_inside_protected_or_ekm_directories_is_refused(server, tmp_path):
    inside_home = tmp_path / 'ekm' / 'backups'
    inside_home.mkdir()
    with pytest.raises(BackupError, match='Refusing to back up into .*ekm/backups.*inside'):
        run(server, str(inside_home), protected_paths=[str(tmp_path / 'ekm')])
    inside_keystore_dir = tmp_path / 'ekm' / 'keystore' / 'bk'
    inside_keystore_dir.mkdir()
    with pytest.raises(BackupError, match='Refusing to back up into'):
        run(server, str(inside_keystore_dir))
    # A symlinked site directory that leads back into the EKM home is caught as well.
    outside = tmp_path / 'outside'
    outside.mkdir()
    os.symlink(str(tmp_path / 'ekm'), str(outside / 'dc1'))
    with pytest.raises(BackupError, match='Refusing to back up into'):
        run(server, str(outside), protected_paths=[str(tmp_path / 'ekm')])
    assert os.listdir(str(inside_home)) == [] and os.listdir(str(inside_keystore_dir)) == []


def test_a_wrong_password_backs_up_nothing(server, dest):
    with pytest.raises(BackupError, match='password is most likely wrong.*Nothing was backed up'):
        _backup.backup(server, 'not-the-password', dest, 'dc1', 'ekm1')
    assert os.listdir(dest) == []


def test_a_missing_keystore_backs_up_nothing(server, dest):
    os.unlink(server['keystore'])
    with pytest.raises(BackupError, match='EKMKeys.jck does not exist; there is nothing to back up'):
        run(server, dest)
    assert os.listdir(dest) == []


@pytest.mark.parametrize('site', ['', '.', '..', '.hidden', 'a/b'])
def test_site_and_host_must_be_one_plain_path_component(server, dest, site):
    with pytest.raises(BackupError, match='cannot name a backup directory'):
        _backup.backup(server, PW, dest, site, 'ekm1')
    with pytest.raises(BackupError, match='cannot name a backup directory'):
        _backup.backup(server, PW, dest, 'dc1', site)


def test_two_files_with_one_name_are_refused(server, dest, tmp_path):
    other = tmp_path / 'elsewhere'
    other.mkdir()
    (other / 'EKMKeys.jck').write_bytes(b'x')
    paths = dict(server, drivetable=str(other / 'EKMKeys.jck'))
    with pytest.raises(BackupError, match='have the same file name EKMKeys.jck'):
        _backup.backup(paths, PW, dest, 'dc1', 'ekm1')


# --- verifying a set for a restore -----------------------------------------------------------------------------


def test_verify_set_returns_the_files_and_the_keystore(server, dest):
    res = run(server, dest)
    manifest, data, keystore = _backup.verify_set(res['set_path'], PW)
    assert data['KeyGroups.xml'] == b'<keyGroups/>\n'
    assert keystore.aliases() == ['dca%018x' % n for n in (1, 2, 3)]
    assert manifest['keystore']['count'] == 3


@pytest.mark.parametrize('damage, message', [
    ('remove_file', 'KeyGroups.xml is missing'),
    ('flip_byte', 'EKMKeys.jck has sha256 [0-9a-f]{64}, the manifest records'),
    ('remove_manifest', 'MANIFEST.json is missing'),
    ('break_manifest', 'MANIFEST.json is not valid JSON'),
    ('alter_manifest', 'the manifest was altered'),
    ('alter_count', 'its keystore EKMKeys.jck holds 3 entries with digest .*the manifest records 4 entries'),
])
def test_verify_set_names_what_is_wrong(server, dest, damage, message):
    res = run(server, dest)
    set_path = res['set_path']
    manifest_path = os.path.join(set_path, 'MANIFEST.json')
    with open(manifest_path) as f:
        manifest = json.load(f)
    if damage == 'remove_file':
        os.unlink(os.path.join(set_path, 'KeyGroups.xml'))
    elif damage == 'flip_byte':
        path = os.path.join(set_path, 'EKMKeys.jck')
        with open(path, 'rb') as f:
            data = bytearray(f.read())
        data[len(data) // 2] ^= 0x01
        with open(path, 'wb') as f:
            f.write(data)
    elif damage == 'remove_manifest':
        os.unlink(manifest_path)
    elif damage == 'break_manifest':
        with open(manifest_path, 'w') as f:
            f.write(json.dumps(manifest)[:-10])
    elif damage == 'alter_manifest':
        manifest['files']['KeyManagerConfig.properties']['source'] = '/etc/elsewhere.properties'
        with open(manifest_path, 'w') as f:
            json.dump(manifest, f)
    elif damage == 'alter_count':
        manifest['keystore']['count'] = 4
        with open(manifest_path, 'w') as f:
            json.dump(manifest, f)
    with pytest.raises(BackupError, match='The backup set %s cannot be used: %s' % (set_path, message)):
        _backup.verify_set(set_path, PW)


def test_verify_set_with_the_wrong_password(server, dest):
    res = run(server, dest)
    with pytest.raises(BackupError, match='its keystore EKMKeys.jck does not open with the given password'):
        _backup.verify_set(res['set_path'], 'wrong-password')
