# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read and write Java JCEKS keystores without a JVM, in the two dialects Java runtimes write.

Reading keeps every entry as the raw bytes found in the file, so existing entries (including key
pairs, certificates and entries other providers sealed) are carried over untouched when a store is
written back. Nothing is decrypted unless a caller asks for one key with unseal().

Secret key entries come in two dialects. Both encrypt a serialized key object with
PBEWithMD5AndTripleDES; they differ in the classes around it:

- ``sunjce`` (OpenJDK, Temurin, Semeru): a javax.crypto.spec.SecretKeySpec inside a
  com.sun.crypto.provider.SealedObjectForKeyProtector whose paramsAlg is "PBEWithMD5AndTripleDES".
  Written byte-identical to OpenJDK keytool's entries for the same key, salt, iteration count and
  timestamp.
- ``ibm`` (IBM's own JRE, the one EKM ships with): a com.ibm.crypto.provider.AESSecretKey inside a
  plain javax.crypto.SealedObject whose paramsAlg is "PBE"; IBM's keytool uses 20 iterations.
  Written with the serialization of an entry IBM's keytool made.

A Java runtime of one family cannot read the other's entries, so a keystore must hold one dialect
only: Keystore.add() refuses to mix them.

Only the standard library is needed to list and verify a store; sealing and unsealing need the
``cryptography`` package (3DES), which is imported on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import secrets
import struct
import time
import warnings

try:
    # CPython's builtin MD5 is about twice as fast as OpenSSL's for the 24-byte inputs of the PBE
    # loop, which is nearly the whole cost of sealing a key. Some builds leave it out.
    from _md5 import md5 as _md5
except ImportError:  # pragma: no cover - depends on the interpreter build
    _md5 = hashlib.md5


MAGIC_JCEKS = 0xCECECECE
MAGIC_JKS = 0xFEEDFEED

TAG_PRIVATE_KEY = 1
TAG_TRUSTED_CERT = 2
TAG_SECRET_KEY = 3

DEFAULT_ITERATION_COUNT = 200000
IBM_DEFAULT_ITERATION_COUNT = 20
MIN_ITERATION_COUNT = 1
MAX_ITERATION_COUNT = 5000000

DIALECT_SUNJCE = 'sunjce'
DIALECT_IBM = 'ibm'
DIALECTS = (DIALECT_SUNJCE, DIALECT_IBM)
DIALECT_TITLES = {DIALECT_SUNJCE: "SunJCE dialect (OpenJDK's)", DIALECT_IBM: "IBM dialect (IBM's JRE)"}
DEFAULT_ITERATIONS = {DIALECT_SUNJCE: DEFAULT_ITERATION_COUNT, DIALECT_IBM: IBM_DEFAULT_ITERATION_COUNT}

PBE_ALGORITHM = 'PBEWithMD5AndTripleDES'
IBM_PARAMS_ALG = 'PBE'
SUNJCE_SEALED_CLASS = 'com.sun.crypto.provider.SealedObjectForKeyProtector'
SEALED_OBJECT_CLASS = 'javax.crypto.SealedObject'
SECRET_KEY_SPEC_CLASS = 'javax.crypto.spec.SecretKeySpec'
KEY_REP_CLASS = 'java.security.KeyRep'
IBM_AES_KEY_CLASS = 'com.ibm.crypto.provider.AESSecretKey'

_KINDS = {TAG_PRIVATE_KEY: 'private', TAG_TRUSTED_CERT: 'trusted', TAG_SECRET_KEY: 'secret'}
_INTEGRITY_SALT = b'Mighty Aphrodite'
_HASH_LEN = 20
_HEADER = struct.Struct('>III')
_U16 = struct.Struct('>H')
_U32 = struct.Struct('>I')
_I32 = struct.Struct('>i')
_I64 = struct.Struct('>q')

# A sealed AES-256 key is a 157-byte SecretKeySpec stream padded to 160 bytes (SunJCE) or a
# 123-byte AESSecretKey stream padded to 128 bytes (IBM); see guess_secret_key().
_AES256_SEALED_LENGTH = {DIALECT_SUNJCE: 160, DIALECT_IBM: 128}
_PARALLEL_MIN_ITEMS = 9


class JceksError(Exception):
    """Base class of every error of this module; str() is a complete sentence for the user."""


class JceksFormatError(JceksError):
    """The data is not a keystore, or its structure is truncated or corrupt."""


class JceksIntegrityError(JceksError):
    """The keyed SHA-1 over the store does not match: wrong store password or an altered file.

    ``likely_cause`` is ``'password'``, ``'altered'`` or ``'unknown'`` (see load()).
    """

    def __init__(self, message, likely_cause='unknown'):
        super().__init__(message)
        self.likely_cause = likely_cause


class JceksUnsealError(JceksError):
    """A secret key entry could not be decrypted (wrong key password or damaged entry)."""


class JceksUnsupportedError(JceksError):
    """An entry was sealed with classes of a Java provider this module does not know."""


class JceksDialectError(JceksError):
    """A key of one dialect was to be added to a keystore that holds keys of the other."""


def _backend_hint(what):
    return ('%s; only a Java runtime with that provider can read it. Use `backend: keytool` with the keytool '
            'of the Java runtime that wrote the keystore (for EKM: the IBM JRE it ships with).' % what)


# ---------------------------------------------------------------------------------------------
# Java's "modified UTF-8" (DataOutput.writeUTF): NUL as C0 80, characters beyond the BMP as two
# 3-byte surrogates. Aliases and class names are written this way.

def _encode_utf(text):
    if text.isascii() and '\x00' not in text:
        raw = text.encode('ascii')
    else:
        units = text.encode('utf-16-be', 'surrogatepass')
        out = bytearray()
        for i in range(0, len(units), 2):
            c = (units[i] << 8) | units[i + 1]
            if 0 < c < 0x80:
                out.append(c)
            elif c < 0x800:
                out += bytes((0xC0 | (c >> 6), 0x80 | (c & 0x3F)))
            else:
                out += bytes((0xE0 | (c >> 12), 0x80 | ((c >> 6) & 0x3F), 0x80 | (c & 0x3F)))
        raw = bytes(out)
    if len(raw) > 0xFFFF:
        raise JceksError('A name of %d encoded bytes is too long for a keystore (the limit is 65535).' % len(raw))
    return _U16.pack(len(raw)) + raw


def _decode_utf(raw):
    """Decode modified UTF-8 as DataInput.readUTF does; ValueError where Java would refuse."""
    if raw.isascii():
        return raw.decode('ascii')
    units = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        high = c >> 4
        if high < 8:
            unit = c
            i += 1
        elif high in (12, 13):
            if i + 1 >= n or raw[i + 1] & 0xC0 != 0x80:
                raise ValueError('malformed modified UTF-8')
            unit = ((c & 0x1F) << 6) | (raw[i + 1] & 0x3F)
            i += 2
        elif high == 14:
            if i + 2 >= n or raw[i + 1] & 0xC0 != 0x80 or raw[i + 2] & 0xC0 != 0x80:
                raise ValueError('malformed modified UTF-8')
            unit = ((c & 0x0F) << 12) | ((raw[i + 1] & 0x3F) << 6) | (raw[i + 2] & 0x3F)
            i += 3
        else:
            raise ValueError('malformed modified UTF-8')
        units += _U16.pack(unit)
    return bytes(units).decode('utf-16-be', 'surrogatepass')


# ---------------------------------------------------------------------------------------------
# Java object serialization: a tolerant, bounded reader (for entries other tools wrote and for the
# decrypted key objects) and fixed templates for what this module writes.

_TC_NULL = 0x70
_TC_REFERENCE = 0x71
_TC_CLASSDESC = 0x72
_TC_OBJECT = 0x73
_TC_STRING = 0x74
_TC_ARRAY = 0x75
_TC_CLASS = 0x76
_TC_BLOCKDATA = 0x77
_TC_ENDBLOCKDATA = 0x78
_TC_RESET = 0x79
_TC_BLOCKDATALONG = 0x7A
_TC_EXCEPTION = 0x7B
_TC_LONGSTRING = 0x7C
_TC_PROXYCLASSDESC = 0x7D
_TC_ENUM = 0x7E
_BASE_HANDLE = 0x7E0000
_SC_WRITE_METHOD = 0x01
_SC_SERIALIZABLE = 0x02
_SC_EXTERNALIZABLE = 0x04
_SC_BLOCK_DATA = 0x08
_STREAM_MAGIC = b'\xac\xed\x00\x05'
_PRIMITIVE_SIZES = {'B': 1, 'C': 2, 'D': 8, 'F': 4, 'I': 4, 'J': 8, 'S': 2, 'Z': 1}
# Real key streams nest about five levels deep; the limits only stop hostile input from exhausting
# the stack or making the reader loop over long class chains.
_MAX_DEPTH = 48
_MAX_CLASS_CHAIN = 32


class _StreamError(Exception):
    def __init__(self, message, truncated=False):
        super().__init__(message)
        self.truncated = truncated


class _ClassDesc:
    __slots__ = ('name', 'suid', 'flags', 'fields', 'superclass')

    def __init__(self, name, suid=0, flags=0):
        self.name = name
        self.suid = suid
        self.flags = flags
        self.fields = []
        self.superclass = None

    def chain(self):
        """Classes from this one up to the topmost serializable superclass."""
        out = []
        desc = self
        while desc is not None:
            if len(out) >= _MAX_CLASS_CHAIN or any(d is desc for d in out):
                raise _StreamError('class %s has a cyclic or overlong superclass chain' % self.name)
            out.append(desc)
            desc = desc.superclass
        return out


class _JavaObject:
    __slots__ = ('desc', 'values')

    def __init__(self, desc):
        self.desc = desc
        self.values = {}      # class name -> {field name: value}

    @property
    def class_name(self):
        return self.desc.name

    def class_names(self):
        return [d.name for d in self.desc.chain()]

    def field(self, class_name, name):
        return self.values.get(class_name, {}).get(name)


class _JavaEnum:
    __slots__ = ('desc', 'constant')

    def __init__(self, desc):
        self.desc = desc
        self.constant = None


class _BlockData:
    __slots__ = ()


_BLOCK = _BlockData()


class _StreamReader:
    """Reads one object from a Java serialization stream, within data[pos:limit]."""

    def __init__(self, data, pos, limit):
        self.data = data
        self.pos = pos
        self.limit = limit
        self.handles = []
        self.depth = 0

    def _take(self, n):
        start = self.pos
        if n < 0 or start + n > self.limit:
            raise _StreamError('the serialized object ends beyond the available data', truncated=True)
        self.pos = start + n
        return start

    def _require(self, n):
        if n < 0 or self.pos + n > self.limit:
            raise _StreamError('a count in the serialized object exceeds the available data', truncated=n >= 0)

    def u8(self):
        return self.data[self._take(1)]

    def u16(self):
        return _U16.unpack_from(self.data, self._take(2))[0]

    def i32(self):
        return _I32.unpack_from(self.data, self._take(4))[0]

    def i64(self):
        return _I64.unpack_from(self.data, self._take(8))[0]

    def raw(self, n):
        start = self._take(n)
        return self.data[start:start + n]

    def utf(self, length=None):
        if length is None:
            length = self.u16()
        try:
            return _decode_utf(self.raw(length))
        except ValueError:
            raise _StreamError('a string is not valid modified UTF-8') from None

    def read_stream(self):
        if self.raw(4) != _STREAM_MAGIC:
            raise _StreamError('it is not a Java serialization stream')
        while self.pos < self.limit and self.data[self.pos] == _TC_RESET:
            self.pos += 1
            self.handles = []
        obj = self.content()
        if obj is _BLOCK:
            raise _StreamError('the stream holds block data instead of an object')
        return obj

    def _enter(self):
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _StreamError('the serialized object is nested more than %d levels deep' % _MAX_DEPTH)

    def content(self):
        self._enter()
        try:
            return self._content(self.u8())
        finally:
            self.depth -= 1

    def _content(self, tc):
        # pylint: disable=too-many-return-statements
        if tc == _TC_NULL:
            return None
        if tc == _TC_REFERENCE:
            return self._reference()
        if tc == _TC_OBJECT:
            return self._object()
        if tc == _TC_STRING:
            index = self._new_handle(None)
            self.handles[index] = self.utf()
            return self.handles[index]
        if tc == _TC_LONGSTRING:
            index = self._new_handle(None)
            length = self.i64()
            self.handles[index] = self.utf(length)
            return self.handles[index]
        if tc == _TC_ARRAY:
            return self._array()
        if tc == _TC_ENUM:
            desc = self._class_desc_required()
            value = _JavaEnum(desc)
            self._new_handle(value)
            constant = self.content()
            if not isinstance(constant, str):
                raise _StreamError('an enum constant of %s has no name' % desc.name)
            value.constant = constant
            return value
        if tc in (_TC_CLASSDESC, _TC_PROXYCLASSDESC):
            return self._class_desc(tc)
        if tc == _TC_CLASS:
            desc = self._class_desc_required()
            self._new_handle(desc)
            return desc
        if tc in (_TC_BLOCKDATA, _TC_BLOCKDATALONG):
            self._take(self.u8() if tc == _TC_BLOCKDATA else self.i32())
            return _BLOCK
        if tc == _TC_EXCEPTION:
            raise _StreamError('the stream records an exception instead of an object')
        raise _StreamError('unknown type code 0x%02x in the serialized object' % tc)

    def _new_handle(self, value):
        self.handles.append(value)
        return len(self.handles) - 1

    def _reference(self):
        index = self.i32() - _BASE_HANDLE
        if not 0 <= index < len(self.handles):
            raise _StreamError('a back-reference points to no earlier object')
        return self.handles[index]

    def _class_desc_required(self):
        desc = self._class_desc()
        if desc is None:
            raise _StreamError('an object or array has no class')
        return desc

    def _class_desc(self, tc=None):
        self._enter()
        try:
            if tc is None:
                tc = self.u8()
            if tc == _TC_NULL:
                return None
            if tc == _TC_REFERENCE:
                desc = self._reference()
                if not isinstance(desc, _ClassDesc):
                    raise _StreamError('a class back-reference points to something else')
                return desc
            if tc == _TC_CLASSDESC:
                name = self.utf()
                desc = _ClassDesc(name, self.i64())
                self._new_handle(desc)
                desc.flags = self.u8()
                for dummy in range(self.u16()):
                    code = chr(self.u8())
                    field_name = self.utf()
                    if code in 'L[':
                        type_name = self.content()
                        if not isinstance(type_name, str):
                            raise _StreamError('field %s of %s has no type name' % (field_name, name))
                    elif code not in _PRIMITIVE_SIZES:
                        raise _StreamError('field %s of %s has an unknown type code' % (field_name, name))
                    desc.fields.append((code, field_name))
            elif tc == _TC_PROXYCLASSDESC:
                desc = _ClassDesc('<proxy>')
                self._new_handle(desc)
                count = self.i32()
                self._require(2 * count)
                for dummy in range(count):
                    self.utf()
            else:
                raise _StreamError('expected a class description, found type code 0x%02x' % tc)
            self._annotations()
            desc.superclass = self._class_desc()
            desc.chain()
            return desc
        finally:
            self.depth -= 1

    def _annotations(self):
        while True:
            if self.pos >= self.limit:
                raise _StreamError('class or object annotations are not terminated', truncated=True)
            if self.data[self.pos] == _TC_ENDBLOCKDATA:
                self.pos += 1
                return
            self.content()

    def _object(self):
        desc = self._class_desc_required()
        obj = _JavaObject(desc)
        self._new_handle(obj)
        for cls in reversed(desc.chain()):
            if cls.flags & _SC_EXTERNALIZABLE:
                if not cls.flags & _SC_BLOCK_DATA:
                    raise _StreamError('class %s uses the old externalizable protocol, which cannot be skipped' % cls.name)
                self._annotations()
                continue
            if not cls.flags & _SC_SERIALIZABLE:
                continue
            values = {}
            for code, name in cls.fields:
                size = _PRIMITIVE_SIZES.get(code)
                if size is None:
                    value = self.content()
                    if value is _BLOCK:
                        raise _StreamError('field %s of %s holds block data' % (name, cls.name))
                    values[name] = value
                else:
                    values[name] = self.raw(size)
            obj.values[cls.name] = values
            if cls.flags & _SC_WRITE_METHOD:
                self._annotations()
        return obj

    def _array(self):
        desc = self._class_desc_required()
        index = self._new_handle(None)
        length = self.i32()
        if length < 0:
            raise _StreamError('an array has a negative length')
        code = desc.name[1:2]
        if not desc.name.startswith('[') or code not in _PRIMITIVE_SIZES and code not in ('L', '['):
            raise _StreamError('array class %s is not valid' % desc.name)
        size = _PRIMITIVE_SIZES.get(code)
        if size is not None:
            value = self.raw(length * size)
        else:
            # Every element takes at least one byte, which bounds the loop by the data.
            self._require(length)
            value = []
            for dummy in range(length):
                element = self.content()
                if element is _BLOCK:
                    raise _StreamError('an array element holds block data')
                value.append(element)
        self.handles[index] = value
        return value


def _utf_field(name):
    return _encode_utf(name)


def _class_header(name, suid):
    return bytes((_TC_CLASSDESC,)) + _encode_utf(name) + _I64.pack(suid)


def _sealed_fields(first_handle):
    """SealedObject's four field descriptions; its "[B" and "Ljava/lang/String;" get handles first_handle and +1."""
    return (b'[' + _utf_field('encodedParams') + bytes((_TC_STRING,)) + _encode_utf('[B')
            + b'[' + _utf_field('encryptedContent') + bytes((_TC_REFERENCE,)) + _U32.pack(_BASE_HANDLE + first_handle)
            + b'L' + _utf_field('paramsAlg') + bytes((_TC_STRING,)) + _encode_utf('Ljava/lang/String;')
            + b'L' + _utf_field('sealAlg') + bytes((_TC_REFERENCE,)) + _U32.pack(_BASE_HANDLE + first_handle + 1))


# The serialized SealedObjectForKeyProtector up to the length of its first byte array, exactly as
# ObjectOutputStream writes it (handles: 0 outer class, 1 SealedObject, 2 "[B", 3 "Ljava/lang/String;",
# 4 the object, 5 the byte[] class, 6 and 7 the arrays, 8 and 9 the strings).
_BYTE_ARRAY_CLASS = _class_header('[B', -0x530ce807f9f7ab20) + b'\x02\x00\x00' + bytes((_TC_ENDBLOCKDATA, _TC_NULL))
_SEALED_PREFIX = (
    _STREAM_MAGIC + bytes((_TC_OBJECT,))
    + _class_header(SUNJCE_SEALED_CLASS, -3650226485480866989) + b'\x02\x00\x00' + bytes((_TC_ENDBLOCKDATA,))
    + _class_header(SEALED_OBJECT_CLASS, 4482838265551344752) + b'\x02\x00\x04' + _sealed_fields(2)
    + bytes((_TC_ENDBLOCKDATA, _TC_NULL, _TC_ARRAY)) + _BYTE_ARRAY_CLASS
)
_SEALED_SECOND_ARRAY = bytes((_TC_ARRAY, _TC_REFERENCE)) + _U32.pack(_BASE_HANDLE + 5)

# IBM's keytool writes a plain SealedObject, so every handle is one lower (0 SealedObject, 1 "[B",
# 2 "Ljava/lang/String;", 3 the object, 4 the byte[] class, 5 and 6 the arrays, 7 and 8 the strings).
_IBM_SEALED_PREFIX = (
    _STREAM_MAGIC + bytes((_TC_OBJECT,))
    + _class_header(SEALED_OBJECT_CLASS, 4482838265551344752) + b'\x02\x00\x04' + _sealed_fields(1)
    + bytes((_TC_ENDBLOCKDATA, _TC_NULL, _TC_ARRAY)) + _BYTE_ARRAY_CLASS
)
_IBM_SEALED_SECOND_ARRAY = bytes((_TC_ARRAY, _TC_REFERENCE)) + _U32.pack(_BASE_HANDLE + 4)

# The serialized SecretKeySpec up to its algorithm string (handles: 0 class, 1 "Ljava/lang/String;",
# 2 "[B", 3 the object, 4 the algorithm, 5 the byte[] class, 6 the key).
_SECRET_KEY_SPEC_PREFIX = (
    _STREAM_MAGIC + bytes((_TC_OBJECT,))
    + _class_header(SECRET_KEY_SPEC_CLASS, 6577238317307289933) + b'\x02\x00\x02'
    + b'L' + _utf_field('algorithm') + bytes((_TC_STRING,)) + _encode_utf('Ljava/lang/String;')
    + b'[' + _utf_field('key') + bytes((_TC_STRING,)) + _encode_utf('[B')
    + bytes((_TC_ENDBLOCKDATA, _TC_NULL))
)

# IBM's serialized AESSecretKey up to the length of its key (handles: 0 class, 1 "[B", 2 the object,
# 3 the byte[] class, 4 the key).
_IBM_AES_KEY_PREFIX = (
    _STREAM_MAGIC + bytes((_TC_OBJECT,))
    + _class_header(IBM_AES_KEY_CLASS, 0x210910f87f2cf340) + b'\x02\x00\x01'
    + b'[' + _utf_field('key') + bytes((_TC_STRING,)) + _encode_utf('[B')
    + bytes((_TC_ENDBLOCKDATA, _TC_NULL, _TC_ARRAY)) + _BYTE_ARRAY_CLASS
)

# What a dialect's sealed object looks like: (class name, prefix, second array, paramsAlg).
_SEALED_LAYOUTS = {
    DIALECT_SUNJCE: (SUNJCE_SEALED_CLASS, _SEALED_PREFIX, _SEALED_SECOND_ARRAY, PBE_ALGORITHM),
    DIALECT_IBM: (SEALED_OBJECT_CLASS, _IBM_SEALED_PREFIX, _IBM_SEALED_SECOND_ARRAY, IBM_PARAMS_ALG),
}


def _sealed_fast(data, pos, limit):
    """Parse the sealed-object layout of either dialect's keytool; None when data[pos:] is laid out otherwise.

    Returns (dialect, end, (params offset, length), (content offset, length), [(string offset, length)] * 2).
    """
    for dialect, (dummy, prefix, second_array, dummy_alg) in _SEALED_LAYOUTS.items():
        p = pos + len(prefix)
        if p + 4 <= limit and data[pos:p] == prefix:
            break
    else:
        return None
    params_len = _U32.unpack_from(data, p)[0]
    params_at = p + 4
    p = params_at + params_len
    if p + 10 > limit or data[p:p + 6] != second_array:
        return None
    content_len = _U32.unpack_from(data, p + 6)[0]
    content_at = p + 10
    p = content_at + content_len
    strings = []
    for dummy in range(2):
        if p + 3 > limit or data[p] != _TC_STRING:
            return None
        length = _U16.unpack_from(data, p + 1)[0]
        strings.append((p + 3, length))
        p += 3 + length
    if p > limit:
        return None
    return dialect, p, (params_at, params_len), (content_at, content_len), strings


def _stream_end(data, pos, limit):
    fast = _sealed_fast(data, pos, limit)
    if fast is not None:
        return fast[1]
    reader = _StreamReader(data, pos, limit)
    reader.read_stream()
    return reader.pos


# ---------------------------------------------------------------------------------------------
# DER PBEParameter ::= SEQUENCE { salt OCTET STRING, iterationCount INTEGER }

def der_length(n):
    """The DER length octets for a value of ``n`` bytes."""
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, 'big')
    return bytes((0x80 | len(raw),)) + raw


