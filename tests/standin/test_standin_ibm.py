# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The stand-in EKM on keystores in the dialect of IBM's JRE, which OpenJDK's own JCEKS loader refuses.

The keystores are written by the collection's engine (whose IBM entries the unit tests check
against the documented layout) and, for one test, by the unit tests' independent field-by-field
builder. The stand-in decrypts them with the JDK's PBEWithMD5AndTripleDES cipher.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SOURCES = HERE.parent.parent / 'roles' / 'standin' / 'files'  # the tape client ships in the standin role
for _path in (HERE, SOURCES):
    if str(_path) not in sys.path:  # also under --import-mode=importlib
        sys.path.insert(0, str(_path))

import standin_fixtures as sf  # noqa: E402  pylint: disable=wrong-import-position
import tapeclient  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.module_utils.test_jceks_ibm import (  # noqa: E402  pylint: disable=wrong-import-position
    ibm_entry, ibm_store)

PASSWORD = 'standin-store-pw'
ALIASES = sf.sequential_aliases('DCA', 1, 3)
KEY_SET = 'DCA001-003'

# home (the stand-in built once per session) and start: conftest.py.


def write_ibm_keystore(path, keys, password=PASSWORD, key_password=None):
    """An IBM-dialect keystore written by the collection's engine (keys: alias -> bytes)."""
    keystore = _jceks.new_keystore()
    for entry in _jceks.seal_secret_keys(list(keys.items()), key_password or password, dialect='ibm'):
        keystore.add(entry)
    Path(path).write_bytes(_jceks.dump(keystore, password))
    return Path(path)


def server_dir(tmp_path, name, data):
    directory = tmp_path / name
    (directory / 'keystore').mkdir(parents=True)
    (directory / 'keystore' / 'EKMKeys.jck').write_bytes(data)
    return sf.write_site_config(directory, 'keystore/EKMKeys.jck', PASSWORD, KEY_SET)


@pytest.fixture
def ibm_keys(tmp_path):
    keys = {alias: os.urandom(32) for alias in ALIASES}
    path = write_ibm_keystore(tmp_path / 'ibm.jck', keys)
    return keys, path.read_bytes()


def test_openjdk_keytool_refuses_the_ibm_dialect(ibm_keys, tmp_path):
    """Why the stand-in needs its own reader: OpenJDK's JCEKS loader cannot load an IBM-written keystore."""
    dummy, data = ibm_keys
    path = tmp_path / 'probe.jck'
    path.write_bytes(data)
    env = dict(os.environ, LANG='C', LC_ALL='C', TAPECRYPT_SP=PASSWORD)
    result = subprocess.run(['keytool', '-list', '-storetype', 'JCEKS', '-keystore', str(path), '-storepass:env', 'TAPECRYPT_SP'],
                            capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False)
    assert result.returncode != 0
    assert 'Invalid secret key format' in result.stdout + result.stderr


def test_primary_and_redundant_serve_an_ibm_keystore(ibm_keys, tmp_path, start):
    keys, data = ibm_keys
    primary = start(server_dir(tmp_path, 'primary', data))
    assert primary.keys == 3
    for alias, key in keys.items():
        assert primary.request(f'KEY D1 {alias}') == f'OK {alias} {key.hex()}'
    tapes = [tapeclient.write_cartridge(primary.address, 'D1', str(tmp_path / f't{i}.tape'))['path'] for i in range(3)]
    redundant = start(server_dir(tmp_path, 'redundant', data))
    for server in (primary, redundant):
        results = [tapeclient.read_cartridge(server.address, 'D1', tape) for tape in tapes]
        assert [r['alias'] for r in results] == ALIASES and all(r['ok'] for r in results)


def test_an_independently_made_ibm_keystore_cannot_read_the_tapes(ibm_keys, tmp_path, start):
    dummy, data = ibm_keys
    primary = start(server_dir(tmp_path, 'primary', data))
    tape = tapeclient.write_cartridge(primary.address, 'D1', str(tmp_path / 't.tape'))['path']
    other = write_ibm_keystore(tmp_path / 'other.jck', {alias: os.urandom(32) for alias in ALIASES})
    independent = start(server_dir(tmp_path, 'independent', other.read_bytes()))
    with pytest.raises(tapeclient.TapeError, match='GCM tag mismatch'):
        tapeclient.read_cartridge(independent.address, 'D1', tape)


def test_the_documented_layout_is_served(tmp_path, start):
    """Entries from the unit tests' field-by-field builder of IBM keytool's layout, not from the engine."""
    keys = {alias: os.urandom(32) for alias in ALIASES}
    salts = [bytes.fromhex('01020304050607%02x' % i) for i in range(3)]
    data = ibm_store([ibm_entry(alias, key, PASSWORD, salt) for (alias, key), salt in zip(keys.items(), salts)], PASSWORD)
    server = start(server_dir(tmp_path, 'documented', data))
    assert [server.request(f'KEY D1 {alias}') for alias in ALIASES] == [f'OK {a} {k.hex()}' for a, k in keys.items()]


def fatal(home, config):
    result = sf.run_to_exit(home, config)
    assert result.returncode == sf.FATAL_EXIT, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('EKM-STANDIN FATAL: ')
    return lines[0]


def test_wrong_store_password(ibm_keys, tmp_path, home):
    dummy, data = ibm_keys
    config = server_dir(tmp_path, 's', data)
    sf.write_site_config(config.parent, 'keystore/EKMKeys.jck', 'another-password', KEY_SET)
    assert 'wrong keystore password' in fatal(home, config)


def test_keys_sealed_with_another_key_password(tmp_path, home):
    path = write_ibm_keystore(tmp_path / 'kp.jck', {alias: os.urandom(32) for alias in ALIASES}, key_password='keytool-keypass')
    line = fatal(home, server_dir(tmp_path, 's', path.read_bytes()))
    assert 'do not open with the keystore password' in line and ALIASES[0] in line


def test_a_keystore_that_mixes_dialects_is_refused(tmp_path, home):
    keystore = _jceks.new_keystore()
    keystore.entries.append(_jceks.seal_secret_key(ALIASES[0], os.urandom(32), PASSWORD, dialect='ibm'))
    keystore.entries.append(_jceks.seal_secret_key(ALIASES[1], os.urandom(32), PASSWORD, 1000))
    line = fatal(home, server_dir(tmp_path, 's', _jceks.dump(keystore, PASSWORD)))
    assert 'not an IBM-dialect entry' in line


def test_aes128_in_the_ibm_dialect_is_not_a_tape_key(tmp_path, home):
    keys = {alias: os.urandom(16) for alias in ALIASES}
    data = ibm_store([ibm_entry(a, k, PASSWORD, bytes.fromhex('0102030405060708')) for a, k in keys.items()], PASSWORD)
    assert 'not 256-bit AES secret keys' in fatal(home, server_dir(tmp_path, 's', data))
