# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import grp
import os
import pwd

import pytest

from ansible_collections.tapecrypt.ekm.plugins.modules import preflight_info
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import run_module


def identities(**paths):
    return {name: info['identity'] for name, info in run_module(preflight_info.main, {'paths': paths})['paths'].items()}


def test_the_same_directory_under_other_spellings_has_one_identity(tmp_path):
    (tmp_path / 'ekm').mkdir()
    os.symlink(str(tmp_path / 'ekm'), str(tmp_path / 'link'))
    found = identities(plain=str(tmp_path / 'ekm'), slash=str(tmp_path / 'ekm') + '/',
                       link=str(tmp_path / 'link'), dotted=str(tmp_path / 'x' / '..' / 'ekm'))
    assert len(set(found.values())) == 1, found
    assert identities(other=str(tmp_path / 'other'))['other'] != found['plain']


def test_files_still_to_be_made_are_identified_by_their_existing_parent(tmp_path):
    # A symbolic link to a directory that does not exist yet leads to the same future files.
    os.symlink(str(tmp_path / 'ekm1'), str(tmp_path / 'alias'))
    result = run_module(preflight_info.main, {'paths': {
        'a': str(tmp_path / 'ekm1' / 'keystore' / 'EKMKeys.jck'),
        'b': str(tmp_path / 'alias' / 'keystore' / 'EKMKeys.jck'),
        'c': str(tmp_path / 'ekm2' / 'keystore' / 'EKMKeys.jck')}})
    files = result['paths']
    assert files['a']['identity'] == files['b']['identity'] != files['c']['identity']
    assert not files['a']['exists'] and files['b']['real_path'] == str(tmp_path / 'ekm1' / 'keystore' / 'EKMKeys.jck')
    st = os.stat(str(tmp_path))
    assert files['a']['identity'] == '%d:%d/ekm1/keystore/EKMKeys.jck' % (st.st_dev, st.st_ino)
    assert result['changed'] is False and result['machine']


def test_directories_are_tried_for_real_and_leave_nothing(tmp_path):
    good = tmp_path / 'good'
    good.mkdir()
    (tmp_path / 'file').write_text('x')
    wanted = [str(good), str(tmp_path / 'missing'), str(tmp_path / 'file')]
    dirs = run_module(preflight_info.main, {'writable_dirs': wanted}, check_mode=True)['directories']
    assert dirs[0] == {'path': str(good), 'writable': True, 'problem': None}
    assert dirs[1]['problem'] == '%s does not exist' % (tmp_path / 'missing') and not dirs[1]['writable']
    assert dirs[2]['problem'] == '%s is not a directory' % (tmp_path / 'file') and not dirs[2]['writable']
    assert os.listdir(str(good)) == []


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into a directory of any mode; the playbook test mounts one read-only')
def test_a_directory_without_write_permission_is_not_writable(tmp_path):
    ro = tmp_path / 'ro'
    ro.mkdir()
    ro.chmod(0o555)
    try:
        dirs = run_module(preflight_info.main, {'writable_dirs': [str(ro)]})['directories']
    finally:
        ro.chmod(0o755)
    assert not dirs[0]['writable'] and 'cannot be written to' in dirs[0]['problem']


def test_accounts_and_groups():
    me = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    result = run_module(preflight_info.main, {'users': [me, 'no-such-user-tapecrypt'],
                                              'groups': [group, 'no-such-group-tapecrypt']})
    assert result['users'] == {me: True, 'no-such-user-tapecrypt': False}
    assert result['groups'] == {group: True, 'no-such-group-tapecrypt': False}


def test_machine_is_the_running_kernel():
    with open('/proc/sys/kernel/random/boot_id', encoding='ascii') as f:
        assert preflight_info.machine_identity() == 'boot:' + f.read().strip()
