# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Write (and read back) PKCS#12 files of secret keys, the form every Java runtime's keytool imports.

The keytool backend hands a whole range of new keys to the host's keytool in one such file, and
``keytool -importkeystore`` seals them into JCEKS in one JVM run. The layout is what Java's own
PKCS12 KeyStore writes for a ``SecretKeyEntry`` and reads back as one:

    PFX { version 3,
          authSafe: data { SEQUENCE OF data { SafeContents: SafeBag* } },
          macData: HMAC-SHA1 under a key from the RFC 7292 (appendix B) KDF }
    SafeBag { secretBag OID, [0] SecretBag { pkcs8ShroudedKeyBag OID,
                                             [0] OCTET STRING (EncryptedPrivateKeyInfo) },
              attributes { friendlyName (the alias, BMPString), localKeyID ("Time <ms>") } }

The EncryptedPrivateKeyInfo holds the PKCS#8-shaped secret key ``{0, {AES OID, NULL}, OCTET STRING
key}`` encrypted with pbeWithSHAAnd3-KeyTripleDES-CBC: the legacy PKCS#12 algorithms, which Java
runtimes of every vendor and age read (newer defaults such as PBES2 are not certain on an old IBM
JRE). The file is only ever a private, short-lived hand-over: callers protect it with a random
one-time password, so the iteration count adds nothing to its strength and stays low.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks

OID_DATA = '1.2.840.113549.1.7.1'
OID_SECRET_BAG = '1.2.840.113549.1.12.10.1.5'
OID_SHROUDED_KEY_BAG = '1.2.840.113549.1.12.10.1.2'
OID_PBE_SHA1_3DES = '1.2.840.113549.1.12.1.3'
OID_FRIENDLY_NAME = '1.2.840.113549.1.9.20'
OID_LOCAL_KEY_ID = '1.2.840.113549.1.9.21'
OID_SHA1 = '1.3.14.3.2.26'
OID_AES = '2.16.840.1.101.3.4.1'

DEFAULT_ITERATION_COUNT = 1024
_SALT_LEN = 20
_KDF_KEY, _KDF_IV, _KDF_MAC = 1, 2, 3
_SHA1_BLOCK = 64

_SEQUENCE, _SET, _INTEGER, _OCTETS, _OID, _NULL, _BMP = 0x30, 0x31, 0x02, 0x04, 0x06, 0x05, 0x1E
_CONTEXT_0 = 0xA0


class Pkcs12Error(Exception):
    """A PKCS#12 file could not be written or read; str() is a complete sentence."""


# ---------------------------------------------------------------------------------------------
# DER, as much as this file needs

_tlv = _jceks.der_tlv


def _seq(*items):
    return _tlv(_SEQUENCE, b''.join(items))


def _set(*items):
    # DER sorts the members of a SET OF by their encodings.
    return _tlv(_SET, b''.join(sorted(items)))


