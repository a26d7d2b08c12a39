# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Input that is right but was refused: the same key range written in two ways."""
from __future__ import annotations

from ansible_collections.tapecrypt.ekm.plugins.filter.seed import validate_seed
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore as keystore_module
from ansible_collections.tapecrypt.ekm.tests.fault import faults
from ansible_collections.tapecrypt.ekm.tests.fault.faults import FAST, PW

# One range three times: with last, with count, in EKM's symmetricKeySet syntax (DCA001-0C8 is 200 aliases).
SAME = [{'prefix': 'DCA', 'first': 1, 'last': 200}, {'prefix': 'DCA', 'first': 1, 'count': 200}, 'DCA001-0C8']


def test_the_same_range_written_twice_is_one_range(tmp_path, tally):
    """A seed that has ``count: 200`` and an ``ekm_add_key_ranges`` that says ``last: 200`` (add_keys.yml puts both
    in one seed) names 200 keys, made once; a range that really overlaps is still refused and changes nothing."""
    seed = {'site': 'lab', 'keystore_password': PW, 'key_ranges': SAME[:2], 'backup': {'dest': '/srv/ekm-backup'}}
    problems = ['the seed is refused: %s' % e for e in validate_seed(seed)]
    path = tmp_path / 'EKMKeys.jck'
    args = dict(path=str(path), password=PW, iteration_count=FAST, processes=1, ranges=SAME)
    outcome, res = faults.module(keystore_module.main, args)
    made = faults.keystore_aliases(str(path)) or set()
    if outcome != 'ok' or made != {'dca%018x' % n for n in range(1, 201)}:
        problems.append('the keystore module did not make the 200 keys: %s %s' % (outcome, res.get('msg', res)))
    outcome, res = faults.module(keystore_module.main, args)
    if outcome != 'ok' or res.get('changed'):
        problems.append('the second run is not without change: %s %s' % (outcome, res.get('msg', res)))
    before = path.read_bytes() if path.exists() else None
    overlapping = SAME + [{'prefix': 'DCA', 'first': 200, 'count': 2}]
    if not [e for e in validate_seed(dict(seed, key_ranges=SAME[:2] + overlapping[-1:])) if 'overlap' in e]:
        problems.append('the seed with a range that overlaps is accepted')
    outcome, res = faults.module(keystore_module.main, dict(args, ranges=overlapping))
    if outcome != 'failed' or 'overlap' not in res.get('msg', '') or (path.read_bytes() if path.exists() else None) != before:
        problems.append('a range that overlaps is not refused with nothing changed: %s %s' % (outcome, res))
    tally.record('the same range written as last, as count and as EKM text', not problems)
    assert not problems, problems
