# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from ansible_collections.tapecrypt.ekm.plugins.modules import server_info
from ansible_collections.tapecrypt.ekm.plugins.module_utils import _server_info as si

from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import run_module

RECORD = ('<KeyUsageEvent><DriveSSN>D1</DriveSSN><DriveWWN>57574E414D453030</DriveWWN><CreationDate>2026-11-30T10:00:00Z'
          '</CreationDate><KeyAlias1>{alias}</KeyAlias1><KeyAlias2></KeyAlias2><DKi>00</DKi><VolSer>{volser}</VolSer>'
          '</KeyUsageEvent>\n')


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(5)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def site(tmp_path, listener):
    (tmp_path / 'audit').mkdir()
    (tmp_path / 'metadata').mkdir()
    config = tmp_path / 'KeyManagerConfig.properties'
    config.write_text(f'TransportListener.tcp.port={listener}\nconfig.keystore.password=s3cret\n'
                      'drive.acceptUnknownDrives=false\nAudit.handler.file.directory=FILE\\:audit\n'
                      'Audit.handler.file.name=ekm.log\nAudit.metadata.file.name=metadata/m.xml\n')
    (tmp_path / 'audit' / 'ekm.log.5').write_text(
        'runtime:[timestamp=2026-11-30T10:00:00Z message=Server started]\n'
        'data_synchronization:[timestamp=2026-11-30T10:01:00Z message=Error sending data to other EKM\n  action=sync]\n')
    (tmp_path / 'metadata' / 'm.xml').write_text(RECORD.format(alias='dca1', volser='VOL001'))
    return config


@pytest.fixture
def ekm_process(site):
    """A process that carries the configuration file on its command line, as EKM's java command does."""
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', str(site)])
    # Popen can return while the child is still inside exec, its command line empty for a moment.
    deadline = time.monotonic() + 10
    while str(site).encode() not in open(f'/proc/{proc.pid}/cmdline', 'rb').read().split(b'\0'):
        assert time.monotonic() < deadline, 'the child never showed its command line'
        time.sleep(0.01)
    yield proc
    proc.kill()
    proc.wait()


def test_running_server_in_sync_with_records(site, ekm_process, listener):
    result = run_module(server_info.main, {'config_path': str(site), 'expected_settings': {
        'TransportListener.tcp.port': listener, 'drive.acceptUnknownDrives': False, 'config.keystore.password': 's3cret'}})
    assert result['changed'] is False
    assert result['service']['state'] == 'running' and ekm_process.pid in result['service']['pids'], result['service']
    assert result['service']['port'] == {'address': '127.0.0.1', 'port': listener, 'reachable': True, 'error': None}
    assert result['config'] == {'path': str(site), 'exists': True, 'drift': [], 'in_sync': True}
    audit = result['audit']
    assert [r['kind'] for r in audit['records']] == [None, 'sync_failure']
    assert audit['summary']['last_sync_failure'] == '2026-11-30T10:01:00Z' and audit['directory'] == str(site.parent / 'audit')
    assert [(r['volser'], r['key_alias_1']) for r in result['metadata']['records']] == [('VOL001', 'dca1')]

    again = run_module(server_info.main, {'config_path': str(site), 'audit_position': audit['position'],
                                          'metadata_position': result['metadata']['position']}, check_mode=True)
    assert again['audit']['records'] == [] and again['metadata']['records'] == []


def test_no_process_and_closed_port_is_down(site, tmp_path):
    free = socket.socket()
    free.bind(('127.0.0.1', 0))
    port = free.getsockname()[1]
    free.close()
    result = run_module(server_info.main, {'config_path': str(site), 'port': port, 'audit': False, 'metadata': False})
    assert result['service']['state'] == 'down' and 'audit' not in result and 'metadata' not in result
    assert result['service']['reasons'][0] == 'no EKM process runs with this configuration file'
    assert result['service']['reasons'][1].startswith(f'cannot connect to 127.0.0.1:{port}')
    port_only = run_module(server_info.main, {'config_path': str(site), 'check_process': False, 'audit': False, 'metadata': False})
    assert port_only['service']['state'] == 'running', 'the fixture listener answers on the configured port'


