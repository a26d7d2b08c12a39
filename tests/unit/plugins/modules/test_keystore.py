# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import hashlib
import os
import stat

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks, _keystore
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore as keystore_module
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore_info as info_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.module_utils.keytool_standin import KeytoolStandin
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import run_module

PW = 'changeit-store'
FAST = 1000  # PBE iterations in unit tests; the default (200000) is exercised by the interop tests


def args(path, **kw):
    base = dict(path=str(path), password=PW, iteration_count=FAST, ranges=[{'prefix': 'DCA', 'first': 1, 'count': 5}])
    base.update(kw)
    return base


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def load(path, password=PW):
    with open(path, 'rb') as f:
        return _jceks.load(f.read(), password)


@pytest.fixture
def ks_path(tmp_path):
    return tmp_path / 'EKMKeys.jck'


def test_create_then_idempotent(ks_path):
    res = run_module(keystore_module.main, args(ks_path))
    assert res['changed'] is True
    assert res['created'] == ['DCA001-005']
    assert res['created_count'] == 5 and res['total'] == 5
    assert stat.S_IMODE(os.stat(ks_path).st_mode) == 0o600
    ks = load(ks_path)
    assert ks.aliases() == ['dca00000000000000000%d' % i for i in range(1, 6)]
    assert res['digest'] == _keystore.digest(ks)
    before = sha(ks_path)
    again = run_module(keystore_module.main, args(ks_path))
    assert again['changed'] is False and again['created'] == [] and again['created_count'] == 0
    assert again['digest'] == res['digest']
    assert sha(ks_path) == before


def test_check_mode_writes_nothing_and_reports_the_change(ks_path):
    res = run_module(keystore_module.main, args(ks_path), check_mode=True, diff=True)
    assert res['changed'] is True and res['created_count'] == 5 and res['total'] == 5
    assert not ks_path.exists()
    assert 'DCA001-005' in res['diff']['after'] and res['diff']['before_header'] == '/dev/null'
    run_module(keystore_module.main, args(ks_path))
    before = sha(ks_path)
    res = run_module(keystore_module.main, args(ks_path, ranges=['DCA001-008']), check_mode=True)
    assert res['changed'] is True and res['created'] == ['DCA006-008'] and res['total'] == 8
    assert sha(ks_path) == before
    res = run_module(keystore_module.main, args(ks_path), check_mode=True)
    assert res['changed'] is False


def test_adding_a_range_keeps_every_entry_byte_for_byte(ks_path):
    run_module(keystore_module.main, args(ks_path))
    old = {e.alias: e.body for e in load(ks_path).entries}
    res = run_module(keystore_module.main, args(ks_path, ranges=[{'prefix': 'DCA', 'first': 1, 'count': 5},
                                                                 {'prefix': 'DCB', 'first': 16, 'last': 20}],
                                                aliases=['Spare1'], backup=True), diff=True)
    assert res['changed'] is True
    assert res['created'] == ['DCB010-014', 'spare1']
    ks = load(ks_path)
    assert len(ks.entries) == 11
    for alias, body in old.items():
        assert ks.get(alias).body == body
    assert os.path.exists(res['backup_file'])
    assert {e.alias for e in load(res['backup_file']).entries} == set(old)
    # The project's own copy, private from the start, not Ansible's generic backup_local.
    assert stat.S_IMODE(os.stat(res['backup_file']).st_mode) == 0o600
    assert res['backup_file'].startswith(str(ks_path) + '.') and res['backup_file'].endswith('Z.bak')
    assert 'keys: 5' in res['diff']['before'] and 'keys: 11' in res['diff']['after']


def test_new_keys_are_aes_256_and_distinct(ks_path):
    run_module(keystore_module.main, args(ks_path, ranges=['DCA001-004']))
    keys = set()
    for entry in load(ks_path).entries:
        alg, key = _jceks.unseal(entry, PW)
        assert alg == 'AES' and len(key) == 32
        keys.add(key)
    assert len(keys) == 4


def test_separate_key_password(ks_path):
    run_module(keystore_module.main, args(ks_path, key_password='keypass-1'))
    entry = load(ks_path).entries[0]
    assert _jceks.unseal(entry, 'keypass-1')[0] == 'AES'
    with pytest.raises(_jceks.JceksError):
        _jceks.unseal(entry, PW)


