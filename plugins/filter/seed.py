# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The validate_seed and symmetric_key_set filters; their documentation is in validate_seed.yml and symmetric_key_set.yml."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import BOOLEANS

from ansible_collections.tapecrypt.ekm.plugins.module_utils._aliases import (
    EXPAND_LIMIT,
    AliasError,
    format_symmetric_key_set,
    parse_range,
    parse_ranges,
    parse_symmetric_key_set,
)

SEED_KEYS = ('site', 'keystore_password', 'key_ranges', 'symmetric_key_set', 'tcp_port', 'ssl_port',
             'accept_unknown_drives', 'settings', 'backup')
BACKUP_KEYS = ('dest', 'keep')
MIN_PASSWORD_LENGTH = 6

# The site names a backup folder (<dest>/<site>/<server>/, docs/backup-and-restore.md), so it must be one safe path
# component.
_SITE_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,63}')
_PRINTABLE_ASCII_RE = re.compile(r'[\x20-\x7e]*')
# A key that Java's Properties.load reads back as the same key without escapes.
_PROPERTY_KEY_RE = re.compile(r'[^\s=:#!\\]+')
_SCALAR_TYPES = (str, int)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(value):
    """An int from an int or a string of decimal digits (templated values can arrive as strings); else None."""
    if _is_int(value):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _check_site(seed, errors):
    site = seed.get('site')
    if site is None or site == '':
        errors.append('ekm_seed.site is not set: give a short label for the site, such as dc1; it names the '
                      "site's backup folder.")
    elif not isinstance(site, str) or not _SITE_RE.fullmatch(site):
        errors.append('ekm_seed.site %r is not a usable label: use letters, digits, ".", "_" and "-" (at most 64 '
                      'characters, starting with a letter or digit), because it names a backup folder.' % (site,))


def _check_password(seed, errors):
    # The password itself never appears in a message: these messages end up in logs.
    password = seed.get('keystore_password')
    if password is None or password == '':
        errors.append('ekm_seed.keystore_password is not set: give the keystore password (from Ansible Vault).')
    elif not isinstance(password, str):
        errors.append('ekm_seed.keystore_password must be a string, not a %s; quote it in YAML.' % type(password).__name__)
    elif len(password) < MIN_PASSWORD_LENGTH:
        errors.append('ekm_seed.keystore_password has only %d character(s); keytool and EKM require at least %d.'
                      % (len(password), MIN_PASSWORD_LENGTH))
    elif not _PRINTABLE_ASCII_RE.fullmatch(password):
        errors.append('ekm_seed.keystore_password contains characters outside printable ASCII (space to "~"); '
                      'Java reads such passwords differently depending on the platform encoding, so they are refused.')


def _check_key_ranges(seed, errors):
    """The parsed key ranges, or None when they are unusable (the errors say why)."""
    specs = seed.get('key_ranges')
    if specs is None or (isinstance(specs, (list, tuple)) and not specs):
        errors.append('ekm_seed.key_ranges is empty: plan at least one range of keys, such as '
                      '{prefix: DCA, first: 1, count: 512}.')
        return None
    if not isinstance(specs, (list, tuple)):
        errors.append('ekm_seed.key_ranges must be a list of ranges such as {prefix: DCA, first: 1, count: 512}, '
                      'not %r.' % (specs,))
        return None
    ranges = []
    for index, spec in enumerate(specs):
        # The same two forms the keystore module and the alias filters take.
        if not isinstance(spec, (Mapping, str)):
            errors.append('ekm_seed.key_ranges[%d] is %r; write each range as a dictionary {prefix, first, last} or '
                          '{prefix, first, count}, for example {prefix: DCA, first: 1, count: 512}, or as a string in '
                          "EKM's range syntax such as DCA001-1FF." % (index, spec))
            continue
        try:
            ranges.append(parse_range(spec))
        except AliasError as exc:
            errors.append('ekm_seed.key_ranges[%d]: %s' % (index, exc))
    if len(ranges) != len(specs):
        return None
    try:
        # Equal ranges (say last: 200 and count: 200) are one range; only real overlaps are refused.
        ranges = parse_ranges(ranges)
    except AliasError as exc:
        errors.append('ekm_seed.key_ranges: %s Every alias must belong to exactly one range.' % (exc,))
        return None
    total = sum(r.count for r in ranges)
    if total > EXPAND_LIMIT:
        errors.append('ekm_seed.key_ranges plan %d keys, more than the %d a keystore is managed with; check the '
                      'ranges for a typo.' % (total, EXPAND_LIMIT))
        return None
    return ranges


