# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SIGKILL of ansible-playbook's whole process tree at named moments of the collection's real playbooks; runs with
a wrong inventory and with a full disk.

One lab for the module (tests/fault/playlab.py: a primary and a redundant stand-in EKM on this machine), provisioned
once with site.yml; every case adds a few keys, kills a run, checks, runs again and checks again, so the lab is whole
for the next case. After each kill and after each rerun the invariant (tests/fault/invariant.py) must hold; after the
rerun a cartridge written through the primary with one of the new keys must read back through the redundant.

The lab's ports are fixed: run the stage under the lab lock (flock /tmp/tapecrypt-lab.lock).
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore as keystore_module
from ansible_collections.tapecrypt.ekm.tests.fault import faults, invariant, playlab
from ansible_collections.tapecrypt.ekm.tests.fault.playlab import HOSTS, PASSWORD, PRIMARY, REDUNDANT


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp('playlab')
    archive, sha256 = playlab.build_standin(root / 'dist')
    the_lab = playlab.Lab(root / 'site', archive, sha256)
    busy = [port for port in the_lab.ports.values() if not playlab.wait_port_free(port, timeout=0)]
    assert not busy, 'port(s) %s of 127.0.0.1 are in use: another lab runs (hold the lab lock) or was left running' % busy
    try:
        run = the_lab.playbook('site.yml')
        assert run.rc == 0, run
        # The cartridges' drive becomes known to the primary, and through a sync to the redundant: reading through the
        # redundant then changes nothing there (a drive it admitted by itself would be a local change of its table).
        the_lab.write_with_new_key(invariant.served_aliases(the_lab.config(PRIMARY)))
        run = the_lab.playbook('sync.yml')
        assert run.rc == 0, run
        yield the_lab
    finally:
        the_lab.stop()


def check(lab, when):
    return ['%s: %s' % (when, p) for p in invariant.check(lab.servers(), PRIMARY, PASSWORD, lab.backup_host_dir(PRIMARY))]


def cartridge(lab, new):
    """A cartridge written through the primary with a new key; every cartridge so far reads through the redundant."""
    try:
        dummy, alias = lab.write_with_new_key(new)
    except (AssertionError, OSError, playlab.tapeclient.TapeError) as exc:
        return ['the primary writes no cartridge with a new key: %s' % exc]
    return ['through the redundant: %s' % f for f in lab.read_all(REDUNDANT)]


def rerun(lab, name):
    run = lab.playbook(name)
    return [] if run.rc == 0 else ['the rerun of %s failed: %r' % (name, run)]


# --- issue 8: the invariant at every kill point of add_keys.yml ---------------------------------------------------

def add_keys_case(lab, tally, cls, kill_on=None, kill_delay=None, kill_after=None):
    new = lab.new_range()
    killed = lab.playbook('add_keys.yml', kill_on=kill_on, kill_delay=kill_delay, kill_after=kill_after)
    problems = [] if killed.killed else ['the kill point was not reached: %r' % killed]
    problems += check(lab, 'after the kill')
    problems += rerun(lab, 'add_keys.yml')
    problems += check(lab, 'after the rerun')
    problems += cartridge(lab, new)
    tally.record(cls, not problems)
    assert not problems, '\n'.join(problems)


# The four phases of add_keys.yml (docs/architecture.md): a kill when a phase's first play starts, before any task
# of it: nothing of that phase is done, everything of the phases before it is.
PHASES = {n: r'^PLAY \[Phase %d of 4' % n for n in (1, 2, 3, 4)}


@pytest.mark.parametrize('phase', sorted(PHASES))
def test_add_keys_killed_at_a_phase_boundary(lab, tally, phase):
    add_keys_case(lab, tally, 'add_keys kill at phase %d of 4' % phase, kill_on=PHASES[phase])


def test_add_keys_killed_during_key_generation(lab, tally):
    """A random moment inside the keystore module's run on the primary."""
    add_keys_case(lab, tally, 'add_keys kill during key generation',
                  kill_on=r'^TASK \[tapecrypt\.ekm\.primary : Ensure the keys of the seed exist in the keystore\]',
                  kill_delay=faults.RNG.uniform(0.1, 0.8))


def test_add_keys_killed_at_random_moments(lab, tally):
    """Two moments anywhere in the run (it takes about 20 seconds here)."""
    for dummy in range(2):
        add_keys_case(lab, tally, 'add_keys kill at random', kill_after=faults.RNG.uniform(2, 18))


