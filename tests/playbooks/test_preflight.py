# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The preflight play of every playbook: a clear message naming the problem, and not one file changed.

Servers are "hosts" on this machine with ``ansible_connection: local`` and their own ``ekm_home`` in a temporary
directory (the unprivileged mode the demo uses), like tests/playbooks/test_site_bad_input.py; an unreachable
redundant server is one whose ``ansible_host`` answers no SSH. A good site (a primary and a redundant server on two
ports) is provisioned once per module and put back byte for byte before each test that needs it; every file below
the site's directory is hashed before and after the refused run.
"""
from __future__ import annotations

import contextlib
import getpass
import grp
import hashlib
import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(os.path.abspath(sys.executable))
COLLECTIONS = os.path.join(ROOT, '.build')
PASSWORD = 'preflight-pass'
NOTHING = 'Nothing was changed.'


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Site:
    """A primary (ekm1) and a redundant server (ekm2) on this machine, and the runs of the playbooks on them."""

    def __init__(self, tmp_path, archive, ports=None):
        self.dir = tmp_path
        (tmp_path / 'backup').mkdir(exist_ok=True)
        self.ports = ports = ports or [free_port(), free_port(), free_port(), free_port()]
        self.common = {
            'ansible_connection': 'local',
            'ansible_python_interpreter': sys.executable,
            'ekm_backup_dest': str(tmp_path / 'backup'),
            'ekm_user': getpass.getuser(),
            'ekm_group': grp.getgrgid(os.getgid()).gr_name,
            'ekm_server_manage_user': False,
            'ekm_server_manage_packages': False,
            'ekm_service_manager': 'script',
            'ekm_server_archive': archive[0],
            'ekm_server_archive_sha256': archive[1],
            'ekm_server_main_class': 'tapecrypt.standin.EkmStandin',
            'ekm_primary_keystore_iteration_count': 1000,
            'ekm_seed': {'site': 'pre', 'keystore_password': PASSWORD, 'tcp_port': ports[0], 'ssl_port': ports[1],
                         'key_ranges': [{'prefix': 'PRE', 'first': 1, 'count': 4}]},
        }
        self.hosts = {
            'ekm1': {'ekm_home': str(tmp_path / 'ekm1')},
            'ekm2': {'ekm_home': str(tmp_path / 'ekm2'),
                     'ekm_host_settings': {'TransportListener.tcp.port': ports[2],
                                           'TransportListener.ssl.port': ports[3]}},
        }
        self.primaries = ['ekm1']
        self.redundants = ['ekm2']

    def inventory(self, extra_group_vars=None):
        def group(names):
            return {'hosts': {h: self.hosts[h] for h in names}}
        data = {'all': {'vars': dict(self.common, **(extra_group_vars or {})),
                        'children': {'ekm': {'children': {'ekm_primary': group(self.primaries),
                                                          'ekm_redundant': group(self.redundants)}}}}}
        path = self.dir / 'inventory.yml'
        path.write_text(json.dumps(data))
        return path

    def run(self, playbook, *args, group_vars=None, playbook_path=None):
        inventory = self.inventory(group_vars)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR='1',
                   ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_SSH_RETRIES='0',
                   ANSIBLE_TIMEOUT='5', PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
        path = playbook_path or os.path.join(ROOT, 'playbooks', playbook)
        proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', str(inventory), str(path)] + list(args),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                              cwd=str(self.dir))
        return proc.returncode, proc.stdout

    def ekmctl(self, action, check=False):
        for host in self.hosts.values():
            ctl = os.path.join(host['ekm_home'], 'bin', 'ekmctl')
            if os.path.exists(ctl):
                subprocess.run([ctl, action], check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        self.ekmctl('stop')


def snapshot(directory):
    """Every file below ``directory`` with its hash and mode: 'nothing changed' made checkable."""
    found = {}
    for base, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(base, name)
            if os.path.islink(path):
                found[path] = 'link:' + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, 'rb') as f:
                    found[path] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mode)
            else:
                found[path] = ('dir', os.stat(path).st_mode)
    return found


def watched(site):
    """The files of the site, without what the running stand-ins write on their own (logs, pid files, audit)."""
    return {p: v for p, v in snapshot(str(site.dir)).items()
            if not any(part in p for part in ('/logs', '/run/', '/audit', 'inventory.yml', '/metadata/'))}


@pytest.fixture
def site(tmp_path, archive):
    made = Site(tmp_path, archive)
    yield made
    made.stop()


@pytest.fixture(scope='module')
def provisioned_once(tmp_path_factory, archive):
    """site.yml run once per module: the site's directory, a copy of it with its EKMs stopped, and its ports."""
    base = tmp_path_factory.mktemp('provisioned')
    (base / 'site').mkdir()
    made = Site(base / 'site', archive)
    try:
        rc, out = made.run('site.yml')
    finally:
        made.stop()
    assert rc == 0, out[-4000:]
    subprocess.run(['cp', '-a', str(made.dir), str(base / 'template')], check=True)
    return made.dir, base / 'template', made.ports