def der_tlv(tag, value):
    """One DER tag-length-value."""
    return bytes((tag,)) + der_length(len(value)) + value


def _pbe_params(salt, iteration_count):
    integer = iteration_count.to_bytes(iteration_count.bit_length() // 8 + 1, 'big')
    return der_tlv(0x30, der_tlv(0x04, salt) + der_tlv(0x02, integer))


def _der_read(data, pos, tag):
    if pos + 2 > len(data) or data[pos] != tag:
        raise ValueError('unexpected DER tag')
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError('bad DER length')
        length = int.from_bytes(data[pos:pos + count], 'big')
        pos += count
    if pos + length > len(data):
        raise ValueError('DER value ends beyond its container')
    return data[pos:pos + length], pos + length


def _parse_pbe_params(der):
    seq, end = _der_read(der, 0, 0x30)
    if end != len(der):
        raise ValueError('bytes after the parameters')
    salt, pos = _der_read(seq, 0, 0x04)
    integer, pos = _der_read(seq, pos, 0x02)
    if pos != len(seq) or not integer or integer[0] & 0x80:
        raise ValueError('bad iteration count')
    return salt, int.from_bytes(integer, 'big')


# ---------------------------------------------------------------------------------------------
# Entries and keystores

class SealedInfo:
    """What a secret key entry's outer object says, read without decrypting anything.

    ``dialect`` is ``'sunjce'`` or ``'ibm'`` when the object is laid out the way one of those
    writes it (and unseal() can open it), None for anything else.
    """

    __slots__ = ('class_name', 'salt', 'iteration_count', 'ciphertext', 'params_alg', 'seal_alg', 'dialect')

    def __init__(self, class_name, salt, iteration_count, ciphertext, params_alg, seal_alg, dialect=None):
        self.class_name = class_name
        self.salt = salt
        self.iteration_count = iteration_count
        self.ciphertext = ciphertext
        self.params_alg = params_alg
        self.seal_alg = seal_alg
        self.dialect = dialect

    def __repr__(self):
        return 'SealedInfo(class_name=%r, dialect=%r, iteration_count=%r, ciphertext=<%d bytes>, seal_alg=%r)' % (
            self.class_name, self.dialect, self.iteration_count, len(self.ciphertext), self.seal_alg)


def _dialect_of(class_name, params_alg, seal_alg):
    """The dialect whose class and algorithm names these are, or None."""
    for dialect, (sealed_class, dummy, dummy_array, dialect_params_alg) in _SEALED_LAYOUTS.items():
        if class_name == sealed_class and params_alg == dialect_params_alg and seal_alg == PBE_ALGORITHM:
            return dialect
    return None


class Entry:
    """One keystore entry: the raw bytes from its tag through its last byte, plus what they say."""

    __slots__ = ('alias', 'tag', 'created', 'body', '_sha256', '_sealed', '_version', '_jks')

    def __init__(self, alias, tag, created, body, _version=2, _jks=False):
        self.alias = alias
        self.tag = tag
        self.created = created
        self.body = body
        self._sha256 = None
        self._sealed = None
        # Version 1 stores omit the certificate type before each certificate and JKS stores protect
        # private keys with another algorithm: dump() must know where an entry came from.
        self._version = _version
        self._jks = _jks

    def __repr__(self):
        return 'Entry(alias=%r, kind=%r, created=%r)' % (self.alias, self.kind, self.created)

    @property
    def kind(self):
        return _KINDS[self.tag]

    @property
    def sha256(self):
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.body).hexdigest()
        return self._sha256

    def _payload_offset(self):
        return 6 + _U16.unpack_from(self.body, 4)[0] + 8

    def sealed(self):
        """Parse the sealed object of a secret key entry (cached); nothing is decrypted."""
        if self._sealed is None:
            if self.tag != TAG_SECRET_KEY:
                raise JceksError("Entry '%s' is a %s entry, not a secret key." % (self.alias, self.kind))
            self._sealed = self._parse_sealed()
        return self._sealed

    def _parse_sealed(self):
        body = self.body
        start = self._payload_offset()
        fast = _sealed_fast(body, start, len(body))
        if fast is not None and fast[1] == len(body):
            dialect, dummy, params, content, strings = fast
            try:
                algs = [_decode_utf(body[p:p + n]) for p, n in strings]
            except ValueError:
                raise JceksFormatError("Secret key entry '%s' is corrupt: an algorithm name is not valid text." % self.alias) from None
            return self._sealed_info(_SEALED_LAYOUTS[dialect][0], body[params[0]:params[0] + params[1]],
                                     body[content[0]:content[0] + content[1]], algs[0], algs[1])
        return self._parse_sealed_slowly(body, start)

    def _parse_sealed_slowly(self, body, start):
        reader = _StreamReader(body, start, len(body))
        try:
            obj = reader.read_stream()
            if reader.pos != len(body):
                raise _StreamError('%d bytes follow its sealed object' % (len(body) - reader.pos))
        except _StreamError as exc:
            raise JceksFormatError("Secret key entry '%s' is corrupt: %s." % (self.alias, exc)) from None
        if not isinstance(obj, _JavaObject):
            raise JceksUnsupportedError(_backend_hint("Secret key entry '%s' does not hold a sealed Java object" % self.alias))
        names = obj.class_names()
        if SEALED_OBJECT_CLASS not in names:
            raise JceksUnsupportedError(_backend_hint(
                "Secret key entry '%s' holds a %s object instead of a javax.crypto.SealedObject" % (self.alias, obj.class_name)))
        fields = obj.values.get(SEALED_OBJECT_CLASS, {})
        params = fields.get('encodedParams')
        content = fields.get('encryptedContent')
        params_alg = fields.get('paramsAlg')
        seal_alg = fields.get('sealAlg')
        if (not isinstance(content, bytes) or not isinstance(params, (bytes, type(None)))
                or not isinstance(params_alg, (str, type(None))) or not isinstance(seal_alg, str)):
            raise JceksFormatError("Secret key entry '%s' is corrupt: its sealed object has fields of the wrong type." % self.alias)
        return self._sealed_info(obj.class_name, params or b'', content, params_alg, seal_alg)

    def _sealed_info(self, class_name, params, content, params_alg, seal_alg):
        dialect = _dialect_of(class_name, params_alg, seal_alg)
        try:
            salt, iterations = _parse_pbe_params(params)
        except ValueError:
            if dialect is not None:
                raise JceksFormatError("Secret key entry '%s' is corrupt: its PBE parameters cannot be read." % self.alias) from None
            # Another provider's parameters: listing the entry must still work.
            salt, iterations = b'', 0
        if dialect is not None:
            if len(salt) != 8:
                raise JceksFormatError("Secret key entry '%s' is corrupt: its PBE salt is %d bytes, not 8." % (self.alias, len(salt)))
            if not MIN_ITERATION_COUNT <= iterations <= MAX_ITERATION_COUNT:
                raise JceksFormatError(
                    "Secret key entry '%s' has a PBE iteration count of %d, outside %d..%d; Java refuses to read it as well."
                    % (self.alias, iterations, MIN_ITERATION_COUNT, MAX_ITERATION_COUNT))
            if not content or len(content) % 8:
                raise JceksFormatError("Secret key entry '%s' is corrupt: its ciphertext is %d bytes, not a whole number of 3DES blocks."
                                       % (self.alias, len(content)))
        return SealedInfo(class_name, salt, iterations, content, params_alg, seal_alg, dialect)

    @property
    def dialect(self):
        """``'sunjce'`` or ``'ibm'`` for a secret key that unseal() can open; None for every other entry."""
        if self.tag != TAG_SECRET_KEY:
            return None
        try:
            return self.sealed().dialect
        except JceksUnsupportedError:
            return None

    @property
    def is_sunjce(self):
        """True when this is a secret key that OpenJDK's SunJCE provider sealed."""
        return self.dialect == DIALECT_SUNJCE

    def guess_secret_key(self):
        """(algorithm, bits) of the sealed key as far as its size tells, without decrypting.

        SunJCE seals a serialized SecretKeySpec, 122 bytes plus the algorithm name and the key,
        padded to the next multiple of 8 (always at least one byte of padding). AES with a 32-byte
        key is 157 bytes and seals to exactly 160 bytes, so any other length rules AES-256 out.
        160 bytes is also what a few other SecretKeySpecs would give (name plus key of 30 to 37
        bytes, such as RC4 with 32 bytes); keytool's AES-256 keys and this module's are the only
        common source, so 160 is reported as ('AES', 256). IBM's JRE seals its AESSecretKey, 91
        bytes plus the key: a 32-byte key gives 123 bytes, sealed to 128 (the only AES key size
        that does). Callers that must be certain unseal(). Everything else gives (None, None). An
        entry of a known dialect with unreadable PBE parameters raises JceksFormatError, as
        sealed() does.
        """
        dialect = self.dialect
        if dialect is not None and len(self.sealed().ciphertext) == _AES256_SEALED_LENGTH[dialect]:
            return 'AES', 256
        return None, None

    def _body_for_jceks_v2(self):
        if self.tag == TAG_SECRET_KEY or (self._version == 2 and not self._jks):
            return self.body
        if self._jks and self.tag == TAG_PRIVATE_KEY:
            raise JceksError(
                "Entry '%s' is a private key protected by the JKS algorithm, which Java cannot recover from a JCEKS file; "
                "convert the keystore with keytool -importkeystore instead." % self.alias)
        if self._version == 2:
            return self.body
        return _upgrade_v1_body(self)


