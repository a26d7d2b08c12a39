# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The PKCS#12 secret-key writer; Java reading it is proven in tests/interop."""
from __future__ import annotations

import os

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _pkcs12


@pytest.mark.parametrize('password, salt, purpose, iterations, size, expected', [
    # The classic PKCS#12 KDF known answers ("smeg"), also what OpenSSL 3's PKCS12KDF gives.
    ('smeg', '0a58cf64530d823f', 1, 1, 24, '8aaae6297b6cb04642ab5b077851284eb7128f1a2a7fbca3'),
    ('smeg', '0a58cf64530d823f', 2, 1, 8, '79993dfe048d3b76'),
    # Two output blocks and many iterations (OpenSSL 3: openssl kdf ... -kdfopt iter:1000 PKCS12KDF).
    ('queeg', '05dec959acff72f7', 1, 1000, 24, 'ed2034e36328830ff09df1e1a07dd357185dac0d4f9eb3d4'),
    ('queeg', '05dec959acff72f7', 3, 1000, 20, '8e6f200e446345e726b49ef9c7899edd9c498401'),
])
def test_kdf_known_answers(password, salt, purpose, iterations, size, expected):
    out = _pkcs12.kdf(_pkcs12.password_bytes(password), bytes.fromhex(salt), purpose, iterations, size)
    assert out.hex() == expected


def test_round_trip_keeps_aliases_order_and_keys():
    items = [('dca%018x' % i, os.urandom(32)) for i in range(1, 40)] + [('short', os.urandom(16))]
    data = _pkcs12.secret_key_store(items, 'one-time', iterations=10)
    assert _pkcs12.read_secret_keys(data, 'one-time') == [(a, 'AES', k) for a, k in items]


def test_layout_is_what_java_reads_as_secret_key_entries():
    data = _pkcs12.secret_key_store([('k1', bytes(32))], 'pw', iterations=5, created=1234)
    der = _pkcs12._oid  # pylint: disable=protected-access
    # A secret bag wrapping a PKCS#8 shrouded key, 3-key 3DES PBE, friendly name and the date Java restores.
    for oid in (_pkcs12.OID_SECRET_BAG, _pkcs12.OID_SHROUDED_KEY_BAG, _pkcs12.OID_PBE_SHA1_3DES,
                _pkcs12.OID_FRIENDLY_NAME, _pkcs12.OID_LOCAL_KEY_ID, _pkcs12.OID_SHA1):
        assert der(oid) in data
    assert 'k1'.encode('utf-16-be') in data and b'Time 1234' in data
    assert data[:1] == b'\x30' and bytes(32) not in data


def shrouded_keys(data):
    """(salt, ciphertext) of every key in the file, walked with the module's own DER reader."""
    read, read_all = _pkcs12._read, _pkcs12._read_all  # pylint: disable=protected-access
    pfx = read(data, 0, 0x30)[0]
    auth_info = read(pfx, read(pfx, 0, 0x02)[1], 0x30)[0]
    out = []
    for info in read_all(read(_pkcs12._data_content(auth_info), 0, 0x30)[0], 0x30):  # pylint: disable=protected-access
        for bag in read_all(read(_pkcs12._data_content(info), 0, 0x30)[0], 0x30):  # pylint: disable=protected-access
            secret_bag = read(read(bag, read(bag, 0, 0x06)[1], 0xA0)[0], 0, 0x30)[0]
            shrouded = read(read(secret_bag, read(secret_bag, 0, 0x06)[1], 0xA0)[0], 0, 0x04)[0]
            epki = read(shrouded, 0, 0x30)[0]
            algorithm, pos = read(epki, 0, 0x30)
            params = read(algorithm, read(algorithm, 0, 0x06)[1], 0x30)[0]
            out.append((read(params, 0, 0x04)[0], read(epki, pos, 0x04)[0]))
    return out


def test_every_key_gets_its_own_salt():
    found = shrouded_keys(_pkcs12.secret_key_store([('a', bytes(32)), ('b', bytes(32))], 'pw', iterations=5))
    assert len(found) == 2
    (salt1, ciphertext1), (salt2, ciphertext2) = found
    assert len(salt1) == 20 and salt1 != salt2
    # Equal keys, yet different ciphertexts: one salt per key gives each its own 3DES key and IV.
    assert ciphertext1 != ciphertext2 and len(ciphertext1) == 56


def test_wrong_password_and_altered_file_are_refused():
    data = _pkcs12.secret_key_store([('a', os.urandom(32))], 'right', iterations=5)
    with pytest.raises(_pkcs12.Pkcs12Error, match='integrity'):
        _pkcs12.read_secret_keys(data, 'wrong')
    altered = bytearray(data)
    altered[len(data) // 2] ^= 1
    with pytest.raises(_pkcs12.Pkcs12Error):
        _pkcs12.read_secret_keys(bytes(altered), 'right')


@pytest.mark.parametrize('items, message', [
    ([('a', os.urandom(32)), ('A', os.urandom(32))], 'twice'),
    ([('a', os.urandom(7))], 'not an AES key'),
    ([('', os.urandom(32))], 'non-empty'),
])
def test_bad_items_are_refused(items, message):
    with pytest.raises(_pkcs12.Pkcs12Error, match=message):
        _pkcs12.secret_key_store(items, 'pw')


def test_empty_password_is_refused():
    with pytest.raises(_pkcs12.Pkcs12Error, match='password'):
        _pkcs12.secret_key_store([('a', os.urandom(32))], '')
