# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Readers of EKM's audit log and metadata (key usage) files, from a position, in bounded memory.

Audit log: numbered files ``<name>.<number>`` (higher is newer) in ``Audit.handler.file.directory``.
One record per event, ``RecordType:[timestamp=... Name=Value ...]``; a record may go on over
continuation lines indented two spaces and ends with ``]``. Field names are single words, except
``command type``. Unknown record types and fields are kept as they are.

Metadata: records of drive serial, drive WWN, creation date, key alias 1 and 2, DKi and VolSer.
EKM's guide names the fields but not their XML element names; ``METADATA_ELEMENTS`` is a guess
(after IBM's z/OS ``<KeyUsageEvent><DriveSSN>`` example) that callers can override. EKM keeps
only the current and the previous metadata file.

A position is a small dict: ``{'file', 'offset'}`` for the audit log (the numbered file and the
byte after the last complete record read), ``{'inode', 'offset', 'head'}`` for the metadata file
(the current file's inode survives its rename into the previous file; ``head``, a digest of the
file's first bytes, tells it from a new file that reuses a freed inode). A record still being written
(no end yet) is not consumed: the next read starts at it.
"""
from __future__ import annotations

import hashlib
import os
import re

# Field -> XML element name, and 'record' -> the element of one record. A guess; see the module docstring.
METADATA_ELEMENTS = {
    'record': 'KeyUsageEvent',
    'drive_serial': 'DriveSSN',
    'wwn': 'DriveWWN',
    'created': 'CreationDate',
    'key_alias_1': 'KeyAlias1',
    'key_alias_2': 'KeyAlias2',
    'dki': 'DKi',
    'volser': 'VolSer',
}
METADATA_FIELDS = tuple(k for k in METADATA_ELEMENTS if k != 'record')

# Texts of the guide's audit records -> what they mean to a health check (matched case-insensitively anywhere).
AUDIT_KINDS = (
    ('error sending data to other ekm', 'sync_failure'),
    ('error processing sync command', 'sync_failure'),
    ('sync failed', 'sync_failure'),
    ('data successfully sent to other ekm', 'sync_ok'),
    ('sync command processed', 'sync_ok'),
    ('error retrieving information from keystore', 'keystore_error'),
    ('new drive discovered', 'new_drive'),
    ('received and processed stopekm command', 'stop'),
    ('message exchange processed successfully', 'served'),
)

MAX_RECORD = 64 * 1024          # a longer record is cut and flagged, never held whole
DEFAULT_LIMIT = 10000           # records returned per read; the position says where to go on
_RECORD_START = re.compile(r'^([A-Za-z_][\w.-]*):\[(.*)$', re.S)
_FIELD = re.compile(r'(?:^|\s)(command type|[A-Za-z_][\w.-]*)=')
_ENTITIES = (('&lt;', '<'), ('&gt;', '>'), ('&quot;', '"'), ('&apos;', "'"), ('&amp;', '&'))


class RecordError(Exception):
    """A file cannot be read; the message names it."""


# ------------------------------------------------------------------------------------------------ audit log

def audit_files(directory, base_name):
    """The numbered audit files, oldest first: a list of (number, file name)."""
    pattern = re.compile(re.escape(base_name) + r'\.(\d+)$')
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise RecordError(f'cannot list audit directory {directory}: {exc.strerror or exc}') from exc
    found = [(int(m.group(1)), name) for name in names for m in [pattern.match(name)] if m]
    return sorted(found)


def parse_audit_fields(body):
    """``timestamp=... Name=Value ...`` -> dict; values may hold blanks, a later ``Name=`` ends them."""
    fields = {}
    matches = list(_FIELD.finditer(body))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        fields.setdefault(match.group(1), body[match.end():end].strip())
    return fields


def audit_kind(text):
    lowered = text.lower()
    for needle, kind in AUDIT_KINDS:
        if needle in lowered:
            return kind
    return None


def _audit_record(lines, file_name, offset):
    text = ' '.join(line.strip() for line in lines)
    match = _RECORD_START.match(text)
    body = match.group(2)
    if body.endswith(']'):
        body = body[:-1]
    fields = parse_audit_fields(body)
    return {'type': match.group(1), 'timestamp': fields.pop('timestamp', None), 'fields': fields,
            'kind': audit_kind(body), 'file': file_name, 'offset': offset}


def _read_audit_file(path, file_name, offset, limit, out):
    """Appends the complete records of one file from offset to out; returns (offset after them, unparsed lines, full)."""
    unparsed = 0
    pending, start, size = None, offset, 0
    with open(path, 'rb') as stream:
        stream.seek(offset)
        while len(out) < limit:
            raw = stream.readline(MAX_RECORD + 1)
            if not raw.endswith(b'\n'):
                break                                   # a line still being written: not consumed
            line = raw.decode('utf-8', 'replace').rstrip('\r\n')
            if pending is not None and line.startswith('  '):
                size += len(line)
                if size <= MAX_RECORD:
                    pending.append(line)
            else:
                if pending is not None:                 # the previous record never closed: keep what it had
                    out.append(_audit_record(pending, file_name, start))
                    pending = None
                if _RECORD_START.match(line):
                    pending, start, size = [line], offset, len(line)
                else:
                    unparsed += 1
            offset += len(raw)
            if pending is not None and line.endswith(']'):
                out.append(_audit_record(pending, file_name, start))
                pending = None
    full = len(out) >= limit
    return (start if pending is not None else offset), unparsed, full


def read_audit(directory, base_name, position=None, since=None, limit=DEFAULT_LIMIT):
    """Audit records after ``position`` (and with a timestamp at or after ``since``, an ISO text), oldest first.

    Returns ``{'records', 'position', 'files', 'more', 'unparsed_lines'}``. ``more`` is true when
    ``limit`` stopped the read; read again from the returned position for the rest.
    """
    files = audit_files(directory, base_name)
    start_name = (position or {}).get('file')
    start_offset = int((position or {}).get('offset') or 0)
    start_number = None
    if start_name:
        m = re.search(r'\.(\d+)$', start_name)
        start_number = int(m.group(1)) if m else None
    records, unparsed, more = [], 0, False
    last = dict(position) if position else None
    for number, name in files:
        if start_number is not None and number < start_number:
            continue
        offset = start_offset if name == start_name else 0
        try:
            end, bad, more = _read_audit_file(os.path.join(directory, name), name, offset, limit, records)
        except OSError as exc:
            raise RecordError(f'cannot read audit file {os.path.join(directory, name)}: {exc.strerror or exc}') from exc
        unparsed += bad
        last = {'file': name, 'offset': end}
        if more:
            break
    if since:
        records = [r for r in records if (r['timestamp'] or '') >= since]
    return {'records': records, 'position': last, 'files': [name for _n, name in files], 'more': more,
            'unparsed_lines': unparsed}


# ------------------------------------------------------------------------------------------------ metadata

def _unescape(text):
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


def metadata_patterns(elements=None):
    """The element table in effect (METADATA_ELEMENTS with the caller's overrides) and its compiled patterns."""
    table = dict(METADATA_ELEMENTS)
    table.update({k: v for k, v in (elements or {}).items() if v})
    unknown = sorted(set(table) - set(METADATA_ELEMENTS))
    if unknown:
        raise RecordError(f"unknown metadata fields {', '.join(unknown)}; the fields are {', '.join(METADATA_ELEMENTS)}")
    record = re.escape(table['record'])
    return table, re.compile(rf'<{record}(?:\s[^>]*)?>(.*?)</{record}\s*>\s*', re.S), re.compile(rf'<{record}[\s>]')


_CHILD = re.compile(r'<([A-Za-z_][\w.-]*)(?:\s[^>]*)?>([^<]*)</\1\s*>|<([A-Za-z_][\w.-]*)(?:\s[^>]*)?/>')


def parse_metadata_record(inner, table):
    """The children of one record -> the known fields (empty text when absent) and ``extra`` for the rest."""
    by_element = {v: k for k, v in table.items() if k != 'record'}
    record = {field: '' for field in METADATA_FIELDS}
    extra = {}
    for match in _CHILD.finditer(inner):
        name = match.group(1) or match.group(3)
        value = _unescape(match.group(2) or '').strip()
        if name in by_element:
            record[by_element[name]] = value
        else:
            extra[name] = value
    record['extra'] = extra
    return record


def _read_metadata_file(path, offset, limit, out, patterns):
    """Appends complete records from offset; returns the offset after the last one (or the limit)."""
    _table, whole, opening = patterns
    chunk_size = 256 * 1024
    with open(path, 'rb') as stream:
        stream.seek(offset)
        buffer, base = '', offset
        while len(out) < limit:
            data = stream.read(chunk_size)
            if not data:
                break
            text = data.decode('utf-8', 'replace')   # the guide's fields are ASCII; a split character is replaced
            buffer += text
            consumed = 0
            for match in whole.finditer(buffer):
                out.append(parse_metadata_record(match.group(1), patterns[0]))
                consumed = match.end()
                if len(out) >= limit:
                    break
            base += len(buffer[:consumed].encode('utf-8', 'replace'))
            buffer = buffer[consumed:]
            if len(buffer) > MAX_RECORD:            # no end in sight: skip to the next record's start
                nxt = opening.search(buffer, 1)
                cut = nxt.start() if nxt else len(buffer)
                base += len(buffer[:cut].encode('utf-8', 'replace'))
                buffer = buffer[cut:]
        return base


def _stat(path):
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordError(f'cannot read metadata file {path}: {exc.strerror or exc}') from exc


HEAD = 256


def _head(path, offset):
    """A digest of the first bytes of a file up to offset: an inode can be reused once its file is gone."""
    with open(path, 'rb') as stream:
        return hashlib.sha256(stream.read(min(offset, HEAD))).hexdigest()[:16]


def _same_file(path, st, position):
    offset = int(position.get('offset') or 0)
    if st is None or st.st_ino != position.get('inode') or st.st_size < offset:
        return False
    try:
        return offset == 0 or _head(path, offset) == position.get('head')
    except OSError:
        return False


def read_metadata(current, previous=None, position=None, elements=None, limit=DEFAULT_LIMIT):
    """Key usage records after ``position`` from the previous and the current metadata file, oldest first.

    Returns ``{'records', 'position', 'gap', 'more'}``. ``gap`` is true when the file named by the
    position is gone from both places (rotated twice since): records may have been lost.
    """
    patterns = metadata_patterns(elements)
    previous = previous or current + '.1'
    cur, prev = _stat(current), _stat(previous)
    inode = (position or {}).get('inode')
    offset = int((position or {}).get('offset') or 0)
    plan, gap = [], False
    if position and _same_file(current, cur, position):
        plan = [(current, cur, offset)]
    elif position and _same_file(previous, prev, position):
        plan = [(previous, prev, offset), (current, cur, 0)]
    else:
        gap = bool(position and inode is not None)
        plan = [(previous, prev, 0), (current, cur, 0)]
    records, last = [], dict(position) if position else {'inode': None, 'offset': 0, 'head': None}
    for path, st, start in plan:
        if st is None:
            continue
        try:
            end = _read_metadata_file(path, start, limit, records, patterns)
        except OSError as exc:
            raise RecordError(f'cannot read metadata file {path}: {exc.strerror or exc}') from exc
        last = {'inode': st.st_ino, 'offset': end, 'head': _head(path, end)}
        if len(records) >= limit:
            return {'records': records, 'position': last, 'gap': gap, 'more': True}
    if cur is not None and last.get('inode') != cur.st_ino:
        last = {'inode': cur.st_ino, 'offset': 0, 'head': _head(current, 0)}
    return {'records': records, 'position': last, 'gap': gap, 'more': False}