def _upgrade_v1_body(entry):
    """Insert the certificate type that version 2 writes before every certificate (v1 implies X.509)."""
    body = entry.body
    pos = entry._payload_offset()  # pylint: disable=protected-access
    parts = [body[:pos]]
    cert_type = _encode_utf('X.509')
    if entry.tag == TAG_PRIVATE_KEY:
        key_len = _U32.unpack_from(body, pos)[0]
        pos += 4 + key_len
        count = _U32.unpack_from(body, pos)[0]
        pos += 4
        parts.append(body[len(parts[0]):pos])
        certs = count
    else:
        certs = 1
    for dummy in range(certs):
        cert_len = _U32.unpack_from(body, pos)[0]
        parts.append(cert_type)
        parts.append(body[pos:pos + 4 + cert_len])
        pos += 4 + cert_len
    return b''.join(parts)


class _EntryList(list):
    """A keystore's entry list: every change counts up ``version``, so the alias index knows it is stale."""

    def __init__(self, items=()):
        super().__init__(items)
        self.version = 0


def _counting(name):
    method = getattr(list, name)

    def changed(self, *args):
        self.version += 1
        return method(self, *args)

    changed.__name__ = name
    changed.__doc__ = method.__doc__
    return changed


for _name in ('__setitem__', '__delitem__', '__iadd__', '__imul__', 'append', 'extend', 'insert', 'pop', 'remove',
              'clear', 'sort', 'reverse'):
    setattr(_EntryList, _name, _counting(_name))
