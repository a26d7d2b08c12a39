# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SIGKILL at every named fault point and at random moments of the keystore module, a file set install
(what the sync's install is made of), a backup and a restore; then the invariant, then the next run.

The invariant: every key ever reported created is in the keystore, or the old file is intact and the
next run completes; no file is half written; nothing but the project's marked temporary files and
complete ``.bak`` copies is left beside the files, and the next run leaves no marked file either.
"""
from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _backup, _files, _jceks
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore as keystore_module
from ansible_collections.tapecrypt.ekm.plugins.modules import restore as restore_module
from ansible_collections.tapecrypt.ekm.tests.fault import faults
from ansible_collections.tapecrypt.ekm.tests.fault.faults import FAST, PW, RNG

RANDOM_KILLS = 6


def test_env_switch_kills_at_the_named_point(tmp_path):
    """The switch works the way a real run would meet it: set in the environment before the import."""
    code = ('import sys; sys.path.insert(0, %r)\n'
            'from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files\n'
            '_files.atomic_write(%r, b"new")\n') % (os.path.join(faults.ROOT, '.build'), str(tmp_path / 'f'))
    (tmp_path / 'f').write_bytes(b'old')
    env = dict(os.environ, TAPECRYPT_FAULT_POINT='rename')
    proc = subprocess.run([sys.executable, '-c', code], env=env, check=False, capture_output=True)
    assert proc.returncode == -9, proc.stderr
    assert (tmp_path / 'f').read_bytes() == b'old' and len(faults.marked(str(tmp_path))) == 1
    env.pop('TAPECRYPT_FAULT_POINT')
    proc = subprocess.run([sys.executable, '-c', code], env=env, check=False, capture_output=True)
    assert proc.returncode == 0 and (tmp_path / 'f').read_bytes() == b'new'


# --- keystore module ---------------------------------------------------------------------------------------------


def ks_args(path, first, count, **kw):
    # processes=1: the fault is the module's; a killed run's sealing workers are a separate matter.
    return dict(path=str(path), password=PW, iteration_count=FAST, backup=True, processes=1,
                ranges=[{'prefix': 'DCA', 'first': first, 'count': count}], **kw)


def keystore_case(tmp_path, tally, cls, point=None, kill_after=None):
    path = tmp_path / 'EKMKeys.jck'
    outcome, res = faults.module(keystore_module.main, ks_args(path, 1, 50))
    assert outcome == 'ok', res
    reported = faults.keystore_aliases(path)
    outcome, res = faults.module(keystore_module.main, ks_args(path, 0x100, 400), point=point, kill_after=kill_after)
    if outcome == 'ok':
        reported |= faults.keystore_aliases(path)
    now = faults.keystore_aliases(path)
    problems = []
    if now is None or not reported <= now:
        problems.append('keys reported created are missing: %s' % (None if now is None else sorted(reported - now)[:5]))
    for name in os.listdir(str(tmp_path)):
        if name.endswith(_files.BACKUP_SUFFIX) and faults.keystore_aliases(str(tmp_path / name)) is None:
            problems.append('a half-written backup copy %s' % name)
    problems += ['unmarked leftover %s' % n for n in faults.leftovers(str(tmp_path), {'EKMKeys.jck'})]
    outcome2, res2 = faults.module(keystore_module.main, ks_args(path, 0x100, 400))
    after = faults.keystore_aliases(path)
    if outcome2 != 'ok' or after is None or not reported <= after or len(after) != 450:
        problems.append('the next run did not complete: %s %s' % (outcome2, res2))
    if faults.marked(str(tmp_path)):
        problems.append('marked leftovers after the next run: %s' % faults.marked(str(tmp_path)))
    tally.record(cls, not problems)
    assert not problems, (point, kill_after, outcome, problems)
    return outcome


@pytest.mark.parametrize('point', ['temporary-written:1', 'temporary-written:2', 'rename:1'])
def test_keystore_killed_at_a_named_point(tmp_path, tally, point):
    # With backup: true the first temporary file is the backup copy, the second the new keystore.
    assert keystore_case(tmp_path, tally, 'keystore kill at %s' % point, point=point) == 'killed'


def test_keystore_killed_at_random_moments(tmp_path, tally):
    duration = faults.timed(faults.module, keystore_module.main, ks_args(tmp_path / 'probe.jck', 0x100, 400))
    for n in range(RANDOM_KILLS):
        case = tmp_path / str(n)
        case.mkdir()
        keystore_case(case, tally, 'keystore kill at random', kill_after=RNG.uniform(0, duration))


def test_keystore_killed_while_verifying_with_keytool(tmp_path, tally):
    # Issue 14 (regression): the copy keytool verifies was a 0644 file in a /tmp directory that a kill left behind.
    path = tmp_path / 'EKMKeys.jck'
    assert faults.module(keystore_module.main, ks_args(path, 1, 50))[0] == 'ok'
    before = path.read_bytes()
    verified = ks_args(path, 0x100, 20, verify_with_keytool=True)
    outcome, res = faults.module(keystore_module.main, verified, point='keystore-verify')
    problems = [] if outcome == 'killed' else ['not killed at keystore-verify: %s %s' % (outcome, res)]
    if path.read_bytes() != before:
        problems.append('the keystore changed before the keys were verified')
    workdirs = [n for n in faults.marked(str(tmp_path)) if n.endswith(_files.TEMP_DIR_SUFFIX)]
    if len(workdirs) != 1:
        problems.append('expected one marked work directory beside the keystore: %s' % faults.marked(str(tmp_path)))
    else:
        workdir = tmp_path / workdirs[0]
        modes = {n: os.stat(workdir / n).st_mode & 0o777 for n in os.listdir(workdir)}
        if os.stat(workdir).st_mode & 0o777 != 0o700 or modes != {'candidate.jck': 0o600}:
            problems.append('the killed copy is not private: directory %o, files %s' % (os.stat(workdir).st_mode, modes))
        if faults.keystore_aliases(str(workdir / 'candidate.jck')) != faults.keystore_aliases(str(path)) | {
                'dca%018x' % n for n in range(0x100, 0x114)}:
            problems.append('the killed copy is not the keystore that was being verified')
    # The next run removes the directory under the keystore's lock, then verifies and adds the keys.
    outcome2, res2 = faults.module(keystore_module.main, verified)
    if outcome2 != 'ok' or len(faults.keystore_aliases(str(path)) or ()) != 70 or not res2.get('verified_with_keytool'):
        problems.append('the next run did not complete: %s %s' % (outcome2, res2))
    if faults.marked(str(tmp_path)):
        problems.append('marked leftovers after the next run: %s' % faults.marked(str(tmp_path)))
    tally.record('keystore kill while verifying with keytool', not problems)
    assert not problems, problems


# --- a file set (the sync's install) -----------------------------------------------------------------------------

NAMES = ('EKMKeys.jck', 'KeyGroups.xml', 'filedrive.table')
FILESET_POINTS = ['temporary-written:%d' % n for n in range(1, 9)] + ['journal-written'] + \
    ['rename:%d' % n for n in range(1, 6)]


def _install(directory, version):
    journal = os.path.join(directory, '.tapecrypt-sync.json.journal')
    state = os.path.join(directory, '.tapecrypt-sync.json')
    paths = [os.path.join(directory, n) for n in NAMES]
    with _files.lock_dirs(paths):
        _files.recover(journal, after=lambda payload: _files.atomic_write(state, json.dumps(payload).encode()))
        _files.remove_strays(paths, 'sync')
        _files.remove_temporaries(directory)
        with _files.FileSet(journal, 'sync') as file_set:
            for name, path in zip(NAMES, paths):
                file_set.stage(name, path, ('%s %s\n' % (name, version)).encode() * 200, _files.sha256_file(path))
            file_set.install(backup=NAMES, payload={'version': version},
                             after=lambda payload: _files.atomic_write(state, json.dumps(payload).encode()))


def fileset_case(directory, tally, cls, point=None, kill_after=None):
    _install(directory, 'v1')
    outcome, value = faults.run(_install, directory, 'v2', point=point, kill_after=kill_after)
    problems = []
    versions = set()
    for name in NAMES:
        data = open(os.path.join(directory, name), 'rb').read()
        version = data.split(b'\n')[0].split()[-1]
        versions.add(version if data == b'%s %s\n' % (name.encode(), version) * 200 else b'half-written')
    if b'half-written' in versions:
        problems.append('a half-written file')
    if len(versions) != 1 and not os.path.exists(os.path.join(directory, '.tapecrypt-sync.json.journal')):
        # Between the renames the files are mixed; only the journal lets the next run complete them.
        problems.append('files of two versions and no journal: %s' % versions)
    problems += ['unmarked leftover %s' % n for n in faults.leftovers(directory, set(NAMES))]
    # The next run (recover first, as the sync does) leaves one version everywhere, and v2 after its own install.
    _install(directory, 'v2')
    after = {open(os.path.join(directory, n), 'rb').read().split()[1] for n in NAMES}
    state = json.loads(open(os.path.join(directory, '.tapecrypt-sync.json'), 'rb').read())
    if after != {b'v2'} or state != {'version': 'v2'}:
        problems.append('after the next run: %s, state %s' % (after, state))
    rest = [n for n in faults.marked(directory) if n != '.tapecrypt-sync.json']
    if rest:
        problems.append('marked leftovers after the next run: %s' % rest)
    tally.record(cls, not problems)
    assert not problems, (point, kill_after, outcome, value, problems)
    return outcome


@pytest.mark.parametrize('point', FILESET_POINTS)
def test_file_set_killed_at_a_named_point(tmp_path, tally, point):
    assert fileset_case(str(tmp_path), tally, 'file set kill at %s' % point.split(':')[0], point=point) == 'killed'


def test_file_set_killed_mid_recovery(tmp_path, tally):
    """A kill during the recovery of a kill: the run after that still completes."""
    directory = str(tmp_path)
    _install(directory, 'v1')
    assert faults.run(_install, directory, 'v2', point='rename:3')[0] == 'killed'
    assert faults.run(_install, directory, 'v3', point='rename:1')[0] == 'killed'
    fileset_case(directory, tally, 'file set kill during recovery')


def test_file_set_killed_at_random_moments(tmp_path, tally):
    probe = tmp_path / 'probe'
    probe.mkdir()
    _install(str(probe), 'v1')
    duration = faults.timed(faults.run, _install, str(probe), 'v2')
    for n in range(RANDOM_KILLS):
        case = tmp_path / str(n)
        case.mkdir()
        fileset_case(str(case), tally, 'file set kill at random', kill_after=RNG.uniform(0, duration))


# --- backup and restore ------------------------------------------------------------------------------------------


class Server:
    """An EKM home with its four files and a backup destination."""

    def __init__(self, root):
        self.home = root / 'ekm'
        self.home.mkdir()
        self.dest = root / 'backup'
        self.dest.mkdir()
        self.paths = {'keystore': str(self.home / 'EKMKeys.jck'), 'config': str(self.home / 'KeyManagerConfig.properties'),
                      'keygroups': str(self.home / 'KeyGroups.xml'), 'drivetable': str(self.home / 'filedrive.table')}
        self.keys = {'dca%018x' % n: _jceks.generate_aes_key() for n in range(1, 201)}
        self.tick = datetime.datetime(2026, 1, 31, 12, 0, 0, tzinfo=datetime.timezone.utc)

    def write(self, count, tag):
        ks = _jceks.new_keystore()
        for alias in sorted(self.keys)[:count]:
            ks.add(_jceks.seal_secret_key(alias, self.keys[alias], PW, iteration_count=FAST))
        with open(self.paths['keystore'], 'wb') as f:
            f.write(_jceks.dump(ks, PW))
        for kind in ('config', 'keygroups', 'drivetable'):
            with open(self.paths[kind], 'w', encoding='utf-8') as f:
                f.write('%s %s\n' % (kind, tag) * 100)

    def backup(self):
        self.tick += datetime.timedelta(seconds=1)
        return _backup.backup(self.paths, PW, str(self.dest), 'dc1', 'ekm1', now=lambda: self.tick)

    def host_dir(self):
        return os.path.join(str(self.dest), 'dc1', 'ekm1')

    def restore_args(self, set_path):
        args = {'%s_path' % kind: path for kind, path in self.paths.items()}
        args.update(source=set_path, site='dc1', host='ekm1', password=PW)
        return args

    def files(self):
        return {kind: open(path, 'rb').read() for kind, path in self.paths.items()}


def backup_case(tmp_path, tally, cls, point=None, kill_after=None):
    server = Server(tmp_path)
    server.write(100, 'v1')
    server.backup()
    server.write(200, 'v2')
    outcome, value = faults.run(server.backup, point=point, kill_after=kill_after)
    problems = []
    sets, dummy = _backup.list_sets(server.host_dir(), PW)
    for found in sets:
        try:
            _backup.verify_set(found.path, PW)
        except _backup.BackupError as exc:
            problems.append('a set counted as verified does not verify: %s' % exc)
    for name in os.listdir(server.host_dir()):
        if name.startswith('.') and not _backup._LEFTOVER_RE.match(name):
            problems.append('unmarked leftover %s' % name)
    rerun = server.backup()
    newest = _backup.list_sets(server.host_dir(), PW)[0][0].path
    dummy, dummy, keystore = _backup.verify_set(newest, PW)
    if set(keystore.aliases()) != set(server.keys):
        problems.append('the next run made no set with every key (%s)' % rerun)
    tally.record(cls, not problems)
    assert not problems, (point, outcome, value, problems)
    return outcome


@pytest.mark.parametrize('point', ['temporary-written:%d' % n for n in range(1, 6)] + ['rename:1'])
def test_backup_killed_at_a_named_point(tmp_path, tally, point):
    assert backup_case(tmp_path, tally, 'backup kill at %s' % point.split(':')[0], point=point) == 'killed'


def test_backup_killed_at_random_moments(tmp_path, tally):
    probe = tmp_path / 'probe'
    probe.mkdir()
    server = Server(probe)
    server.write(200, 'v1')
    duration = faults.timed(faults.run, server.backup)
    for n in range(RANDOM_KILLS):
        case = tmp_path / str(n)
        case.mkdir()
        backup_case(case, tally, 'backup kill at random', kill_after=RNG.uniform(0, duration))


def restore_case(tmp_path, tally, cls, point=None, kill_after=None):
    server = Server(tmp_path)
    server.write(200, 'in-set')
    set_path = server.backup()['set_path']
    wanted = server.files()
    server.write(120, 'current')  # the same keys, fewer of them; every other file differs too
    held = faults.keystore_aliases(server.paths['keystore'])
    outcome, value = faults.module(restore_module.main, server.restore_args(set_path), point=point, kill_after=kill_after)
    problems = []
    now = faults.keystore_aliases(server.paths['keystore'])
    if now is None or not held <= now:
        problems.append('keys of the current keystore are missing')
    for kind, path in server.paths.items():
        data = open(path, 'rb').read()
        if kind != 'keystore' and data != wanted[kind] and not data.endswith(b'current\n'):
            problems.append('a half-written %s' % kind)
    problems += ['unmarked leftover %s' % n for n in faults.leftovers(str(server.home), {os.path.basename(p) for p in server.paths.values()})]
    outcome2, res2 = faults.module(restore_module.main, server.restore_args(set_path))
    if outcome2 != 'ok' or server.files() != wanted:
        problems.append('the next run did not complete the restore: %s %s' % (outcome2, res2))
    if faults.marked(str(server.home)):
        problems.append('marked leftovers after the next run: %s' % faults.marked(str(server.home)))
    tally.record(cls, not problems)
    assert not problems, (point, outcome, value, problems)
    return outcome


@pytest.mark.parametrize('point', ['temporary-written:%d' % n for n in (1, 4, 5, 8, 9)] + ['journal-written'] +
                         ['rename:%d' % n for n in range(1, 6)])
def test_restore_killed_at_a_named_point(tmp_path, tally, point):
    assert restore_case(tmp_path, tally, 'restore kill at %s' % point.split(':')[0], point=point) == 'killed'


def test_restore_killed_at_random_moments(tmp_path, tally):
    probe = tmp_path / 'probe'
    probe.mkdir()
    server = Server(probe)
    server.write(200, 'in-set')
    set_path = server.backup()['set_path']
    server.write(120, 'current')
    duration = faults.timed(faults.module, restore_module.main, server.restore_args(set_path))
    for n in range(RANDOM_KILLS):
        case = tmp_path / str(n)
        case.mkdir()
        restore_case(case, tally, 'restore kill at random', kill_after=RNG.uniform(0, duration))


def _keystore_in_own_group(path):
    os.setpgid(0, 0)
    return faults.call_module(keystore_module.main, dict(ks_args(path, 0x100, 600), processes=2))


def test_a_killed_keystore_run_leaves_no_sealing_worker_behind(tmp_path, tally):
    """The PBE workers of a run with processes > 1 end with the run (they used to wait for ever)."""
    path = tmp_path / 'EKMKeys.jck'
    duration = faults.timed(faults.run, _keystore_in_own_group, str(tmp_path / 'probe.jck'))
    for n in range(3):
        ctx = multiprocessing.get_context('fork')
        proc = ctx.Process(target=_keystore_in_own_group, args=(str(path),))
        proc.start()
        time.sleep(duration * (0.3 + 0.2 * n))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        survived = time.monotonic() < deadline
        tally.record('keystore kill: no worker left', survived)
        assert survived, 'sealing workers of the killed run are still running'
