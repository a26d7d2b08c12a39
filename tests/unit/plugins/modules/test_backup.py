# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

import pytest

from ansible.module_utils import basic

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _backup, _jceks
from ansible_collections.tapecrypt.ekm.plugins.modules import backup as backup_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import run_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.keystores import FAST, write_keystore

PW = 'changeit-backup-module'


def make_keystore(path, count):
    write_keystore(path, range(1, count + 1), PW)


@pytest.fixture
def home(tmp_path):
    path = tmp_path / 'ekm'
    path.mkdir()
    make_keystore(str(path / 'EKMKeys.jck'), 4)
    (path / 'KeyManagerConfig.properties').write_bytes(b'TransportListener.tcp.port=3801\n')
    (path / 'KeyGroups.xml').write_bytes(b'<keyGroups/>\n')
    (path / 'filedrive.table').write_bytes(b'\x00\x01drive-1\n')
    return path


@pytest.fixture
def dest(tmp_path):
    path = tmp_path / 'backup'
    path.mkdir()
    return path


def args(home, dest, **kw):
    base = dict(keystore_path=str(home / 'EKMKeys.jck'), config_path=str(home / 'KeyManagerConfig.properties'),
                keygroups_path=str(home / 'KeyGroups.xml'), drivetable_path=str(home / 'filedrive.table'),
                password=PW, dest=str(dest), site='dc1', host='ekm1', protected_paths=[str(home)])
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def listing(path):
    return sorted(os.path.relpath(os.path.join(root, name), str(path))
                  for root, dirs, files in os.walk(str(path)) for name in dirs + files)


def test_check_apply_idempotent_check_idempotent_apply(home, dest):
    res = run_module(backup_module.main, args(home, dest), check_mode=True, diff=True)
    assert res['changed'] is True and res['created'] is True and res['set_path'] is None
    assert 'EKMKeys.jck: %s' % hashlib.sha256((home / 'EKMKeys.jck').read_bytes()).hexdigest() in res['diff']['after']
    assert 'keys: 4' in res['diff']['after'] and res['diff']['before'] == ''
    assert listing(dest) == []

    res = run_module(backup_module.main, args(home, dest), diff=True)
    assert res['changed'] is True and res['created'] is True
    set_path = res['set_path']
    assert os.path.dirname(set_path) == str(dest / 'dc1' / 'ekm1')
    assert res['sets'] == [set_path] and res['pruned'] == []
    assert res['manifest']['keystore']['count'] == 4 and res['manifest']['keystore']['ranges'] == ['DCA001-004']
    assert sorted(res['manifest']['files']) == ['EKMKeys.jck', 'KeyGroups.xml', 'KeyManagerConfig.properties',
                                                'filedrive.table']
    for name in res['manifest']['files']:
        assert (home / name).read_bytes() == open(os.path.join(set_path, name), 'rb').read()
    assert res['diff']['after_header'] == set_path
    after = listing(dest)

    res = run_module(backup_module.main, args(home, dest), check_mode=True)
    assert res['changed'] is False and res['set_path'] == set_path
    res = run_module(backup_module.main, args(home, dest), diff=True)
    assert res['changed'] is False and res['set_path'] == set_path and 'diff' not in res
    assert listing(dest) == after


def test_ten_runs_without_a_change_leave_exactly_one_set(home, dest):
    results = [run_module(backup_module.main, args(home, dest, keep=30)) for _run in range(10)]
    assert [r['changed'] for r in results] == [True] + [False] * 9
    assert os.listdir(str(dest / 'dc1' / 'ekm1')) == [os.path.basename(results[0]['set_path'])]


def test_the_result_never_carries_the_password_or_key_material(home, dest):
    res = run_module(backup_module.main, args(home, dest), diff=True)
    text = json.dumps(res)
    assert PW not in text and 'hmac' not in text
    with open(str(home / 'EKMKeys.jck'), 'rb') as f:
        ks = _jceks.load(f.read(), PW)
    for entry in ks.entries:
        assert _jceks.unseal(entry, PW)[1].hex() not in text


def test_a_new_key_makes_a_new_set_and_keep_prunes(home, dest):
    first = run_module(backup_module.main, args(home, dest, keep=1))
    make_keystore(str(home / 'EKMKeys.jck'), 5)
    second = run_module(backup_module.main, args(home, dest, keep=1))
    assert second['created'] is True and second['pruned'] == [first['set_path']]
    assert second['sets'] == [second['set_path']] and not os.path.exists(first['set_path'])


