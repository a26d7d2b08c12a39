# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""EKM key alias grammar: validation, ranges, expansion and compression.

Two alias forms exist for the symmetric (AES) keys that EKM hands to tape drives:

* a sequential alias: a 3-letter prefix followed by 18 lower-case hex digits whose first two
  are ``00``, i.e. ``prefix + '%018x' % n`` for a counter ``0 <= n < 16**16`` (21 characters);
* a plain alias: 1 to 12 printable ASCII characters, neither space nor comma.

JCEKS keystores store aliases lower-case, so every alias this module returns is lower-case.
Ranges are written in EKM's ``symmetricKeySet`` syntax as ``PFXfirst-last`` (hex), upper-case.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

COUNTER_LIMIT = 16 ** 16

# Expanding a range materialises every alias in memory. A typo such as ``last: 0xffffffff``
# would otherwise exhaust the host's memory instead of failing; real keystores hold thousands.
EXPAND_LIMIT = 1000000

_PREFIX_RE = re.compile(r'[A-Za-z]{3}')
_SEQUENTIAL_RE = re.compile(r'[A-Za-z]{3}00[0-9A-Fa-f]{16}')
# 0x21-0x7e without ',' (0x2c): the comma separates items in symmetricKeySet.
_PLAIN_RE = re.compile(r'[\x21-\x2b\x2d-\x7e]{1,12}')
_EKM_RANGE_RE = re.compile(r'([A-Za-z]{3})([0-9A-Fa-f]{1,18})-([0-9A-Fa-f]{1,18})')
_DECIMAL_RE = re.compile(r'[+-]?[0-9]+')
_HEX_RE = re.compile(r'0[xX][0-9A-Fa-f]+')

_RANGE_KEYS = ('prefix', 'first', 'last', 'count')
_SEQUENTIAL_HINT = "a 3-letter prefix followed by 18 hex digits that start with '00'"
_EKM_RANGE_HINT = ("EKM range syntax PFXfirst-last: a 3-letter prefix, then the first and the last counter in hex "
                   "(at most 18 digits each, and 18 digits must start with '00'), e.g. 'DCA001-1FF'")


class AliasError(ValueError):
    """An alias, range or symmetricKeySet value is malformed; the message names the input."""


def _check_prefix(prefix, context):
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise AliasError('%s: the prefix %r is not 3 letters (A-Z).' % (context, prefix))
    return prefix.lower()


def _check_counter(n, context, name='counter'):
    if isinstance(n, bool) or not isinstance(n, int):
        raise AliasError('%s: the %s %r is not an integer.' % (context, name, n))
    if n < 0:
        raise AliasError('%s: the %s %d is negative.' % (context, name, n))
    if n >= COUNTER_LIMIT:
        raise AliasError('%s: the %s 0x%x is out of the alias space (counters run from 0 to 0x%x, '
                         '16 hex digits after the leading 00).' % (context, name, n, COUNTER_LIMIT - 1))
    return n


def _ekm_range_text(prefix, first, last):
    width = max(3, len('%x' % last))
    return '%s%0*X-%0*X' % (prefix.upper(), width, first, width, last)


def normalize_alias(alias: str) -> str:
    """Validate an alias of either form and return it lower-case."""
    if not isinstance(alias, str):
        # An unquoted YAML alias such as 0123 arrives as a number and has already lost its spelling.
        raise AliasError('Alias %r is not a string (its type is %s); quote aliases in YAML so that they keep their '
                         'exact spelling.' % (alias, type(alias).__name__))
    if _SEQUENTIAL_RE.fullmatch(alias) or _PLAIN_RE.fullmatch(alias):
        return alias.lower()
    if not alias:
        raise AliasError('An alias cannot be empty.')
    if len(alias) == 21:
        raise AliasError('Alias %r has 21 characters, so it must be a sequential alias: %s.' % (alias, _SEQUENTIAL_HINT))
    if len(alias) > 12:
        raise AliasError('Alias %r has %d characters: an alias is either at most 12 characters long or a '
                         '21-character sequential alias (%s).' % (alias, len(alias), _SEQUENTIAL_HINT))
    raise AliasError("Alias %r contains a character that is not allowed: a plain alias is made of printable ASCII "
                     "characters other than space and ',' (symmetricKeySet separates its items with commas)." % (alias,))


def split_sequential(alias: str) -> tuple[str, int] | None:
    """``(prefix, counter)`` of a sequential alias, prefix lower-case; None for anything else.

    Never raises: a plain alias, a malformed alias and a non-string all give None.
    """
    if isinstance(alias, str) and len(alias) == 21 and _SEQUENTIAL_RE.fullmatch(alias):
        return alias[:3].lower(), int(alias[3:], 16)
    return None


