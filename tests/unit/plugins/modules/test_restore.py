# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import datetime
import json
import os
import re
import stat

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _backup, _jceks
from ansible_collections.tapecrypt.ekm.plugins.modules import restore as restore_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import run_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.keystores import write_keystore

PW = 'changeit-restore'
ROLE_OPTIONS = {'keystore': 'keystore_path', 'config': 'config_path', 'keygroups': 'keygroups_path',
                'drivetable': 'drivetable_path'}


def make_keystore(path, first, last, password=PW, keys=None):
    write_keystore(path, range(first, last + 1), password, keys)


def unseal_all(path, password=PW):
    with open(path, 'rb') as f:
        ks = _jceks.load(f.read(), password)
    return {e.alias: _jceks.unseal(e, password)[1] for e in ks.entries}


class Server:
    """An EKM home with its four files, and a backup destination beside it."""

    def __init__(self, root):
        self.home = root / 'ekm'
        (self.home / 'keystore').mkdir(parents=True)
        self.dest = root / 'backup'
        self.dest.mkdir()
        self.paths = {
            'keystore': str(self.home / 'keystore' / 'EKMKeys.jck'),
            'config': str(self.home / 'KeyManagerConfig.properties'),
            'keygroups': str(self.home / 'KeyGroups.xml'),
            'drivetable': str(self.home / 'filedrive.table'),
        }
        self._tick = datetime.datetime(2026, 1, 31, 12, 0, 0, tzinfo=datetime.timezone.utc)

    def write(self, role, data):
        with open(self.paths[role], 'wb') as f:
            f.write(data)

    def backup(self):
        self._tick += datetime.timedelta(seconds=1)
        return _backup.backup(self.paths, PW, str(self.dest), 'dc1', 'ekm1', now=lambda: self._tick)['set_path']

    def args(self, **kw):
        base = {ROLE_OPTIONS[role]: path for role, path in self.paths.items()}
        base.update(dest=str(self.dest), site='dc1', host='ekm1', password=PW)
        base.update(kw)
        return {k: v for k, v in base.items() if v is not None}

    def state(self):
        """Every file in the EKM home with its bytes and mode: what must not change on a refusal."""
        found = {}
        for root, _dirs, files in os.walk(str(self.home)):
            for name in files:
                path = os.path.join(root, name)
                with open(path, 'rb') as f:
                    found[path] = (f.read(), stat.S_IMODE(os.stat(path).st_mode))
        return found


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    make_keystore(s.paths['keystore'], 1, 3)
    s.write('config', b'TransportListener.tcp.port=3801\n')
    s.write('keygroups', b'<keyGroups last="dca000000000000000001"/>\n')
    s.write('drivetable', b'\x00\x01drive-1\n')
    return s


def restore(server, check_mode=False, diff=False, expect_fail=False, **kw):
    return run_module(restore_module.main, server.args(**kw), check_mode=check_mode, diff=diff, expect_fail=expect_fail)


# --- the normal path --------------------------------------------------------------------------------------------


def test_check_apply_idempotent_check_idempotent_apply(server):
    set_path = server.backup()
    saved = server.state()
    keys = unseal_all(server.paths['keystore'])
    # EKM has moved on: a new last-used key, a new drive; and the config got damaged.
    server.write('keygroups', b'<keyGroups last="dca000000000000000002"/>\n')
    server.write('config', b'garbage')
    changed = server.state()

    res = restore(server, check_mode=True, diff=True)
    assert res['changed'] is True and res['set_path'] == set_path
    assert res['would_change'] == {'EKMKeys.jck': False, 'KeyManagerConfig.properties': True, 'KeyGroups.xml': True,
                                   'filedrive.table': False}
    assert res['changed_files'] == [server.paths['config'], server.paths['keygroups']]
    assert res['aliases_lost'] == [] and res['aliases_replaced'] == [] and res['backup_files'] == {}
    assert server.state() == changed

    res = restore(server, diff=True)
    assert res['changed'] is True
    assert sorted(res['backup_files']) == ['KeyGroups.xml', 'KeyManagerConfig.properties']
    with open(res['backup_files']['KeyManagerConfig.properties'], 'rb') as f:
        assert f.read() == b'garbage'
    for path, (data, mode) in saved.items():
        with open(path, 'rb') as f:
            assert f.read() == data, path
        assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert unseal_all(server.paths['keystore']) == keys
    assert 'hmac' not in res['manifest'] and res['manifest']['keystore']['count'] == 3

    after = server.state()
    res = restore(server, check_mode=True)
    assert res['changed'] is False and not any(res['would_change'].values())
    res = restore(server)
    assert res['changed'] is False and res['backup_files'] == {}
    assert server.state() == after