def failed_run_case(lab, tally, cls, run_failing):
    """A run that fails for want of a host or a medium: the invariant holds, and the run after the repair completes."""
    new = lab.new_range()
    failed = run_failing()
    problems = [] if failed.rc != 0 else ['add_keys.yml succeeded: %r' % failed]
    problems += check(lab, 'after the failed run')
    problems += rerun(lab, 'add_keys.yml')
    problems += check(lab, 'after the rerun')
    problems += cartridge(lab, new)
    tally.record(cls, not problems)
    assert not problems, '\n'.join(problems)


def test_add_keys_with_the_redundant_unreachable(lab, tally):
    """The redundant cannot be reached (ssh to a closed port of this machine)."""
    def run():
        lab.host_vars[REDUNDANT] = {'ansible_connection': 'ssh', 'ansible_host': '127.0.0.1', 'ansible_port': 9,
                                    'ansible_ssh_common_args': '-o ConnectTimeout=3 -o BatchMode=yes'}
        try:
            return lab.playbook('add_keys.yml')
        finally:
            lab.host_vars[REDUNDANT] = {}
    failed_run_case(lab, tally, 'add_keys with the redundant unreachable', run)


def test_add_keys_with_the_backup_medium_missing(lab, tally):
    def run():
        away = lab.backup_dir + '.away'
        os.rename(lab.backup_dir, away)
        try:
            return lab.playbook('add_keys.yml')
        finally:
            os.rename(away, lab.backup_dir)
    failed_run_case(lab, tally, 'add_keys with the backup medium missing', run)


# --- issue 14: no EKM keeps serving stale keys after a kill ------------------------------------------------------

# The redundant's configuration task of add_keys.yml; its EKM is restarted by the handler after it. The kill lands as
# soon as the new configuration (naming the new keys) is on disk, before the handler can start: the rerun then finds
# nothing left to change on the redundant server.
REDUNDANT_CONFIG = r'^TASK \[tapecrypt\.ekm\.redundant : Set the EKM configuration keys from the seed\]'


def test_add_keys_killed_before_the_redundant_restart(lab, tally):
    """The rerun restarts the redundant's EKM although nothing is left to change there; verify.yml reports it before."""
    new = lab.new_range()
    killed = lab.playbook('add_keys.yml', kill_on=REDUNDANT_CONFIG,
                          kill_when=lambda: new <= invariant.served_aliases(lab.config(REDUNDANT)))
    problems = [] if killed.killed else ['the kill point was not reached: %r' % killed]
    problems += check(lab, 'after the kill')
    stale = playlab.served_key(lab, REDUNDANT, sorted(new)[0])
    if isinstance(stale, bytes):
        problems.append('the redundant already serves the new keys: the case tests nothing')
    verify = lab.playbook('verify.yml')
    if verify.rc == 0 or 'STALE' not in verify.out:
        problems.append('verify.yml does not report the EKM serving older files: rc %s' % verify.rc)
    problems += rerun(lab, 'add_keys.yml')
    problems += check(lab, 'after the rerun')
    problems += cartridge(lab, new)
    tally.record('add_keys kill before the redundant restart', not problems)
    assert not problems, '\n'.join(problems)


def stage_keys_on_primary(lab):
    """New keys in the primary's keystore only (staged: named in no symmetricKeySet); their aliases and bytes."""
    new = lab.new_range()
    ranges = [{'prefix': r['prefix'], 'first': r['first'], 'count': r['count']} for r in lab.ranges]
    outcome, res = faults.module(keystore_module.main, dict(path=lab.keystore(PRIMARY), password=PASSWORD,
                                                            ranges=ranges, processes=1))
    assert outcome == 'ok' and res['changed'], res
    with open(lab.keystore(PRIMARY), 'rb') as f:
        keystore = _jceks.load(f.read(), PASSWORD)
    return {e.alias.lower(): _jceks.unseal(e, PASSWORD)[1] for e in keystore.entries if e.alias.lower() in new}


def served_and_backed_up(lab, keys):
    """The redundant's running EKM hands out each new key, and its newest verified backup set holds it."""
    problems = []
    for alias, key in sorted(keys.items()):
        got = playlab.served_key(lab, REDUNDANT, alias)
        if got != key:
            problems.append('the redundant EKM does not serve %s: %s' % (alias, got if isinstance(got, str) else 'other bytes'))
    set_path, held = invariant.newest_verified_set(lab.backup_host_dir(REDUNDANT), PASSWORD)
    missing = sorted(set(keys) - set(held))
    if missing:
        problems.append("the redundant's newest verified backup set %s lacks %s" % (set_path, ', '.join(missing)))
    return problems