@dataclass(frozen=True, order=True)
class AliasRange:
    """The sequential aliases ``prefix + '%018x' % n`` for ``first <= n <= last``; immutable.

    Instances sort by (prefix, first, last).
    """

    prefix: str
    first: int
    last: int

    def __post_init__(self):
        context = 'Alias range (prefix %r, first %r, last %r)' % (self.prefix, self.first, self.last)
        prefix = _check_prefix(self.prefix, context)
        _check_counter(self.first, context, 'first counter')
        _check_counter(self.last, context, 'last counter')
        if self.last < self.first:
            raise AliasError('%s: the last counter 0x%x is below the first counter 0x%x.' % (context, self.last, self.first))
        # The dataclass is frozen; the lower-case prefix is set once, here.
        object.__setattr__(self, 'prefix', prefix)

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    def __len__(self):
        count = self.count
        if count > sys.maxsize:
            raise AliasError('Alias range %s holds %d aliases, too many for len(); use its count.' % (self.to_ekm(), count))
        return count

    def __bool__(self):
        return True

    def __iter__(self):
        prefix = self.prefix
        for n in range(self.first, self.last + 1):
            yield '%s%018x' % (prefix, n)

    def __contains__(self, alias):
        parts = split_sequential(alias)
        return parts is not None and parts[0] == self.prefix and self.first <= parts[1] <= self.last

    def __str__(self):
        return self.to_ekm()

    def overlaps(self, other: AliasRange) -> bool:
        return self.prefix == other.prefix and self.first <= other.last and other.first <= self.last

    @property
    def first_alias(self) -> str:
        return '%s%018x' % (self.prefix, self.first)

    @property
    def last_alias(self) -> str:
        return '%s%018x' % (self.prefix, self.last)

    def to_ekm(self) -> str:
        """EKM symmetricKeySet range syntax, e.g. ``DCA001-1FF``; both counters padded to the same width."""
        return _ekm_range_text(self.prefix, self.first, self.last)


def _describe(spec):
    if isinstance(spec, Mapping):
        return '{%s}' % ', '.join('%s: %r' % (key, value) for key, value in spec.items())
    return repr(spec)


def _to_int(value, name, context):
    if isinstance(value, bool):
        raise AliasError('%s: %s must be an integer, not a boolean.' % (context, name))
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if _DECIMAL_RE.fullmatch(text):
                return int(text, 10)
            if _HEX_RE.fullmatch(text):
                return int(text, 16)
        except ValueError:
            # Python refuses to convert absurdly long digit strings; they are far outside the alias space anyway.
            raise AliasError('%s: %s %r is out of the alias space.' % (context, name, value)) from None
        raise AliasError("%s: %s %r is not an integer; write decimal digits, or hex with a '0x' prefix such as '0x1ff'."
                         % (context, name, value))
    raise AliasError('%s: %s must be an integer, not %r.' % (context, name, value))


def _parse_range_mapping(spec):
    context = 'Alias range %s' % _describe(spec)
    unknown = sorted(str(key) for key in spec if key not in _RANGE_KEYS)
    if unknown:
        raise AliasError('%s: unknown key(s) %s; a range takes prefix, first and either last or count.'
                         % (context, ', '.join(unknown)))
    # Ansible fills options that were not given with None, so None means "absent".
    values = {key: spec.get(key) for key in _RANGE_KEYS}
    if values['prefix'] is None:
        raise AliasError('%s: prefix is missing.' % context)
    prefix = _check_prefix(values['prefix'], context)
    if values['first'] is None:
        raise AliasError('%s: first is missing.' % context)
    first = _to_int(values['first'], 'first', context)
    if first < 0:
        raise AliasError('%s: first must not be negative.' % context)
    last = count = None
    if values['last'] is not None:
        last = _to_int(values['last'], 'last', context)
    if values['count'] is not None:
        count = _to_int(values['count'], 'count', context)
        if count < 1:
            raise AliasError('%s: count must be at least 1.' % context)
    if last is None and count is None:
        raise AliasError('%s: give either last or count.' % context)
    if last is not None and count is not None and last != first + count - 1:
        raise AliasError('%s: last and count disagree (first %d with count %d ends at %d, not %d); give only one of them.'
                         % (context, first, count, first + count - 1, last))
    if last is None:
        last = first + count - 1
    if last < first:
        raise AliasError('%s: last (%d) is below first (%d).' % (context, last, first))
    if last >= COUNTER_LIMIT:
        raise AliasError('%s: it ends at counter 0x%x, out of the alias space (counters run from 0 to 0x%x).'
                         % (context, last, COUNTER_LIMIT - 1))
    return AliasRange(prefix, first, last)


