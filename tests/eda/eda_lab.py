# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A primary and a redundant EKM (stand-in) on two SSH lab hosts, with the rulebook running on this machine.

Used by tests/eda (the eda stage) and by the bench's recovery-point figures. Needs root (tests/lab), Java 17 and the
ansible-rulebook venv that tests/run_all.py builds from tests/requirements/ansible-rulebook.txt
(``.build/venv/ansible-rulebook``, or the bin directory named by $TAPECRYPT_RULEBOOK_BIN).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(os.path.abspath(sys.executable))
RULEBOOK_VENV = os.path.join(ROOT, '.build', 'venv', 'ansible-rulebook')
PASSWORD = 'eda-keystore-pass'
PORT = 3801
FILES = {'keystore': '/opt/ekm/keystore/EKMKeys.jck', 'keygroups': '/opt/ekm/KeyGroups.xml',
         'drivetable': '/opt/ekm/filedrive.table'}

sys.path.insert(0, os.path.join(ROOT, 'roles', 'standin', 'files'))
import tapeclient  # noqa: E402  pylint: disable=wrong-import-position,import-error


def rulebook_bin():
    """The bin directory of the ansible-rulebook venv; an error naming how to build it when there is none."""
    path = os.environ.get('TAPECRYPT_RULEBOOK_BIN') or os.path.join(RULEBOOK_VENV, 'bin')
    if not os.access(os.path.join(path, 'ansible-rulebook'), os.X_OK):
        raise RuntimeError('no ansible-rulebook in %s: run tests/run_all.py --stages eda (it builds the venv from '
                           'tests/requirements/ansible-rulebook.txt)' % path)
    return path


def collection_path():
    link = os.path.join(ROOT, '.build', 'ansible_collections', 'tapecrypt', 'ekm')
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    return os.path.join(ROOT, '.build')


