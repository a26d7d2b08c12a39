# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The key_safety filter; its documentation is in key_safety.yml.

A key may be served (named in symmetricKeySet) only once it is byte-identical on every redundant server in service
and in the primary's newest verified backup set. This filter works that out from keystore_info inventories, every
run, so that nothing about it is stored and nothing can drift.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.tapecrypt.ekm.plugins.module_utils._aliases import (
    AliasError,
    compress,
    expand,
    normalize_alias,
    parse_range,
    parse_ranges,
    parse_symmetric_key_set,
)

NOT_IN_PRIMARY = "not in the primary's keystore"
NO_BACKUP = 'no verified backup set of the primary'
NOT_IN_BACKUP = "not in the primary's newest verified backup set"
DIFFERENT_IN_BACKUP = "other bytes in the primary's newest verified backup set"
PRIMARY_UNREADABLE = "the primary's keystore could not be read"


class _Unreadable:
    """An inventory that could not be taken; ``reason`` says why (it becomes every alias's reason)."""

    def __init__(self, reason):
        self.reason = reason


def _inventory(value, what):
    """The keystore dict of a keystore_info result (or the dict itself); an _Unreadable when there is none."""
    if value is None:
        return _Unreadable('%s could not be read in this run' % what)
    if not isinstance(value, Mapping):
        raise AnsibleFilterError('key_safety: the inventory of %s must be the result of tapecrypt.ekm.keystore_info '
                                 '(or its keystore), not a %s.' % (what, type(value).__name__))
    if value.get('unreachable') or value.get('failed'):
        # A module's message names paths and the problem, never key material or the password.
        msg = str(value.get('msg') or 'failed').strip()
        return _Unreadable('%s could not be read (%s)' % (what, msg[:200]))
    if 'keystore' in value and isinstance(value['keystore'], Mapping):
        value = value['keystore']
    if 'exists' not in value:
        return _Unreadable('%s could not be read in this run' % what)
    return value


def _aliases_of_ranges(items):
    """Secret-key aliases from keystore_info's compressed ``ranges`` (EKM ranges and single aliases)."""
    aliases = set()
    for item in items or ():
        if '-' in item:
            aliases.update(expand([parse_range(item)]))
        else:
            aliases.add(normalize_alias(item))
    return aliases


def _entry_hashes(inventory, what):
    """{alias: entry_sha256} of the secret keys; fails when the inventory was taken without entries."""
    entries = inventory.get('entries')
    if not entries and (inventory.get('count') or 0) > 0:
        raise AnsibleFilterError('key_safety: the keystore digests of %s and the primary differ, so both inventories '
                                 'are needed with entries (keystore_info entries: true).' % what)
    return {normalize_alias(e['alias']): e.get('entry_sha256')
            for e in entries or () if e.get('kind', 'secret') == 'secret'}


def _secret_aliases(inventory):
    if inventory.get('entries'):
        return {normalize_alias(e['alias']) for e in inventory['entries'] if e.get('kind', 'secret') == 'secret'}
    return _aliases_of_ranges(inventory.get('ranges'))


def _compare(primary, primary_aliases, other, what, missing_text, different_text):
    """{alias: reason} for the primary's aliases that ``other`` lacks or holds as other bytes."""
    if isinstance(other, _Unreadable):
        return dict.fromkeys(primary_aliases, other.reason)
    if not other.get('exists'):
        return dict.fromkeys(primary_aliases, missing_text)
    if other.get('digest') == primary.get('digest'):
        # Equal whole-keystore digests: every entry is byte-identical, and no entry list was needed.
        return {}
    mine = _entry_hashes(primary, what)
    theirs = _entry_hashes(other, what)
    reasons = {}
    for alias in primary_aliases:
        if alias not in theirs:
            reasons[alias] = missing_text
        elif theirs[alias] != mine.get(alias):
            reasons[alias] = different_text
    return reasons


