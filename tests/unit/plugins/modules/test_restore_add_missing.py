# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tapecrypt.ekm.restore with method add_missing: a redundant server (ekm2) gets the keys of the lost primary's (ekm1)
newest verified set that it lacks, and nothing else; a conflict or an unusable set changes nothing."""
from __future__ import annotations

import datetime
import os
import re
import stat

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _backup, _jceks
from ansible_collections.tapecrypt.ekm.plugins.modules import restore as restore_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.keystores import alias, write_keystore
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import run_module

PW = 'changeit-promote'


def unseal_all(path, password=PW):
    with open(path, 'rb') as f:
        ks = _jceks.load(f.read(), password)
    return {e.alias: _jceks.unseal(e, password)[1] for e in ks.entries}


def entries(path, password=PW):
    with open(path, 'rb') as f:
        return {e.alias: bytes(e.body) for e in _jceks.load(f.read(), password).entries}


class Site:
    """The lost primary's files and backup medium, and the redundant server's keystore and other files."""

    def __init__(self, root):
        self.root = root
        self.dest = root / 'backup'
        self.dest.mkdir()
        self.primary = root / 'ekm1'
        (self.primary / 'keystore').mkdir(parents=True)
        self.redundant = root / 'ekm2'
        (self.redundant / 'keystore').mkdir(parents=True)
        self.keystore = str(self.redundant / 'keystore' / 'EKMKeys.jck')
        for name, data in (('KeyManagerConfig.properties', b'symmetricKeySet=DCA001-003\n'),
                           ('KeyGroups.xml', b'<keyGroups/>\n')):
            (self.primary / name).write_bytes(data)
            (self.redundant / name).write_bytes(data + b'<!-- ekm2 -->\n')
        self._tick = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.timezone.utc)

    @property
    def primary_paths(self):
        return {'keystore': str(self.primary / 'keystore' / 'EKMKeys.jck'),
                'config': str(self.primary / 'KeyManagerConfig.properties'),
                'keygroups': str(self.primary / 'KeyGroups.xml'), 'drivetable': None}

    def backup_primary(self):
        self._tick += datetime.timedelta(seconds=1)
        return _backup.backup(self.primary_paths, PW, str(self.dest), 'dc1', 'ekm1', now=lambda: self._tick)['set_path']

    def state(self):
        found = {}
        for base, _dirs, files in os.walk(str(self.redundant)):
            for name in files:
                path = os.path.join(base, name)
                with open(path, 'rb') as f:
                    found[path] = (f.read(), stat.S_IMODE(os.stat(path).st_mode))
        return found


@pytest.fixture
def site(tmp_path):
    """ekm1 holds keys 1-6 and has a set of them; ekm2 holds copies of keys 1-3 (synced before 4-6 were added)."""
    made = Site(tmp_path)
    write_keystore(made.keystore, range(1, 4), PW)
    write_keystore(made.primary_paths['keystore'], range(4, 7), PW, existing=made.keystore)
    made.set_path = made.backup_primary()
    os.chmod(made.keystore, 0o600)
    return made


def add_missing(site, check_mode=False, diff=False, expect_fail=False, **kw):
    args = dict(method='add_missing', dest=str(site.dest), site='dc1', host='ekm2', from_host='ekm1',
                keystore_path=site.keystore, password=PW)
    args.update(kw)
    return run_module(restore_module.main, {k: v for k, v in args.items() if v is not None},
                      check_mode=check_mode, diff=diff, expect_fail=expect_fail)


NEW = [alias(n) for n in (4, 5, 6)]


def test_check_mode_then_add_then_nothing_to_do(site):
    before = site.state()
    kept = entries(site.keystore)
    res = add_missing(site, check_mode=True, diff=True)
    assert res['changed'] is True and res['set_path'] == site.set_path
    assert res['aliases_gained'] == ['DCA004-006'] and res['aliases_replaced'] == [] and res['aliases_lost'] == []
    assert res['changed_files'] == [site.keystore]
    assert 'keys: 3' in res['diff']['before'] and 'keys: 6' in res['diff']['after'] and 'DCA001-006' in res['diff']['after']
    assert site.state() == before

    res = add_missing(site)
    assert res['changed'] is True and res['aliases_gained'] == ['DCA004-006']
    after = entries(site.keystore)
    # Every entry the keystore held stays byte for byte, in its place; the set's entries follow as the set has them.
    assert list(after)[:3] == list(kept) and all(after[a] == body for a, body in kept.items())
    assert {a: after[a] for a in NEW} == {a: b for a, b in entries(site.primary_paths['keystore']).items() if a in NEW}
    assert unseal_all(site.keystore) == unseal_all(site.primary_paths['keystore'])
    # The keystore is kept as it was beside it; no other file of ekm2 was touched.
    assert entries(res['backup_files']['EKMKeys.jck']) == kept
    assert stat.S_IMODE(os.stat(site.keystore).st_mode) == 0o600
    for path, value in before.items():
        if path != site.keystore:
            assert site.state()[path] == value

    now = site.state()
    for check_mode in (True, False):
        res = add_missing(site, check_mode=check_mode)
        assert res['changed'] is False and res['aliases_gained'] == [] and res['changed_files'] == []
    assert site.state() == now


def test_keys_only_the_redundant_server_holds_are_kept(site):
    # ekm2 holds a key that the set lacks (added on it by hand, or a set older than a sync): it stays.
    write_keystore(site.keystore, [0x100], PW, existing=site.keystore)
    res = add_missing(site)
    assert res['changed'] is True and res['aliases_gained'] == ['DCA004-006'] and res['aliases_lost'] == []
    assert sorted(unseal_all(site.keystore)) == sorted([alias(n) for n in range(1, 7)] + [alias(0x100)])


def test_a_different_key_under_an_alias_is_a_conflict_and_nothing_changes(site):
    keys = unseal_all(site.keystore)
    keys[alias(2)] = b'\x22' * 32
    write_keystore(site.keystore, range(1, 4), PW, keys=keys)
    before = site.state()
    for check_mode in (True, False):
        res = add_missing(site, check_mode=check_mode, expect_fail=True)
        assert res['msg'].startswith('The keystore %s and the backup set %s hold different keys under 1 alias(es): %s '
                                     '(the keys differ).' % (site.keystore, site.set_path, alias(2))), res['msg']
        assert 'Nothing was changed.' in res['msg']
        assert res['aliases_replaced'] == [alias(2)] and res['aliases_gained'] == ['DCA004-006']
        assert site.state() == before


def test_resealed_copies_of_the_same_keys_are_no_conflict(site):
    # The same keys sealed again (new salts): other bytes, the same keys.
    write_keystore(site.keystore, range(1, 4), PW, keys=unseal_all(site.keystore))
    res = add_missing(site)
    assert res['changed'] is True and res['aliases_gained'] == ['DCA004-006'] and res['aliases_replaced'] == []


def test_a_damaged_set_names_the_keys_it_records_that_the_keystore_lacks(site):
    with open(os.path.join(site.set_path, 'EKMKeys.jck'), 'r+b') as f:
        f.seek(-40, os.SEEK_END)
        f.write(b'\x00\x01\x02')
    before = site.state()
    for check_mode in (True, False):
        res = add_missing(site, check_mode=check_mode, expect_fail=True)
        assert res['msg'].startswith('The backup set %s cannot be used: EKMKeys.jck has sha256' % site.set_path)
        assert re.search(r'Its manifest records 3 key\(s\) that %s lacks: DCA004-006; they are in no keystore or set '
                         r'this task can read, so nothing was changed\.' % re.escape(site.keystore), res['msg']), res['msg']
        assert res['aliases_missing'] == ['DCA004-006'] and res['set_path'] == site.set_path
        assert site.state() == before


def test_a_damaged_set_whose_keys_the_keystore_holds_names_none(site):
    add_missing(site)
    with open(os.path.join(site.set_path, 'KeyGroups.xml'), 'r+b') as f:
        f.write(b'X')
    res = add_missing(site, expect_fail=True)
    assert 'cannot be used' in res['msg'] and 'Its manifest records' not in res['msg'] and res['aliases_missing'] == []


def test_no_keystore_a_wrong_password_and_other_files_are_refused(site):
    res = add_missing(site, keystore_path=str(site.redundant / 'keystore' / 'none.jck'), expect_fail=True)
    assert res['msg'].endswith('none.jck does not exist. Keys are only added to a keystore that holds keys already; to '
                               'restore a server without one, restore the whole set (method: replace). Nothing was changed.')
    write_keystore(site.keystore, range(1, 4), 'another-password', keys=unseal_all(site.keystore))
    before = site.state()
    res = add_missing(site, expect_fail=True)
    assert res['msg'].startswith('The keystore %s cannot be opened with the set\'s password: ' % site.keystore)
    assert site.state() == before
    res = add_missing(site, config_path=str(site.redundant / 'KeyManagerConfig.properties'), expect_fail=True)
    assert res['msg'] == ('method add_missing only adds keys to the keystore; config_path cannot be given with it. Nothing '
                          'was changed.')
    assert site.state() == before


def test_the_sets_owner_is_checked(site):
    res = add_missing(site, from_host=None, source=site.set_path, dest=None, expect_fail=True)
    assert 'is the set of dc1/ekm1 (its manifest says so), not of dc1/ekm2' in res['msg']


def test_the_ledger_counts_the_keys_the_keystore_keeps(site):
    write_keystore(site.keystore, [0x100], PW, existing=site.keystore)
    # A cartridge needs key 0x100, which only ekm2 holds: no refusal. One needs key 7, which nobody holds: refused.
    res = add_missing(site, ledger_aliases=[alias(0x100)])
    assert res['changed'] is True and res['ledger_aliases_missing'] == []
    res = add_missing(site, ledger_aliases=[alias(0x100), alias(7)], expect_fail=True)
    assert alias(7) in res['msg'] and res['ledger_aliases_missing'] == [alias(7)]
