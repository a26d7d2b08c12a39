# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's core promise, checked from the files themselves with the project's own readers.

Every alias that any in-service server's ``symmetricKeySet`` names (a key EKM may write a cartridge with) is
(a) in every in-service redundant server's keystore, its entry byte-identical to the primary's, and
(b) in the primary's newest verified backup set, byte-identical too.
"""
from __future__ import annotations

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _aliases, _backup, _files, _keystore, _properties


def served_aliases(config_path):
    """The aliases that the configuration's ``symmetricKeySet`` names (empty when there is no file or no key)."""
    data = _files.read_bytes(config_path)
    if data is None:
        return set()
    value = _properties.PropertiesFile.parse(data).get('symmetricKeySet')
    if value is None:
        return set()
    ranges, aliases = _aliases.parse_symmetric_key_set(value)
    return set(_aliases.expand(ranges, limit=None)) | set(aliases)


def entries(keystore_path, password):
    """alias -> sha256 of the entry's bytes; None when there is no keystore."""
    keystore, dummy = _keystore.read(keystore_path, password)
    if keystore is None:
        return None
    return {e.alias.lower(): e.sha256 for e in keystore.entries}


def newest_verified_set(host_dir, password):
    """``(path, alias -> sha256)`` of the newest backup set that verifies completely, or ``(None, {})``."""
    sets, dummy = _backup.list_sets(host_dir, password)
    for found in sets:
        try:
            dummy, dummy, keystore = _backup.verify_set(found.path, password)
        except _backup.BackupError:
            continue
        return found.path, {e.alias.lower(): e.sha256 for e in keystore.entries}
    return None, {}


def check(servers, primary, password, primary_backup_dir):
    """Problems with the invariant, as sentences (empty: it holds).

    ``servers`` maps each in-service server to ``(config_path, keystore_path)``; ``primary`` names one of them.
    """
    problems = []
    served = {}
    for host, (config_path, dummy) in sorted(servers.items()):
        for alias in served_aliases(config_path):
            served.setdefault(alias, []).append(host)
    held = {host: entries(keystore_path, password) for host, (dummy, keystore_path) in servers.items()}
    reference = held[primary] or {}
    for host in sorted(servers):
        keys = held[host] or {}
        missing = sorted(a for a in served if a not in keys)
        if missing:
            problems.append('%s lacks %d served key(s): %s' % (host, len(missing), ', '.join(missing[:5])))
        differ = sorted(a for a in served if a in keys and a in reference and keys[a] != reference[a])
        if differ:
            problems.append('%s holds other bytes than the primary for %s' % (host, ', '.join(differ[:5])))
    set_path, backed_up = newest_verified_set(primary_backup_dir, password)
    missing = sorted(a for a in served if a not in backed_up)
    if missing:
        problems.append('the primary\'s newest verified backup set (%s) lacks %d served key(s): %s'
                        % (set_path, len(missing), ', '.join(missing[:5])))
    differ = sorted(a for a in served if a in backed_up and a in reference and backed_up[a] != reference[a])
    if differ:
        problems.append('the primary\'s newest verified backup set holds other bytes for %s' % ', '.join(differ[:5]))
    return problems
