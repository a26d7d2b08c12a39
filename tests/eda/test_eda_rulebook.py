# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped rulebook under the real ansible-rulebook (PyPI, Java 17), against two SSH lab hosts with the stand-in EKM.

ansible-rulebook runs ``tapecrypt.ekm.ekm_sync`` on this machine and watches the primary through SSH (the event
source's remote mode). Nothing happens while nothing changes; cartridges written through the primary make the
redundant's keystore, KeyGroups.xml and drive table equal to the primary's within seconds, its EKM is reloaded
(REFRESH), not restarted, and every cartridge reads back through it. Needs root (tests/lab) and Java 17.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from eda_lab import EdaLab

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the SSH lab needs root')


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    lab = EdaLab(tmp_path_factory.mktemp('eda'), slot=6)
    try:
        lab.start()
        lab.provision()
        lab.start_rulebook(interval=1, settle=1.5)
        yield lab
    finally:
        lab.stop()


def _wait_idle(lab, timeout=180):
    """Until the rulebook has finished what it started: the run lock free and no new play for a few seconds."""
    deadline = time.monotonic() + timeout
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        recaps = lab.play_recaps()
        if recaps != last or not lab.lock_free():
            last, quiet_since = recaps, time.monotonic()
        elif time.monotonic() - quiet_since > 6:
            return
        time.sleep(0.5)
    raise AssertionError('the rulebook did not become idle:\n' + lab.log()[-4000:])


def test_no_run_while_nothing_changes(lab):
    time.sleep(10)
    assert lab.sync_events() == 0 and lab.play_recaps() == 0, lab.log()[-3000:]


def test_cartridges_reach_the_redundant_within_seconds_without_a_restart(lab):
    pid = lab.ekm_pid('redundant')
    before = lab.digests('redundant')
    for _cartridge in range(3):
        lab.write_cartridge()
    assert lab.digests('primary') != before
    seconds = lab.wait_equal(120)
    assert seconds is not None, lab.log()[-5000:]
    assert seconds < 60
    _wait_idle(lab)
    log = lab.log()
    assert lab.sync_events() >= 1
    # The stand-in reloaded its key groups and drive table (REFRESH) and was not restarted.
    assert re.search(r'Ask the stand-in EKM to reload \(REFRESH\)\] \**\nchanged: \[redundant\]', log), log[-5000:]
    assert 'RUNNING HANDLER [tapecrypt.ekm.server : Restart EKM' not in log
    assert lab.ekm_pid('redundant') == pid           # ... and was not restarted
    assert 'in sync' in log                          # the verify report ran after the sync
    assert lab.digests('primary') == lab.digests('redundant')
    assert lab.read_all('redundant') == 3            # every cartridge reads back through the redundant EKM


def test_quiet_again_after_the_change(lab):
    _wait_idle(lab)
    events, recaps = lab.sync_events(), lab.play_recaps()
    time.sleep(10)
    assert (lab.sync_events(), lab.play_recaps()) == (events, recaps)
