# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The key-usage ledger: every EKM metadata record ever collected, in one append-only JSON Lines file.

Line 1 is the header ``{"format": "tapecrypt-key-ledger", "version": 1, ...}``; every later line is
one JSON object: a key usage record (``"t": "use"``) or a collection position of one server
(``"t": "position"``). Lines are only ever appended, never changed or removed. A usage record's
``id`` is a digest of its fields (not of the server or the collection time), so a record seen twice
(in the current and then in the previous metadata file, or merged from a backup copy) is kept once.
``<ledger>.sha256`` beside it holds the file's SHA-256 in sha256sum format, rewritten after each
append. A last line without its newline (a crash while appending) is ignored and set apart by the
next append.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time

FORMAT = 'tapecrypt-key-ledger'
VERSION = 1
FIELDS = ('volser', 'key_alias_1', 'key_alias_2', 'dki', 'drive_serial', 'wwn', 'created')


class LedgerError(Exception):
    """The ledger cannot be read or written; the message names the file."""


def record_id(record):
    """A digest of the record's fields: equal events have equal ids, whoever collected them and when."""
    text = json.dumps([str(record.get(f) or '') for f in FIELDS] + [record.get('extra') or {}], sort_keys=True,
                      separators=(',', ':'))
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:32]


def normalize(record):
    """A metadata record as the ledger keeps it: aliases in lower case (JCEKS keeps them so), text fields stripped."""
    out = {f: str(record.get(f) or '').strip() for f in FIELDS}
    out['key_alias_1'] = out['key_alias_1'].lower()
    out['key_alias_2'] = out['key_alias_2'].lower()
    extra = record.get('extra') or {}
    if extra:
        out['extra'] = {str(k): str(v) for k, v in extra.items()}
    return out


def checksum_path(path):
    return path + '.sha256'


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


class Ledger:
    """The ledger's records and indexes, read in one pass."""

    def __init__(self, path):
        self.path = path
        self._used = None
        self.exists = False
        self.ids = set()
        self.uses = []
        self.positions = {}
        self.collected = {}
        self.bad_lines = 0
        self.size = 0
        self.ends_clean = True

    @classmethod
    def load(cls, path):
        ledger = cls(path)
        try:
            stream = open(path, 'rb')
        except FileNotFoundError:
            return ledger
        except OSError as exc:
            raise LedgerError(f'cannot read the ledger {path}: {exc.strerror or exc}') from exc
        with stream:
            ledger.exists = True
            ledger._read(stream)
        return ledger

    def _read(self, stream):
        data = stream.read()
        self.size = len(data)
        lines = data.split(b'\n')
        if lines.pop():
            self.ends_clean = False          # a torn last line (no newline): ignored
        header = None
        for index, raw in enumerate(lines):
            try:
                header = json.loads(raw)
            except ValueError:
                self.bad_lines += 1
                continue
            lines = lines[index + 1:]
            break
        if header is None:
            return
        if not isinstance(header, dict) or header.get('format') != FORMAT:
            raise LedgerError(f'{self.path} is not a key-usage ledger (its first line is no {FORMAT} header)')
        if header.get('version') != VERSION:
            raise LedgerError(f"{self.path} is a version {header.get('version')} ledger; this collection reads "
                              f'version {VERSION}')
        # One parse of every line at once is much quicker than one per line. Each good line is one JSON value, so
        # the count tells whether every line was good; if not, line by line, counting the bad ones.
        try:
            items = json.loads(b'[' + b','.join(lines) + b']') if lines else []
        except ValueError:
            items = None
        if items is None or len(items) != len(lines):
            items = []
            for raw in lines:
                try:
                    items.append(json.loads(raw))
                except ValueError:
                    self.bad_lines += 1
        for item in items:
            self._add(item)

    def _add(self, item):
        if not isinstance(item, dict):
            self.bad_lines += 1
        elif item.get('t') == 'use' and item.get('id'):
            if item['id'] not in self.ids:
                self.ids.add(item['id'])
                self.uses.append(item)
                self._used = None
        elif item.get('t') == 'position' and item.get('server'):
            self.positions[item['server']] = item.get('position')
            self.collected[item['server']] = item.get('at')
        else:
            self.bad_lines += 1

    # ---------------------------------------------------------------- queries

    def aliases_for_volser(self, volser):
        return sorted({a for u in self.uses if u.get('volser') == volser for a in (u.get('key_alias_1'), u.get('key_alias_2')) if a})

    def volsers_for_alias(self, alias):
        alias = alias.lower()
        return sorted({u.get('volser') or '' for u in self.uses if alias in (u.get('key_alias_1'), u.get('key_alias_2'))})

    def aliases_used(self):
        """Every alias a record names, with the VolSers that use it: {alias: [volser, ...]} (computed once)."""
        if self._used is None:
            used = {}
            for u in self.uses:
                volser = u.get('volser') or ''
                for alias in (u.get('key_alias_1'), u.get('key_alias_2')):
                    if alias:
                        used.setdefault(alias, set()).add(volser)
            self._used = {alias: sorted(volsers) for alias, volsers in sorted(used.items())}
        return self._used

    def never_seen(self, aliases):
        """Of ``aliases`` (a keystore's, say), those no record of the ledger names."""
        return sorted({a.lower() for a in aliases} - set(self.aliases_used()))

    def summary(self):
        return {'path': self.path, 'exists': self.exists, 'records': len(self.uses),
                'volsers': len({u.get('volser') for u in self.uses if u.get('volser')}),
                'aliases': len(self.aliases_used()), 'servers': sorted(self.collected), 'collected': dict(self.collected),
                'bad_lines': self.bad_lines}

    # ---------------------------------------------------------------- appending

    def new_lines(self, records, server=None, position=None, now=None):
        """The lines an append of ``records`` (and the server's new position) would add; the indexes take them in."""
        lines = []
        stamp = now or time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
        for record in records:
            use = normalize(record)
            use_id = record.get('id') if record.get('t') == 'use' and record.get('id') else record_id(use)
            if use_id in self.ids:
                continue
            item = {'t': 'use', 'id': use_id, **use, 'server': record.get('server') or server or '', 'collected':
                    record.get('collected') or stamp}
            self._add(item)
            lines.append(item)
        if server and position is not None and (lines or self.positions.get(server) is None):
            item = {'t': 'position', 'server': server, 'position': position, 'at': stamp}
            self._add(item)
            lines.append(item)
        return lines

    def append(self, lines, mode=0o600):
        """Appends the lines (creating the file with its header), fsyncs, and rewrites the checksum file."""
        if not lines and self.exists:
            return False
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise LedgerError(f'the directory of the ledger {self.path} does not exist; create it first')
        text = ''
        if not self.exists:
            text = json.dumps({'format': FORMAT, 'version': VERSION, 'created': time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                                                                              time.gmtime())}) + '\n'
        elif not self.ends_clean:
            text = '\n'          # sets a torn last line apart; it is counted as a bad line from now on
        text += ''.join(json.dumps(line, sort_keys=True, separators=(',', ':')) + '\n' for line in lines)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
            with os.fdopen(fd, 'ab') as f:
                f.write(text.encode('utf-8'))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise LedgerError(f'cannot append to the ledger {self.path}: {exc.strerror or exc}') from exc
        self.exists, self.ends_clean = True, True
        self.size += len(text.encode('utf-8'))
        write_checksum(self.path, mode)
        return True