class EdaLab:
    """The lab: start(), provision(), then the rulebook; stop() undoes everything it started."""

    def __init__(self, workdir, slot=6, extra_vars=None):
        self.workdir = str(workdir)
        self.slot = slot
        self.lab = os.path.join(self.workdir, 'lab')
        self.inventory = os.path.join(self.workdir, 'inventory')
        self.extra_vars = dict(extra_vars or {})
        self.rulebook = None
        self.rulebook_log = os.path.join(self.workdir, 'rulebook.log')
        self.lock = os.path.join(self.workdir, 'run.lock')
        self.hosts = {}
        self.cartridges = []

    # ------------------------------------------------------------------------------------------------ set-up
    def env(self, venv_bin=BIN):
        env = dict(os.environ)
        env.update(PATH=venv_bin + os.pathsep + env.get('PATH', ''), ANSIBLE_COLLECTIONS_PATH=collection_path(),
                   TAPECRYPT_EKM_RUN_LOCK=self.lock, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
                   ANSIBLE_PIPELINING='1', ANSIBLE_HOST_KEY_CHECKING='1')
        env.pop('ANSIBLE_HOME', None)
        return env

    def start(self):
        sys.path.insert(0, os.path.join(ROOT, 'tests', 'standin'))
        import standin_fixtures  # pylint: disable=import-outside-toplevel,import-error
        archive = str(standin_fixtures.build_archive(os.path.join(self.workdir, 'dist')))
        with open(archive + '.sha256', encoding='utf-8') as handle:
            sha = handle.read().split()[0]
        env = dict(os.environ, MH_HOSTS='primary redundant', MH_SLOT=str(self.slot))
        subprocess.run([os.path.join(ROOT, 'tests', 'lab', 'mh-up.sh'), self.lab], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        os.makedirs(os.path.join(self.inventory, 'group_vars'), exist_ok=True)
        shutil.copy(os.path.join(self.lab, 'inventory.yml'), os.path.join(self.inventory, 'hosts.yml'))
        group_vars = {
            'ekm_seed': {'site': 'eda', 'keystore_password': PASSWORD,
                         'key_ranges': [{'prefix': 'EDA', 'first': 1, 'count': 8}],
                         'symmetric_key_set': None, 'accept_unknown_drives': False},
            'ekm_server_archive': archive, 'ekm_server_archive_sha256': sha,
            'ekm_server_main_class': 'tapecrypt.standin.EkmStandin',
            'ekm_server_java_options': ['-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xmx128m'],
            'ekm_server_manage_packages': False,
            'ekm_host_settings': {'standin.listen.address': '{{ ansible_host }}'},
            'ekm_server_probe_address': '{{ ansible_host }}',
            'ekm_primary_keystore_iteration_count': 1000,
            'ekm_primary_verify_with_keytool': False,
        }
        group_vars.update(self.extra_vars)
        with open(os.path.join(self.inventory, 'group_vars', 'all.yml'), 'w', encoding='utf-8') as handle:
            json.dump(group_vars, handle)
        with open(os.path.join(self.lab, 'inventory.yml'), encoding='utf-8') as handle:
            text = handle.read()
        for host in ('primary', 'redundant'):
            self.hosts[host] = re.search(r'\b%s:\s*\n\s*ansible_host:\s*(\S+)' % host, text).group(1)
        self.key = os.path.join(self.lab, 'keys', 'id_ed25519')
        self.known_hosts = os.path.join(self.lab, 'keys', 'known_hosts')

    def playbook(self, name, *args):
        cmd = [os.path.join(BIN, 'ansible-playbook'), '-i', self.inventory,
               os.path.join(ROOT, 'playbooks', name)] + list(args)
        proc = subprocess.run(cmd, env=self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, check=False)
        if proc.returncode != 0:
            raise AssertionError('%s failed:\n%s' % (name, proc.stdout[-5000:]))
        return proc.stdout

    def provision(self):
        """site.yml, then one drive known to the primary and synced, so the rulebook starts from equal files."""
        for host in self.hosts:
            self.ssh(host, 'mkdir -p -m 0700 /srv/ekm-backup')
        self.playbook('site.yml')
        tapeclient.add_drive(self.server('primary'), 'DRV001')
        self.playbook('sync.yml')

    # ------------------------------------------------------------------------------------------------ hosts
    def server(self, host):
        return (self.hosts[host], PORT)

    def ssh(self, host, command):
        cmd = ['ssh', '-i', self.key, '-o', 'UserKnownHostsFile=' + self.known_hosts, '-o', 'BatchMode=yes',
               'root@' + self.hosts[host], command]
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True).stdout

    def digests(self, host):
        out = self.ssh(host, 'sha256sum %s' % ' '.join(FILES[n] for n in sorted(FILES)))
        return [line.split()[0] for line in out.splitlines()]

    def ekm_pid(self, host):
        return self.ssh(host, 'cat /opt/ekm/run/ekm.pid').strip()

    def write_cartridge(self):
        path = os.path.join(self.workdir, 'cartridge-%03d.tape' % (len(self.cartridges) + 1))
        self.cartridges.append(tapeclient.write_cartridge(self.server('primary'), 'DRV001', path, os.urandom(4096)))
        return self.cartridges[-1]

    def read_all(self, host):
        """Every cartridge written so far, read back through ``host``'s EKM; the number read."""
        for cart in self.cartridges:
            tapeclient.read_cartridge(self.server(host), 'DRV001', cart['path'])
        return len(self.cartridges)

    def wait_equal(self, timeout):
        """Seconds until the redundant's three files equal the primary's, or None after ``timeout``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.digests('primary') == self.digests('redundant'):
                return time.monotonic() - start
            time.sleep(0.25)
        return None

    def lock_free(self):
        return subprocess.run(['flock', '-n', self.lock, 'true'], check=False).returncode == 0

    # ------------------------------------------------------------------------------------------------ rulebook
    def start_rulebook(self, interval=1, settle=1.5):
        rb_bin = rulebook_bin()
        eda_vars = {'ekm_eda_primary': 'primary', 'ekm_eda_ssh_host': 'root@' + self.hosts['primary'],
                    'ekm_eda_ssh_args': ['-i', self.key, '-o', 'UserKnownHostsFile=' + self.known_hosts],
                    'ekm_eda_files': FILES, 'ekm_eda_interval': interval, 'ekm_eda_settle': settle,
                    'ekm_eda_state_file': os.path.join(self.workdir, 'eda-state.json')}
        vars_file = os.path.join(self.workdir, 'eda-vars.yml')
        with open(vars_file, 'w', encoding='utf-8') as handle:
            json.dump(eda_vars, handle)
        env = self.env(rb_bin)
        env.setdefault('JAVA_HOME', os.path.dirname(os.path.dirname(os.path.realpath(shutil.which('java')))))
        log = open(self.rulebook_log, 'w', encoding='utf-8')  # pylint: disable=consider-using-with
        self.rulebook = subprocess.Popen(  # pylint: disable=consider-using-with
            [os.path.join(rb_bin, 'ansible-rulebook'), '--rulebook', 'tapecrypt.ekm.ekm_sync', '-i',
             self.inventory, '--vars', vars_file, '-v'],
            cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        # Ready once the engine has loaded the source and the source has taken its first looks.
        deadline = time.monotonic() + 90
        while 'load source tapecrypt.ekm.ekm_files' not in self.log():
            if self.rulebook.poll() is not None or time.monotonic() > deadline:
                raise AssertionError('ansible-rulebook did not start (exit status %s):\n%s'
                                     % (self.rulebook.poll(), self.log()[-5000:]))
            time.sleep(0.5)
        time.sleep(max(3.0, 3 * interval))

    def log(self):
        with open(self.rulebook_log, encoding='utf-8', errors='replace') as handle:
            return handle.read()

    def sync_events(self):
        """How many settled changes the rulebook acted on so far (its debug line before each sync)."""
        return len(re.findall(r'^EKM files of primary changed', self.log(), re.M))

    def play_recaps(self):
        return self.log().count('PLAY RECAP')

    def stop_rulebook(self):
        if self.rulebook is not None and self.rulebook.poll() is None:
            os.killpg(self.rulebook.pid, 15)
            try:
                self.rulebook.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.rulebook.pid, 9)
                self.rulebook.wait()

    def stop(self):
        self.stop_rulebook()
        subprocess.run([os.path.join(ROOT, 'tests', 'lab', 'mh-down.sh'), self.lab], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
