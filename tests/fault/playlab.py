# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A cheap playbook-level lab for the fault suite: two EKM "hosts" on this machine, the collection's real playbooks.

Both hosts use ``ansible_connection: local`` and an ``ekm_home`` of their own under the lab directory; each runs the
stand-in EKM (roles/standin/files) on a fixed port of 127.0.0.1. ``Lab.playbook`` runs a playbook in a process group
of its own and, when asked, SIGKILLs that whole group when a line of its output matches, or after a delay. EKM itself
is started by ``ekmctl`` with ``setsid`` and outlives the kill, as a service would.

Whoever runs this holds the lab lock (``flock /tmp/tapecrypt-lab.lock``): the ports are fixed.

``TAPECRYPT_LAB_COLLECTION`` names another checkout of the collection whose playbooks and roles the lab then runs
(the suite, its checks and the stand-in stay this checkout's): a row can so be shown to catch the defect of an older
commit. Unset, the lab runs this checkout.
"""
from __future__ import annotations

import getpass
import grp
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from ansible_collections.tapecrypt.ekm.tests.fault import faults

sys.path.insert(0, os.path.join(faults.ROOT, 'roles', 'standin', 'files'))
import tapeclient  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order

PASSWORD = 'Fault-Lab-Store-PW'
PRIMARY, REDUNDANT = 'ekm-primary', 'ekm-redundant'
HOSTS = (PRIMARY, REDUNDANT)
# The primary's port; the redundant's is the next. TAPECRYPT_PLAYLAB_PORT moves the lab, to run beside another one.
BASE_PORT = int(os.environ.get('TAPECRYPT_PLAYLAB_PORT') or 38061)
BIN = os.path.dirname(os.path.abspath(sys.executable))
COLLECTION = os.path.abspath(os.environ.get('TAPECRYPT_LAB_COLLECTION') or faults.ROOT)
# What the running stand-ins and the harness write on their own: not EKM's files, left out of ``Lab.snapshot``.
UNWATCHED = ('logs', 'run', 'audit', 'metadata', 'cartridges', '.ansible-tmp', 'ansible.log', 'inventory.yml')


def build_standin(outdir):
    """The stand-in's package archive and its SHA-256 (build.sh)."""
    out = subprocess.run(['bash', os.path.join(faults.ROOT, 'roles', 'standin', 'files', 'build.sh'), str(outdir)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True).stdout
    archive = out.strip().splitlines()[-1]
    with open(archive + '.sha256', encoding='utf-8') as f:
        return archive, f.read().split()[0]


class Run:
    """One playbook run: its exit code (negative: killed), its output, and whether the harness killed it."""

    def __init__(self, rc, out, killed):
        self.rc, self.out, self.killed = rc, out, killed

    def __repr__(self):
        lines = self.out.strip().splitlines()
        # What failed (Ansible's "fatal:" and "failed:" results, with the lines of their message), then the end.
        failures = []
        for n, line in enumerate(lines):
            if line.startswith(('fatal:', 'failed:')):
                failures += lines[n:n + 12]
        return 'Run(rc=%s, killed=%s, failures: %s, last lines: %s)' % (self.rc, self.killed, failures[:60], lines[-25:])


class Lab:
    """Two EKM homes under ``root``, a primary and a redundant server, and their backup medium."""

    def __init__(self, root, archive, sha256, port=BASE_PORT):
        self.root = str(root)
        self.archive, self.sha256 = archive, sha256
        self.ports = {PRIMARY: port, REDUNDANT: port + 1}
        self.backup_dir = os.path.join(self.root, 'backup')
        self.cartridges = os.path.join(self.root, 'cartridges')
        self.log = os.path.join(self.root, 'ansible.log')
        self.ranges = [{'prefix': 'DCA', 'first': 1, 'count': 12}]
        self.host_vars = {h: {} for h in HOSTS}
        self.groups = {'ekm_primary': [PRIMARY], 'ekm_redundant': [REDUNDANT]}
        self.written = []
        os.makedirs(self.backup_dir, exist_ok=True)
        os.makedirs(self.cartridges, exist_ok=True)

    # --- paths ---------------------------------------------------------------------------------------------------

    def home(self, host):
        return os.path.join(self.root, host)

    def keystore(self, host):
        return os.path.join(self.home(host), 'keystore', 'EKMKeys.jck')

    def config(self, host):
        return os.path.join(self.home(host), 'KeyManagerConfig.properties')

    def backup_host_dir(self, host):
        return os.path.join(self.backup_dir, 'lab', host)

    # --- inventory and playbooks ---------------------------------------------------------------------------------

    def write_inventory(self):
        common = {
            'ansible_connection': 'local',
            'ansible_python_interpreter': sys.executable,
            'ekm_user': getpass.getuser(),
            'ekm_group': grp.getgrgid(os.getgid()).gr_name,
            'ekm_server_manage_user': False,
            'ekm_server_manage_packages': False,
            'ekm_service_manager': 'script',
            'ekm_server_archive': self.archive,
            'ekm_server_archive_sha256': self.sha256,
            'ekm_server_main_class': 'tapecrypt.standin.EkmStandin',
            'ekm_server_java_options': ['-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xmx128m'],
            # The suite is about files and order, not sealing speed or keytool's opinion.
            'ekm_primary_verify_with_keytool': False,
            'ekm_seed': {
                'site': 'lab',
                'keystore_password': PASSWORD,
                'key_ranges': self.ranges,
                'accept_unknown_drives': True,
                'backup': {'dest': self.backup_dir, 'keep': 50},
            },
        }
        hosts = {}
        for host in HOSTS:
            port = self.ports[host]
            hosts[host] = dict({'ekm_home': self.home(host),
                                'ekm_host_settings': {'TransportListener.tcp.port': port,
                                                      'TransportListener.ssl.port': port + 100}},
                               **self.host_vars[host])
        inventory = {'all': {'vars': common, 'children': {'ekm': {'children': {
            group: {'hosts': {h: hosts[h] for h in members}} for group, members in self.groups.items()}}}}}
        path = os.path.join(self.root, 'inventory.yml')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(inventory, f, indent=2)  # JSON is YAML
        return path

    def playbook(self, name, *extra, kill_on=None, kill_delay=None, kill_when=None, kill_after=None, extra_env=None,
                 timeout=600):  # pylint: disable=too-many-arguments
        """Run ``playbooks/<name>``; SIGKILL its process group at the first output line matching ``kill_on`` (a
        regular expression; ``kill_delay`` seconds after that line, or as soon as ``kill_when()`` returns true, polled
        every 5 ms from that line on: a file the task writes has changed) or ``kill_after`` seconds after the start.
        ``extra_env`` adds environment variables (``TAPECRYPT_FAULT_POINT`` kills a module at a named point)."""
        inventory = self.write_inventory()
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(COLLECTION, '.build'), ANSIBLE_NOCOLOR='1',
                   ANSIBLE_FORCE_COLOR='0', ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_LOCALHOST_WARNING='0',
                   ANSIBLE_INVENTORY_UNPARSED_WARNING='0', ANSIBLE_LOCAL_TEMP=os.path.join(self.root, '.ansible-tmp'),
                   PATH=BIN + os.pathsep + os.environ.get('PATH', ''), PYTHONUNBUFFERED='1')
        env.update(extra_env or {})
        cmd = [os.path.join(BIN, 'ansible-playbook'), '-i', inventory,
               os.path.join(COLLECTION, 'playbooks', name)] + list(extra)
        proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors='replace', start_new_session=True)
        killed = threading.Event()

        def kill():
            if proc.poll() is None:
                killed.set()
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        timers = [threading.Timer(timeout, kill)]
        if kill_after is not None:
            timers.append(threading.Timer(kill_after, kill))
        for timer in timers:
            timer.start()
        lines = []
        pattern = re.compile(kill_on) if kill_on else None
        try:
            for line in proc.stdout:
                lines.append(line)
                if pattern is not None and pattern.search(line):
                    pattern = None
                    if kill_when is not None:
                        watcher = threading.Thread(target=_watch, args=(kill_when, kill, proc), daemon=True)
                        watcher.start()
                    elif kill_delay:
                        timers.append(threading.Timer(kill_delay, kill))
                        timers[-1].start()
                    else:
                        kill()
        finally:
            for timer in timers:
                timer.cancel()
            proc.wait()
        out = ''.join(lines)
        with open(self.log, 'a', encoding='utf-8') as log:
            log.write('$ %s%s\n%s\n' % (' '.join(cmd[3:]), ' (KILLED)' if killed.is_set() else '', out))
        return Run(proc.returncode, out, killed.is_set())

    def snapshot(self):
        """Every file and directory of the lab with its content's hash and its mode, without what the running
        stand-ins and the harness write on their own: "nothing was changed" made checkable."""
        found = {}
        for base, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in UNWATCHED]
            for name in dirs + files:
                path = os.path.join(base, name)
                if name in UNWATCHED:
                    continue
                if os.path.islink(path):
                    found[path] = 'link:' + os.readlink(path)
                elif os.path.isfile(path):
                    with open(path, 'rb') as f:
                        found[path] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mode)
                else:
                    found[path] = ('dir', os.stat(path).st_mode)
        return found

    # --- EKM and cartridges --------------------------------------------------------------------------------------

    def ekmctl(self, host, action):
        return subprocess.run([os.path.join(self.home(host), 'bin', 'ekmctl'), action], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, check=False)

    def stop(self):
        for host in HOSTS:
            if os.path.isfile(os.path.join(self.home(host), 'bin', 'ekmctl')):
                self.ekmctl(host, 'stop')

    def server(self, host):
        return ('127.0.0.1', self.ports[host])

    def servers(self):
        """host -> (configuration, keystore) of the servers in service, for ``invariant.check``."""
        return {h: (self.config(h), self.keystore(h)) for h in HOSTS}

    def new_range(self, count=4):
        """Add a range of ``count`` new keys to the seed; the aliases it names."""
        first = 1 + sum(r['count'] for r in self.ranges if r['prefix'] == 'DCB')
        self.ranges.append({'prefix': 'DCB', 'first': first, 'count': count})
        return {'dcb%018x' % n for n in range(first, first + count)}

    def write_with_new_key(self, aliases, tries=200):
        """Write cartridges through the primary until one is written with a key of ``aliases``; its path."""
        for n in range(tries):
            path = os.path.join(self.cartridges, '%03d-%02d.cart' % (len(self.written), n))
            res = tapeclient.write_cartridge(self.server(PRIMARY), 'DRIVE01', path, payload=b'fault lab %d\n' % n * 50)
            if res['alias'] in aliases:
                self.written.append(path)
                return path, res['alias']
            os.remove(path)
        raise AssertionError('the primary handed out no key of %s in %d writes' % (sorted(aliases)[:3], tries))

    def read_all(self, host):
        """Read every cartridge written so far through ``host``; the ones that failed, with the reason."""
        failed = []
        for path in self.written:
            try:
                tapeclient.read_cartridge(self.server(host), 'DRIVE01', path)
            except (tapeclient.TapeError, OSError) as exc:
                failed.append('%s: %s' % (os.path.basename(path), exc))
        return failed


def _watch(condition, kill, proc):
    while proc.poll() is None:
        if condition():
            kill()
            return
        time.sleep(0.005)


def wait_port_free(port, timeout=30):
    """True once nothing answers on ``port`` of 127.0.0.1 (checked at least once)."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            if sock.connect_ex(('127.0.0.1', port)) != 0:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def served_key(lab, host, alias):
    """The key bytes that the running EKM of ``host`` hands out for reading ``alias``, or the reason it does not."""
    try:
        dummy, key = tapeclient._key(lab.server(host), 'KEY DRIVE01 %s' % alias,  # pylint: disable=protected-access
                                     'the key %s' % alias)
        return key
    except (tapeclient.TapeError, OSError) as exc:
        return str(exc)