@pytest.fixture
def provisioned(provisioned_once, archive):
    """A freshly provisioned site for each test, without a site.yml run each: the site's directory put back byte for
    byte (times and modes too) as site.yml left it, at the same paths and ports, and its EKMs started."""
    where, template, ports = provisioned_once
    subprocess.run(['rsync', '-a', '--delete', str(template) + '/', str(where) + '/'], check=True)
    made = Site(where, archive, ports)
    made.ekmctl('start', check=True)
    yield made
    made.stop()


def assert_refused(out, rc, *needles):
    assert rc != 0, out[-4000:]
    assert 'Preflight: ' in out and NOTHING in out, out[-4000:]
    for needle in needles:
        assert needle in out, (needle, out[-4000:])
    assert PASSWORD not in out


def refused_on_each(site, playbooks, needles, group_vars=None, args=()):
    before = watched(site)
    for playbook in playbooks:
        rc, out = site.run(playbook, *args, group_vars=group_vars)
        assert_refused(out, rc, *needles)
        # The preflight is the first play: no other play started.
        assert 'PLAY [Preflight: ' in out and out.count('PLAY [') == 1, out[-4000:]
        assert watched(site) == before, playbook


ALL = ['site.yml', 'add_keys.yml', 'sync.yml', 'backup.yml']


def test_unreachable_redundant_stops_every_playbook(provisioned):
    provisioned.hosts['ekm2'].update({'ansible_connection': 'ssh', 'ansible_host': '127.0.0.1',
                                      'ansible_port': free_port(), 'ansible_user': 'nobody'})
    refused_on_each(provisioned, ALL, ['ekm2 (a redundant server) cannot be reached', 'ekm_out_of_service'])
    rc, out = provisioned.run('restore.yml', '-e', 'restore_host=ekm1')
    assert_refused(out, rc, 'ekm2 (a redundant server) cannot be reached')


@pytest.mark.parametrize('where', ['host', 'controller'])
def test_missing_backup_destination(provisioned, where):
    missing = str(provisioned.dir / 'no-such-medium')
    variable = 'ekm_backup_dest' if where == 'host' else 'ekm_backup_controller_dest'
    refused_on_each(provisioned, ALL, ['%s does not exist' % missing, variable],
                    group_vars={'ekm_backup_where': where, variable: missing})


@pytest.mark.parametrize('where', ['host', 'controller'])
def test_read_only_backup_destination(provisioned, where):
    medium = provisioned.dir / 'read-only-medium'
    medium.mkdir()
    variable = 'ekm_backup_dest' if where == 'host' else 'ekm_backup_controller_dest'
    with read_only(str(medium)):
        refused_on_each(provisioned, ALL, ['%s cannot be written to' % medium, variable],
                        group_vars={'ekm_backup_where': where, variable: str(medium)})


