# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import glob
import json
import os
import re
import stat

import pytest

from ansible.module_utils import basic
from ansible_collections.tapecrypt.ekm.plugins.modules import config
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import patch_module_args

SECRET = 'Hunter2-store-pw'
OLD_SECRET = 'old-Secret-pw'
ORIGINAL = (
    b'# EKM server configuration\r\n'
    b'TransportListener.tcp.port = 3801\r\n'
    b'config.keystore.password=' + OLD_SECRET.encode() + b'\r\n'
    b'Audit.handler.file.size=2000\r\n'
)


@pytest.fixture(autouse=True)
def module_log(monkeypatch):
    """Capture what AnsibleModule would send to syslog/journald instead of sending it."""
    messages = []
    monkeypatch.setattr(basic.AnsibleModule, 'log', lambda self, msg, log_args=None: messages.append(msg))
    return messages


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / 'KeyManagerConfig.properties'
    path.write_bytes(ORIGINAL)
    os.chmod(path, 0o640)
    return path


def run(capsys, check_mode=False, diff=False, **args):
    """Run the module's main() with the real exit_json/fail_json; return (result, raw JSON output)."""
    if check_mode:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit) as done:
            config.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    assert (done.value.code != 0) == bool(result.get('failed')), out
    return result, out


def test_creates_a_missing_file_0600(tmp_path, capsys):
    path = tmp_path / 'new.properties'
    result, _out = run(capsys, path=str(path), settings={'TransportListener.tcp.port': 3801, 'fips': False,
                                                         'config.keystore.type': 'jceks'})
    assert result['changed'] is True
    assert result['changed_keys'] == ['TransportListener.tcp.port', 'fips', 'config.keystore.type']
    assert path.read_bytes() == b'TransportListener.tcp.port=3801\nfips=false\nconfig.keystore.type=jceks\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_create_false_fails_naming_the_path(tmp_path, capsys):
    path = tmp_path / 'missing.properties'
    result, _out = run(capsys, path=str(path), create=False, settings={'a': '1'})
    assert result['failed'] is True
    assert result['msg'] == '%s does not exist, and create=false.' % path
    assert not path.exists()


def test_changes_one_value_and_keeps_the_rest(conf, capsys):
    result, _out = run(capsys, path=str(conf), settings={'TransportListener.tcp.port': 3802, 'Audit.handler.file.size': '2000'})
    assert result['changed'] is True
    assert result['changed_keys'] == ['TransportListener.tcp.port']
    assert conf.read_bytes() == ORIGINAL.replace(b'= 3801', b'= 3802')
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o640
    assert 'backup_file' not in result


def test_second_run_is_idempotent(conf, capsys):
    settings = {'TransportListener.tcp.port': 3802, 'drive.acceptUnknownDrives': False}
    run(capsys, path=str(conf), settings=settings)
    written = conf.read_bytes()
    mtime = os.stat(conf).st_mtime_ns
    result, _out = run(capsys, path=str(conf), settings=settings)
    assert result['changed'] is False and result['changed_keys'] == []
    assert conf.read_bytes() == written
    assert os.stat(conf).st_mtime_ns == mtime


def test_check_mode_reports_and_writes_nothing(conf, tmp_path, capsys):
    result, _out = run(capsys, check_mode=True, path=str(conf), settings={'sync.timeinhours': 24}, backup=True)
    assert result['changed'] is True and result['changed_keys'] == ['sync.timeinhours']
    assert conf.read_bytes() == ORIGINAL
    assert 'backup_file' not in result
    missing = tmp_path / 'missing.properties'
    result, _out = run(capsys, check_mode=True, path=str(missing), settings={'a': 1})
    assert result['changed'] is True
    assert not missing.exists()
    result, _out = run(capsys, check_mode=True, path=str(conf), settings={'Audit.handler.file.size': 2000})
    assert result['changed'] is False


def test_mode_is_changed_only_when_given(conf, capsys):
    result, _out = run(capsys, path=str(conf), settings={'Audit.handler.file.size': 2000}, mode='0600')
    assert result['changed'] is True and result['changed_keys'] == []
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600
    assert conf.read_bytes() == ORIGINAL


def test_diff_masks_secret_values_everywhere(conf, capsys, module_log):
    result, out = run(capsys, diff=True, path=str(conf),
                      settings={'config.keystore.password': SECRET, 'TransportListener.tcp.port': '3802'})
    assert result['changed'] is True
    assert result['changed_keys'] == ['config.keystore.password', 'TransportListener.tcp.port']
    before, after = result['diff']['before'], result['diff']['after']
    assert 'config.keystore.password=********\r\n' in before and 'config.keystore.password=********\r\n' in after
    assert 'TransportListener.tcp.port = 3801' in before and 'TransportListener.tcp.port = 3802' in after
    # Neither the new nor the old secret shows anywhere: result, diff, invocation or the syslog message.
    for text in [out] + module_log:
        assert SECRET not in text and OLD_SECRET not in text
    assert module_log and 'config.keystore.password' in module_log[0]
    assert SECRET.encode() in conf.read_bytes()


def test_state_absent_removes_keys(conf, capsys):
    result, _out = run(capsys, path=str(conf), state='absent',
                       settings={'config.keystore.password': None, 'not.there': None})
    assert result['changed'] is True and result['changed_keys'] == ['config.keystore.password']
    assert conf.read_bytes() == ORIGINAL.replace(b'config.keystore.password=' + OLD_SECRET.encode() + b'\r\n', b'')
    again, _out = run(capsys, path=str(conf), state='absent', settings={'config.keystore.password': None})
    assert again['changed'] is False