del _name


class Keystore:
    """Entries in file order; alias look-ups ignore case as Java's JCEKS provider does.

    ``entries`` may be changed in place (appended to, items replaced); the alias index follows.
    add() is the checked way in: it refuses a second entry under an alias and a key of the other
    dialect.
    """

    def __init__(self, magic=MAGIC_JCEKS, version=2, entries=None):
        self.magic = magic
        self.version = version
        self._index = {}
        self._index_version = None
        self._dialects = {}
        self._dialects_version = None
        self.entries = entries or []
        self._reindex()

    @property
    def entries(self):
        return self._entries

    @entries.setter
    def entries(self, entries):
        self._entries = _EntryList(entries)
        self._index_version = None
        self._dialects_version = None

    def _reindex(self):
        index = {}
        for entry in self._entries:
            key = entry.alias.lower()
            if key in index:
                raise JceksError("The keystore holds alias '%s' twice (aliases are compared without case)." % entry.alias)
            index[key] = entry
        self._index = index
        self._index_version = self._entries.version

    def _lookup(self):
        if self._index_version != self._entries.version:
            self._reindex()
        return self._index

    def get(self, alias):
        return self._lookup().get(alias.lower())

    def __contains__(self, alias):
        return alias.lower() in self._lookup()

    def __len__(self):
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def aliases(self):
        return [entry.alias for entry in self._entries]

    def secret_dialects(self):
        """``{dialect: [aliases]}`` of the secret keys; dialect None collects keys no known dialect sealed.

        Cached until the entry list changes; do not modify the result.
        """
        if self._dialects_version != self._entries.version:
            found = {}
            for entry in self._entries:
                if entry.tag == TAG_SECRET_KEY:
                    found.setdefault(entry.dialect, []).append(entry.alias)
            self._dialects = found
            self._dialects_version = self._entries.version
        return self._dialects

    def dialect(self):
        """The one dialect of this keystore's secret keys; None when it holds none of either dialect.

        A keystore holding keys of both dialects raises JceksDialectError: neither Java runtime
        can read all of it.
        """
        known = [d for d in self.secret_dialects() if d is not None]
        if len(known) > 1:
            raise JceksDialectError(_mixed_message(self.secret_dialects()))
        return known[0] if known else None

    def add(self, entry):
        if not isinstance(entry, Entry):
            raise TypeError('Keystore.add() takes an Entry')
        index = self._lookup()
        key = entry.alias.lower()
        if key in index:
            raise JceksError("The keystore already holds an entry with alias '%s'; existing entries are never replaced." % entry.alias)
        dialect = entry.dialect
        found = self.secret_dialects()
        self._check_dialect(found, dialect)
        self._entries.append(entry)
        index[key] = entry
        self._index_version = self._entries.version
        if entry.tag == TAG_SECRET_KEY:
            found.setdefault(dialect, []).append(entry.alias)
        self._dialects_version = self._entries.version

    @staticmethod
    def _check_dialect(found, dialect):
        if dialect is None:
            return
        for other, aliases in found.items():
            if other not in (None, dialect):
                raise JceksDialectError(
                    'The keystore holds keys in the %s: %s. A key in the %s cannot be added to it: a Java runtime '
                    'reads only one of the two dialects and would lose the other keys. Nothing was changed.'
                    % (DIALECT_TITLES[other], _some_aliases(aliases), DIALECT_TITLES[dialect]))


