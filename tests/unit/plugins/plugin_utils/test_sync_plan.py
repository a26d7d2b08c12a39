# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The sync's decisions on the controller (``plugin_utils/_sync_plan``), without any server.

The whole run, controller and host halves together, is tested in ``module_utils/test_sync.py``.
"""
from __future__ import annotations

from ansible_collections.tapecrypt.ekm.plugins.plugin_utils import _sync_plan


def test_compare_entries():
    p = {'a': ['secret', '1'], 'b': ['secret', '2'], 'c': ['trusted', '3'], 'd': ['secret', '4'], 'f': ['secret', '6']}
    r = {'a': ['secret', '1'], 'b': ['secret', 'x'], 'c': ['trusted', 'y'], 'e': ['secret', '5'], 'f': ['trusted', '6x']}
    # A secret key against a certificate differs for certain; two certificates whose bytes differ are
    # not compared by content (_keystore.same_key), so they are looked at again and reported as such.
    assert _sync_plan.compare_entries(p, r) == (['d'], ['e'], ['f'], ['b', 'c'])


def test_key_verdicts_tell_different_from_not_comparable():
    p = {'b': ['secret', '2'], 'c': ['trusted', '3'], 'g': ['secret', '7']}
    r = {'b': ['secret', 'x'], 'c': ['trusted', 'y'], 'g': ['secret', 'z']}
    different, not_comparable = _sync_plan.key_verdicts(['b', 'c', 'g'], p, r, {'b': 'fp1', 'c': None, 'g': 'fp7'},
                                                        {'b': 'fp2', 'c': None, 'g': 'fp7'})
    assert different == ['b']
    assert [item.split(' ')[0] for item in not_comparable] == ['c']


def test_plan_statuses():
    def inv(**files):
        return {'files': {n: {'path': '/r/' + n, 'exists': sha is not None, 'sha256': sha, 'digest': None}
                          for n, sha in files.items()}}
    primary = inv(keystore='k2', keygroups='g2', drivetable='d1')
    redundant = inv(keystore='k1', keygroups='g1', drivetable='d1')
    redundant['state'] = {'version': 1, 'files': {'keygroups': {'path': '/r/keygroups', 'sha256': 'g1'}}}
    decision = _sync_plan.plan(primary, redundant, False, {'added': ['x'], 'extra': [], 'different': []})
    assert {n: d['status'] for n, d in decision['drift'].items()} == {
        'keystore': 'primary_changed', 'keygroups': 'primary_changed', 'drivetable': 'same'}
    assert decision['travel'] == ['keystore', 'keygroups'] and decision['conflicts'] == []
    redundant['state']['files']['keygroups']['path'] = '/elsewhere'
    decision = _sync_plan.plan(primary, redundant, False, {'added': [], 'extra': [], 'different': []})
    assert decision['drift']['keygroups']['status'] == 'untracked_difference'
    assert decision['travel'] == ['keystore']
