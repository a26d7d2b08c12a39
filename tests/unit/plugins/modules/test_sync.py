# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The sync module's own surface: argument handling, no_log, file attributes, phases through main()."""
from __future__ import annotations

import base64
import json
import os
import stat

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files, _jceks, _sync
from ansible_collections.tapecrypt.ekm.plugins.modules import sync as sync_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import run_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.keystores import write_keystore

PW = 'changeit-store'


def make_keystore(path, count, password=PW):
    return write_keystore(path, range(1, count + 1), password).data


def args(directory, **kw):
    base = dict(primary='ekm1', keystore_path=str(directory / 'EKMKeys.jck'), keygroups_path=str(directory / 'KeyGroups.xml'),
                password=PW)
    base.update(kw)
    if '_sync' in kw:
        # As the action plugin sends a phase: beside the options, with ansible-core's ignore_unknown_opts.
        base['_ansible_ignore_unknown_opts'] = True
    return base


def test_the_module_alone_fails_and_points_at_the_action_plugin(tmp_path):
    res = run_module(sync_module.main, args(tmp_path), expect_fail=True)
    assert 'action plugin' in res['msg'] and 'Nothing was changed' in res['msg']


def test_the_phase_request_is_no_option_of_the_module(tmp_path):
    make_keystore(tmp_path / 'EKMKeys.jck', 1)
    assert '_sync' not in _sync.ARGUMENT_SPEC and '  _sync:' not in sync_module.DOCUMENTATION
    phase = {'phase': 'inventory', 'side': 'redundant'}
    # Sent as an option (without the action plugin's ignore_unknown_opts), the module refuses it as unknown.
    res = run_module(sync_module.main, dict(args(tmp_path), _sync=phase), check_mode=True, expect_fail=True)
    assert 'Unsupported parameters' in res['msg'] and '_sync' in res['msg']
    # Sent as the action plugin sends it, the phase runs.
    res = run_module(sync_module.main, args(tmp_path, _sync=phase), check_mode=True)
    assert res['files']['keystore']['exists'] is True


def test_inventory_phase_reports_hashes_and_no_password(tmp_path):
    data = make_keystore(tmp_path / 'EKMKeys.jck', 3)
    (tmp_path / 'KeyGroups.xml').write_bytes(b'<g/>')
    res = run_module(sync_module.main, args(tmp_path, _sync={'phase': 'inventory', 'side': 'redundant'}), check_mode=True)
    assert res['changed'] is False
    ks = res['files']['keystore']
    assert ks['exists'] is True and ks['count'] == 3 and ks['sha256'] == _files.sha256_bytes(data)
    assert res['files']['keygroups']['sha256'] == _files.sha256_bytes(b'<g/>')
    assert 'drivetable' not in res['files']
    assert res['state'] is None
    assert PW not in json.dumps(res)


def test_wrong_password_fails_through_main(tmp_path):
    make_keystore(tmp_path / 'EKMKeys.jck', 1)
    before = (tmp_path / 'EKMKeys.jck').read_bytes()
    res = run_module(sync_module.main, args(tmp_path, password='wrong-one', _sync={'phase': 'inventory', 'side': 'primary'}),
                     expect_fail=True)
    assert 'never copied' in res['msg'] and 'wrong-one' not in json.dumps(res)
    assert (tmp_path / 'EKMKeys.jck').read_bytes() == before


def test_export_phase_returns_the_bytes_it_was_asked_for(tmp_path):
    data = make_keystore(tmp_path / 'EKMKeys.jck', 2)
    res = run_module(sync_module.main, args(tmp_path, _sync={'phase': 'export', 'side': 'primary',
                                                             'expect': {'keystore': _files.sha256_bytes(data)}}))
    assert base64.b64decode(res['content']['keystore']) == data
    res = run_module(sync_module.main, args(tmp_path, _sync={'phase': 'export', 'side': 'primary',
                                                             'expect': {'keystore': '0' * 64}}), expect_fail=True)
    assert 'changed while the sync was running' in res['msg']


