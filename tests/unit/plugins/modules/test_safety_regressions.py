# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Regression tests for the defects that fault and bad-input testing found ("no key is served before it is safe").

One test (or a few) per defect; each failed before the defect was fixed. Module runs that could
hang or read without end (a FIFO, ``/dev/zero``) run in a forked child with a time limit.
"""
from __future__ import annotations

import datetime
import multiprocessing
import os
import pwd
import resource
import stat

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _backup, _jceks
from ansible_collections.tapecrypt.ekm.plugins.modules import config as config_module
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore as keystore_module
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore_info as info_module
from ansible_collections.tapecrypt.ekm.plugins.modules import restore as restore_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import fork_call, run_module

PW = 'Regr3ssion-Store-PW'
FAST = 10


def ks_args(path, **kw):
    base = dict(path=str(path), password=PW, iteration_count=FAST, ranges=[{'prefix': 'DCA', 'first': 1, 'count': 5}])
    base.update(kw)
    return base


def aliases_in(path, password=PW):
    with open(path, 'rb') as f:
        return set(_jceks.load(f.read(), password).aliases())


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def in_child(fn, *args, timeout=20):
    """Run ``fn(*args)`` in a forked child with 2 GiB of address space; ``(kind, value)``, kind 'ok', 'exit' (a
    module's result), 'error', 'killed' (it died without an answer) or 'hung'."""
    kind, value = fork_call(fn, args, prepare=_limit_memory, timeout=timeout)
    if kind == 'exit':
        return kind, value[1]
    return kind, (None if kind == 'killed' else value)


def module_in_child(main, args, **kw):
    def call():
        return run_module(main, args, **kw)
    return in_child(call)


# --- §5: a module never fails silently after writing --------------------------------------------------------------


def _no_such_user():
    for n in range(1000):
        name = 'tcnouser%d' % n
        try:
            pwd.getpwnam(name)
        except KeyError:
            return name
    pytest.skip('no free user name')


def test_an_owner_that_does_not_exist_is_refused_before_any_key_is_written(tmp_path):
    path = tmp_path / 'EKMKeys.jck'
    res = run_module(keystore_module.main, ks_args(path, owner=_no_such_user()), expect_fail=True)
    assert not path.exists(), 'keys were written although the owner cannot be set'
    assert res.get('changed') is not True
    # The next run is not fooled into "nothing to do".
    res = run_module(keystore_module.main, ks_args(path))
    assert res['changed'] is True and res['created'] == ['DCA001-005']


def test_a_failure_after_the_keystore_was_replaced_still_reports_changed_and_created(tmp_path, monkeypatch):
    path = tmp_path / 'EKMKeys.jck'
    real = keystore_module.AnsibleModule.set_fs_attributes_if_different

    def failing(self, file_args, changed, *a, **kw):
        if file_args['path'] == str(path) and path.exists():
            self.fail_json(msg='chown failed')
        return real(self, file_args, changed, *a, **kw)

    monkeypatch.setattr(keystore_module.AnsibleModule, 'set_fs_attributes_if_different', failing)
    res = run_module(keystore_module.main, ks_args(path), expect_fail=True)
    assert len(aliases_in(path)) == 5
    assert res['changed'] is True and res['created'] == ['DCA001-005'] and res['created_count'] == 5


# --- §6: two writers, one through a symlink -------------------------------------------------------------------------


def _add_keys(path, first):
    return run_module(keystore_module.main, ks_args(path, ranges=[{'prefix': 'DCA', 'first': first, 'count': 1500}]))


def test_two_writers_one_through_a_symlink_lose_no_key(tmp_path):
    real_dir, link_dir = tmp_path / 'real', tmp_path / 'elsewhere'
    real_dir.mkdir()
    link_dir.mkdir()
    path = real_dir / 'EKMKeys.jck'
    run_module(keystore_module.main, ks_args(path, ranges=['DCA001-00A']))
    (link_dir / 'EKMKeys.jck').symlink_to(path)
    ctx = multiprocessing.get_context('fork')
    with ctx.Pool(2) as pool:
        results = [pool.apply_async(_add_keys, (str(p), first))
                   for p, first in ((path, 0x100), (link_dir / 'EKMKeys.jck', 0x1000))]
        reported = [r.get(timeout=300) for r in results]
    assert all(r['created_count'] == 1500 for r in reported)
    assert len(aliases_in(path)) == 10 + 3000
    assert os.path.islink(link_dir / 'EKMKeys.jck')


# --- §6: restore installs another host's set ------------------------------------------------------------------------


class Server:
    """An EKM home with its four files and a backup destination, for the restore tests."""

    def __init__(self, root, host='ekm1'):
        self.home = root / host
        self.home.mkdir()
        self.dest = root / 'backup'
        self.dest.mkdir(exist_ok=True)
        self.host = host
        self.paths = {'keystore': str(self.home / 'EKMKeys.jck'), 'config': str(self.home / 'KeyManagerConfig.properties'),
                      'keygroups': str(self.home / 'KeyGroups.xml'), 'drivetable': str(self.home / 'filedrive.table')}

    def write_keystore(self, first, last, key_password=PW, keys=None):
        ks = _jceks.new_keystore()
        for n in range(first, last + 1):
            alias = 'dca%018x' % n
            ks.add(_jceks.seal_secret_key(alias, (keys or {}).get(alias) or _jceks.generate_aes_key(), key_password,
                                          iteration_count=FAST))
        with open(self.paths['keystore'], 'wb') as f:
            f.write(_jceks.dump(ks, PW))

    def write_files(self, first, last):
        self.write_keystore(first, last)
        for kind, text in (('config', 'Audit.handler.file.size=1000\n'), ('keygroups', '<KeyGroups host="%s"/>\n'),
                           ('drivetable', 'drives of %s\n')):
            with open(self.paths[kind], 'w', encoding='utf-8') as f:
                f.write(text % self.host if '%s' in text else text)

    def backup(self):
        stamp = datetime.datetime(2026, 1, 31, 12, 0, 0, tzinfo=datetime.timezone.utc)
        return _backup.backup(self.paths, PW, str(self.dest), 'dc1', self.host, now=lambda: stamp)['set_path']

    def restore_args(self, **kw):
        base = {'%s_path' % kind: path for kind, path in self.paths.items()}
        base.update(password=PW)
        base.update(kw)
        return base

    def keys(self):
        with open(self.paths['keystore'], 'rb') as f:
            ks = _jceks.load(f.read(), PW)
        return {e.alias: _jceks.unseal(e, PW)[1] for e in ks.entries}


def test_restore_refuses_a_set_whose_manifest_names_another_host(tmp_path):
    # A server being rebuilt (no files yet), so that no key-loss check stands in the way.
    mine, partner = Server(tmp_path, 'ekm1'), Server(tmp_path, 'ekm2')
    partner.write_files(0x100, 0x101)
    partner_set = partner.backup()
    res = run_module(restore_module.main, mine.restore_args(source=partner_set, site='dc1', host='ekm1'), expect_fail=True)
    assert 'ekm2' in res['msg']
    assert os.listdir(str(mine.home)) == []
    # Copied under this host's own directory, it is refused just the same.
    copied = mine.dest / 'dc1' / 'ekm1' / os.path.basename(partner_set)
    copied.parent.mkdir(parents=True)
    os.rename(partner_set, str(copied))
    res = run_module(restore_module.main, mine.restore_args(dest=str(mine.dest), site='dc1', host='ekm1'), expect_fail=True)
    assert 'ekm2' in res['msg']
    assert os.listdir(str(mine.home)) == []


def test_restore_names_the_host_it_restores_also_with_source(tmp_path):
    mine = Server(tmp_path, 'ekm1')
    mine.write_files(1, 2)
    set_path = mine.backup()
    res = run_module(restore_module.main, mine.restore_args(source=set_path), expect_fail=True)
    assert 'site' in res['msg'] or 'host' in res['msg']


def test_a_partners_set_is_an_explicit_option_that_never_drops_keys(tmp_path):
    mine, partner = Server(tmp_path, 'ekm1'), Server(tmp_path, 'ekm2')
    mine.write_files(1, 4)
    partner.write_files(0x100, 0x101)
    partner_set = partner.backup()
    before = mine.keys()
    res = run_module(restore_module.main, mine.restore_args(source=partner_set, site='dc1', host='ekm1', from_host='ekm2',
                                                            allow_key_loss=True), expect_fail=True)
    assert 'lacks 4 key(s)' in res['msg'] and 'from_host' in res['msg']
    assert mine.keys() == before


# --- §6: backup: true makes a 0600 copy -----------------------------------------------------------------------------


def test_backup_copies_of_keystore_and_config_are_private(tmp_path):
    old_umask = os.umask(0o022)
    try:
        path = tmp_path / 'EKMKeys.jck'
        run_module(keystore_module.main, ks_args(path, mode='0644'))
        res = run_module(keystore_module.main, ks_args(path, ranges=['DCA001-008'], backup=True, mode='0644'))
        assert stat.S_IMODE(os.stat(res['backup_file']).st_mode) == 0o600
        conf = tmp_path / 'KeyManagerConfig.properties'
        conf.write_text('config.keystore.password=%s\n' % PW)
        os.chmod(conf, 0o644)
        res = run_module(config_module.main, dict(path=str(conf), settings={'Audit.handler.file.size': '1000'}, backup=True))
        assert stat.S_IMODE(os.stat(res['backup_file']).st_mode) == 0o600
    finally:
        os.umask(old_umask)


# --- §6: huge ranges -----------------------------------------------------------------------------------------------


def test_a_million_new_keys_are_refused_before_anything_is_sealed(tmp_path):
    path = tmp_path / 'EKMKeys.jck'
    res = run_module(keystore_module.main, ks_args(path, ranges=[{'prefix': 'DCA', 'first': 1, 'count': 1000000}]),
                     check_mode=True, expect_fail=True)
    assert '100000' in res['msg'] and not path.exists()


def test_more_than_a_million_aliases_fail_cleanly(tmp_path):
    path = tmp_path / 'EKMKeys.jck'
    res = run_module(keystore_module.main, ks_args(path, ranges=['DCA000001-200000']), check_mode=True, expect_fail=True)
    assert '1000000' in res['msg'] and not path.exists()


# --- §6: special files -----------------------------------------------------------------------------------------------


def test_a_fifo_at_the_keystore_path_is_refused_not_waited_for(tmp_path):
    path = tmp_path / 'EKMKeys.jck'
    os.mkfifo(path)
    for main, args in ((info_module.main, dict(path=str(path), password=PW)), (keystore_module.main, ks_args(path)),
                       (config_module.main, dict(path=str(path), settings={'a': 'b'}))):
        kind, value = module_in_child(main, args, expect_fail=True)
        assert kind == 'ok', (main.__module__, kind, value)
        assert 'FIFO' in value['msg']
        assert stat.S_ISFIFO(os.lstat(path).st_mode)


def test_a_symlink_to_a_device_is_refused_not_read_without_end(tmp_path):
    path = tmp_path / 'EKMKeys.jck'
    path.symlink_to('/dev/zero')
    kind, value = module_in_child(info_module.main, dict(path=str(path), password=PW), expect_fail=True)
    assert kind == 'ok', (kind, value)
    assert 'character device' in value['msg']


# --- §6: leftovers of a kill ----------------------------------------------------------------------------------------


def test_marked_leftovers_beside_the_keystore_are_removed_and_foreign_ones_kept(tmp_path):
    path = tmp_path / 'EKMKeys.jck'
    run_module(keystore_module.main, ks_args(path))
    ours = tmp_path / '.tapecrypt-0123456789ab.EKMKeys.jck.tmp'
    ours.write_bytes(b'a complete keystore that was never installed')
    ekms = tmp_path / '.KeyGroups.xml.4711.tmp'
    ekms.write_bytes(b'EKM writes this one')
    run_module(keystore_module.main, ks_args(path))
    assert not ours.exists() and ekms.exists()


# --- §6: one key comparison ------------------------------------------------------------------------------------------


def test_restore_says_cannot_compare_for_a_key_it_cannot_decrypt(tmp_path):
    server = Server(tmp_path, 'ekm1')
    key = _jceks.generate_aes_key()
    server.write_files(1, 1)
    server.write_keystore(1, 1, keys={'dca000000000000000001': key})
    set_path = server.backup()
    # The same key under another key password: its bytes differ and this password cannot open it.
    server.write_keystore(1, 1, key_password='another-key-password', keys={'dca000000000000000001': key})
    res = run_module(restore_module.main, server.restore_args(source=set_path, site='dc1', host='ekm1'),
                     check_mode=True, expect_fail=True)
    assert res['aliases_replaced'] == []
    assert 'cannot be compared' in res['msg']


# --- §6: a restore killed between renames ---------------------------------------------------------------------------


def _restore_killed_at_second_rename(args):
    real_replace, calls = os.replace, []
    targets = {os.path.realpath(args['%s_path' % kind]) for kind in ('keystore', 'config', 'keygroups', 'drivetable')}

    def replace(src, dst, *a, **kw):
        if os.path.realpath(str(dst)) in targets:
            calls.append(dst)
            if len(calls) == 2:
                os.kill(os.getpid(), 9)
        return real_replace(src, dst, *a, **kw)

    os.replace = replace
    return run_module(restore_module.main, args)


def test_a_restore_killed_between_renames_is_completed_by_the_next_run(tmp_path):
    server = Server(tmp_path, 'ekm1')
    server.write_files(1, 3)
    set_path = server.backup()
    wanted = {kind: open(path, 'rb').read() for kind, path in server.paths.items()}
    server.write_files(1, 3)  # other keys under the same aliases, other key groups: every file changes
    for kind in ('config', 'keygroups', 'drivetable'):
        with open(server.paths[kind], 'ab') as f:
            f.write(b'changed since the backup\n')
    args = server.restore_args(source=set_path, site='dc1', host='ekm1', allow_key_loss=True)
    kind, value = in_child(_restore_killed_at_second_rename, args)
    assert kind == 'killed', (kind, value)
    mixed = {k: open(p, 'rb').read() == wanted[k] for k, p in server.paths.items()}
    assert any(mixed.values()) and not all(mixed.values()), mixed
    # A look (check mode) names the interrupted restore; the next run completes it before anything else.
    res = run_module(restore_module.main, args, check_mode=True)
    assert res.get('interrupted'), res
    res = run_module(restore_module.main, args)
    assert res['recovered']['action'] == 'completed'
    assert {k: open(p, 'rb').read() for k, p in server.paths.items()} == wanted
