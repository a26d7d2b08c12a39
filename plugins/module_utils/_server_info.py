# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What tapecrypt.ekm.server_info reports about one EKM server: service, configuration drift, audit and metadata.

Everything here only reads: /proc, one TCP connect, KeyManagerConfig.properties, the audit files
and the metadata files.
"""
from __future__ import annotations

import os
import socket

from ansible_collections.tapecrypt.ekm.plugins.module_utils._properties import (
    MASK,
    PropertiesError,
    PropertiesFile,
    is_secret_key,
)


class ServerInfoError(Exception):
    """The configuration file cannot be read; the message names it."""


def setting_text(value):
    """A seed value as it appears in the file: booleans true/false, numbers in decimal, the rest as text."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def read_config(path):
    """The properties Java sees in the file, or None when it does not exist."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ServerInfoError(f'cannot read {path}: {exc.strerror or exc}') from exc
    try:
        return PropertiesFile.parse(data).as_dict()
    except PropertiesError as exc:
        raise ServerInfoError(f'{path}: {exc}') from exc


def file_times(paths):
    """One item per path, in order: ``path``, ``exists``, ``mtime`` and ``ctime`` (epoch seconds, None when absent).

    A symlink is reported as itself (``lstat``), as ``ansible.builtin.stat`` does by default.
    """
    items = []
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            items.append({'path': path, 'exists': False, 'mtime': None, 'ctime': None})
            continue
        except OSError as exc:
            raise ServerInfoError(f'cannot read the times of {path}: {exc.strerror or exc}') from exc
        items.append({'path': path, 'exists': True, 'mtime': st.st_mtime, 'ctime': st.st_ctime})
    return items


def config_drift(actual, expected, ignore=()):
    """One item per managed key whose value in the file is not what the seed asks (secrets masked)."""
    drift = []
    for key in sorted(expected):
        if key in ignore:
            continue
        want = setting_text(expected[key])
        have = None if actual is None else actual.get(key)
        if have == want:
            continue
        secret = is_secret_key(key)
        drift.append({'key': key, 'status': 'missing' if have is None else 'differs',
                      'expected': MASK if secret else want,
                      'actual': None if have is None else (MASK if secret else have)})
    return drift


def resolve(config_path, value):
    """EKM's ``FILE:`` URLs and relative names, against the configuration file's directory."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value[:5].upper() == 'FILE:':
        value = value[5:]
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(config_path)), value))


def find_processes(needle, proc='/proc'):
    """PIDs of processes whose command line holds ``needle`` as one argument (not this process)."""
    found = []
    try:
        entries = os.listdir(proc)
    except OSError:
        return found
    for name in entries:
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(os.path.join(proc, name, 'cmdline'), 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        if needle.encode() in argv:
            found.append(int(name))
    return sorted(found)


def probe(address, port, timeout):
    """A TCP connect to the key-serving port: {'address', 'port', 'reachable', 'error'}."""
    result = {'address': address, 'port': port, 'reachable': False, 'error': None}
    if not port:
        result['error'] = 'no TCP port: TransportListener.tcp.port is not set'
        return result
    try:
        with socket.create_connection((address, port), timeout=timeout):
            result['reachable'] = True
    except OSError as exc:
        result['error'] = f'cannot connect to {address}:{port}: {exc.strerror or exc}'
    return result


def service_state(pids, port_result, check_process):
    """'running' when EKM's process is there (if looked for) and its port answers; else 'down' and why."""
    reasons = []
    if check_process and not pids:
        reasons.append('no EKM process runs with this configuration file')
    if not port_result['reachable']:
        reasons.append(port_result['error'])
    return ('down' if reasons else 'running'), reasons


def audit_summary(records):
    """Counts by kind, and the newest sync success and failure records' timestamps."""
    counts = {}
    last = {}
    for record in records:
        kind = record['kind']
        if kind:
            counts[kind] = counts.get(kind, 0) + 1
            last[kind] = record['timestamp']
    return {'counts': counts, 'last_sync_ok': last.get('sync_ok'), 'last_sync_failure': last.get('sync_failure'),
            'last_served': last.get('served'), 'last_stop': last.get('stop')}


def int_or_zero(text):
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return 0