def test_disaster_recovery_into_an_empty_home(server):
    set_path = server.backup()
    saved = {role: open(path, 'rb').read() for role, path in server.paths.items()}
    keys = unseal_all(server.paths['keystore'])
    for path in server.paths.values():
        os.unlink(path)
    res = restore(server, source=set_path, dest=None, site='dc1', host='ekm1')
    assert res['changed'] is True and res['backup_files'] == {} and res['aliases_gained'] == []
    for role, path in server.paths.items():
        with open(path, 'rb') as f:
            assert f.read() == saved[role]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert unseal_all(server.paths['keystore']) == keys
    assert not [n for n in os.listdir(str(server.home)) if n.startswith('.')]


def test_a_chosen_set_and_the_latest_set(server):
    older = server.backup()
    make_keystore(server.paths['keystore'], 1, 5)
    newer = server.backup()
    assert restore(server, check_mode=True)['set_path'] == newer
    # The older set lacks two keys that the server holds now.
    res = restore(server, set=os.path.basename(older), expect_fail=True)
    assert res['set_path'] == older and res['aliases_lost'] == ['DCA004-005']


def test_the_diff_shows_names_hashes_and_ranges_never_keys(server):
    set_path = server.backup()
    keys = unseal_all(server.paths['keystore'])
    make_keystore(server.paths['keystore'], 1, 2, keys=keys)
    with open(server.paths['keystore'], 'rb') as f:
        current = _jceks.load(f.read(), PW)
    res = restore(server, check_mode=True, diff=True)
    assert res['aliases_gained'] == ['dca000000000000000003'] and res['aliases_replaced'] == []
    with open(os.path.join(set_path, 'MANIFEST.json')) as f:
        manifest = json.load(f)
    assert res['diff']['after_header'] == set_path
    assert 'EKMKeys.jck: %s' % manifest['files']['EKMKeys.jck']['sha256'] in res['diff']['after']
    assert 'keys: 3\n  DCA001-003\n' in res['diff']['after']
    assert 'keys: 2\n  DCA001-002\n' in res['diff']['before']
    secrets = [_jceks.unseal(e, PW)[1] for e in current.entries] + list(keys.values())
    text = json.dumps(res)
    for key in secrets:
        assert key.hex() not in text.lower()


def test_file_attributes_apply_to_every_restored_file(server):
    server.backup()
    server.write('config', b'changed')
    res = restore(server, mode='0640')
    assert res['changed'] is True
    for path in server.paths.values():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert restore(server, mode='0640')['changed'] is False


def test_files_without_a_target_are_skipped_and_files_absent_in_the_set_are_left(server):
    os.unlink(server.paths['drivetable'])
    set_path = server.backup()
    server.write('drivetable', b'a drive table EKM wrote after the backup')
    server.write('config', b'changed')
    res = restore(server, config_path=None)
    assert res['not_restored'] == ['KeyManagerConfig.properties'] and 'skipped' not in res
    assert res['not_in_set'] == [server.paths['drivetable']]
    assert res['changed'] is False and res['set_path'] == set_path
    with open(server.paths['drivetable'], 'rb') as f:
        assert f.read() == b'a drive table EKM wrote after the backup'
    with open(server.paths['config'], 'rb') as f:
        assert f.read() == b'changed'


# --- refusals: a clear message and the server's files untouched ------------------------------------------------


def damage_set(set_path, how):
    manifest_path = os.path.join(set_path, 'MANIFEST.json')
    if how == 'missing file':
        os.unlink(os.path.join(set_path, 'filedrive.table'))
    elif how == 'changed byte':
        path = os.path.join(set_path, 'KeyGroups.xml')
        with open(path, 'r+b') as f:
            f.seek(3)
            f.write(b'K')
    elif how == 'missing manifest':
        os.unlink(manifest_path)
    elif how == 'altered manifest':
        with open(manifest_path) as f:
            manifest = json.load(f)
        # A consistent forgery: the config swapped and its hash in the manifest updated to match.
        with open(os.path.join(set_path, 'KeyManagerConfig.properties'), 'wb') as f:
            f.write(b'sync.ipaddress=attacker:443\n')
        info = manifest['files']['KeyManagerConfig.properties']
        info['sha256'] = _backup._files.sha256_bytes(b'sync.ipaddress=attacker:443\n')
        info['size'] = len(b'sync.ipaddress=attacker:443\n')
        with open(manifest_path, 'w') as f:
            json.dump(manifest, f)
    elif how == 'unfinished':
        with open(manifest_path) as f:
            manifest = json.load(f)
        del manifest['verified']
        with open(manifest_path, 'w') as f:
            json.dump(manifest, f)


