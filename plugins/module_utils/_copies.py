# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A bounded number of replaced-file copies beside each EKM file.

Every module that replaces a file keeps a copy first (``_files.backup_copy``:
``<file>.<UTC time>.bak``; older releases wrote ``<file>.<pid>.<YYYY-MM-DD@HH:MM:SS>~``). Without a
limit they pile up with every sync. ``prune`` keeps the newest ``keep`` copies of a file and removes
older ones that may go:

* a copy of the keystore only when the current keystore and a verified backup set both hold every
  one of its entries byte for byte, so that no key exists only in that copy. A copy that does not
  parse is kept. The copy a restore keeps after giving up keys (``allow_key_loss``) holds keys the
  current keystore lacks, so it is never removed by this rule;
* a copy of any other file (configuration, key groups, drive table) by age alone.
"""

from __future__ import annotations

import os
import re

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files, _jceks

DEFAULT_KEEP = 5

_BAK_RE = r'\.(\d{8}T\d{12}Z)\.bak'
_LEGACY_RE = r'\.\d+\.(\d{4})-(\d\d)-(\d\d)@(\d\d):(\d\d):(\d\d)~'


def copies_of(path):
    """The copies kept beside ``path``, newest first (by the time in their names)."""
    directory, name = os.path.split(os.path.realpath(path))
    pattern = re.compile(re.escape(name) + '(?:%s|%s)$' % (_BAK_RE, _LEGACY_RE))
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for entry in names:
        match = pattern.match(entry)
        if match and os.path.isfile(os.path.join(directory, entry)):
            groups = match.groups()
            # Both forms sort by a UTC time; the legacy one has no fraction, so it sorts first within its second.
            stamp = groups[0] or '%s%s%sT%s%s%s000000Z' % groups[1:]
            found.append((stamp, os.path.join(directory, entry)))
    return [copy for _stamp, copy in sorted(found, reverse=True)]


def keystore_copy_covered(copy, current, backed_up):
    """Whether the keystores ``current`` and ``backed_up`` both hold every entry of the file ``copy``, byte for byte."""
    try:
        with open(copy, 'rb') as f:
            entries = _jceks.load(f.read()).entries
    except (OSError, _jceks.JceksError):
        return False
    for entry in entries:
        for keystore in (current, backed_up):
            other = keystore.get(entry.alias)
            if other is None or other.body != entry.body:
                return False
    return True


def prune(path, keep, removable=None, check_mode=False):
    """Remove the copies of ``path`` older than the newest ``keep`` for which ``removable(copy)`` is true.

    Returns ``(removed, kept)``: the copies removed (in check mode: that would be) and the older
    copies that had to stay. The caller holds the directory's ``DirLock``.
    """
    if keep is None:
        return [], []
    removed, kept = [], []
    for copy in copies_of(path)[keep:]:
        if removable is not None and not removable(copy):
            kept.append(copy)
            continue
        if not check_mode:
            try:
                os.unlink(copy)
            except FileNotFoundError:
                continue
            except OSError:
                kept.append(copy)
                continue
        removed.append(copy)
    return removed, kept


def prune_beside_backup(paths, keep, password, set_keystore_path, check_mode=False):
    """After a verified backup set: bound the copies beside each backed-up file (``paths``: kind -> path).

    ``set_keystore_path`` is the keystore file of the verified set that holds the current files.
    Returns ``(removed, kept)`` over all files.
    """
    removed, kept = [], []
    for kind, path in sorted(paths.items()):
        if not path or not os.path.exists(path):
            continue
        with _files.DirLock(path):
            removable = None
            if kind == 'keystore':
                removable = _keystore_rule(path, password, set_keystore_path)
            gone, stay = prune(path, keep, removable, check_mode)
        removed += gone
        kept += stay
    return removed, kept


def _keystore_rule(path, password, set_keystore_path):
    """The test for keystore copies, or one that keeps every copy when either keystore cannot be read."""
    try:
        with open(path, 'rb') as f:
            current = _jceks.load(f.read(), password)
        with open(set_keystore_path, 'rb') as f:
            backed_up = _jceks.load(f.read(), password)
    except (OSError, _jceks.JceksError):
        return lambda copy: False
    return lambda copy: keystore_copy_covered(copy, current, backed_up)