def write_checksum(path, mode=0o600):
    """``<ledger>.sha256`` in sha256sum format, replaced atomically."""
    line = f'{file_sha256(path)}  {os.path.basename(path)}\n'
    target = checksum_path(path)
    fd, temp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix='.ledger-sum.')
    try:
        with os.fdopen(fd, 'w', encoding='ascii') as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except OSError as exc:
        if os.path.exists(temp):
            os.unlink(temp)
        raise LedgerError(f'cannot write {target}: {exc.strerror or exc}') from exc


def verify_checksum(path):
    """None when ``<ledger>.sha256`` matches the ledger, else what is wrong."""
    try:
        with open(checksum_path(path), encoding='ascii') as f:
            expected = f.read().split()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return f'{checksum_path(path)} is missing or unreadable'
    try:
        actual = file_sha256(path)
    except OSError as exc:
        return f'cannot read {path}: {exc.strerror or exc}'
    return None if actual == expected else f'{path} does not match its checksum {checksum_path(path)}'


def merge(target, source):
    """Appends to ``target`` every record of ``source`` it lacks (positions are not copied); returns the count."""
    if verify_checksum(source.path):
        raise LedgerError(f'refusing to merge from {source.path}: {verify_checksum(source.path)}')
    lines = target.new_lines(source.uses)
    target.append(lines)
    return len(lines)


def restore_refusal(set_path, set_aliases, needed, allow):
    """``(missing, refusal or None)``: the aliases cartridges need (by the ledger) that a backup set lacks."""
    have = {a.lower() for a in set_aliases}
    missing = sorted({a.lower() for a in needed} - have)
    if not missing or allow:
        return missing, None
    named = ', '.join(missing[:10]) + (f' and {len(missing) - 10} more' if len(missing) > 10 else '')
    return missing, (f'The backup set {set_path} lacks {len(missing)} key alias(es) that cartridges need, according to '
                     f'the key-usage ledger: {named}. Restoring it would leave those tapes unreadable on this server, so '
                     f'nothing was changed. Choose a set that holds them, or set allow_cartridge_key_loss: true if those '
                     f'cartridges are known to be gone.')