def journal_left(lab):
    directory = os.path.dirname(lab.keystore(REDUNDANT))
    return [n for n in os.listdir(directory) if n.endswith('.journal')]


@pytest.mark.parametrize('point', ['rename:2'])
def test_sync_completed_from_its_journal(lab, tally, point):
    """A sync killed inside its install is completed from the journal by the next run, which restarts EKM and makes
    the backup the interrupted run owed."""
    keys = stage_keys_on_primary(lab)
    killed = lab.playbook('sync.yml', extra_env={'TAPECRYPT_FAULT_POINT': point})
    problems = [] if journal_left(lab) else ['no journal after the kill at %s: %r' % (point, killed)]
    problems += check(lab, 'after the kill')
    problems += rerun(lab, 'sync.yml')
    problems += check(lab, 'after the rerun')
    problems += served_and_backed_up(lab, keys)
    problems += serve_and_read(lab, keys)
    tally.record('sync completed from its journal (kill at %s)' % point.split(':')[0], not problems)
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('kill_on', [
    r'^TASK \[tapecrypt\.ekm\.server : Restart EKM that started before',
    r'^TASK \[tapecrypt\.ekm\.backup : Make a verified backup set on the host\]',
])
def test_sync_completed_from_its_journal_then_killed_again(lab, tally, kill_on):
    """The run that completes the install from the journal is killed at its restart or at its backup: the run
    after it still restarts EKM where needed and makes the backup."""
    keys = stage_keys_on_primary(lab)
    killed = lab.playbook('sync.yml', extra_env={'TAPECRYPT_FAULT_POINT': 'journal-written'})
    problems = [] if journal_left(lab) else ['no journal after the kill: %r' % killed]
    second = lab.playbook('sync.yml', kill_on=kill_on)
    if not second.killed:
        problems.append('the second kill point was not reached: %r' % second)
    problems += check(lab, 'after the kills')
    problems += rerun(lab, 'sync.yml')
    problems += check(lab, 'after the rerun')
    problems += served_and_backed_up(lab, keys)
    problems += serve_and_read(lab, keys)
    where = 'restart' if 'Restart' in kill_on else 'backup'
    tally.record('sync completed from its journal, killed again at its %s' % where, not problems)
    assert not problems, '\n'.join(problems)


def serve_and_read(lab, keys):
    """add_keys.yml brings the staged keys into service (the seed names them); a cartridge written through the primary
    with one of them reads through the redundant, as every cartridge before it."""
    return rerun(lab, 'add_keys.yml') + cartridge(lab, set(keys))


# The redundant's EKM is restarted by the handler that the sync's install notifies, then the backup role runs.
RESTART_HANDLER = r'^RUNNING HANDLER \[tapecrypt\.ekm\.server : Restart EKM with ekmctl\]'
FIRST_BACKUP_TASK = r'^TASK \[tapecrypt\.ekm\.backup : '


def test_sync_killed_before_the_redundant_restart(lab, tally):
    """sync.yml killed as soon as the new keystore is installed on the redundant: the rerun, which finds nothing left
    to copy, restarts its EKM and backs up."""
    keys = stage_keys_on_primary(lab)
    killed = lab.playbook('sync.yml', kill_on=r'^TASK \[tapecrypt\.ekm\.sync : Copy the primary',
                          kill_when=lambda: set(keys) <= (faults.keystore_aliases(lab.keystore(REDUNDANT), PASSWORD)
                                                          or set()))
    problems = [] if killed.killed else ['the kill point was not reached: %r' % killed]
    if isinstance(playlab.served_key(lab, REDUNDANT, sorted(keys)[0]), bytes):
        problems.append('the redundant already serves the new keys: the case tests nothing')
    problems += check(lab, 'after the kill')
    problems += rerun(lab, 'sync.yml')
    problems += check(lab, 'after the rerun')
    problems += served_and_backed_up(lab, keys)
    problems += serve_and_read(lab, keys)
    tally.record('sync kill before the redundant restart', not problems)
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('where', ['restart', 'backup'])
def test_sync_killed_at_or_after_the_restart(lab, tally, where):
    """sync.yml killed as its restart of the redundant's EKM begins, or after it, at the backup: the rerun restarts
    where the EKM still runs older files and makes the backup the killed run owed."""
    keys = stage_keys_on_primary(lab)
    killed = lab.playbook('sync.yml', kill_on=RESTART_HANDLER if where == 'restart' else FIRST_BACKUP_TASK)
    problems = [] if killed.killed else ['the kill point was not reached: %r' % killed]
    problems += check(lab, 'after the kill')
    problems += rerun(lab, 'sync.yml')
    problems += check(lab, 'after the rerun')
    problems += served_and_backed_up(lab, keys)
    problems += serve_and_read(lab, keys)
    tally.record('sync kill at its %s' % where, not problems)
    assert not problems, '\n'.join(problems)