def test_generate_false_fails_naming_missing_aliases(ks_path):
    res = run_module(keystore_module.main, args(ks_path, generate=False), expect_fail=True)
    assert 'DCA001-005' in res['msg'] and 'does not exist' in res['msg']
    assert not ks_path.exists()
    run_module(keystore_module.main, args(ks_path, ranges=['DCA001-003']))
    before = sha(ks_path)
    res = run_module(keystore_module.main, args(ks_path, generate=False), expect_fail=True)
    assert 'DCA004-005' in res['msg'] and '2 requested' in res['msg']
    assert sha(ks_path) == before
    ok = run_module(keystore_module.main, args(ks_path, generate=False, ranges=['DCA001-003']))
    assert ok['changed'] is False


BAD_INPUTS = [
    (dict(password='wrong-password'), 'password'),
    (dict(ranges=[{'prefix': 'DC', 'first': 1, 'count': 2}]), 'DC'),
    (dict(ranges=[{'prefix': 'DC1', 'first': 1, 'count': 2}]), 'DC1'),
    (dict(ranges=[{'prefix': 'DCA', 'first': 1, 'count': 5}, {'prefix': 'dca', 'first': 3, 'count': 5}]), 'overlap'),
    (dict(ranges=[{'prefix': 'DCA', 'first': 5, 'last': 2}]), 'DCA'),
    (dict(ranges=[{'prefix': 'DCA', 'first': 16 ** 16 - 1, 'count': 2}]), 'space'),
    (dict(ranges=['not-a-range']), 'not-a-range'),
    (dict(aliases=['thirteen-char']), 'thirteen-char'),
    (dict(ranges=[], aliases=[]), 'at least one'),
    (dict(iteration_count=5000001), 'iteration_count'),
]


@pytest.mark.parametrize('override,needle', BAD_INPUTS)
def test_bad_input_fails_clearly_and_changes_nothing(ks_path, override, needle):
    run_module(keystore_module.main, args(ks_path))
    before = sha(ks_path)
    res = run_module(keystore_module.main, args(ks_path, **override), expect_fail=True)
    assert needle.lower() in res['msg'].lower(), res['msg']
    assert not res.get('changed'), 'a refused run must not report a change'
    assert sha(ks_path) == before
    assert sorted(os.listdir(ks_path.parent)) == ['EKMKeys.jck']