@pytest.mark.parametrize('how, message', [
    ('missing file', 'filedrive.table is missing'),
    ('changed byte', 'KeyGroups.xml has sha256 [0-9a-f]{64}, the manifest records [0-9a-f]{64}: the copy was altered or damaged'),
    ('missing manifest', 'MANIFEST.json is missing'),
    ('altered manifest', 'the manifest was altered, or it was written with another keystore password'),
    ('unfinished', 'the manifest does not say the set was verified'),
])
def test_a_damaged_set_is_refused_and_nothing_changes(server, how, message):
    set_path = server.backup()
    server.write('keygroups', b'<keyGroups last="dca000000000000000003"/>\n')
    before = server.state()
    damage_set(set_path, how)
    for check_mode in (True, False):
        res = restore(server, source=set_path, dest=None, site='dc1', host='ekm1', check_mode=check_mode, expect_fail=True)
        assert res['msg'].startswith('The backup set %s cannot be used: ' % set_path)
        assert re.search(message, res['msg']), res['msg']
        assert server.state() == before


def test_a_damaged_newest_set_is_not_silently_replaced_by_an_older_one(server):
    server.backup()
    server.write('keygroups', b'<keyGroups last="dca000000000000000002"/>\n')
    newest = server.backup()
    damage_set(newest, 'changed byte')
    before = server.state()
    res = restore(server, expect_fail=True)
    assert 'The backup set %s cannot be used' % newest in res['msg']
    assert server.state() == before


def test_a_wrong_password_is_refused_and_nothing_changes(server):
    set_path = server.backup()
    server.write('config', b'changed')
    before = server.state()
    res = restore(server, password='not-the-password', expect_fail=True)
    assert res['msg'].startswith('The backup set %s cannot be used: its keystore EKMKeys.jck does not open with the '
                                 'given password: The keystore integrity check failed' % set_path)
    assert server.state() == before


def test_a_set_older_than_the_newest_keys_is_refused_naming_them(server):
    set_path = server.backup()
    keys = unseal_all(server.paths['keystore'])
    make_keystore(server.paths['keystore'], 1, 6, keys=keys)
    server.write('config', b'changed')
    before = server.state()
    for check_mode in (True, False):
        res = restore(server, check_mode=check_mode, expect_fail=True)
        assert res['msg'] == ('The backup set %s lacks 3 key(s) that the current keystore holds: DCA004-006. Restoring it '
                              'would lose those keys and every tape written with them, so nothing was changed. Choose a '
                              'newer set, or set allow_key_loss: true if these keys are known to be unused.' % set_path)
        assert res['aliases_lost'] == ['DCA004-006'] and res['would_change']['EKMKeys.jck'] is True
        assert server.state() == before
    res = restore(server, allow_key_loss=True)
    assert res['changed'] is True and res['aliases_lost'] == ['DCA004-006']
    assert sorted(unseal_all(server.paths['keystore'])) == ['dca%018x' % n for n in (1, 2, 3)]
    # The given-up keys survive in the pre-restore copy.
    assert sorted(unseal_all(res['backup_files']['EKMKeys.jck'])) == ['dca%018x' % n for n in range(1, 7)]


def test_resealed_keys_are_the_same_keys_but_a_different_key_is_refused(server):
    server.backup()
    keys = unseal_all(server.paths['keystore'])
    # The same keys sealed again (new salts): byte-different entries, equal keys, so nothing is lost.
    make_keystore(server.paths['keystore'], 1, 3, keys=keys)
    res = restore(server, check_mode=True)
    assert res['changed'] is True and res['aliases_replaced'] == [] and res['aliases_lost'] == []
    # A key regenerated under an existing alias: restoring would replace it.
    other = dict(keys, dca000000000000000002=b'\x11' * 32)
    make_keystore(server.paths['keystore'], 1, 3, keys=other)
    before = server.state()
    res = restore(server, expect_fail=True)
    assert 'holds different keys under 1 alias(es): dca000000000000000002' in res['msg']
    assert res['aliases_replaced'] == ['dca000000000000000002']
    assert server.state() == before