def test_a_read_only_phase_says_that_nothing_was_changed(tmp_path):
    """The message is complete where it is made: the controller never rewords it."""
    make_keystore(tmp_path / 'EKMKeys.jck', 1)
    (tmp_path / 'KeyGroups.xml').mkdir()  # unreadable as a file
    res = run_module(sync_module.main, args(tmp_path, _sync={'phase': 'inventory', 'side': 'primary'}), expect_fail=True)
    assert str(tmp_path / 'KeyGroups.xml') in res['msg'] and res['msg'].endswith('Nothing was changed.')
    res = run_module(sync_module.main, args(tmp_path, _sync={'phase': 'inventory', 'side': 'redundant'}), check_mode=True,
                     expect_fail=True)
    assert res['msg'].endswith('Nothing was changed.')


def _install_args(primary_dir, redundant_dir, **kw):
    """Install the primary's keystore and KeyGroups.xml on an empty redundant (what the action plugin sends)."""
    ks = (primary_dir / 'EKMKeys.jck').read_bytes()
    kg = (primary_dir / 'KeyGroups.xml').read_bytes()
    digest = _sync._keystore.digest(_jceks.load(ks, PW))
    phase = {'phase': 'install', 'side': 'redundant',
             'sources': {'keystore': str(primary_dir / 'EKMKeys.jck'), 'keygroups': str(primary_dir / 'KeyGroups.xml')},
             'expect': {'keystore': _files.sha256_bytes(ks), 'keygroups': _files.sha256_bytes(kg)},
             'current': {'keystore': None, 'keygroups': None}, 'primary_digest': digest, 'write_state': True,
             'state': {'version': 1, 'primary': 'ekm1', 'keystore_digest': digest,
                       'files': {'keystore': {'path': str(redundant_dir / 'EKMKeys.jck'), 'sha256': _files.sha256_bytes(ks)}}}}
    return args(redundant_dir, _sync=phase, **kw)


def test_install_applies_file_attributes_to_the_staged_files(tmp_path):
    primary, redundant = tmp_path / 'p', tmp_path / 'r'
    primary.mkdir()
    redundant.mkdir()
    make_keystore(primary / 'EKMKeys.jck', 2)
    (primary / 'KeyGroups.xml').write_bytes(b'<g/>')
    res = run_module(sync_module.main, _install_args(primary, redundant, mode='0640'))
    assert res['changed_files'] == [str(redundant / 'EKMKeys.jck'), str(redundant / 'KeyGroups.xml')]
    assert res['attributes_changed'] is False  # already right when renamed into place
    for name in ('EKMKeys.jck', 'KeyGroups.xml'):
        assert stat.S_IMODE(os.stat(redundant / name).st_mode) == 0o640
        assert (redundant / name).read_bytes() == (primary / name).read_bytes()
    assert json.loads((redundant / '.tapecrypt-sync.json').read_text())['primary'] == 'ekm1'


def test_attributes_alone_in_check_mode_and_for_real(tmp_path):
    make_keystore(tmp_path / 'EKMKeys.jck', 1)
    os.chmod(tmp_path / 'EKMKeys.jck', 0o600)
    phase = {'phase': 'install', 'side': 'redundant'}
    res = run_module(sync_module.main, args(tmp_path, mode='0644', _sync=phase), check_mode=True)
    assert res['changed'] is False and res['attributes_changed'] is True
    assert stat.S_IMODE(os.stat(tmp_path / 'EKMKeys.jck').st_mode) == 0o600


def test_install_without_attributes_keeps_the_old_files_mode(tmp_path):
    primary, redundant = tmp_path / 'p', tmp_path / 'r'
    primary.mkdir()
    redundant.mkdir()
    make_keystore(primary / 'EKMKeys.jck', 2)
    (primary / 'KeyGroups.xml').write_bytes(b'<g/>')
    (redundant / 'KeyGroups.xml').write_bytes(b'<old/>')
    os.chmod(redundant / 'KeyGroups.xml', 0o644)
    install = _install_args(primary, redundant)
    install['_sync']['current']['keygroups'] = _files.sha256_bytes(b'<old/>')
    res = run_module(sync_module.main, install)
    assert stat.S_IMODE(os.stat(redundant / 'KeyGroups.xml').st_mode) == 0o644
    assert stat.S_IMODE(os.stat(redundant / 'EKMKeys.jck').st_mode) == 0o600
    assert len(res['backup_files']) == 1 and open(res['backup_files'][0], 'rb').read() == b'<old/>'
