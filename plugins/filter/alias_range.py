# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The alias_range and alias_ranges filters; their documentation is in alias_range.yml and alias_ranges.yml."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.tapecrypt.ekm.plugins.module_utils._aliases import (
    AliasError,
    compress,
    expand,
    parse_ranges,
)


def alias_range(value):
    """Every alias of a range (mapping or EKM string) or of a list of non-overlapping ranges."""
    # Any iterable: before ansible-core 2.19, filters such as map() hand on generators, not lists.
    if isinstance(value, bytes) or not isinstance(value, (str, Mapping, Iterable)):
        raise AnsibleFilterError('alias_range expects a range such as {prefix: DCA, first: 1, count: 512} or '
                                 "'DCA001-200', or a list of them, not %r." % (value,))
    try:
        return expand(parse_ranges(value))
    except AliasError as exc:
        raise AnsibleFilterError(str(exc)) from None


def alias_ranges(value):
    """A list of aliases, sorted and de-duplicated, with consecutive sequential aliases joined into EKM ranges."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise AnsibleFilterError('alias_ranges expects a list of aliases, not %r.' % (value,))
    try:
        return compress(value)
    except AliasError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {
            'alias_range': alias_range,
            'alias_ranges': alias_ranges,
        }