def test_state_absent_on_a_missing_file_creates_nothing(tmp_path, capsys):
    path = tmp_path / 'missing.properties'
    result, _out = run(capsys, path=str(path), state='absent', settings={'a': None})
    assert result['changed'] is False
    assert not path.exists()


def test_backup_keeps_the_previous_file(conf, capsys):
    result, _out = run(capsys, path=str(conf), backup=True, settings={'TransportListener.tcp.port': 3802})
    assert result['changed'] is True
    backup = result['backup_file']
    assert os.path.dirname(backup) == str(conf.parent) and os.path.basename(backup).startswith(conf.name + '.')
    with open(backup, 'rb') as handle:
        assert handle.read() == ORIGINAL
    # The project's own copy, not Ansible's generic one: private and named <file>.<UTC time>.bak.
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert re.fullmatch(re.escape(conf.name) + r'\.\d{8}T\d{12}Z\.bak', os.path.basename(backup))
    again, _out = run(capsys, path=str(conf), backup=True, settings={'TransportListener.tcp.port': 3802})
    assert 'backup_file' not in again
    assert len(glob.glob(str(conf) + '.*')) == 1


def test_backup_copies_are_bounded(conf, capsys):
    legacy = str(conf) + '.4242.2025-12-31@23:59:59~'
    with open(legacy, 'wb') as handle:
        handle.write(ORIGINAL)
    made = []
    for port in range(3802, 3806):
        result, _out = run(capsys, path=str(conf), backup=True, keep_copies=2, settings={'TransportListener.tcp.port': port})
        made.append(result['backup_file'])
    # Each change keeps the newest two copies; the legacy copy goes first, then the oldest new ones.
    assert sorted(glob.glob(str(conf) + '.*')) == sorted(made[-2:])
    assert result['removed_copies'] == [made[1]]
    result, _out = run(capsys, path=str(conf), backup=True, keep_copies=0, settings={'TransportListener.tcp.port': 3809})
    assert result['failed'] is True and 'keep_copies must be at least 1' in result['msg']


def test_malformed_file_fails_and_stays_untouched(conf, capsys):
    bad = ORIGINAL + b'broken=\\u12G4\r\n'
    conf.write_bytes(bad)
    result, _out = run(capsys, path=str(conf), settings={'TransportListener.tcp.port': 3802})
    assert result['failed'] is True
    assert result['msg'] == "%s: line 5: malformed \\uXXXX escape in the value of 'broken'; Java cannot load this file." % conf
    assert conf.read_bytes() == bad


def test_duplicate_key_is_refused_and_file_stays_untouched(conf, capsys):
    data = ORIGINAL + b'TransportListener.tcp.port=3801\r\n'
    conf.write_bytes(data)
    result, _out = run(capsys, path=str(conf), settings={'Audit.handler.file.size': 4000, 'TransportListener.tcp.port': 3802})
    assert result['failed'] is True
    assert result['msg'] == ("%s: cannot change 'TransportListener.tcp.port': it is defined on lines 2 and 5; "
                             "remove the duplicate first." % conf)
    assert conf.read_bytes() == data


def test_a_directory_is_refused(tmp_path, capsys):
    result, _out = run(capsys, path=str(tmp_path), settings={'a': '1'})
    assert result['failed'] is True
    assert result['msg'] == '%s is a directory, not a properties file.' % tmp_path


def test_unreadable_file_fails(tmp_path, capsys):
    # A symlink loop cannot be opened even by root, unlike a file without read permission.
    path = tmp_path / 'loop.properties'
    path.symlink_to(tmp_path / 'other')
    (tmp_path / 'other').symlink_to(path)
    result, _out = run(capsys, path=str(path), settings={'a': '1'})
    assert result['failed'] is True
    assert result['msg'].startswith('Cannot read %s: ' % path)


@pytest.mark.parametrize('value, message', [
    (None, "settings: 'k' has no value; give one, or use state=absent to remove the key."),
    (1.10, "settings: give the value of 'k' as a quoted string; YAML turns numbers such as 1.10 into 1.1."),
    ([1, 2], "settings: the value of 'k' must be a string, a number or a boolean, not a list."),
])
def test_values_yaml_may_have_changed_are_refused(conf, capsys, value, message):
    result, _out = run(capsys, path=str(conf), settings={'k': value})
    assert result['failed'] is True and result['msg'] == message
    assert conf.read_bytes() == ORIGINAL


def test_symlink_is_followed_and_kept(conf, tmp_path, capsys):
    link = tmp_path / 'link.properties'
    link.symlink_to(conf)
    result, _out = run(capsys, path=str(link), settings={'TransportListener.tcp.port': 3802})
    assert result['changed'] is True
    assert link.is_symlink()
    assert b'TransportListener.tcp.port = 3802' in conf.read_bytes()


def test_owner_and_mode_are_set_before_the_rename(conf, capsys, monkeypatch):
    seen = []
    real_replace = os.replace

    def replace(source, target):
        seen.append((os.path.basename(target), stat.S_IMODE(os.stat(source).st_mode)))
        return real_replace(source, target)

    monkeypatch.setattr(os, 'replace', replace)
    result, _out = run(capsys, path=str(conf), mode='0600', settings={'TransportListener.tcp.port': 3802})
    assert result['changed'] is True
    assert seen == [(conf.name, 0o600)]


def test_an_owner_that_cannot_be_set_changes_nothing(conf, capsys):
    result, _out = run(capsys, path=str(conf), owner='no-such-user-here', settings={'TransportListener.tcp.port': 3802})
    assert result['failed'] is True and result['changed'] is False
    assert "no user 'no-such-user-here'" in result['msg']
    assert conf.read_bytes() == ORIGINAL
    assert sorted(os.listdir(str(conf.parent))) == [conf.name]