def _parse_ekm_counter(digits, text):
    if len(digits) == 18 and not digits.startswith('00'):
        raise AliasError("Alias range %r is not valid: a counter of 18 hex digits must start with '00'." % (text,))
    n = int(digits, 16)
    if n >= COUNTER_LIMIT:
        raise AliasError('Alias range %r is not valid: the counter %s is out of the alias space (at most %x).'
                         % (text, digits, COUNTER_LIMIT - 1))
    return n


def _parse_ekm_range(text):
    match = _EKM_RANGE_RE.fullmatch(text.strip())
    if not match:
        raise AliasError('Alias range %r is not in %s.' % (text, _EKM_RANGE_HINT))
    prefix, first_digits, last_digits = match.groups()
    first = _parse_ekm_counter(first_digits, text)
    last = _parse_ekm_counter(last_digits, text)
    if last < first:
        raise AliasError('Alias range %r is not valid: the last counter %s is below the first counter %s.'
                         % (text, last_digits, first_digits))
    return AliasRange(prefix, first, last)


def parse_range(spec) -> AliasRange:
    """One range from ``{prefix, first, last}``, ``{prefix, first, count}``, an EKM string or an AliasRange.

    Counters are integers, decimal strings, or hex strings with a ``0x`` prefix ('1FF' alone is refused
    because it cannot be told apart from a typo of a decimal number).
    """
    if isinstance(spec, AliasRange):
        return spec
    if isinstance(spec, str):
        return _parse_ekm_range(spec)
    if isinstance(spec, Mapping):
        return _parse_range_mapping(spec)
    raise AliasError('Alias range %r is neither a mapping {prefix, first, last or count} nor a string such as '
                     "'DCA001-1FF'." % (spec,))


def _check_overlaps(ranges):
    by_prefix = {}
    for alias_range in ranges:
        by_prefix.setdefault(alias_range.prefix, []).append(alias_range)
    for group in by_prefix.values():
        # Sorted by first counter, any overlap shows up between neighbours: if a range overlaps a
        # later one, it also overlaps every range that starts in between.
        group = sorted(group)
        for earlier, later in zip(group, group[1:]):
            if earlier.overlaps(later):
                raise AliasError('Alias ranges %s and %s overlap: both contain %s.'
                                 % (earlier.to_ekm(), later.to_ekm(), later.first_alias))


def parse_ranges(specs) -> list[AliasRange]:
    """Parse a list of range specs (see parse_range), in the given order; overlapping ranges are an error.

    Equal ranges (the same aliases, however written: with last or count, as a mapping or as EKM's
    range syntax) are one range, kept once where it first appears; a seed that lists a range again,
    or a run that adds a range the seed already holds, plans no alias twice.
    """
    if specs is None:
        return []
    if isinstance(specs, (str, Mapping, AliasRange)):
        specs = [specs]
    elif isinstance(specs, bytes) or not isinstance(specs, Iterable):
        raise AliasError('Alias ranges must be given as a list, not %r.' % (specs,))
    ranges, seen = [], set()
    for spec in specs:
        alias_range = parse_range(spec)
        if alias_range not in seen:
            seen.add(alias_range)
            ranges.append(alias_range)
    _check_overlaps(ranges)
    return ranges


def expand(ranges, limit: int | None = EXPAND_LIMIT) -> list[str]:
    """Every alias of the ranges (specs or AliasRange objects), range by range, each in counter order.

    Overlapping ranges are an error, so the result holds no duplicates. More than ``limit`` aliases
    (None: no limit) is an error rather than an attempt to build the list.
    """
    ranges = parse_ranges(ranges)
    total = sum(alias_range.count for alias_range in ranges)
    if limit is not None and total > limit:
        raise AliasError('The alias ranges %s hold %d aliases, more than the %d that can be listed at once; '
                         'check the ranges for a typo.' % (', '.join(r.to_ekm() for r in ranges), total, limit))
    aliases = []
    for alias_range in ranges:
        prefix = alias_range.prefix
        aliases.extend(['%s%018x' % (prefix, n) for n in range(alias_range.first, alias_range.last + 1)])
    return aliases


