# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.tapecrypt.ekm.plugins.filter.verify_report import FilterModule, verify_report

KS = {'keystore': {'exists': True, 'count': 3, 'digest': 'cd' * 32}}


def test_the_filter_adds_the_table_and_the_page():
    assert FilterModule().filters()['verify_report'] is verify_report
    report = verify_report({'ekm1': {'keystore': KS}, 'ekm2': {'keystore': KS, 'sync': {'in_sync': True, 'drift': {}}}},
                           'ekm1', ['ekm2'], site_problems=['INVENTORY: two primaries'])
    assert report['ok'] is False and report['problems'] == ['INVENTORY: two primaries']
    assert report['table'][0].startswith('server') and len(report['table']) == 3
    assert report['html'].startswith('<!DOCTYPE html>')


def test_bad_input_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match='expects a dictionary'):
        verify_report(['ekm1'], 'ekm1')
    with pytest.raises(AnsibleFilterError, match='could not read its input'):
        verify_report({'ekm1': {'keystore': KS}}, 'ekm1', backup_max_age_hours='soon')