def test_an_unreadable_current_keystore_needs_allow_key_loss(server):
    server.backup()
    server.write('keystore', b'not a keystore at all')
    before = server.state()
    res = restore(server, expect_fail=True)
    assert res['msg'].startswith('The current keystore %s cannot be read as a keystore, so it is unknown which keys the '
                                 'restore would replace. Nothing was changed.' % server.paths['keystore'])
    assert server.state() == before
    res = restore(server, allow_key_loss=True)
    assert res['changed'] is True
    with open(res['backup_files']['EKMKeys.jck'], 'rb') as f:
        assert f.read() == b'not a keystore at all'


def test_no_backups_at_all(server):
    res = restore(server, expect_fail=True)
    assert res['msg'].startswith('There are no backups of dc1/ekm1 in %s' % server.dest)
    os.makedirs(str(server.dest / 'dc1' / 'ekm1' / '20260101T000000Z'))
    res = restore(server, expect_fail=True)
    assert res['msg'] == ('%s holds no verified backup set (20260101T000000Z: MANIFEST.json is missing).'
                          % (server.dest / 'dc1' / 'ekm1'))


def test_option_rules(server):
    res = restore(server, source='/x', expect_fail=True)
    assert 'mutually exclusive' in res['msg']
    res = restore(server, host=None, expect_fail=True)
    assert 'host' in res['msg']
    res = restore(server, set='../../etc', expect_fail=True)
    assert res['msg'].startswith('set must be latest or the name of a set directory')
    server.backup()
    res = restore(server, expect_fail=True, keystore_path=str(server.home / 'missing-dir' / 'EKMKeys.jck'))
    assert res['msg'] == 'The directory of %s does not exist; create it first (owned by the EKM user). Nothing was changed.' \
        % (server.home / 'missing-dir' / 'EKMKeys.jck')


# --- failures while installing -----------------------------------------------------------------------------------


def test_a_failed_rename_puts_back_what_was_installed(server, monkeypatch):
    server.backup()
    server.write('config', b'changed config')
    server.write('keygroups', b'changed keygroups')
    before = {p: open(p, 'rb').read() for p in server.paths.values()}
    calls = []
    real = os.replace

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, 'No space left on device')
        return real(src, dst)
    monkeypatch.setattr(_backup.os, 'replace', flaky)
    res = restore(server, expect_fail=True)
    assert res['msg'] == ('Installing the restored files failed (No space left on device). The files already installed '
                          'were put back; nothing was changed.')
    monkeypatch.undo()
    for path, data in before.items():
        with open(path, 'rb') as f:
            assert f.read() == data, path
    leftovers = [n for n in os.listdir(str(server.home)) if n.endswith('.restore') or n.endswith('.tmp')]
    assert leftovers == []


def test_a_file_changed_after_planning_stops_the_restore(server, monkeypatch):
    server.backup()
    server.write('config', b'changed config')
    real = _backup.plan_restore

    def plan_then_change(*args, **kwargs):
        plan = real(*args, **kwargs)
        server.write('config', b'changed again by someone else')
        return plan
    monkeypatch.setattr(_backup, 'plan_restore', plan_then_change)
    res = restore(server, expect_fail=True)
    assert res['msg'] == ('%s changed while the restore was being prepared; nothing was changed. Run the restore again.'
                          % server.paths['config'])
    with open(server.paths['config'], 'rb') as f:
        assert f.read() == b'changed again by someone else'


class Killed(BaseException):
    """A kill: no ``except Exception`` cleanup runs."""


@pytest.mark.parametrize('kill_at', [1, 2, 3])
def test_a_restore_killed_between_renames_is_completed_by_the_next_run(server, monkeypatch, kill_at):
    """kill_at=1: journal written, nothing renamed; 2 and 3: between renames. Never a mix of old and new files."""
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files
    server.backup()
    saved = server.state()
    server.write('config', b'changed config')
    server.write('keygroups', b'changed keygroups')
    server.write('drivetable', b'changed drive table')
    real = _files._put_in_place
    calls = []

    def killed(source, target):
        calls.append(target)
        if len(calls) == kill_at:
            raise Killed()
        return real(source, target)

    monkeypatch.setattr(_files, '_put_in_place', killed)
    with pytest.raises(Killed):
        restore(server)
    monkeypatch.undo()
    journal = os.path.join(os.path.dirname(server.paths['keystore']), '.tapecrypt-restore.journal')
    assert os.path.exists(journal)

    res = restore(server, check_mode=True)
    assert res['interrupted']['files'] and os.path.exists(journal)
    res = restore(server)
    assert res['recovered']['action'] == 'completed' and res['changed'] is True
    assert not os.path.exists(journal)
    current = server.state()
    for path, (data, _mode) in saved.items():
        assert current[path][0] == data, path
    assert not [p for p in current if os.path.basename(p).startswith('.tapecrypt-')]
    assert restore(server)['changed'] is False


