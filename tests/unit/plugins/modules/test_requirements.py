# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Modules that need the cryptography library say so with missing_required_lib when it cannot be imported,
and run without it when they do not need it."""
from __future__ import annotations

import sys

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks, _requirements
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore as keystore_module
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore_info as keystore_info_module
from ansible_collections.tapecrypt.ekm.plugins.modules import sync as sync_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import run_module

PW = 'changeit-store'
MISSING = 'Failed to import the required Python library (cryptography)'


def keystore_file(tmp_path, count=2):
    """A keystore made while cryptography is still importable."""
    ks = _jceks.new_keystore()
    for n in range(1, count + 1):
        ks.add(_jceks.seal_secret_key('dca%018x' % n, _jceks.generate_aes_key(), PW, iteration_count=1000))
    path = tmp_path / 'EKMKeys.jck'
    path.write_bytes(_jceks.dump(ks, PW))
    return path


def block_cryptography(monkeypatch):
    """Make every import of cryptography fail, as on a host where it is not installed."""
    for name in [n for n in sys.modules if n == 'cryptography' or n.startswith('cryptography.')]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, 'cryptography', None)
    assert _requirements.cryptography_import_error() is not None


@pytest.fixture
def no_cryptography(monkeypatch):
    block_cryptography(monkeypatch)


def test_the_probe_finds_the_installed_library():
    assert _requirements.cryptography_import_error() is None


def test_keystore_that_would_seal_keys_fails_with_missing_required_lib(tmp_path, no_cryptography):
    path = tmp_path / 'EKMKeys.jck'
    res = run_module(keystore_module.main, dict(path=str(path), password=PW, ranges=['DCA001-004']), expect_fail=True)
    assert res['msg'].startswith(MISSING)
    assert 'to create keys' in res['msg']
    assert 'ImportError' in res['exception'] or 'ModuleNotFoundError' in res['exception']
    assert not path.exists()


def test_keystore_check_mode_reports_the_missing_library_too(tmp_path, no_cryptography):
    res = run_module(keystore_module.main, dict(path=str(tmp_path / 'k.jck'), password=PW, ranges=['DCA001-004']),
                     check_mode=True, expect_fail=True)
    assert res['msg'].startswith(MISSING)


def test_keystore_keytool_backend_needs_it_too_for_its_pkcs12_transfer_file(tmp_path, no_cryptography):
    res = run_module(keystore_module.main, dict(path=str(tmp_path / 'k.jck'), password=PW, ranges=['DCA001-004'],
                                                backend='keytool'), expect_fail=True)
    assert res['msg'].startswith(MISSING)
    assert not (tmp_path / 'k.jck').exists()


def test_keystore_guard_without_generation_needs_no_cryptography(tmp_path):
    path = keystore_file(tmp_path)
    before = path.read_bytes()
    mp = pytest.MonkeyPatch()
    try:
        block_cryptography(mp)
        res = run_module(keystore_module.main, dict(path=str(path), password=PW, ranges=['DCA001-002'], generate=False))
    finally:
        mp.undo()
    assert res['changed'] is False and res['total'] == 2
    assert path.read_bytes() == before


def test_keystore_info_without_cryptography(tmp_path):
    path = keystore_file(tmp_path)
    mp = pytest.MonkeyPatch()
    try:
        block_cryptography(mp)
        listed = run_module(keystore_info_module.main, dict(path=str(path), password=PW))
        failed = run_module(keystore_info_module.main, dict(path=str(path), password=PW, fingerprints=True),
                            expect_fail=True)
    finally:
        mp.undo()
    assert listed['keystore']['count'] == 2
    assert failed['msg'].startswith(MISSING) and 'fingerprints=true' in failed['msg']
    assert PW not in failed['msg']


def test_sync_fingerprint_phase_fails_with_missing_required_lib(tmp_path, no_cryptography):
    res = run_module(sync_module.main, dict(primary='ekm1', keystore_path=str(tmp_path / 'EKMKeys.jck'), password=PW,
                                            _sync={'phase': 'fingerprints', 'role': 'redundant', 'sha256': '0' * 64,
                                                   'aliases': ['dca000000000000000001']},
                                            _ansible_ignore_unknown_opts=True), expect_fail=True)
    assert res['msg'].startswith(MISSING)
