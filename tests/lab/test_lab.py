# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Smoke tests for the SSH lab hosts (mh-up.sh, mh-stop-host.sh, mh-down.sh).

They start real lab hosts, so they need root (mount, unshare, ip netns) and Debian's
openssh-server, as CI has. Every lab runs in a slot of its own (MH_SLOT, held with a lock
file), so these tests keep clear of a lab started by hand or by Molecule in the default
slot, and of each other under pytest-xdist.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

LAB_SCRIPTS = Path(__file__).resolve().parent
REPO = LAB_SCRIPTS.parents[1]
MH_UP = LAB_SCRIPTS / 'mh-up.sh'
MH_DOWN = LAB_SCRIPTS / 'mh-down.sh'
MH_STOP_HOST = LAB_SCRIPTS / 'mh-stop-host.sh'

# Slots the tests may take; the default slot 0 stays free for labs started by hand.
TEST_SLOTS = range(80, 100)
# Files Debian installs as root's .bashrc (base-files) or as every new user's (bash).
STOCK_BASHRCS = (Path('/usr/share/base-files/dot.bashrc'), Path('/etc/skel/.bashrc'))
# Every directory a lab host overlays, with the place a test file goes in it.
PRIVATE_DIRS = ('/etc', '/opt', '/var/lib', '/srv', '/root', '/run')


def _tool(name):
    """Return the path of an Ansible command from the repository's venv (or pytest's)."""
    for candidate in (REPO / '.venv' / 'bin' / name, Path(sys.executable).parent / name):
        if candidate.is_file():
            return str(candidate)
    raise RuntimeError(f'{name} not found in {REPO / ".venv"} nor beside {sys.executable}')


def _proc_stat(pid):
    """Return (state, start time) of a process, or None once it is gone."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text(encoding='ascii')
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(')') + 2:].split()
    return fields[0], fields[19]


def _running(pid, start=None):
    """Whether the process exists and is not a zombie (optionally: the same process)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != 'Z' and (start is None or stat[1] == start)


def _pids():
    return [int(p.name) for p in Path('/proc').iterdir() if p.name.isdigit()]


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def _pidns_members(pidns):
    """Live processes, as (pid, start time), in the PID namespace whose /proc link reads ``pidns``.

    Only meaningful while the namespace exists: the kernel reuses the number of a
    namespace that has ended, so afterwards check these processes, not the number.
    """
    members = []
    for pid in _pids():
        stat = _proc_stat(pid)
        if _readlink(f'/proc/{pid}/ns/pid') == pidns and stat and stat[0] != 'Z':
            members.append((pid, stat[1]))
    return members


def _survivors(processes):
    """Those of ``processes`` (pid, start time) that still run."""
    return [(pid, start) for pid, start in processes if _running(pid, start)]


def _processes_naming(text):
    """Live processes whose command line contains ``text``."""
    found = []
    for pid in _pids():
        try:
            cmdline = Path(f'/proc/{pid}/cmdline').read_bytes().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if text in cmdline and _running(pid):
            found.append((pid, cmdline))
    return found


def _mounts_below(*paths):
    """Mount points (in this mount namespace) at or below any of ``paths``."""
    found = []
    with open('/proc/self/mountinfo', encoding='utf-8') as mountinfo:
        for line in mountinfo:
            point = line.split()[4]
            if any(point == p or point.startswith(p.rstrip('/') + '/') for p in paths):
                found.append(point)
    return found