@contextlib.contextmanager
def read_only(path):
    """``path`` read-only also for root: a read-only bind mount (root ignores a directory's mode)."""
    if os.geteuid() != 0:
        os.chmod(path, 0o555)
        try:
            yield
        finally:
            os.chmod(path, 0o755)
        return
    subprocess.run(['mount', '--bind', path, path], check=True)
    try:
        subprocess.run(['mount', '-o', 'remount,ro,bind', path], check=True)
        yield
    finally:
        subprocess.run(['umount', path], check=True)


def test_unknown_owner(provisioned):
    refused_on_each(provisioned, ['add_keys.yml', 'sync.yml', 'backup.yml'],
                    ["the account 'no-such-ekm-user' (ekm_user) does not exist", "the group 'no-such-ekm-group'"],
                    group_vars={'ekm_user': 'no-such-ekm-user', 'ekm_group': 'no-such-ekm-group'})


def test_unknown_owner_on_a_new_site_unless_the_server_role_creates_it(site):
    rc, out = site.run('site.yml', group_vars={'ekm_user': 'no-such-ekm-user'})
    assert_refused(out, rc, "the account 'no-such-ekm-user' (ekm_user) does not exist")
    assert not (site.dir / 'ekm1').exists() and not (site.dir / 'ekm2').exists()


def test_relative_archive(site, archive):
    rc, out = site.run('site.yml', group_vars={'ekm_server_archive': 'dist/ekm.tar.gz'})
    assert rc != 0 and 'ekm_server_archive dist/ekm.tar.gz is a relative path' in out, out[-4000:]
    assert 'is a file in neither' in out and 'Write an absolute path, for example' in out
    assert 'ekm_server_archive: %s/dist/ekm.tar.gz' % site.dir in out and 'Nothing was changed' in out
    assert not (site.dir / 'ekm1').exists() and not (site.dir / 'ekm2').exists()
    # Beside the inventory, it is found.
    (site.dir / 'dist').mkdir()
    os.symlink(archive[0], str(site.dir / 'dist' / 'ekm.tar.gz'))
    rc, out = site.run('site.yml', group_vars={'ekm_server_archive': 'dist/ekm.tar.gz'})
    assert rc == 0, out[-4000:]


def test_shared_directory(site):
    # The same directory under another spelling (through a symbolic link): compared as files, not as strings.
    os.symlink(str(site.dir / 'ekm1'), str(site.dir / 'alias'))
    site.hosts['ekm2']['ekm_home'] = str(site.dir / 'alias') + '/'
    before = watched(site)
    for playbook in ALL:
        rc, out = site.run(playbook)
        assert_refused(out, rc, 'ekm1 and ekm2 would share their EKM files',
                       'ekm_home of ekm1 and ekm_home of ekm2 are %s' % (site.dir / 'ekm1'))
        assert watched(site) == before
    # verify.yml reports such an inventory among its problems (its report files go outside the watched directory).
    rc, out = site.run('verify.yml', '-e', 'ekm_verify_report_path=%s' % (site.dir.parent / 'shared-verify.json'))
    assert rc != 0 and 'ekm1 and ekm2 would share their EKM files' in out, out[-4000:]
    assert watched(site) == before


def test_two_primaries(site):
    site.primaries = ['ekm1', 'ekm2']
    site.redundants = []
    refused_on_each(site, ALL, ['ekm_primary must hold exactly one host', 'it holds 2: ekm1, ekm2'])
    assert not (site.dir / 'ekm1').exists()


def test_host_in_both_groups(provisioned):
    provisioned.primaries = ['ekm1', 'ekm2']
    refused_on_each(provisioned, ALL, ['ekm2 is in both ekm_primary and ekm_redundant'],
                    args=('-e', '{"ekm_add_key_ranges": [{"prefix": "PRE", "first": 5, "count": 50}]}'))


def test_out_of_service_named_wrongly(provisioned):
    refused_on_each(provisioned, ['sync.yml'], ['ekm_out_of_service names ekm1, the primary'],
                    group_vars={'ekm_out_of_service': ['ekm1']})
    refused_on_each(provisioned, ['sync.yml'], ['ekm_out_of_service must be a list'],
                    group_vars={'ekm_out_of_service': 'ekm2'})