def test_drift_names_keys_and_masks_secrets(site):
    result = run_module(server_info.main, {'config_path': str(site), 'check_process': False, 'expected_settings': {
        'TransportListener.tcp.port': 1, 'config.keystore.password': 'other', 'symmetricKeySet': 'DCA001-004',
        'drive.acceptUnknownDrives': False}, 'ignore_settings': ['TransportListener.tcp.port']})
    assert result['config']['drift'] == [
        {'key': 'config.keystore.password', 'status': 'differs', 'expected': '********', 'actual': '********'},
        {'key': 'symmetricKeySet', 'status': 'missing', 'expected': 'DCA001-004', 'actual': None}]
    assert result['config']['in_sync'] is False


def test_deleted_configuration_is_drift_of_every_key_not_a_failure(site):
    site.unlink()
    result = run_module(server_info.main, {'config_path': str(site), 'check_process': False,
                                           'expected_settings': {'TransportListener.tcp.port': 3801}})
    assert result['config']['exists'] is False
    assert result['config']['drift'] == [{'key': 'TransportListener.tcp.port', 'status': 'missing', 'expected': '3801',
                                          'actual': None}]
    assert result['service']['state'] == 'down' and 'TransportListener.tcp.port is not set' in result['service']['reasons'][0]
    assert result['audit']['error'].startswith('no audit directory') and result['metadata']['error'].startswith('no metadata')


def test_unreadable_audit_directory_is_reported_not_fatal(site, tmp_path):
    result = run_module(server_info.main, {'config_path': str(site), 'check_process': False,
                                           'audit_directory': str(tmp_path / 'gone')})
    assert result['audit']['error'].startswith('cannot list audit directory')


def test_stat_paths_report_times_in_order_and_links_as_themselves(site, tmp_path):
    marker = tmp_path / 'ekm.started'
    marker.write_text('')
    os.utime(marker, (1000.5, 1000.5))
    link = tmp_path / 'link'
    link.symlink_to(marker)
    paths = [str(tmp_path / 'gone'), str(marker), str(link), str(site)]
    result = run_module(server_info.main, {'config_path': str(site), 'service': False, 'audit': False, 'metadata': False,
                                           'stat_paths': paths})
    assert [f['path'] for f in result['files']] == paths
    assert result['files'][0] == {'path': paths[0], 'exists': False, 'mtime': None, 'ctime': None}
    assert result['files'][1]['exists'] and result['files'][1]['mtime'] == 1000.5
    assert result['files'][2]['mtime'] == os.lstat(link).st_mtime != 1000.5, 'a symlink is reported as itself'
    assert result['files'][3]['ctime'] == os.stat(site).st_ctime
    assert 'service' not in result and 'files' not in run_module(server_info.main, {'config_path': str(site),
                                                                                    'service': False, 'audit': False,
                                                                                    'metadata': False})


def test_bad_element_table_and_limit_fail(site):
    failed = run_module(server_info.main, {'config_path': str(site), 'metadata_elements': {'colour': 'C'}}, expect_fail=True)
    assert 'unknown metadata fields colour' in failed['msg']
    assert run_module(server_info.main, {'config_path': str(site), 'limit': 0}, expect_fail=True)['msg'] == \
        'limit must be at least 1, not 0'


def test_setting_text_and_resolve():
    assert [si.setting_text(v) for v in (True, False, 3801, 'x')] == ['true', 'false', '3801', 'x']
    assert si.resolve('/opt/ekm/K.properties', 'FILE:audit') == '/opt/ekm/audit'
    assert si.resolve('/opt/ekm/K.properties', 'file:/var/a') == '/var/a' and si.resolve('/x', ' ') is None