def _some_aliases(aliases, limit=10):
    if len(aliases) > limit:
        return '%s and %d more' % (', '.join(aliases[:limit]), len(aliases) - limit)
    return ', '.join(aliases)


def _mixed_message(found):
    parts = ['%s: %s' % (DIALECT_TITLES[d], _some_aliases(aliases)) for d, aliases in found.items() if d is not None]
    return ('The keystore holds keys in both dialects (%s); no Java runtime can read all of them, so it is not extended. '
            'Split it with the keytool of each runtime.' % '; '.join(parts))


def new_keystore():
    return Keystore()


# ---------------------------------------------------------------------------------------------
# Loading and dumping

def _integrity_hash(password, payload):
    if not isinstance(password, str):
        raise TypeError('the store password must be a str')
    digest = hashlib.sha1(password.encode('utf-16-be', 'surrogatepass'))
    digest.update(_INTEGRITY_SALT)
    digest.update(payload)
    return digest.digest()


def _corrupt(index, alias, start, problem, truncated):
    where = 'entry %d' % (index + 1)
    if alias is not None:
        where += " ('%s')" % alias
    where += ' at byte %d' % start
    if truncated:
        return JceksFormatError('The keystore is truncated or corrupt: %s %s.' % (where, problem))
    return JceksFormatError('The keystore is corrupt: %s %s.' % (where, problem))


