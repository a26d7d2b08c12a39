# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Regression test of issue 8 §6 (failed at 9bebfc6): the sync advised moving the redundant keystore aside when the primary had lost keys.

In its own folder: ansible-test runs module tests without the controller's packages.
"""
from __future__ import annotations

from ansible_collections.tapecrypt.ekm.plugins.plugin_utils import _sync_plan


# --- §6: wrong advice when the primary lost keys --------------------------------------------------------------------


def test_a_primary_that_lost_keys_is_recognised_from_the_sync_state():
    def inv(sha):
        return {'files': {n: {'path': '/r/' + n, 'exists': True, 'sha256': sha if n == 'keystore' else 'same',
                              'digest': None} for n in ('keystore', 'keygroups', 'drivetable')}}
    primary, redundant = inv('restored-old'), inv('copied-last-time')
    redundant['state'] = {'version': 1, 'files': {'keystore': {'path': '/r/keystore', 'sha256': 'copied-last-time'}}}
    lost = ['dca000000000000000201', 'dca000000000000000202']
    decision = _sync_plan.plan(primary, redundant, False, {'added': [], 'extra': lost, 'different': []})
    reasons = ' '.join(c['reason'] for c in decision['conflicts'])
    assert 'DCA201-202' in reasons
    assert 'primary has lost' in reasons.lower() and 'restore the primary' in reasons.lower()
    assert 'move it aside' not in reasons
    # Without that record the keystore may have been set up independently: the old advice stands.
    del redundant['state']
    decision = _sync_plan.plan(primary, redundant, False, {'added': [], 'extra': lost, 'different': []})
    assert [c['kind'] for c in decision['conflicts']] == ['extra_aliases']