def _asked_aliases(asked):
    """The text of the asked symmetricKeySet and its aliases."""
    if isinstance(asked, (list, tuple)):
        asked = ','.join(str(item).strip() for item in asked)
    if asked is None:
        asked = ''
    if not isinstance(asked, str):
        raise AnsibleFilterError('key_safety: the symmetricKeySet asked for must be a string in EKM syntax, not a %s.'
                                 % type(asked).__name__)
    ranges, aliases = parse_symmetric_key_set(asked)
    return asked.strip(), set(expand(parse_ranges(ranges))) | set(aliases)


def _why_held_back(primary, redundants, backup):
    """The primary's aliases, and {alias: [reasons]} for those that are not safe."""
    why = {}
    if isinstance(primary, _Unreadable):
        return set(), why
    primary_aliases = _secret_aliases(primary) if primary.get('exists') else set()
    sources = [(host, redundants[host], 'not on %s' % host, 'other bytes on %s' % host)
               for host in sorted(redundants)]
    sources.append(('the backup set', backup, NOT_IN_BACKUP, DIFFERENT_IN_BACKUP))
    for what, other, missing_text, different_text in sources:
        for alias, reason in _compare(primary, primary_aliases, other, what, missing_text, different_text).items():
            why.setdefault(alias, []).append(reason)
    return primary_aliases, why


def _grouped(why):
    """[{aliases, why}], one item per distinct list of reasons, aliases compressed into EKM ranges."""
    groups = {}
    for alias, reasons in why.items():
        groups.setdefault(tuple(reasons), []).append(alias)
    return [{'aliases': compress(aliases), 'why': list(reasons)}
            for reasons, aliases in sorted(groups.items(), key=lambda item: compress(item[1])[0])]


def key_safety(asked, primary, redundants=None, backup=None):
    """What of the symmetricKeySet ``asked`` may be served, which keys are staged, which are held back and why."""
    if redundants is None:
        redundants = {}
    if not isinstance(redundants, Mapping):
        raise AnsibleFilterError('key_safety: the redundant servers\' inventories must be a dictionary '
                                 '{inventory hostname: keystore_info result}, not a %s.' % type(redundants).__name__)
    try:
        asked_text, asked_aliases = _asked_aliases(asked)
        primary_inv = _inventory(primary, "the primary's keystore")
        others = {str(host): _inventory(value, str(host)) for host, value in redundants.items()}
        backup_inv = _inventory(backup, 'the backup set') if backup is not None else _Unreadable(NO_BACKUP)
        primary_aliases, why = _why_held_back(primary_inv, others, backup_inv)
    except AliasError as exc:
        raise AnsibleFilterError('key_safety: %s' % (exc,)) from None
    safe = primary_aliases - set(why)
    held = {}
    for alias in asked_aliases - safe:
        if isinstance(primary_inv, _Unreadable):
            held[alias] = [PRIMARY_UNREADABLE]
        elif alias not in primary_aliases:
            held[alias] = [NOT_IN_PRIMARY]
        else:
            held[alias] = why[alias]
    serve = asked_text if not held else ','.join(compress(asked_aliases & safe))
    served = asked_aliases & safe
    staged = primary_aliases - served
    return {
        'asked': asked_text,
        'serve': serve,
        'complete': not held,
        'served_count': len(served),
        'safe': compress(safe),
        'safe_count': len(safe),
        'staged': compress(staged),
        'staged_count': len(staged),
        'held_back': _grouped(held),
        'held_back_count': len(held),
        'summary': _summary(serve, staged, held),
    }


def _summary(serve, staged, held):
    lines = ['served: %s' % (serve or 'no key is proven safe now; symmetricKeySet is left as it is')]
    if staged:
        lines.append('staged (in the keystore, served nowhere): %s' % ', '.join(_short(compress(staged))))
    for group in _grouped(held):
        lines.append('held back: %s: %s' % (', '.join(_short(group['aliases'])), '; '.join(group['why'])))
    return lines


def _short(items, limit=20):
    if len(items) <= limit:
        return items
    return items[:limit] + ['and %d more' % (len(items) - limit)]


class FilterModule:
    def filters(self):
        return {
            'key_safety': key_safety,
        }
