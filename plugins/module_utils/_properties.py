# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Round-trip editor for Java ``.properties`` files such as EKM's ``KeyManagerConfig.properties``.

This module util is PRIVATE to the collection; it can change at any time.

The file is read exactly as ``java.util.Properties.load(InputStream)`` reads it: bytes are
ISO-8859-1 characters, lines end with LF, CR or CRLF, a line whose content ends with an odd number
of backslashes continues on the next line (whose leading blanks are dropped), and ``#`` or ``!``
as the first non-blank character of a logical line starts a comment. Every physical line keeps its
original bytes, so ``PropertiesFile.parse(data).dump() == data`` for every accepted input, and an
edit touches only the lines of the key it changes.

Where the JDKs EKM may run on (the IBM JRE of EKM 2.x is Java 5/6 era) and current JDKs read the
same bytes differently, the file is refused: an edit must not depend on which Java reads it.
"""

from __future__ import annotations

import re
import struct

_BLANKS = ' \t\f'
_COMMENT_MARKERS = '#!'
_SEPARATORS = '=:'
_HEX_DIGITS = frozenset('0123456789abcdefABCDEF')
_SIMPLE_ESCAPES = {'t': '\t', 'n': '\n', 'r': '\r', 'f': '\f'}
_STORE_ESCAPES = {'\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\f': '\\f',
                  '=': '\\=', ':': '\\:', '#': '\\#', '!': '\\!'}
_SECRET_KEY = re.compile(r'pass|pwd|secret|token', re.IGNORECASE)
_PHYSICAL_LINE = re.compile(r'([^\r\n]*)(\r\n|\r|\n|\Z)')

MASK = '********'

_BLANK, _COMMENT, _ENTRY, _NOTHING = 'blank', 'comment', 'entry', 'nothing'


class PropertiesError(ValueError):
    """The file cannot be read or changed safely; the message says where and why, never a value."""


def is_secret_key(key: str) -> bool:
    """True for names that look like they hold a password or secret (their values are masked)."""
    return bool(_SECRET_KEY.search(key))


def _utf16_units(text):
    data = text.encode('utf-16-be', 'surrogatepass')
    return struct.unpack('>%dH' % (len(data) // 2), data)


def _from_utf16_units(units):
    return struct.pack('>%dH' % len(units), *units).decode('utf-16-be', 'surrogatepass')


def _escape(text, is_key):
    # Follows Properties.store(): what store() writes, every Java version reads back unchanged.
    out = []
    for index, unit in enumerate(_utf16_units(text)):
        char = chr(unit)
        if char == ' ':
            out.append('\\ ' if is_key or index == 0 else ' ')
        elif char in _STORE_ESCAPES:
            out.append(_STORE_ESCAPES[char])
        elif unit < 0x20 or unit > 0x7e:
            out.append('\\u%04X' % unit)
        else:
            out.append(char)
    return ''.join(out)


def escape_key(key: str) -> str:
    """``key`` as Properties.store() writes it: pure ASCII, spaces and separators escaped."""
    return _escape(key, True)


def escape_value(value: str) -> str:
    """``value`` as Properties.store() writes it: pure ASCII, a leading space escaped."""
    return _escape(value, False)


def _unescape(text, lineno, where):
    units = []
    index = 0
    end = len(text)
    while index < end:
        char = text[index]
        index += 1
        if char != '\\':
            units.append(ord(char))
            continue
        # A logical line never ends in an odd backslash (that would continue it), so one more character exists.
        char = text[index]
        index += 1
        if char == 'u':
            digits = text[index:index + 4]
            if len(digits) != 4 or not _HEX_DIGITS.issuperset(digits):
                # Java throws IllegalArgumentException("Malformed \uxxxx encoding") and loads nothing at all.
                raise PropertiesError('line %d: malformed \\uXXXX escape in %s; Java cannot load this file.' % (lineno, where))
            units.append(int(digits, 16))
            index += 4
        else:
            units.append(ord(_SIMPLE_ESCAPES.get(char, char)))
    return _from_utf16_units(units)


def _trailing_backslashes(text):
    return len(text) - len(text.rstrip('\\'))


def _split_key_value(text):
    """(key end, value start) in a logical line, as Properties.load() splits it."""
    key_end = 0
    value_start = len(text)
    has_separator = False
    escaped = False
    while key_end < len(text):
        char = text[key_end]
        if not escaped and char in _SEPARATORS:
            value_start = key_end + 1
            has_separator = True
            break
        if not escaped and char in _BLANKS:
            value_start = key_end + 1
            break
        escaped = not escaped if char == '\\' else False
        key_end += 1
    while value_start < len(text):
        char = text[value_start]
        if char not in _BLANKS:
            if has_separator or char not in _SEPARATORS:
                break
            has_separator = True
        value_start += 1
    return key_end, value_start


def _join_lines(lines):
    return ''.join(content + ending for content, ending in lines)


def _line_list(numbers):
    numbers = [str(number) for number in numbers]
    if len(numbers) == 1:
        return 'line ' + numbers[0]
    return 'lines %s and %s' % (', '.join(numbers[:-1]), numbers[-1])


class _Item:
    """One logical line: its physical lines (content, line ending) and, for an entry, key and value."""

    __slots__ = ('kind', 'lines', 'lineno', 'key', 'value', 'prefix', 'dangling')

    def __init__(self, kind, lines, lineno, key=None, value=None, prefix=None, dangling=False):
        self.kind = kind
        self.lines = lines
        self.lineno = lineno
        self.key = key
        self.value = value
        # Raw text kept when the value is replaced: leading blanks, key spelling and separator.
        self.prefix = prefix
        # The entry's last line ends in a continuation backslash that only the end of the file cuts off.
        self.dangling = dangling

    def rewritten(self, value_text):
        return [(self.prefix + value_text, self.lines[-1][1])]


def _physical_lines(text):
    lines = []
    for match in _PHYSICAL_LINE.finditer(text):
        content, ending = match.groups()
        if not content and not ending:
            if match.start() == len(text):
                break
            continue
        lines.append((content, ending))
    return lines


def _parse(text):
    lines = _physical_lines(text)
    items = []
    # Old JDKs (EKM's IBM JRE among them) carry the backslash parity of a comment's last characters into the
    # next logical line; it only matters when that line consists of backslashes alone.
    old_java_carry = False
    index = 0
    while index < len(lines):
        content = lines[index][0]
        lineno = index + 1
        stripped = content.lstrip(_BLANKS)
        if not stripped:
            items.append(_Item(_BLANK, [lines[index]], lineno))
            index += 1
            continue
        if stripped[0] in _COMMENT_MARKERS:
            for char in stripped[1:]:
                old_java_carry = not old_java_carry if char == '\\' else False
            items.append(_Item(_COMMENT, [lines[index]], lineno))
            index += 1
            continue
        if old_java_carry and not stripped.strip('\\'):
            raise PropertiesError('line %d: a line of backslashes right after a comment that ends in a backslash is read '
                                  'differently by old and new Java versions; change one of the two lines by hand.' % lineno)
        old_java_carry = False
        item, index = _parse_entry(lines, index)
        items.append(item)
    return items


def _parse_entry(lines, index):
    first = index
    lineno = index + 1
    segments = []  # (line index, start offset in the line's content, contributed text)
    content = lines[index][0]
    start = len(content) - len(content.lstrip(_BLANKS))
    dangling = False
    while True:
        content = lines[index][0]
        piece = content[start:]
        if _trailing_backslashes(piece) % 2 == 0:
            segments.append((index, start, piece))
            index += 1
            break
        segments.append((index, start, piece[:-1]))
        index += 1
        if index == len(lines):
            dangling = True
            break
        content = lines[index][0]
        start = len(content) - len(content.lstrip(_BLANKS))
        logical_so_far = ''.join(segment[2] for segment in segments)
        if start == len(content):
            # A blank line ends the logical line; after nothing but a lone backslash, Java starts afresh.
            segments.append((index, start, ''))
            index += 1
            if not logical_so_far:
                return _Item(_NOTHING, lines[first:index], lineno), index
            break
        if not logical_so_far and content[start] in _COMMENT_MARKERS:
            raise PropertiesError('line %d: a comment that follows a line holding only a backslash is part of a key for '
                                  'old Java versions and a comment for new ones; remove the backslash line by hand.'
                                  % (index + 1))

    text = ''.join(segment[2] for segment in segments)
    if dangling and not text and lines[index - 1][1] == '\r\n':
        # Java swallows the LF of a continued CRLF line before it meets the end of the file, and then has read
        # nothing; with a lone CR or LF it stops first and reads one empty key.
        return _Item(_NOTHING, lines[first:index], lineno), index
    key_end, value_start = _split_key_value(text)
    key = _unescape(text[:key_end], lineno, 'a key')
    value = _unescape(text[value_start:], lineno, 'the value of %r' % key)

    offset = 0
    prefix = ''
    for line_index, start, piece in segments:
        if offset + len(piece) >= value_start:
            prefix = _join_lines(lines[first:line_index]) + lines[line_index][0][:start + value_start - offset]
            break
        offset += len(piece)
    if key_end == len(text):
        # No separator at all: the new value needs one, or it would become part of the key.
        prefix += '='
    item = _Item(_ENTRY, lines[first:index], lineno, key, value, prefix, dangling)
    return item, index


class PropertiesFile:
    """A parsed .properties file that can change single keys and write itself back byte for byte."""

    def __init__(self, items):
        self._items = items

    @classmethod
    def parse(cls, data: bytes) -> PropertiesFile:
        """Parse ``data``; raise PropertiesError for what Java cannot load or what cannot be kept intact."""
        if not isinstance(data, bytes):
            raise TypeError('PropertiesFile.parse() needs bytes, not %s' % type(data).__name__)
        if data.startswith(b'\xef\xbb\xbf'):
            raise PropertiesError('line 1: the file starts with a UTF-8 byte order mark, which Java reads as part of the '
                                  'first line; save the file without it (ISO-8859-1 or plain ASCII).')
        nul = data.find(b'\x00')
        if nul >= 0:
            raise PropertiesError('line %d: contains a NUL byte; this is not a text properties file.'
                                  % (data.count(b'\n', 0, nul) + 1))
        # ISO-8859-1 maps every byte to one character and back, as Properties.load(InputStream) does.
        return cls(_parse(data.decode('latin-1')))

    def dump(self) -> bytes:
        return _join_lines(line for item in self._items for line in item.lines).encode('latin-1')

    def _entries(self, key=None):
        return [item for item in self._items if item.kind == _ENTRY and (key is None or item.key == key)]

    def as_dict(self) -> dict[str, str]:
        """What Java sees: every key with the value of its last occurrence."""
        return {item.key: item.value for item in self._entries()}

    def get(self, key: str) -> str | None:
        entries = self._entries(key)
        return entries[-1].value if entries else None

    def duplicates(self, key: str) -> list[int]:
        """The line numbers defining ``key`` when it is defined more than once, else an empty list."""
        numbers = [item.lineno for item in self._entries(key)]
        return numbers if len(numbers) > 1 else []

    def set(self, key: str, value: str) -> bool:
        """Give ``key`` the value ``value``; True if the file changed.

        An existing line keeps its key spelling and separator and gets the new value on a single
        line; a new key is appended as ``key=value``. A key defined more than once is refused when
        its value would change: which line to edit would be a guess.
        """
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError('PropertiesFile.set() needs str key and value')
        entries = self._entries(key)
        if entries and entries[-1].value == value:
            return False
        duplicates = self.duplicates(key)
        if duplicates:
            raise PropertiesError('cannot change %r: it is defined on %s; remove the duplicate first.'
                                  % (key, _line_list(duplicates)))
        lines = []
        for item in self._items:
            lines.extend(item.rewritten(escape_value(value)) if entries and item is entries[0] else item.lines)
        if not entries:
            lines = self._appended(lines, key, value)
        self._replace(lines, key, value)
        return True

    def remove(self, key: str) -> bool:
        """Remove every line defining ``key``; True if there was one."""
        if not self._entries(key):
            return False
        lines = [line for item in self._items if not (item.kind == _ENTRY and item.key == key) for line in item.lines]
        self._replace(lines, key, None)
        return True

    def masked_text(self) -> str:
        """The file as text with the values of secret-looking keys replaced by ``MASK``, for diffs."""
        parts = []
        for item in self._items:
            lines = item.lines
            if item.kind == _ENTRY and item.value and is_secret_key(item.key):
                lines = item.rewritten(MASK)
            parts.append(_join_lines(lines))
        return ''.join(parts)

    def _newline(self):
        for item in self._items:
            for _content, ending in item.lines:
                if ending:
                    return ending
        return '\n'

    def _appended(self, lines, key, value):
        newline = self._newline()
        if self._items:
            last = self._items[-1]
            if last.dangling:
                raise PropertiesError('cannot add %r: line %d ends in a backslash that would join the new line to it; '
                                      'remove that trailing backslash first.' % (key, last.lineno + len(last.lines) - 1))
            content, ending = lines[-1]
            if not ending:
                lines = lines[:-1] + [(content, newline)]
        return lines + [(escape_key(key) + '=' + escape_value(value), newline)]

    def _replace(self, lines, key, value):
        # Re-reading the result proves the edit changed exactly this key as Java sees it, nothing else.
        expected = self.as_dict()
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
        try:
            items = _parse(_join_lines(lines))
        except PropertiesError as exc:
            raise PropertiesError('cannot change %r without making the file ambiguous: %s' % (key, exc)) from exc
        if {item.key: item.value for item in items if item.kind == _ENTRY} != expected:
            raise PropertiesError('cannot change %r: the edit would change how Java reads other lines of the file.' % key)
        self._items = items