# --- issue 14: wrong inventories are refused before any key is made; verify.yml names them -----------------------

WRONG_INVENTORIES = {
    # The redundant's ekm_home is the primary's, spelt through a symbolic link: the same files, another path.
    'shared directory': ({'ekm_primary': [PRIMARY], 'ekm_redundant': [REDUNDANT]},
                         '%s and %s would share their EKM files' % (PRIMARY, REDUNDANT)),
    'two primaries': ({'ekm_primary': [PRIMARY, REDUNDANT], 'ekm_redundant': []},
                      'ekm_primary must hold exactly one host'),
    'host in both groups': ({'ekm_primary': [PRIMARY, REDUNDANT], 'ekm_redundant': [REDUNDANT]},
                            '%s is in both ekm_primary and ekm_redundant' % REDUNDANT),
    # The one primary is a redundant server too: ekm_primary alone looks right.
    'primary in both groups': ({'ekm_primary': [PRIMARY], 'ekm_redundant': [PRIMARY, REDUNDANT]},
                               '%s is in both ekm_primary and ekm_redundant' % PRIMARY),
}


@pytest.mark.parametrize('wrong', sorted(WRONG_INVENTORIES))
def test_wrong_inventory_is_refused_before_any_key_is_made(lab, tally, wrong):
    """add_keys.yml with a new range stops in its preflight, naming the problem, with not one file changed (no key
    made anywhere); verify.yml reports the inventory as a problem."""
    groups, message = WRONG_INVENTORIES[wrong]
    link = os.path.join(lab.root, 'same-home')
    if wrong == 'shared directory':
        os.symlink(lab.home(PRIMARY), link)
        lab.host_vars[REDUNDANT] = {'ekm_home': link + '/'}
    lab.groups = groups
    new = lab.new_range()
    before = lab.snapshot()
    try:
        refused = lab.playbook('add_keys.yml')
        problems = [] if refused.rc != 0 else ['add_keys.yml succeeded: %r' % refused]
        if message not in refused.out or 'Nothing was changed.' not in refused.out:
            problems.append('add_keys.yml does not say %r and that nothing was changed: %r' % (message, refused))
        changed = sorted(set(before.items()) ^ set(lab.snapshot().items()))
        if changed:
            problems.append('files changed: %s' % sorted({path for path, dummy in changed})[:6])
        verify = lab.playbook('verify.yml')
        if verify.rc == 0 or message not in verify.out:
            problems.append('verify.yml does not report %r: %r' % (message, verify))
    finally:
        lab.groups = {'ekm_primary': [PRIMARY], 'ekm_redundant': [REDUNDANT]}
        lab.host_vars[REDUNDANT] = {}
        lab.ranges.pop()  # never made: the next case's seed is the lab's as it was
        if os.path.islink(link):
            os.remove(link)
    problems += check(lab, 'after the refused run')
    tally.record('add_keys with a wrong inventory (%s)' % wrong, not problems)
    assert not problems, '\n'.join(problems)


# --- issue 14: a full medium ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def small_filesystem(path):
    """A small tmpfs mounted at ``path`` with what ``path`` held (and 4 MiB more room: enough for a rerun to stage,
    keep and back up the lab's keystore however many keys earlier rows added); at the end it is unmounted and what it
    then held is ``path``'s again. ``fill`` then makes it full, ``free`` gives the room back."""
    if os.geteuid() != 0:
        pytest.skip('a full medium here is a small tmpfs, which only root can mount')
    aside = path + '.on-disk'
    os.rename(path, aside)
    os.mkdir(path)
    shutil.copystat(aside, path)
    size = 4 * 1024 * 1024 + sum(4096 + os.path.getsize(os.path.join(base, name))
                                 for base, dummy, names in os.walk(aside) for name in names)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%d,mode=%o' % (size, os.stat(aside).st_mode & 0o7777),
                    'tmpfs', path], check=True)
    try:
        for name in os.listdir(aside):
            src = os.path.join(aside, name)
            (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, os.path.join(path, name))
        yield path
    finally:
        after = path + '.after'
        shutil.copytree(path, after, symlinks=True, ignore=shutil.ignore_patterns(FILLER))
        subprocess.run(['umount', path], check=True)
        os.rmdir(path)
        os.rename(after, path)
        shutil.rmtree(aside)


FILLER = 'filler'