def _int(n):
    return _tlv(_INTEGER, n.to_bytes(n.bit_length() // 8 + 1, 'big'))


def _oid(dotted):
    arcs = [int(a) for a in dotted.split('.')]
    out = bytearray((40 * arcs[0] + arcs[1],))
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return _tlv(_OID, bytes(out))


def _read(data, pos, tag):
    """(value, next position) of the TLV with ``tag`` at ``pos``; Pkcs12Error when it is not there."""
    if pos + 2 > len(data) or data[pos] != tag:
        raise Pkcs12Error('The PKCS#12 data is not laid out as expected (tag 0x%02x at byte %d).' % (tag, pos))
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or pos + count > len(data):
            raise Pkcs12Error('The PKCS#12 data has a bad length at byte %d.' % pos)
        length = int.from_bytes(data[pos:pos + count], 'big')
        pos += count
    if pos + length > len(data):
        raise Pkcs12Error('The PKCS#12 data is truncated at byte %d.' % pos)
    return data[pos:pos + length], pos + length


def _read_all(data, tag):
    """Every TLV with ``tag`` that ``data`` consists of."""
    out, pos = [], 0
    while pos < len(data):
        value, pos = _read(data, pos, tag)
        out.append(value)
    return out


# ---------------------------------------------------------------------------------------------
# RFC 7292 appendix B: the PKCS#12 key derivation (SHA-1), and the password as a BMPString

def password_bytes(password):
    """The password as PKCS#12 hashes it: UTF-16BE with a two-byte NUL terminator."""
    if not isinstance(password, str) or not password:
        raise Pkcs12Error('A PKCS#12 password must be a non-empty string.')
    return password.encode('utf-16-be', 'surrogatepass') + b'\x00\x00'


def _fill(data):
    """``data`` repeated to the next multiple of the hash block size (empty stays empty)."""
    if not data:
        return b''
    size = _SHA1_BLOCK * ((len(data) + _SHA1_BLOCK - 1) // _SHA1_BLOCK)
    return (data * (size // len(data) + 1))[:size]


def kdf(password, salt, purpose, iterations, size):
    """``size`` bytes of key (purpose 1), IV (2) or MAC key (3) material, as RFC 7292 B.2 with SHA-1."""
    sha1 = hashlib.sha1
    diversifier = bytes((purpose,)) * _SHA1_BLOCK
    block = _fill(salt) + _fill(password)
    out = b''
    while True:
        digest = sha1(diversifier + block).digest()
        for dummy in range(iterations - 1):
            digest = sha1(digest).digest()
        out += digest
        if len(out) >= size:
            return out[:size]
        # I_j = (I_j + B + 1) mod 2^512 for every 64-byte block I_j of the input.
        b = int.from_bytes(_fill(digest), 'big') + 1
        modulus = 1 << (8 * _SHA1_BLOCK)
        block = b''.join(((int.from_bytes(block[i:i + _SHA1_BLOCK], 'big') + b) % modulus).to_bytes(_SHA1_BLOCK, 'big')
                         for i in range(0, len(block), _SHA1_BLOCK))


def _triple_des():
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, modes
        try:
            from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
        except ImportError:
            from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES
    except ImportError:
        raise Pkcs12Error("Writing a PKCS#12 file needs the Python library 'cryptography', which is not installed "
                          "for the Python interpreter running this code.") from None
    return lambda key, iv: Cipher(TripleDES(key), modes.CBC(iv))


# ---------------------------------------------------------------------------------------------
# Writing

def _pbe_algorithm(salt, iterations):
    return _seq(_oid(OID_PBE_SHA1_3DES), _seq(_tlv(_OCTETS, salt), _int(iterations)))


def _shrouded_key(cipher, key, password, iterations):
    """An EncryptedPrivateKeyInfo holding the secret key as Java's PKCS12 KeyStore encodes it."""
    plain = _seq(_int(0), _seq(_oid(OID_AES), _tlv(_NULL, b'')), _tlv(_OCTETS, key))
    pad = 8 - len(plain) % 8
    salt = os.urandom(_SALT_LEN)
    encryptor = cipher(kdf(password, salt, _KDF_KEY, iterations, 24), kdf(password, salt, _KDF_IV, iterations, 8)).encryptor()
    encrypted = encryptor.update(plain + bytes((pad,)) * pad) + encryptor.finalize()
    return _seq(_pbe_algorithm(salt, iterations), _tlv(_OCTETS, encrypted))


def _secret_bag(alias, shrouded, created):
    bag = _seq(_oid(OID_SHROUDED_KEY_BAG), _tlv(_CONTEXT_0, _tlv(_OCTETS, shrouded)))
    attributes = _set(
        _seq(_oid(OID_FRIENDLY_NAME), _set(_tlv(_BMP, alias.encode('utf-16-be', 'surrogatepass')))),
        # Java restores the entry's date from a local key ID of this form.
        _seq(_oid(OID_LOCAL_KEY_ID), _set(_tlv(_OCTETS, ('Time %d' % created).encode('ascii')))),
    )
    return _seq(_oid(OID_SECRET_BAG), _tlv(_CONTEXT_0, bag), attributes)


def _mac_data(password, content, iterations):
    salt = os.urandom(_SALT_LEN)
    mac = hmac.new(kdf(password, salt, _KDF_MAC, iterations, 20), content, hashlib.sha1).digest()
    return _seq(_seq(_seq(_oid(OID_SHA1), _tlv(_NULL, b'')), _tlv(_OCTETS, mac)), _tlv(_OCTETS, salt), _int(iterations))


def _check_items(items):
    seen = set()
    for alias, key in items:
        if not isinstance(alias, str) or not alias:
            raise Pkcs12Error('An alias must be a non-empty string.')
        if alias.lower() in seen:
            raise Pkcs12Error("Alias '%s' appears twice in one PKCS#12 file." % alias)
        seen.add(alias.lower())
        if not isinstance(key, (bytes, bytearray)) or len(key) not in (16, 24, 32):
            raise Pkcs12Error("The key for alias '%s' is not an AES key (16, 24 or 32 bytes)." % alias)


def secret_key_store(items, password, iterations=DEFAULT_ITERATION_COUNT, created=None):
    """The bytes of a PKCS#12 file holding each ``(alias, AES key)`` of ``items`` as a secret key entry.

    Store and key entries share ``password``; aliases are written as given.
    """
    items = list(items)
    _check_items(items)
    if not 1 <= iterations <= 5000000:
        raise Pkcs12Error('The PKCS#12 iteration count must be between 1 and 5000000.')
    pw = password_bytes(password)
    cipher = _triple_des()
    created = int(time.time() * 1000) if created is None else created
    bags = [_secret_bag(alias, _shrouded_key(cipher, bytes(key), pw, iterations), created) for alias, key in items]
    safe_contents = _seq(*bags)
    auth_safe = _seq(_seq(_oid(OID_DATA), _tlv(_CONTEXT_0, _tlv(_OCTETS, safe_contents))))
    return _seq(_int(3), _seq(_oid(OID_DATA), _tlv(_CONTEXT_0, _tlv(_OCTETS, auth_safe))),
                _mac_data(pw, auth_safe, iterations))


# ---------------------------------------------------------------------------------------------
# Reading what secret_key_store() writes (tests and the stand-in keytool of the unit tests)

def _data_content(content_info):
    oid, pos = _read(content_info, 0, _OID)
    if _oid(OID_DATA)[2:] != oid:
        raise Pkcs12Error('The PKCS#12 file holds content other than plain data; only files of this module are read.')
    explicit, dummy = _read(content_info, pos, _CONTEXT_0)
    return _read(explicit, 0, _OCTETS)[0]


def _unshroud(cipher, shrouded, password):
    info = _read(shrouded, 0, _SEQUENCE)[0]
    algorithm, pos = _read(info, 0, _SEQUENCE)
    encrypted = _read(info, pos, _OCTETS)[0]
    oid, pos = _read(algorithm, 0, _OID)
    params = _read(algorithm, pos, _SEQUENCE)[0]
    salt, pos = _read(params, 0, _OCTETS)
    iterations = int.from_bytes(_read(params, pos, _INTEGER)[0], 'big')
    if oid != _oid(OID_PBE_SHA1_3DES)[2:]:
        raise Pkcs12Error('A key is encrypted with another algorithm than pbeWithSHAAnd3-KeyTripleDES-CBC.')
    decryptor = cipher(kdf(password, salt, _KDF_KEY, iterations, 24), kdf(password, salt, _KDF_IV, iterations, 8)).decryptor()
    plain = decryptor.update(encrypted) + decryptor.finalize()
    pad = plain[-1] if plain else 0
    if not 1 <= pad <= 8 or plain[-pad:] != bytes((pad,)) * pad:
        raise Pkcs12Error('A key of the PKCS#12 file does not decrypt: wrong password or damaged file.')
    info = _read(plain[:-pad], 0, _SEQUENCE)[0]
    pos = _read(info, 0, _INTEGER)[1]
    algorithm_id, pos = _read(info, pos, _SEQUENCE)
    return ('AES' if _read(algorithm_id, 0, _OID)[0] == _oid(OID_AES)[2:] else None), _read(info, pos, _OCTETS)[0]


def _alias_of(attributes):
    for attribute in _read_all(attributes, _SEQUENCE):
        oid, pos = _read(attribute, 0, _OID)
        if oid == _oid(OID_FRIENDLY_NAME)[2:]:
            values = _read(attribute, pos, _SET)[0]
            return _read(values, 0, _BMP)[0].decode('utf-16-be', 'surrogatepass')
    return None


def read_secret_keys(data, password):
    """``[(alias, algorithm, key)]`` of a file written by secret_key_store(), after checking its MAC."""
    pw = password_bytes(password)
    pfx = _read(data, 0, _SEQUENCE)[0]
    pos = _read(pfx, 0, _INTEGER)[1]
    auth_info, pos = _read(pfx, pos, _SEQUENCE)
    auth_safe = _data_content(auth_info)
    mac_data = _read(pfx, pos, _SEQUENCE)[0]
    digest_info, mpos = _read(mac_data, 0, _SEQUENCE)
    salt, mpos = _read(mac_data, mpos, _OCTETS)
    iterations = int.from_bytes(_read(mac_data, mpos, _INTEGER)[0], 'big')
    expected = _read(digest_info, _read(digest_info, 0, _SEQUENCE)[1], _OCTETS)[0]
    actual = hmac.new(kdf(pw, salt, _KDF_MAC, iterations, 20), auth_safe, hashlib.sha1).digest()
    if not hmac.compare_digest(expected, actual):
        raise Pkcs12Error('The PKCS#12 integrity check failed: wrong password or altered file.')
    cipher = _triple_des()
    out = []
    for content_info in _read_all(_read(auth_safe, 0, _SEQUENCE)[0], _SEQUENCE):
        for bag in _read_all(_read(_data_content(content_info), 0, _SEQUENCE)[0], _SEQUENCE):
            oid, pos = _read(bag, 0, _OID)
            value, pos = _read(bag, pos, _CONTEXT_0)
            if oid != _oid(OID_SECRET_BAG)[2:]:
                continue
            secret_bag = _read(value, 0, _SEQUENCE)[0]
            shrouded = _read(_read(secret_bag, _read(secret_bag, 0, _OID)[1], _CONTEXT_0)[0], 0, _OCTETS)[0]
            algorithm, key = _unshroud(cipher, shrouded, pw)
            out.append((_alias_of(_read(bag, pos, _SET)[0]) if pos < len(bag) else None, algorithm, key))
    return out