def load(data, password=None):
    """Parse a JCEKS or JKS keystore without decrypting anything.

    With a password, the integrity hash is checked; on a mismatch one secret key is unsealed with
    the same password (the usual EKM set-up uses one password for both) to tell a wrong password
    from an altered file, and the JceksIntegrityError says which is likely.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    size = len(data)
    if size == 0:
        raise JceksFormatError('The file is empty; it is not a keystore.')
    if size < _HEADER.size:
        raise JceksFormatError('The file is only %d bytes long; it is not a keystore.' % size)
    magic, version, count = _HEADER.unpack_from(data, 0)
    if magic not in (MAGIC_JCEKS, MAGIC_JKS):
        raise JceksFormatError('The file is not a JCEKS or JKS keystore (it starts with 0x%08X).' % magic)
    if version not in (1, 2):
        raise JceksFormatError('The keystore has format version %d; only versions 1 and 2 exist.' % version)
    end = size - _HASH_LEN
    if end < _HEADER.size:
        raise JceksFormatError('The keystore is truncated: it ends before its integrity hash.')
    jks = magic == MAGIC_JKS
    entries = []
    pos = _HEADER.size
    for index in range(count):
        entry = _read_entry(data, pos, end, index, version, jks)
        pos += len(entry.body)
        entries.append(entry)
    if pos != end:
        raise JceksFormatError('The keystore is corrupt: %d unexpected bytes follow its %d entries.' % (end - pos, count))
    try:
        keystore = Keystore(magic, version, entries)
    except JceksError as exc:
        raise JceksFormatError(str(exc)) from None
    if password is not None:
        if not hmac.compare_digest(_integrity_hash(password, memoryview(data)[:end]), data[end:]):
            raise _integrity_error(keystore, password)
    return keystore


def _read_entry(data, start, end, index, version, jks):
    """The entry that starts at data[start]; JceksFormatError naming it when it is cut short or damaged."""
    alias = None
    try:
        if start + 6 > end:
            raise _StreamError('is missing', truncated=True)
        tag = _U32.unpack_from(data, start)[0]
        pos = start + 6 + _U16.unpack_from(data, start + 4)[0]
        if pos + 8 > end:
            raise _StreamError('ends inside its alias or date', truncated=True)
        raw_alias = data[start + 6:pos]
        alias = raw_alias.decode('ascii') if raw_alias.isascii() else _decode_utf(raw_alias)
        created = _I64.unpack_from(data, pos)[0]
        pos += 8
        if tag == TAG_SECRET_KEY:
            pos = _stream_end(data, pos, end)
        elif tag in (TAG_PRIVATE_KEY, TAG_TRUSTED_CERT):
            pos = _skip_key_or_cert(data, pos, end, tag, version)
        else:
            raise _StreamError('has the unknown entry type %d' % tag)
    except _StreamError as exc:
        raise _corrupt(index, alias, start, exc, exc.truncated) from None
    except ValueError:
        raise _corrupt(index, None, start, 'has an alias that is not valid modified UTF-8', False) from None
    return Entry(alias, tag, created, data[start:pos], version, jks)


def _skip_key_or_cert(data, pos, end, tag, version):
    u32 = _U32.unpack_from

    def skip_blob(at, what):
        if at + 4 > end:
            raise _StreamError('ends inside its %s' % what, truncated=True)
        length = u32(data, at)[0]
        if at + 4 + length > end:
            raise _StreamError('has a %s that runs past the end of the data' % what, truncated=True)
        return at + 4 + length

    def skip_cert(at):
        if version == 2:
            if at + 2 > end:
                raise _StreamError('ends inside a certificate type', truncated=True)
            at += 2 + _U16.unpack_from(data, at)[0]
        return skip_blob(at, 'certificate')

    if tag == TAG_TRUSTED_CERT:
        return skip_cert(pos)
    pos = skip_blob(pos, 'protected private key')
    if pos + 4 > end:
        raise _StreamError('ends before its certificate chain', truncated=True)
    chain = _I32.unpack_from(data, pos)[0]
    pos += 4
    if chain < 0:
        raise _StreamError('has a negative certificate count')
    for dummy in range(chain):
        pos = skip_cert(pos)
    return pos


def _integrity_error(keystore, password):
    probe = None
    if password and all(0x20 <= ord(c) <= 0x7E for c in password):
        for entry in keystore.entries:
            if entry.tag != TAG_SECRET_KEY:
                continue
            try:
                if entry.dialect and (probe is None or entry.sealed().iteration_count < probe.sealed().iteration_count):
                    probe = entry
            except JceksError:
                continue
    if probe is not None:
        try:
            unseal(probe, password)
        except JceksUnsealError:
            return JceksIntegrityError(
                "The keystore integrity check failed: the store password is most likely wrong (it does not unlock key '%s' "
                "either); if the password is right, the keystore file was altered or corrupted." % probe.alias, 'password')
        except JceksError:
            probe = None
        else:
            return JceksIntegrityError(
                "The keystore integrity check failed although the store password unlocks key '%s': the keystore file was "
                "altered or corrupted after it was written. Restore it from a backup." % probe.alias, 'altered')
    return JceksIntegrityError(
        'The keystore integrity check failed: either the store password is wrong or the keystore file was altered or corrupted.')


def dump(keystore, password):
    """Serialize as JCEKS version 2; existing entries are copied byte for byte."""
    entries = keystore.entries
    seen = set()
    parts = [_HEADER.pack(MAGIC_JCEKS, 2, len(entries))]
    for entry in entries:
        key = entry.alias.lower()
        if key in seen:
            raise JceksError("The keystore holds alias '%s' twice (compared without case); it cannot be written." % entry.alias)
        seen.add(key)
        parts.append(entry._body_for_jceks_v2())  # pylint: disable=protected-access
    payload = b''.join(parts)
    out = payload + _integrity_hash(password, payload)
    # Whatever was put in the entry list, never hand back a file that Java could not parse.
    check = load(out)
    if check.aliases() != [entry.alias for entry in entries]:
        raise JceksError('The keystore was not written: its entries do not read back with the aliases they were given.')
    return out


# ---------------------------------------------------------------------------------------------
# Sealing and unsealing (PBEWithMD5AndTripleDES, as SunJCE's KeyProtector and IBM's keytool do it)

def _crypto():
    """(Cipher, CBC, TripleDES, PKCS7) from ``cryptography``, imported on first use."""
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, modes
        from cryptography.hazmat.primitives.padding import PKCS7
    except ImportError:
        raise JceksError("Sealing or unsealing keys needs the Python library 'cryptography', which is not installed "
                         "for the Python interpreter running this code.") from None
    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:
        with warnings.catch_warnings():
            # Older releases only have it here; newer ones warn that it will move.
            warnings.simplefilter('ignore')
            from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES
    return Cipher, modes.CBC, TripleDES, PKCS7


def _key_password_bytes(key_password):
    if not isinstance(key_password, str):
        raise JceksError('The key password must be a string.')
    if not all(0x20 <= ord(c) <= 0x7E for c in key_password):
        raise JceksError("The key password must consist of printable ASCII characters (space to '~') only; "
                         'Java refuses any other character in a PBE key password.')
    return key_password.encode('ascii')


def _derive(password, salt, iteration_count):
    """PBES1Core's DESede key derivation: 24 key bytes and an 8-byte IV from two 4-byte salt halves."""
    first, second = salt[:4], salt[4:]
    if first == second:
        first = first[::-1]
    md5 = _md5
    out = b''
    for half in (first, second):
        digest = md5(half + password).digest()
        for dummy in itertools.repeat(None, iteration_count - 1):
            digest = md5(digest + password).digest()
        out += digest
    return out