def fill(directory):
    """Write a file into ``directory`` until its filesystem is full."""
    fd = os.open(os.path.join(directory, FILLER), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        while True:
            os.write(fd, b'\0' * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)


def free(directory):
    os.remove(os.path.join(directory, FILLER))


def test_add_keys_with_only_the_redundants_backup_medium_full(lab, tally):
    """The redundant's own medium is full, the primary's has room: the primary is backed up all the same (the
    redundant's failure skips no other host's backup); once the medium has room the rerun completes."""
    medium = os.path.join(lab.root, 'redundant-medium')
    os.makedirs(medium, exist_ok=True)
    new = lab.new_range()
    with small_filesystem(medium):
        fill(medium)
        lab.host_vars[REDUNDANT] = {'ekm_backup_dest': medium}
        try:
            failed = lab.playbook('add_keys.yml')
            problems = [] if failed.rc != 0 else ['add_keys.yml succeeded with a full medium: %r' % failed]
            set_path, held = invariant.newest_verified_set(lab.backup_host_dir(PRIMARY), PASSWORD)
            if not new <= set(held):
                problems.append("the primary's newest verified backup set %s lacks the new keys: %r" % (set_path, failed))
            problems += check(lab, 'after the failed run')
            free(medium)
            problems += rerun(lab, 'add_keys.yml')
            problems += check(lab, 'after the rerun')
            problems += cartridge(lab, new)
        finally:
            lab.host_vars[REDUNDANT] = {}
    tally.record("add_keys with only the redundant's backup medium full", not problems)
    assert not problems, '\n'.join(problems)


def test_sync_with_the_redundants_keystore_disk_full(lab, tally):
    """The sync cannot write the new keystore: its message names the file and says nothing was changed, and nothing
    was; once there is room the rerun installs it, restarts EKM and backs up."""
    keys = stage_keys_on_primary(lab)
    keystore_dir = os.path.dirname(lab.keystore(REDUNDANT))
    with small_filesystem(keystore_dir):
        fill(keystore_dir)
        before = {p: v for p, v in lab.snapshot().items() if not p.endswith('/' + FILLER)}
        failed = lab.playbook('sync.yml')
        problems = [] if failed.rc != 0 else ['sync.yml succeeded on a full disk: %r' % failed]
        if 'No space left on device' not in failed.out or 'Nothing was changed' not in failed.out \
                or lab.keystore(REDUNDANT) not in failed.out:
            problems.append('the message names no file or does not say that nothing was changed: %r' % failed)
        changed = sorted(set(before.items()) ^ {(p, v) for p, v in lab.snapshot().items() if not p.endswith('/' + FILLER)})
        if changed:
            problems.append('files changed: %s' % sorted({path for path, dummy in changed})[:6])
        free(keystore_dir)
        problems += rerun(lab, 'sync.yml')
        problems += check(lab, 'after the rerun')
        problems += served_and_backed_up(lab, keys)
    problems += serve_and_read(lab, keys)
    tally.record("sync with the redundant's keystore disk full", not problems)
    assert not problems, '\n'.join(problems)


# --- a killed run's private copy of a backup set on the host -----------------------------------------------------

def copies_left(lab, prefix='.tapecrypt-copies.'):
    return sorted(os.path.join(host, n) for host in HOSTS for n in os.listdir(os.path.dirname(lab.keystore(host)))
                  if n.startswith(prefix))


def test_backup_to_the_controller_killed_while_copying_the_set_to_the_host(lab, tally):
    """With the sets made on the controller, the role copies the verified set into a private directory beside the
    host's keystore; a run killed then leaves it, and the next run of add_keys.yml (the keystore module on the primary,
    the sync on the redundant) removes it."""
    for host in HOSTS:
        lab.host_vars[host] = {'ekm_backup_where': 'controller', 'ekm_backup_controller_dest': lab.backup_dir}
    try:
        killed = lab.playbook('backup.yml', kill_on=r'^TASK \[tapecrypt\.ekm\.backup : Copy the verified set to the host\]')
    finally:
        for host in HOSTS:
            lab.host_vars[host] = {}
    left = copies_left(lab)
    problems = [] if killed.killed and left else ['no copy left by the kill: %s %r' % (left, killed)]
    problems += check(lab, 'after the kill')
    new = lab.new_range()
    problems += rerun(lab, 'add_keys.yml')
    problems += ['left after the next run: %s' % n for n in copies_left(lab)]
    problems += check(lab, 'after the rerun')
    problems += cartridge(lab, new)
    tally.record("backup to the controller killed while copying the set to the host", not problems)
    assert not problems, '\n'.join(problems)