def _covered(item, ranges):
    """Whether every alias of the range ``item`` lies in one of the non-overlapping ``ranges``."""
    need = item.first
    for candidate in sorted(r for r in ranges if r.prefix == item.prefix):
        if candidate.first <= need <= candidate.last:
            need = candidate.last + 1
            if need > item.last:
                return True
    return False


def _symmetric_key_set_text(value):
    """The configured symmetric_key_set as one string; lists are joined with commas."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return ','.join(item.strip() for item in value)
    raise AliasError('it must be a string in EKM syntax such as "DCA001-1FF,dca000000000000000300", or a list of '
                     'such items, not %r' % (value,))


def _check_symmetric_key_set(seed, ranges, errors):
    value = seed.get('symmetric_key_set')
    if value is None:
        return
    try:
        text = _symmetric_key_set_text(value)
        if not text:
            raise AliasError('it is empty; leave it null to use every key of key_ranges')
        set_ranges, set_aliases = parse_symmetric_key_set(text)
    except AliasError as exc:
        errors.append('ekm_seed.symmetric_key_set: %s.' % (str(exc).rstrip('.'),))
        return
    if ranges is None:
        # Without usable key ranges there is nothing to compare with; the key_ranges message says why.
        return
    for item in set_ranges:
        if not _covered(item, ranges):
            errors.append('ekm_seed.symmetric_key_set: the range %s reaches beyond ekm_seed.key_ranges (%s); EKM '
                          'would hand drives aliases that the keystore does not hold.'
                          % (item.to_ekm(), ', '.join(r.to_ekm() for r in ranges)))
    for alias in set_aliases:
        if not any(alias in r for r in ranges):
            errors.append('ekm_seed.symmetric_key_set: %r is not an alias of ekm_seed.key_ranges (%s); EKM would '
                          'not find its key. Key group IDs are not supported in the seed: name aliases or ranges.'
                          % (alias, ', '.join(r.to_ekm() for r in ranges)))


def _check_ports(seed, errors):
    ports = {}
    for name, default in (('tcp_port', 3801), ('ssl_port', 443)):
        value = seed.get(name, default)
        if value is None:
            value = default
        port = _as_int(value)
        if port is None or not 1 <= port <= 65535:
            errors.append('ekm_seed.%s %r is not a port number from 1 to 65535.' % (name, value))
        else:
            ports[name] = port
    if len(ports) == 2 and ports['tcp_port'] == ports['ssl_port']:
        errors.append('ekm_seed.tcp_port and ekm_seed.ssl_port are both %d; EKM needs two distinct ports for its TCP '
                      'and SSL listeners.' % ports['tcp_port'])


def _check_accept_unknown_drives(seed, errors):
    value = seed.get('accept_unknown_drives')
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, (str, int)) and not isinstance(value, bool) and value in BOOLEANS:
        return
    errors.append('ekm_seed.accept_unknown_drives %r is not a boolean; write true or false.' % (value,))


def _check_settings(seed, errors):
    settings = seed.get('settings')
    if settings is None:
        return
    if not isinstance(settings, Mapping):
        errors.append('ekm_seed.settings must be a dictionary of KeyManagerConfig.properties keys and values, not %r.'
                      % (settings,))
        return
    for key, value in settings.items():
        if not isinstance(key, str) or not _PROPERTY_KEY_RE.fullmatch(key):
            errors.append('ekm_seed.settings: %r is not a usable property name (no spaces, "=", ":", "#", "!" or '
                          'backslashes).' % (key,))
        elif isinstance(value, float):
            errors.append('ekm_seed.settings[%r]: give %r as a quoted string; YAML turns numbers such as 1.10 into 1.1.'
                          % (key, value))
        elif value is None or not isinstance(value, _SCALAR_TYPES):
            errors.append('ekm_seed.settings[%r] must be a string, an integer or a boolean, not %r; to remove a key, '
                          'use the tapecrypt.ekm.config module with state=absent.' % (key, value))


def _check_backup(seed, errors):
    backup = seed.get('backup')
    if backup is None:
        return
    if not isinstance(backup, Mapping):
        errors.append('ekm_seed.backup must be a dictionary {dest, keep}, not %r.' % (backup,))
        return
    unknown = sorted(str(key) for key in backup if key not in BACKUP_KEYS)
    if unknown:
        errors.append('ekm_seed.backup has unknown key(s) %s; it takes dest and keep.' % ', '.join(unknown))
    dest = backup.get('dest')
    if dest is not None and (not isinstance(dest, str) or not dest.startswith('/')):
        errors.append('ekm_seed.backup.dest %r must be an absolute path, on media that is not encrypted with these '
                      'keys.' % (dest,))
    keep = backup.get('keep')
    if keep is not None and (_as_int(keep) is None or _as_int(keep) < 1):
        errors.append('ekm_seed.backup.keep %r must be a whole number of at least 1 (verified backup sets to keep).'
                      % (keep,))


def _check_primary_hosts(primary_hosts, errors):
    if isinstance(primary_hosts, (str, bytes, Mapping)) or not isinstance(primary_hosts, Iterable):
        errors.append('The inventory group ekm_primary must be given as a list of host names, not %r.' % (primary_hosts,))
        return
    hosts = list(primary_hosts)
    if not hosts:
        errors.append('The inventory group ekm_primary has no host; put exactly one host in it: keys are generated '
                      'on the primary only.')
    elif len(hosts) > 1:
        errors.append('The inventory group ekm_primary has %d hosts (%s); it must have exactly one, because keys are '
                      'generated on one primary only and copied to the redundant servers. Put the others in '
                      'ekm_redundant.' % (len(hosts), ', '.join(str(h) for h in hosts)))


def validate_seed(seed, primary_hosts=None):
    """Every mistake in ``seed`` (and in the ekm_primary group, when given), one message each; [] when it is sound."""
    if not isinstance(seed, Mapping):
        return ['ekm_seed must be a dictionary (site, keystore_password, key_ranges, ...), not %r.'
                % (type(seed).__name__ if seed is not None else seed,)]
    errors = []
    unknown = sorted(str(key) for key in seed if key not in SEED_KEYS)
    if unknown:
        errors.append('ekm_seed has unknown key(s) %s; it takes %s. Further KeyManagerConfig.properties keys belong '
                      'in ekm_seed.settings.' % (', '.join(unknown), ', '.join(SEED_KEYS)))
    _check_site(seed, errors)
    _check_password(seed, errors)
    ranges = _check_key_ranges(seed, errors)
    _check_symmetric_key_set(seed, ranges, errors)
    _check_ports(seed, errors)
    _check_accept_unknown_drives(seed, errors)
    _check_settings(seed, errors)
    _check_backup(seed, errors)
    if primary_hosts is not None:
        _check_primary_hosts(primary_hosts, errors)
    return errors


_RANGE_KEYS = frozenset(('prefix', 'first', 'last', 'count'))


def symmetric_key_set(seed_or_ranges):
    """The symmetricKeySet value: a seed's own, or its key ranges (or the given ranges) in EKM range syntax.

    Errors never show the value given: a seed holds the keystore password.
    """
    if isinstance(seed_or_ranges, Mapping) and 'key_ranges' not in seed_or_ranges \
            and not set(map(str, seed_or_ranges)) <= _RANGE_KEYS:
        raise AnsibleFilterError('symmetric_key_set expects ekm_seed (a dictionary with key_ranges) or a list of ranges; '
                                 'this dictionary has no key_ranges (its keys: %s).'
                                 % ', '.join(sorted(map(str, seed_or_ranges))))
    try:
        if isinstance(seed_or_ranges, Mapping) and 'key_ranges' in seed_or_ranges:
            explicit = seed_or_ranges.get('symmetric_key_set')
            if explicit is not None:
                text = _symmetric_key_set_text(explicit)
                if not text:
                    raise AliasError('ekm_seed.symmetric_key_set is empty; leave it null to use every key of key_ranges')
                # Parsed only to refuse what EKM would misread; the value is kept as written.
                parse_symmetric_key_set(text)
                return text
            value = format_symmetric_key_set(seed_or_ranges.get('key_ranges'))
        elif isinstance(seed_or_ranges, (str, Mapping, list, tuple)):
            value = format_symmetric_key_set(seed_or_ranges)
        else:
            value = None
        if value == '':
            raise AliasError('there are no key ranges to build it from')
    except AliasError as exc:
        raise AnsibleFilterError('symmetric_key_set: %s' % (exc,)) from None
    if value is not None:
        return value
    raise AnsibleFilterError('symmetric_key_set expects ekm_seed (a dictionary with key_ranges) or a list of ranges, '
                             'not a %s.' % type(seed_or_ranges).__name__)


class FilterModule:
    def filters(self):
        return {
            'validate_seed': validate_seed,
            'symmetric_key_set': symmetric_key_set,
        }