def compress(aliases) -> list[str]:
    """Aliases sorted, de-duplicated and shortened for display and for symmetricKeySet.

    Runs of two or more consecutive sequential aliases of one prefix become one EKM range
    ('DCA001-1FF'); a run of one stays the full lower-case alias. Sequential items come first,
    ordered by (prefix, counter), then the plain aliases in sorted order.
    """
    if isinstance(aliases, (str, bytes, Mapping)) or not isinstance(aliases, Iterable):
        raise AliasError('Aliases must be given as a list, not %r.' % (aliases,))
    counters = {}
    plain = set()
    # This runs on every no-change module run over the whole keystore: keep the common case lean.
    sequential = _SEQUENTIAL_RE.fullmatch
    for alias in aliases:
        if isinstance(alias, str) and len(alias) == 21 and sequential(alias):
            prefix = alias[:3].lower()
        else:
            alias = normalize_alias(alias)
            if len(alias) != 21:
                plain.add(alias)
                continue
            prefix = alias[:3]
        numbers = counters.get(prefix)
        if numbers is None:
            numbers = counters[prefix] = set()
        numbers.add(int(alias[3:], 16))
    items = []
    for prefix in sorted(counters):
        numbers = sorted(counters[prefix])
        numbers.append(-2)  # sentinel: never follows the last counter, so the last run is flushed
        start = previous = numbers[0]
        for n in numbers[1:]:
            if n == previous + 1:
                previous = n
                continue
            if start == previous:
                items.append('%s%018x' % (prefix, start))
            else:
                items.append(_ekm_range_text(prefix, start, previous))
            start = previous = n
    items.extend(sorted(plain))
    return items


def parse_symmetric_key_set(value: str) -> tuple[list[AliasRange], list[str]]:
    """Split an EKM ``symmetricKeySet`` value into its ranges and its single aliases, both in file order.

    Items are separated by commas; whitespace around an item is ignored. An item containing '-' is a
    key alias range (``PFXfirst-last``, hex); any other item is an alias (at most 12 characters, or a
    21-character sequential alias). A key group id (no '-', at most 12 characters) cannot be told
    apart from a plain alias and is returned among the aliases. Overlaps are not checked here: this
    reads what a file says; expand() or parse_ranges() refuse overlapping ranges.
    """
    if not isinstance(value, str):
        raise AliasError('symmetricKeySet must be a string, not %r.' % (value,))
    if '\n' in value or '\r' in value:
        raise AliasError('symmetricKeySet %r spans several lines; EKM reads it from one line only.' % (value,))
    ranges = []
    aliases = []
    if not value.strip():
        return ranges, aliases
    for position, raw in enumerate(value.split(','), 1):
        item = raw.strip()
        if not item:
            raise AliasError('symmetricKeySet %r has an empty item at position %d (two commas in a row, or a comma '
                             'at the start or end).' % (value, position))
        if '-' in item:
            try:
                ranges.append(_parse_ekm_range(item))
            except AliasError as exc:
                raise AliasError("symmetricKeySet item %r contains '-', so it must be a key alias range; %s"
                                 % (item, exc)) from None
        else:
            try:
                aliases.append(normalize_alias(item))
            except AliasError as exc:
                raise AliasError('symmetricKeySet item %r is not a valid alias: %s' % (item, exc)) from None
    return ranges, aliases


def format_symmetric_key_set(ranges, aliases=()) -> str:
    """One-line ``symmetricKeySet`` value: the ranges in EKM syntax, then the aliases, comma-separated.

    Refuses what EKM would misread or what would skew its round-robin: overlapping ranges, an
    alias containing '-' (it would be read as a range), an alias listed twice or already in a range.
    """
    ranges = parse_ranges(ranges)
    if isinstance(aliases, (str, bytes, Mapping)) or not isinstance(aliases, (Iterable, type(None))):
        raise AliasError('Aliases for symmetricKeySet must be given as a list, not %r.' % (aliases,))
    items = [alias_range.to_ekm() for alias_range in ranges]
    seen = set()
    for alias in aliases or ():
        alias = normalize_alias(alias)
        if '-' in alias:
            raise AliasError("Alias %r cannot be listed in symmetricKeySet: items containing '-' are read as key "
                             'alias ranges.' % (alias,))
        if alias in seen:
            raise AliasError('Alias %r is listed twice for symmetricKeySet.' % (alias,))
        for alias_range in ranges:
            if alias in alias_range:
                raise AliasError('Alias %r is already part of the range %s in symmetricKeySet.' % (alias, alias_range.to_ekm()))
        seen.add(alias)
        items.append(alias)
    return ','.join(items)