def _wait_until(condition, timeout=5.0):
    """Poll ``condition`` until it returns a true value or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


_ADHOC_HEADER = re.compile(
    r'^(?P<host>[a-z0-9-]+) \| (?P<status>SUCCESS|CHANGED|FAILED!?|UNREACHABLE!)(?: \| rc=(?P<rc>-?\d+) >>| =>)',
    re.MULTILINE)


def parse_adhoc(stdout):
    """Split the default callback's ad-hoc output into {host: (status, result)}.

    Modules print ``host | STATUS => {json}``; command and shell print
    ``host | STATUS | rc=N >>`` followed by their output.
    """
    headers = list(_ADHOC_HEADER.finditer(stdout))
    results = {}
    for header, following in zip(headers, headers[1:] + [None]):
        body = stdout[header.end():following.start() if following else len(stdout)].strip()
        if header.group('rc') is None:
            result = json.loads(body)
        else:
            result = {'rc': int(header.group('rc')), 'stdout': body}
        results[header.group('host')] = (header.group('status').rstrip('!'), result)
    return results


@contextlib.contextmanager
def _free_slot():
    """Hold a lock on a lab slot no other test run uses; yield its number."""
    for slot in TEST_SLOTS:
        # pylint: disable-next=consider-using-with  # held open for the whole lab, closed below
        lock = open(f'/tmp/tapecrypt-ekm-lab-slot-{slot}.lock', 'w', encoding='ascii')
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            yield slot
        finally:
            lock.close()
        return
    raise RuntimeError(f'all lab slots {TEST_SLOTS.start}-{TEST_SLOTS.stop - 1} are taken')


class Lab:
    """One lab directory and the scripts that drive it."""

    def __init__(self, path, net, slot, hosts=('primary', 'redundant')):
        self.path = Path(path)
        self.net = net
        self.slot = slot
        self.hosts = tuple(hosts)

    def _env(self):
        return dict(os.environ, MH_NET=self.net, MH_SLOT=str(self.slot), MH_HOSTS=' '.join(self.hosts))

    def script(self, script, *args, check=True):
        """Run one of the lab scripts on this lab; fail the test with its output if ``check``."""
        proc = subprocess.run([str(script), str(self.path), *args], env=self._env(), capture_output=True,
                              text=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f'{script.name} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}')
        return proc

    def up(self):
        return self.script(MH_UP)

    def down(self, check=True):
        return self.script(MH_DOWN, check=check)

    @property
    def inventory(self):
        return self.path / 'inventory.yml'

    def address(self, index):
        network = '127.100' if self.net == 'netns' else '127.0'
        return f'{network}.{self.slot}.{11 + index}'

    def recorded(self, host):
        """The processes mh-up.sh recorded for ``host``: {'unshare': (pid, start), 'init': (pid, start)}."""
        records = {}
        for line in (self.path / 'hosts' / host / 'pids').read_text(encoding='ascii').splitlines():
            what, pid, start = line.split()
            records[what] = (int(pid), start)
        return records

    def pidns(self, host):
        pid, _start = self.recorded(host)['init']
        link = _readlink(f'/proc/{pid}/ns/pid')
        assert link and link.startswith('pid:['), f'{host}: no PID namespace for pid {pid}'
        return link

    def _ansible_env(self):
        return dict(
            os.environ,
            ANSIBLE_NOCOLOR='1',
            ANSIBLE_DEPRECATION_WARNINGS='False',
            ANSIBLE_PIPELINING='True',
            ANSIBLE_TIMEOUT='10',
            ANSIBLE_STDOUT_CALLBACK='ansible.builtin.default',
            ANSIBLE_CALLBACK_RESULT_FORMAT='json',
            # Own SSH masters, so none from another run is reused and none outlives this lab unseen.
            ANSIBLE_SSH_CONTROL_PATH_DIR=str(self.path / 'cp'),
            ANSIBLE_LOCAL_TEMP=str(self.path / 'tmp'),
        )

    def ansible(self, pattern, module, args=None):
        """Run an ad-hoc module; return {host: (status, result)} for every host it reported on."""
        cmd = [_tool('ansible'), '-i', str(self.inventory), pattern, '-m', module]
        if args is not None:
            cmd += ['-a', args]
        # Outside the repository, so that no ansible.cfg found on the way changes the run.
        proc = subprocess.run(cmd, cwd=self.path, env=self._ansible_env(), capture_output=True, text=True,
                              timeout=120, check=False)
        results = parse_adhoc(proc.stdout)
        if not results:
            pytest.fail(f'no result from {" ".join(cmd)} (rc {proc.returncode})\n{proc.stdout}\n{proc.stderr}')
        return results

    def inventory_data(self):
        return yaml.safe_load(self.inventory.read_text(encoding='utf-8'))

    def ssh(self, host, command):
        """Run ``command`` on ``host`` with plain ssh, as a person would (README); return its output."""
        index = self.hosts.index(host)
        keys = self.path / 'keys'
        cmd = ['ssh', '-i', str(keys / 'id_ed25519'), '-o', f'UserKnownHostsFile={keys / "known_hosts"}',
               '-o', 'StrictHostKeyChecking=yes', '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
               f'root@{self.address(index)}', command]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            pytest.fail(f'ssh {host} {command!r} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}')
        return proc.stdout


def _check_requirements():
    if os.geteuid() != 0:
        pytest.fail('the lab hosts need root (mount, unshare, ip netns); run these tests as root, as CI does')
    if not os.access('/usr/sbin/sshd', os.X_OK):
        pytest.fail("the lab hosts need /usr/sbin/sshd: install Debian's openssh-server")


@contextlib.contextmanager
def _started_lab(net, hosts=('primary', 'redundant')):
    """A running lab; always brought down afterwards, and its directory removed once it is down."""
    _check_requirements()
    with _free_slot() as slot:
        lab = Lab(tempfile.mkdtemp(prefix='tapecrypt-lab-'), net, slot, hosts)
        try:
            lab.up()
            yield lab
        finally:
            if lab.down(check=False).returncode == 0:
                shutil.rmtree(lab.path)


@pytest.fixture(scope='module', params=['lo', 'netns'])
def lab(request):
    """A two-host lab shared by the read-only checks, once per network mode."""
    with _started_lab(request.param) as started:
        yield started


@pytest.fixture(params=['lo', 'netns'])
def own_lab(request):
    """A two-host lab for one test that stops hosts."""
    with _started_lab(request.param) as started:
        yield started


def _groups(lab):
    """{group: [hosts]} for the groups under ``ekm`` in the inventory mh-up.sh wrote."""
    ekm = lab.inventory_data()['all']['children']['ekm']['children']
    return {group: list((ekm[group] or {}).get('hosts') or {}) for group in ekm}


def test_inventory_puts_first_host_in_ekm_primary_and_the_rest_in_ekm_redundant(lab):
    data = lab.inventory_data()
    assert _groups(lab) == {'ekm_primary': ['primary'], 'ekm_redundant': ['redundant']}
    ekm = data['all']['children']['ekm']['children']
    assert ekm['ekm_primary']['hosts']['primary'] == {'ansible_host': lab.address(0)}
    assert ekm['ekm_redundant']['hosts']['redundant'] == {'ansible_host': lab.address(1)}
    assert data['all']['vars']['ansible_python_interpreter'] == '/usr/bin/python3'


def test_each_host_answers_ansible_with_its_own_name(lab):
    # Through the parent group "ekm": both child groups must reach Ansible.
    results = lab.ansible('ekm', 'ansible.builtin.setup', 'gather_subset=!all filter=ansible_hostname')
    names = {host: result.get('ansible_facts', {}).get('ansible_hostname') for host, (_status, result) in results.items()}
    assert names == {'primary': 'primary', 'redundant': 'redundant'}, results


def test_root_has_debian_stock_bashrc(lab):
    stock = {path.read_text(encoding='utf-8') for path in STOCK_BASHRCS if path.is_file()}
    assert stock, 'neither Debian stock .bashrc found on this machine'
    for host in lab.hosts:
        bashrc = lab.ssh(host, 'cat /root/.bashrc')
        assert bashrc in stock, f'{host}: /root/.bashrc is not Debian stock:\n{bashrc}'


def test_files_written_on_primary_stay_on_primary(lab):
    name = f'mh-lab-test-{os.getpid()}-{time.monotonic_ns()}'
    dirs = ' '.join(PRIVATE_DIRS)
    lab.ssh('primary', f'for d in {dirs}; do echo primary > "$d/{name}"; done')
    # Each host prints which of the files it sees.
    listing = f'for d in {dirs}; do [ ! -e "$d/{name}" ] || echo "$d"; done'
    assert lab.ssh('primary', listing).split() == list(PRIVATE_DIRS)
    assert lab.ssh('redundant', listing) == ''
    assert [d for d in PRIVATE_DIRS if os.path.lexists(os.path.join(d, name))] == []


def test_stop_host_makes_only_that_host_unreachable(own_lab):
    lab = own_lab
    primary = _pidns_members(lab.pidns('primary'))
    redundant_init = lab.recorded('redundant')['init']
    assert primary, 'primary has no process before it is stopped'

    lab.script(MH_STOP_HOST, 'primary')

    assert _survivors(primary) == []
    assert _running(*redundant_init)
    results = lab.ansible('all', 'ansible.builtin.ping')
    assert results['primary'][0] == 'UNREACHABLE', results
    assert results['redundant'] == ('SUCCESS', {'changed': False, 'ping': 'pong'}), results
    # Stopping a stopped host is not an error; an unknown host is.
    assert 'not running' in lab.script(MH_STOP_HOST, 'primary').stdout
    assert lab.script(MH_STOP_HOST, 'nosuchhost', check=False).returncode == 2


@pytest.mark.parametrize('net', ['lo', 'netns'])
def test_up_again_and_down_leave_nothing_behind(net):
    hosts = ('primary', 'redundant', 'dr')
    with _started_lab(net, hosts) as lab:
        assert _groups(lab) == {'ekm_primary': ['primary'], 'ekm_redundant': ['redundant', 'dr']}

        # A second mh-up.sh without mh-down.sh in between, as after a crashed run,
        # replaces the old hosts rather than failing or leaving them running.
        old = {host: list(lab.recorded(host).values()) + _pidns_members(lab.pidns(host)) for host in hosts}
        lab.up()
        for host in hosts:
            assert _survivors(old[host]) == [], f'{host}: processes of the first run survived'
        assert {host: lab.ssh(host, 'hostname').strip() for host in hosts} == {host: host for host in hosts}

        # A process that left its session behind must go down with its host too.
        lab.ssh('primary', 'setsid sleep 600 > /dev/null 2>&1 < /dev/null &')
        assert _wait_until(lambda: any(_readlink(f'/proc/{pid}/exe') == '/usr/bin/sleep'
                                       for pid, _start in _pidns_members(lab.pidns('primary')))), \
            'sleep did not start on primary'
        processes = {host: list(lab.recorded(host).values()) + _pidns_members(lab.pidns(host)) for host in hosts}
        netns = {host: f'ekm{lab.slot}-{host}' for host in hosts} if net == 'netns' else {}
        for host, name in netns.items():
            assert (lab.path / 'hosts' / host / 'netns').read_text(encoding='ascii').strip() == name

        lab.down()

        for host in hosts:
            assert _survivors(processes[host]) == [], f'{host}: processes survived mh-down.sh'
        # SSH masters on this side close when their peer dies; give them a moment.
        assert _wait_until(lambda: not _processes_naming(str(lab.path))), _processes_naming(str(lab.path))
        assert _mounts_below(str(lab.path), *(f'/run/netns/{name}' for name in netns.values())) == []
        listed_ns = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True, check=True).stdout
        assert [name for name in netns.values() if name in listed_ns.split()] == []
        bridge = subprocess.run(['ip', 'link', 'show', f'ekmbr{lab.slot}'], capture_output=True, check=False)
        assert bridge.returncode != 0, f'bridge ekmbr{lab.slot} left behind'
        assert not (lab.path / 'hosts').exists() and not lab.inventory.exists()

        # Twice, and on a lab that never ran, is harmless.
        assert 'no lab' in lab.down().stdout
        assert 'no lab' in Lab(lab.path / 'never-started', net, lab.slot).down().stdout


def test_get_pip_shim_passes_everything_but_get_pip_only_options_to_pip():
    spec = importlib.util.spec_from_file_location('get_pip_shim', LAB_SCRIPTS / 'get_pip_shim.py')
    shim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shim)
    argv = ['--disable-pip-version-check', 'pip==24.2', 'setuptools==70.0', '--no-setuptools', '--no-wheel']
    assert shim.pip_install_args(argv) == ['--disable-pip-version-check', 'pip==24.2', 'setuptools==70.0']