def test_gather_facts_false(site):
    playbook = site.dir / 'own.yml'
    playbook.write_text('\n'.join([
        '- name: Primary, without facts', '  hosts: ekm_primary', '  gather_facts: false',
        '  roles: [tapecrypt.ekm.server, tapecrypt.ekm.primary]',
        '- name: Redundant, without facts', '  hosts: ekm_redundant', '  gather_facts: false',
        '  roles: [tapecrypt.ekm.server, tapecrypt.ekm.redundant]', '']))
    rc, out = site.run('own.yml', playbook_path=playbook)
    assert rc == 0, out[-4000:]
    gathered = out.split('TASK [tapecrypt.ekm.common : Gather the facts the tapecrypt.ekm roles need]')
    assert len(gathered) == 3 and 'ok: [ekm1]' in gathered[1] and 'ok: [ekm2]' in gathered[2], out[-4000:]
    # A second run finds the facts missing again and works again (the redundant server may copy what the primary's
    # EKM wrote at its first start; the collection's site.yml orders that itself).
    rc, out = site.run('own.yml', playbook_path=playbook)
    assert rc == 0 and out.count('TASK [tapecrypt.ekm.common : Gather the facts the tapecrypt.ekm roles need]') == 2, out[-4000:]


def assert_left_alone(out, host):
    """``host`` was not contacted: past the preflight (where it is only put into a group), no task ran on it."""
    plays = out.split('PLAY [')[1:]
    assert plays[0].startswith('Preflight: ') and len(plays) > 1, out[-4000:]
    for play in plays[1:]:
        if not play.startswith('Preflight: '):  # backup.yml's, imported: skipped, this run checked once
            assert '[%s]' % host not in play.split('PLAY RECAP')[0], play[:3000]
    assert 'unreachable=1' not in out and 'changed=0' in out.split('PLAY RECAP')[1].split(host + ' ', 1)[1].split('\n')[0]


def test_out_of_service_redundant_is_skipped(provisioned):
    # ekm2 is being rebuilt: it cannot be reached, and add_keys.yml and sync.yml leave it alone.
    provisioned.hosts['ekm2'].update({'ansible_connection': 'ssh', 'ansible_host': '127.0.0.1',
                                      'ansible_port': free_port(), 'ansible_user': 'nobody'})
    ekm2 = {p: v for p, v in watched(provisioned).items() if '/ekm2/' in p}
    out_of_service = {'ekm_out_of_service': ['ekm2']}
    rc, out = provisioned.run('add_keys.yml', '-e', '{"ekm_add_key_ranges": [{"prefix": "PRE", "first": 5, "count": 4}]}',
                              group_vars=out_of_service)
    assert rc == 0, out[-4000:]
    assert 'Out of service (ekm_out_of_service), left alone by this run: ekm2' in out
    assert_left_alone(out, 'ekm2')
    # The new keys are in a verified backup set of the primary.
    manifests = sorted((provisioned.dir / 'backup' / 'pre' / 'ekm1').glob('*/MANIFEST.json'))
    assert 'PRE001-008' in manifests[-1].read_text(), manifests
    rc, out = provisioned.run('sync.yml', group_vars=out_of_service)
    assert rc == 0, out[-4000:]
    assert_left_alone(out, 'ekm2')
    assert {p: v for p, v in watched(provisioned).items() if '/ekm2/' in p} == ekm2
    # Back in service: site.yml rebuilds it from the primary.
    for key in ('ansible_connection', 'ansible_host', 'ansible_port', 'ansible_user'):
        provisioned.hosts['ekm2'].pop(key)
    provisioned.hosts['ekm2']['ansible_connection'] = 'local'
    rc, out = provisioned.run('site.yml')
    assert rc == 0, out[-4000:]
    rc, out = provisioned.run('verify.yml')
    assert rc == 0, out[-4000:]
