# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fault suite's tally: tried / survived / lost per class of fault, printed at the end of the session.

A test records every fault it tried with ``tally.record(cls, survived)`` and fails itself on a loss
or a broken invariant; the table shows the whole picture, including what survived.
"""
from __future__ import annotations

import collections

import pytest

_TABLE = collections.OrderedDict()


class Tally:
    def record(self, cls, survived):
        row = _TABLE.setdefault(cls, [0, 0, 0])
        row[0] += 1
        row[1 if survived else 2] += 1
        return survived


@pytest.fixture(scope='session')
def tally():
    return Tally()


def pytest_terminal_summary(terminalreporter):
    if not _TABLE:
        return
    width = max(len(cls) for cls in _TABLE)
    write = terminalreporter.write_line
    terminalreporter.section('fault suite: tried / survived / lost')
    write('%s %6s %9s %5s' % ('class'.ljust(width), 'tried', 'survived', 'lost'))
    totals = [0, 0, 0]
    for cls, row in _TABLE.items():
        write('%s %6d %9d %5d' % (cls.ljust(width), row[0], row[1], row[2]))
        totals = [a + b for a, b in zip(totals, row)]
    write('%s %6d %9d %5d' % ('total'.ljust(width), totals[0], totals[1], totals[2]))