@pytest.mark.parametrize('case, message', [
    ('missing dest', r'The backup destination \S+/not-mounted does not exist or is not a directory; mount or create it '
                     r'first. Nothing was backed up.'),
    ('dest in home', r'Refusing to back up into \S+/ekm/backups: \S+/ekm/backups is inside \S+/ekm; it must be outside '
                     r'that directory. A backup must not share the fate of the files it protects. Nothing was backed up.'),
    ('wrong password', r'Keystore \S+/EKMKeys.jck: The keystore integrity check failed: the store password is most '
                       r'likely wrong.* Nothing was backed up.'),
    ('bad keep', r'keep must be at least 1 \(the newest set is never removed\); got 0.'),
])
def test_bad_input_fails_clearly_and_writes_nothing(home, dest, tmp_path, case, message):
    kw = {}
    target = dest
    if case == 'missing dest':
        target = tmp_path / 'not-mounted'
    elif case == 'dest in home':
        target = home / 'backups'
        target.mkdir()
    elif case == 'wrong password':
        kw['password'] = 'not-the-password'
    elif case == 'bad keep':
        kw['keep'] = 0
    before = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    res = run_module(backup_module.main, args(home, target, **kw), expect_fail=True)
    assert re.fullmatch(message, res['msg']), res['msg']
    assert listing(dest) == []
    assert not os.path.exists(str(tmp_path / 'not-mounted'))
    assert {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()} == before
    if case == 'dest in home':
        assert listing(target) == []


def test_a_destination_that_is_not_writable(home, dest, monkeypatch):
    os.chmod(str(dest), 0o500)
    if os.geteuid() == 0:
        # root writes through permission bits; what it cannot write to (a read-only mount) os.access reports.
        real = os.access
        monkeypatch.setattr(_backup.os, 'access', lambda p, m: False if p == str(dest) else real(p, m))
    try:
        res = run_module(backup_module.main, args(home, dest), expect_fail=True)
    finally:
        os.chmod(str(dest), 0o700)
    assert res['msg'] == 'The backup destination %s is not writable by this user. Nothing was backed up.' % dest
    assert listing(dest) == []


def test_a_damaged_newest_set_is_reported_and_replaced(home, dest, monkeypatch):
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, text: warned.append(text))
    first = run_module(backup_module.main, args(home, dest))
    with open(os.path.join(first['set_path'], 'filedrive.table'), 'r+b') as f:
        f.write(b'\xff')
    res = run_module(backup_module.main, args(home, dest))
    assert res['created'] is True and res['set_path'] != first['set_path']
    assert any(first['set_path'] in w and 'no longer matches its manifest' in w for w in warned)


# --- the copies beside the EKM files (keep_copies) -------------------------------------------------

def copy_name(path, n):
    """A copy named as _files.backup_copy names them, the n-th second of a day."""
    return '%s.20260101T0000%02d000000Z.bak' % (path, n)


def old_copies(home, kind, count):
    """``count`` copies of the file ``kind`` beside it, oldest first, each with the file's current bytes."""
    made = []
    for n in range(count):
        target = copy_name(str(home / kind), n)
        with open(str(home / kind), 'rb') as f, open(target, 'wb') as out:
            out.write(f.read())
        made.append(target)
    return made


def add_key(path, alias):
    with open(path, 'rb') as f:
        ks = _jceks.load(f.read(), PW)
    ks.add(_jceks.seal_secret_key(alias, _jceks.generate_aes_key(), PW, iteration_count=FAST))
    with open(path, 'wb') as f:
        f.write(_jceks.dump(ks, PW))


def test_copies_are_bounded_after_a_verified_set(home, dest):
    configs = old_copies(home, 'KeyManagerConfig.properties', 7)
    keystores = old_copies(home, 'EKMKeys.jck', 7)
    # A legacy copy of module.backup_local's form, the oldest of all.
    legacy = str(home / 'EKMKeys.jck') + '.4242.2025-12-31@23:59:59~'
    with open(str(home / 'EKMKeys.jck'), 'rb') as f, open(legacy, 'wb') as out:
        out.write(f.read())
    res = run_module(backup_module.main, args(home, dest, keep_copies=3))
    assert res['created'] is True
    # Every entry of these copies is in the keystore and in the set: all but the newest 3 go, the legacy one too.
    assert sorted(res['removed_copies']) == sorted(configs[:4] + keystores[:4] + [legacy])
    assert res['kept_copies'] == []
    assert all(os.path.exists(c) for c in configs[4:] + keystores[4:])
    again = run_module(backup_module.main, args(home, dest, keep_copies=3))
    assert again['changed'] is False and again['removed_copies'] == []


def test_a_keystore_copy_with_a_key_found_nowhere_else_stays(home, dest):
    keystore = str(home / 'EKMKeys.jck')
    # The copy a restore with allow_key_loss leaves: it holds a key that the restored keystore lacks.
    add_key(keystore, 'lost1')
    with open(keystore, 'rb') as f:
        with_lost = f.read()
    lost_copy = copy_name(keystore, 0)
    with open(lost_copy, 'wb') as out:
        out.write(with_lost)
    make_keystore(keystore, 4)
    newer = [copy_name(keystore, n) for n in range(1, 4)]
    for path in newer:
        with open(keystore, 'rb') as f, open(path, 'wb') as out:
            out.write(f.read())
    res = run_module(backup_module.main, args(home, dest, keep_copies=1))
    assert lost_copy in res['kept_copies'] and os.path.exists(lost_copy)
    assert sorted(res['removed_copies']) == sorted(newer[:-1])