def test_owner_and_mode_are_set_before_the_files_are_renamed(server, monkeypatch):
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files
    server.backup()
    server.write('config', b'changed config')
    seen = []
    real = _files._put_in_place

    def watch(source, target):
        seen.append((os.path.basename(target), stat.S_IMODE(os.stat(source).st_mode)))
        return real(source, target)

    monkeypatch.setattr(_files, '_put_in_place', watch)
    res = restore(server, mode='0640')
    assert res['changed'] is True
    assert seen == [('KeyManagerConfig.properties', 0o640)]


def test_a_restore_leaves_ekm_temporary_files_alone_and_removes_its_own(server):
    server.backup()
    home = os.path.dirname(server.paths['config'])
    ekm_own = os.path.join(home, '.KeyGroups.xml.4711.tmp')
    ours = os.path.join(home, '.tapecrypt-0123456789ab.KeyGroups.xml.tmp')
    for path in (ekm_own, ours):
        with open(path, 'wb') as f:
            f.write(b'x')
    res = restore(server)
    assert res['removed_stray_files'] == [ours]
    assert os.path.exists(ekm_own)


def test_copies_of_restored_files_are_bounded_but_the_key_losing_copy_stays(server):
    server.backup()
    keys = unseal_all(server.paths['keystore'])
    make_keystore(server.paths['keystore'], 1, 5, keys=keys)
    old_config = []
    for n in range(4):
        old_config.append('%s.2026010%dT000000000000Z.bak' % (server.paths['config'], n + 1))
        with open(old_config[-1], 'wb') as f:
            f.write(b'old %d' % n)
    old_keystore = '%s.20260101T000000000000Z.bak' % server.paths['keystore']
    with open(old_keystore, 'wb') as f, open(server.paths['keystore'], 'rb') as current:
        f.write(current.read())
    server.write('config', b'changed')
    res = restore(server, allow_key_loss=True, keep_copies=2)
    # The config copy this restore made, and the newest old one, stay; the keystore copies all stay.
    assert sorted(res['removed_copies']) == sorted(old_config[:3])
    assert os.path.exists(res['backup_files']['KeyManagerConfig.properties']) and os.path.exists(old_config[3])
    assert os.path.exists(old_keystore) and os.path.exists(res['backup_files']['EKMKeys.jck'])
    assert sorted(unseal_all(res['backup_files']['EKMKeys.jck'])) == ['dca%018x' % n for n in range(1, 6)]


# --- the key-usage ledger ---------------------------------------------------------------------------------------


def test_a_rebuilt_server_refuses_a_set_lacking_an_alias_cartridges_need(server):
    set_path = server.backup()                     # keys 1-3
    for path in server.paths.values():
        os.unlink(path)                            # a rebuilt host: no keystore, so only the ledger can object
    needed = ['DCA000000000000000002', 'dca000000000000000007', 'dca000000000000000009']
    res = restore(server, expect_fail=True, ledger_aliases=needed)
    assert res['msg'].startswith(f'The backup set {set_path} lacks 2 key alias(es) that cartridges need, according to the '
                                 'key-usage ledger: dca000000000000000007, dca000000000000000009.')
    assert 'allow_cartridge_key_loss' in res['msg'] and res['ledger_aliases_missing'] == needed[1:]
    assert not os.listdir(str(server.home / 'keystore')), 'nothing was restored'
    assert restore(server, expect_fail=True, ledger_aliases=needed, allow_key_loss=True)['ledger_aliases_missing'], \
        'allow_key_loss is not the override for cartridge keys'

    res = restore(server, ledger_aliases=needed, allow_cartridge_key_loss=True)
    assert res['changed'] is True and res['ledger_aliases_missing'] == needed[1:]
    assert os.path.exists(server.paths['keystore'])


def test_a_set_holding_every_alias_the_ledger_names_restores(server):
    server.backup()
    os.unlink(server.paths['keystore'])
    res = restore(server, ledger_aliases=['dca000000000000000001', 'dca000000000000000003'])
    assert res['changed'] is True and res['ledger_aliases_missing'] == []