def _random_salt():
    while True:
        salt = os.urandom(8)
        # Equal halves trigger a special case that some readers (pyjks, old JDKs) get wrong.
        if salt[:4] != salt[4:]:
            return salt


def _check_iterations(iteration_count):
    if isinstance(iteration_count, bool) or not isinstance(iteration_count, int):
        raise JceksError('The iteration count must be an integer.')
    if not MIN_ITERATION_COUNT <= iteration_count <= MAX_ITERATION_COUNT:
        raise JceksError('The iteration count %d is outside %d..%d (Java refuses to read more than %d).'
                         % (iteration_count, MIN_ITERATION_COUNT, MAX_ITERATION_COUNT, MAX_ITERATION_COUNT))


def _check_created(created):
    if created is None:
        return int(time.time() * 1000)
    if isinstance(created, bool) or not isinstance(created, int) or not -2 ** 63 <= created < 2 ** 63:
        raise JceksError('The creation time must be an integer number of milliseconds since 1970.')
    return created


def _check_alias(alias):
    if not isinstance(alias, str) or not alias:
        raise JceksError('An alias must be a non-empty string.')
    # Java looks entries up by alias.toLowerCase(Locale.ENGLISH): an upper-case alias written as
    # is could never be found again.
    alias = alias.lower()
    _encode_utf(alias)
    return alias


def _check_key(key, alias):
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise JceksError("The key for alias '%s' must be non-empty bytes." % alias)
    return bytes(key)


def _check_dialect(dialect):
    if dialect not in DIALECTS:
        raise JceksError('The keystore dialect must be one of %s, not %r.' % (', '.join(DIALECTS), dialect))
    return dialect


def _key_stream(dialect, algorithm, key):
    """The serialized key object a dialect seals: SunJCE's SecretKeySpec or IBM's AESSecretKey."""
    if not isinstance(algorithm, str) or not algorithm:
        raise JceksError('The key algorithm must be a non-empty string.')
    if dialect == DIALECT_IBM:
        if algorithm != 'AES' or len(key) not in (16, 24, 32):
            raise JceksError('The IBM dialect is only known for AES keys of 128, 192 or 256 bits, not %s with %d bits.'
                             % (algorithm, len(key) * 8))
        return _IBM_AES_KEY_PREFIX + _U32.pack(len(key)) + key
    return (_SECRET_KEY_SPEC_PREFIX + bytes((_TC_STRING,)) + _encode_utf(algorithm)
            + bytes((_TC_ARRAY,)) + _BYTE_ARRAY_CLASS + _U32.pack(len(key)) + key)


def _encrypt(crypto, derived, plaintext):
    cipher_cls, cbc, triple_des, pkcs7 = crypto
    padder = pkcs7(64).padder()  # PKCS#5 is PKCS#7 on 8-byte blocks
    encryptor = cipher_cls(triple_des(derived[:24]), cbc(derived[24:])).encryptor()
    return encryptor.update(padder.update(plaintext) + padder.finalize()) + encryptor.finalize()


def _decrypt(crypto, derived, ciphertext, alias):
    cipher_cls, cbc, triple_des, pkcs7 = crypto
    decryptor = cipher_cls(triple_des(derived[:24]), cbc(derived[24:])).decryptor()
    unpadder = pkcs7(64).unpadder()
    try:
        return unpadder.update(decryptor.update(ciphertext) + decryptor.finalize()) + unpadder.finalize()
    except ValueError:
        raise JceksUnsealError("Key '%s' could not be decrypted: the key password is wrong or the entry is damaged." % alias) from None


def _secret_entry(dialect, alias, created, salt, iteration_count, ciphertext):
    dummy, prefix, second_array, params_alg = _SEALED_LAYOUTS[dialect]
    params = _pbe_params(salt, iteration_count)
    body = b''.join((
        _U32.pack(TAG_SECRET_KEY), _encode_utf(alias), _I64.pack(created),
        prefix, _U32.pack(len(params)), params,
        second_array, _U32.pack(len(ciphertext)), ciphertext,
        bytes((_TC_STRING,)), _encode_utf(params_alg), bytes((_TC_STRING,)), _encode_utf(PBE_ALGORITHM),
    ))
    return Entry(alias, TAG_SECRET_KEY, created, body)


def _check_salt(salt):
    if salt is None:
        return _random_salt()
    if not isinstance(salt, (bytes, bytearray)) or len(salt) != 8:
        raise JceksError('A PBE salt must be 8 bytes.')
    return bytes(salt)