def test_corrupt_truncated_and_foreign_files_are_refused(ks_path):
    run_module(keystore_module.main, args(ks_path))
    good = ks_path.read_bytes()
    cases = {
        'flipped': good[:200] + bytes([good[200] ^ 0x01]) + good[201:],
        'truncated': good[:len(good) // 2],
        'not a keystore': b'<?xml version="1.0"?><KeyGroups/>\n',
    }
    for name, data in cases.items():
        ks_path.write_bytes(data)
        res = run_module(keystore_module.main, args(ks_path, ranges=['DCA001-009']), expect_fail=True)
        assert str(ks_path) in res['msg'], (name, res['msg'])
        assert ks_path.read_bytes() == data, name


def test_existing_alias_that_is_not_aes_256_is_refused(ks_path):
    ks = _jceks.new_keystore()
    ks.add(_jceks.seal_secret_key('dca000000000000000001', os.urandom(16), PW, FAST))
    ks_path.write_bytes(_jceks.dump(ks, PW))
    before = sha(ks_path)
    res = run_module(keystore_module.main, args(ks_path), expect_fail=True)
    assert 'dca000000000000000001' in res['msg'] and '256-bit AES' in res['msg']
    assert sha(ks_path) == before


def test_directory_missing_or_path_is_directory(tmp_path):
    res = run_module(keystore_module.main, args(tmp_path / 'nope' / 'k.jck'), expect_fail=True)
    assert 'does not exist' in res['msg']
    res = run_module(keystore_module.main, args(tmp_path), expect_fail=True)
    assert 'directory' in res['msg']


def test_password_never_in_result_or_error(ks_path):
    res = run_module(keystore_module.main, args(ks_path))
    assert PW not in repr(res)
    res = run_module(keystore_module.main, args(ks_path, password='Another-Pass-99'), expect_fail=True)
    assert 'Another-Pass-99' not in repr(res)


def test_info_lists_without_decrypting(ks_path, mocker):
    run_module(keystore_module.main, args(ks_path, aliases=['spare1']))
    unseal = mocker.spy(_jceks, 'unseal')
    res = run_module(info_module.main, dict(path=str(ks_path), password=PW))
    assert unseal.call_count == 0
    ks = res['keystore']
    assert ks['exists'] is True and ks['type'] == 'JCEKS' and ks['count'] == 6
    assert ks['ranges'] == ['DCA001-005', 'spare1']
    assert ks['sha256'] == sha(ks_path)
    assert {e['kind'] for e in ks['entries']} == {'secret'}
    assert all(e['algorithm'] == 'AES' and e['size'] == 256 for e in ks['entries'])
    assert all('fingerprint' not in e for e in ks['entries'])
    assert ks['digest'] == run_module(keystore_module.main, args(ks_path, aliases=['spare1']))['digest']


def test_info_fingerprints_match_the_keys(ks_path):
    run_module(keystore_module.main, args(ks_path, ranges=['DCA001-003']))
    res = run_module(info_module.main, dict(path=str(ks_path), password=PW, fingerprints=True))
    for row, entry in zip(res['keystore']['entries'], load(ks_path).entries):
        _alg, key = _jceks.unseal(entry, PW)
        assert row['fingerprint'] == _keystore.fingerprint(key)
        assert len(row['fingerprint']) == 16


def test_info_missing_file_and_wrong_password(ks_path):
    res = run_module(info_module.main, dict(path=str(ks_path)))
    assert res['keystore']['exists'] is False and res['keystore']['count'] == 0
    assert res['keystore']['newest_created'] is None
    run_module(keystore_module.main, args(ks_path))
    res = run_module(info_module.main, dict(path=str(ks_path), password='nope-nope'), expect_fail=True)
    assert 'password' in res['msg'].lower()
    res = run_module(info_module.main, dict(path=str(ks_path)))
    assert res['keystore']['count'] == 5  # structure only, no password needed


def test_keytool_backend_never_puts_passwords_on_the_command_line(ks_path, mocker):
    standin = KeytoolStandin()
    real_init = _keystore.Keytool.__init__

    def init(self, keytool_path=None, java_home=None, run=None):
        real_init(self, '/bin/true', None, run=standin)

    mocker.patch.object(_keystore.Keytool, '__init__', init)
    res = run_module(keystore_module.main, args(ks_path, backend='keytool', ranges=['DCA001-003']))
    assert res['changed'] is True and res['created'] == ['DCA001-003']
    assert res['keytool'] == {'method': 'importkeystore', 'runs': 1}
    assert len(standin.calls) == 1
    for argv, env in standin.calls:
        assert PW not in ' '.join(argv)
        assert '-deststorepass:env' in argv and env['TAPECRYPT_SP'] == PW
        assert env['LANG'] == 'C'
    assert load(ks_path).aliases() == ['dca000000000000000001', 'dca000000000000000002', 'dca000000000000000003']
    again = run_module(keystore_module.main, args(ks_path, backend='keytool', ranges=['DCA001-003']))
    assert again['changed'] is False and 'keytool' not in again and len(standin.calls) == 1


def test_keytool_backend_falls_back_to_one_jvm_per_key(ks_path, mocker):
    standin = KeytoolStandin(pkcs12=False)
    real_init = _keystore.Keytool.__init__
    mocker.patch.object(_keystore.Keytool, '__init__',
                        lambda self, keytool_path=None, java_home=None, run=None: real_init(self, '/bin/true', None, run=standin))
    res = run_module(keystore_module.main, args(ks_path, backend='keytool', ranges=['DCA001-003']))
    assert res['keytool']['method'] == 'genseckey' and res['keytool']['runs'] == 5
    assert res['total'] == 3 and load(ks_path).aliases()[-1] == 'dca000000000000000003'


def test_info_summary_without_entries(ks_path):
    run_module(keystore_module.main, args(ks_path))
    full = run_module(info_module.main, dict(path=str(ks_path), password=PW))['keystore']
    summary = run_module(info_module.main, dict(path=str(ks_path), password=PW, entries=False))['keystore']
    assert summary['entries'] == [] and len(full['entries']) == 5
    assert {k: v for k, v in summary.items() if k != 'entries'} == {k: v for k, v in full.items() if k != 'entries'}
    assert summary['newest_created'] == max(e['created'] for e in full['entries'])