def test_a_copy_that_does_not_parse_stays_and_null_removes_nothing(home, dest):
    bad = copy_name(str(home / 'EKMKeys.jck'), 0)
    with open(bad, 'wb') as out:
        out.write(b'not a keystore')
    configs = old_copies(home, 'KeyManagerConfig.properties', 2)
    res = run_module(backup_module.main, args(home, dest, keep_copies=None))
    assert res['removed_copies'] == [] and os.path.exists(bad) and all(os.path.exists(c) for c in configs)
    res = run_module(backup_module.main, args(home, dest, keep_copies=0))
    assert res['kept_copies'] == [bad] and sorted(res['removed_copies']) == sorted(configs)
    res = run_module(backup_module.main, args(home, dest, keep_copies=-1), expect_fail=True)
    assert 'keep_copies must be 0 or more' in res['msg']


# --- verified_set: the copies on an EKM host whose sets are made on the controller -------------------------------

def set_copy_args(home, set_copy, **kw):
    base = {k: v for k, v in args(home, 'unused').items() if k not in ('dest', 'site', 'host')}
    base['verified_set'] = str(set_copy)
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def test_copies_are_bounded_with_a_copy_of_a_set_made_elsewhere(home, dest, tmp_path):
    keystore = str(home / 'EKMKeys.jck')
    keystores = old_copies(home, 'EKMKeys.jck', 5)
    # The oldest copy holds a key that the keystore lacks now (what a restore with allow_key_loss keeps).
    with open(keystore, 'rb') as f:
        current = f.read()
    add_key(keystore, 'lost1')
    os.replace(keystore, keystores[0])
    with open(keystore, 'wb') as f:
        f.write(current)
    configs = old_copies(home, 'KeyManagerConfig.properties', 4)
    made = run_module(backup_module.main, args(home, dest, keep_copies=None, protected_paths=[str(tmp_path / 'x')]))
    # The set made elsewhere (the controller), copied to this host as the backup role does it.
    set_copy = tmp_path / 'set-copy'
    shutil.copytree(made['set_path'], str(set_copy))
    before = listing(dest)
    res = run_module(backup_module.main, set_copy_args(home, set_copy, keep_copies=2))
    assert res['changed'] is True and res['created'] is False and res['set_path'] == str(set_copy)
    # Configuration copies go by age; keystore copies only when the keystore and the set hold their entries.
    assert sorted(res['removed_copies']) == sorted(configs[:2] + keystores[1:3])
    assert res['kept_copies'] == [keystores[0]] and os.path.exists(keystores[0])
    assert all(not os.path.exists(c) for c in res['removed_copies'])
    assert listing(dest) == before  # no set was made or pruned
    again = run_module(backup_module.main, set_copy_args(home, set_copy, keep_copies=2))
    assert again['changed'] is False and again['removed_copies'] == [] and again['kept_copies'] == [keystores[0]]
    checked = run_module(backup_module.main, set_copy_args(home, set_copy, keep_copies=0), check_mode=True)
    assert checked['changed'] is False and checked['removed_copies'] == []


def test_a_set_copy_that_fails_verification_removes_nothing(home, dest, tmp_path):
    made = run_module(backup_module.main, args(home, dest))
    set_copy = tmp_path / 'set-copy'
    shutil.copytree(made['set_path'], str(set_copy))
    configs = old_copies(home, 'KeyManagerConfig.properties', 4)
    (set_copy / 'KeyGroups.xml').write_bytes(b'<keyGroups>altered</keyGroups>\n')
    res = run_module(backup_module.main, set_copy_args(home, set_copy, keep_copies=1), expect_fail=True)
    assert 'cannot be used' in res['msg'] and 'No copy beside the EKM files was removed.' in res['msg']
    assert all(os.path.exists(c) for c in configs)


def test_verified_set_and_dest_exclude_each_other(home, dest, tmp_path):
    res = run_module(backup_module.main, args(home, dest, verified_set=str(tmp_path)), expect_fail=True)
    assert 'mutually exclusive' in res['msg']
    res = run_module(backup_module.main, set_copy_args(home, tmp_path, verified_set=None), expect_fail=True)
    assert 'one of the following is required: dest, verified_set' in res['msg']
    res = run_module(backup_module.main, args(home, dest, site=None), expect_fail=True)
    assert 'missing parameter(s) required by \'dest\': site' in res['msg']