def seal_secret_key(alias, key, key_password, iteration_count=None, algorithm='AES', created=None, salt=None,
                    dialect=DIALECT_SUNJCE):
    """A new secret key entry in a dialect, laid out exactly as that dialect's keytool writes it.

    SunJCE entries are byte-identical to OpenJDK keytool's for the same inputs. The iteration count
    defaults to the dialect's keytool default (200000 SunJCE, 20 IBM).
    """
    dialect = _check_dialect(dialect)
    alias = _check_alias(alias)
    key = _check_key(key, alias)
    password = _key_password_bytes(key_password)
    if iteration_count is None:
        iteration_count = DEFAULT_ITERATIONS[dialect]
    _check_iterations(iteration_count)
    created = _check_created(created)
    salt = _check_salt(salt)
    plaintext = _key_stream(dialect, algorithm, key)
    ciphertext = _encrypt(_crypto(), _derive(password, salt, iteration_count), plaintext)
    return _secret_entry(dialect, alias, created, salt, iteration_count, ciphertext)


def usable_cpus():
    """How many CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _worker_count(processes, items):
    return max(1, min(usable_cpus() if processes is None else processes, items))


def _derive_in_processes(password, salts, iteration_count, workers):
    """The PBE loops of a batch in forked worker processes; raises _NoPool saying why none could be used."""
    try:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool
        context = multiprocessing.get_context('fork')
    except (ImportError, ValueError) as exc:
        raise _NoPool('this Python cannot fork worker processes (%s)' % exc) from None
    try:
        # ProcessPoolExecutor rather than multiprocessing.Pool: a worker that dies (OOM killer)
        # raises BrokenProcessPool instead of leaving the batch waiting forever.
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_die_with_parent,
                                 initargs=(os.getpid(),)) as executor:
            return list(executor.map(_derive, [password] * len(salts), salts, [iteration_count] * len(salts)))
    except (BrokenProcessPool, OSError, EOFError, AssertionError) as exc:
        # AssertionError: multiprocessing refuses to start children from a daemonic process.
        raise _NoPool('the worker processes could not run (%s: %s)' % (type(exc).__name__, exc)) from None


class _NoPool(Exception):
    pass


def _die_with_parent(parent):
    """Make a PBE worker end with the process that forked it, even when that one is killed (SIGKILL).

    Without this a killed run's workers wait forever on their task queue (Linux: PR_SET_PDEATHSIG;
    elsewhere the workers end when the queue breaks, as before).
    """
    try:
        import ctypes
        import signal
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (ImportError, OSError, AttributeError):
        return
    if os.getppid() != parent:
        # The parent died before the line above took effect.
        os._exit(1)


def _checked_items(items):
    checked = []
    seen = set()
    for alias, key in items:
        alias = _check_alias(alias)
        if alias in seen:
            raise JceksError("Alias '%s' appears twice in one batch of keys." % alias)
        seen.add(alias)
        checked.append((alias, _check_key(key, alias)))
    return checked


def seal_secret_keys(items, key_password, iteration_count=None, processes=None, created=None, dialect=DIALECT_SUNJCE,
                     warn=None):
    """Seal many (alias, AES key) pairs, on several cores when there are enough; entries in input order.

    When worker processes were wanted but could not run, the batch is sealed in this process and
    ``warn`` (a callable taking one sentence, such as AnsibleModule.warn) is told why.
    """
    dialect = _check_dialect(dialect)
    password = _key_password_bytes(key_password)
    if iteration_count is None:
        iteration_count = DEFAULT_ITERATIONS[dialect]
    _check_iterations(iteration_count)
    created = _check_created(created)
    checked = _checked_items(items)
    if not checked:
        return []
    crypto = _crypto()
    salts = [_random_salt() for dummy in checked]
    derived = None
    workers = _worker_count(processes, len(checked))
    if workers > 1 and len(checked) >= _PARALLEL_MIN_ITEMS:
        try:
            derived = _derive_in_processes(password, salts, iteration_count, workers)
        except _NoPool as exc:
            if warn is not None:
                warn('%d keys were sealed in one process instead of %d: %s.' % (len(checked), workers, exc))
    if derived is None:
        derived = [_derive(password, salt, iteration_count) for salt in salts]
    return [
        _secret_entry(dialect, alias, created, salt, iteration_count,
                      _encrypt(crypto, keys, _key_stream(dialect, 'AES', key)))
        for (alias, key), salt, keys in zip(checked, salts, derived)
    ]


def unseal(entry, key_password):
    """Decrypt a secret key entry of either dialect; returns (algorithm, key bytes)."""
    info = entry.sealed()
    if info.dialect is None:
        raise JceksUnsupportedError(_backend_hint(
            "Secret key entry '%s' was sealed by %s with %s (parameters %s), which is neither OpenJDK's nor IBM's "
            "keytool layout" % (entry.alias, info.class_name, info.seal_alg, info.params_alg)))
    password = _key_password_bytes(key_password)
    derived = _derive(password, info.salt, info.iteration_count)
    plaintext = _decrypt(_crypto(), derived, info.ciphertext, entry.alias)
    reader = _StreamReader(plaintext, 0, len(plaintext))
    try:
        obj = reader.read_stream()
    except _StreamError:
        raise JceksUnsealError("Key '%s' could not be decrypted: the key password is wrong or the entry is damaged."
                               % entry.alias) from None
    return _key_from_object(obj, entry.alias, info.dialect)


def _key_from_object(obj, alias, dialect):
    bad = JceksUnsealError("Key '%s' decrypted to a damaged key object." % alias)
    if not isinstance(obj, _JavaObject):
        raise bad
    if obj.class_name == SECRET_KEY_SPEC_CLASS:
        algorithm = obj.field(SECRET_KEY_SPEC_CLASS, 'algorithm')
        key = obj.field(SECRET_KEY_SPEC_CLASS, 'key')
    elif obj.class_name == KEY_REP_CLASS:
        # Keys whose class has writeReplace (keytool's DESede keys) are stored as a KeyRep, which
        # Java turns back into a SecretKeySpec when the type is SECRET and the format RAW.
        key_type = obj.field(KEY_REP_CLASS, 'type')
        key_format = obj.field(KEY_REP_CLASS, 'format')
        if not isinstance(key_type, _JavaEnum) or key_type.constant != 'SECRET' or key_format != 'RAW':
            raise JceksUnsealError("Key '%s' holds a %s key in %s format, not a raw secret key." % (
                alias, getattr(key_type, 'constant', '?'), key_format))
        algorithm = obj.field(KEY_REP_CLASS, 'algorithm')
        key = obj.field(KEY_REP_CLASS, 'encoded')
    elif obj.class_name == IBM_AES_KEY_CLASS and dialect == DIALECT_IBM:
        # IBM's key class keeps the raw key in its one field; OpenJDK's JCEKS filter would refuse it.
        algorithm = 'AES'
        key = obj.field(IBM_AES_KEY_CLASS, 'key')
    else:
        raise JceksUnsupportedError(_backend_hint("Key '%s' is a serialized %s" % (alias, obj.class_name)))
    if not isinstance(algorithm, str) or not algorithm or not isinstance(key, bytes) or not key:
        raise bad
    return algorithm, key


def generate_aes_key():
    """A new random AES-256 key."""
    return secrets.token_bytes(32)
