# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Regression test of issue 8 §6 (failed at 9bebfc6): the symmetric_key_set filter's error echoed the seed, password included.

In its own folder: ansible-test runs module tests without the controller's packages.
"""
from __future__ import annotations

import json

import pytest

from ansible_collections.tapecrypt.ekm.plugins.filter.seed import symmetric_key_set


# --- §6: the symmetric_key_set filter's error -----------------------------------------------------------------------


def test_the_symmetric_key_set_error_does_not_echo_the_seed():
    seed = {'keystore_password': 'Very-Secret-Seed-PW', 'key_range': [{'prefix': 'DCA', 'first': 1, 'count': 2}]}
    with pytest.raises(Exception) as info:
        symmetric_key_set(seed)
    assert 'Very-Secret-Seed-PW' not in str(info.value)
    assert 'key_ranges' in str(info.value)
    with pytest.raises(Exception) as info:
        symmetric_key_set(json.dumps(seed).encode())
    assert 'Very-Secret-Seed-PW' not in str(info.value)
