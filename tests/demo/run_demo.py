# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``make demo``: the collection's procedures on this machine, under ``demo/``, no root needed.

Two "hosts" (``ansible_connection: local``, one ``ekm_home`` each, the stand-in EKM on two
ports) are provisioned and operated with the collection's real playbooks; a small tape-drive
client writes and reads cartridges through them. The run prints a summary and writes
``demo/report.json`` (its fields: docs/architecture.md, "The demo").

Every run starts from a clean state: the servers of an earlier run are stopped with their own
``ekmctl`` and ``demo/`` is removed, whatever was done with them in between. At the end both
servers keep running, for trying things out; ``make demo-stop`` (``run_demo.py --stop``) stops
them. A run that fails stops them too.

``--dialect ibm`` runs the same story on an IBM-dialect site: both hosts' Java home is a small
stand-in for IBM's JRE (it reports ``java.vendor = IBM Corporation`` and runs this machine's
OpenJDK), so the primary role gives the new keystore the IBM JRE's dialect by itself, and the
stand-in EKM reads that keystore with its own IBM-dialect reader. ``--dir`` and ``--port``
put the run elsewhere (the playbook tests use them).
"""
from __future__ import annotations

import argparse
import getpass
import grp
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, 'demo')
BIN = os.path.dirname(os.path.abspath(sys.executable))
COLLECTIONS = os.path.join(ROOT, '.build')
PASSWORD = 'demo-keystore-pass'
PRIMARY, REDUNDANT = 'ekm-primary', 'ekm-redundant'
PORTS = {PRIMARY: 38011, REDUNDANT: 38012}

sys.path.insert(0, os.path.join(ROOT, 'roles', 'standin', 'files'))
import tapeclient  # noqa: E402  pylint: disable=wrong-import-position


def ensure_collection_link():
    link = os.path.join(COLLECTIONS, 'ansible_collections', 'tapecrypt', 'ekm')
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)


def build_standin():
    out = subprocess.run(['bash', os.path.join(ROOT, 'roles', 'standin', 'files', 'build.sh'), os.path.join(DEMO, 'dist')],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True).stdout
    archive = out.strip().splitlines()[-1]
    with open(archive + '.sha256', encoding='utf-8') as f:
        return archive, f.read().split()[0]


def home(host, demo=None):
    return os.path.join(demo or DEMO, host)


def port_in_use(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(('127.0.0.1', port)) == 0


def stop_servers(demo=None, hosts=None):
    """Stop the demo's EKM servers with their own ekmctl; the hosts whose EKM could not be stopped."""
    demo = demo or DEMO
    hosts = tuple(PORTS) if hosts is None else hosts
    failed = []
    for host in hosts:
        ctl = os.path.join(home(host, demo), 'bin', 'ekmctl')
        if not os.path.isfile(ctl):
            continue
        proc = subprocess.run([ctl, 'stop'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        if proc.returncode != 0:
            failed.append('%s (%s)' % (host, ' '.join(proc.stdout.split())[:300]))
    return failed


def clean_start(demo=None, ports=None):
    """Stop what an earlier run left running, remove its directory and make sure the demo's ports are free.

    Never forces anything: a server that does not stop, or a port held by a process that is not
    the demo's, stops the run with a message saying what to do.
    """
    demo = demo or DEMO
    ports = PORTS if ports is None else ports
    failed = stop_servers(demo, tuple(ports))
    if failed:
        raise SystemExit('the EKM servers of the last demo run did not stop: %s; stop them, then run the demo again'
                         % '; '.join(failed))
    if os.path.islink(demo):
        os.unlink(demo)
    elif os.path.exists(demo):
        shutil.rmtree(demo)
    busy = ['%d (%s)' % (port, host) for host, port in sorted(ports.items()) if port_in_use(port)]
    if busy:
        raise SystemExit('port(s) %s of 127.0.0.1 are in use by a process that is not one of the demo\'s servers '
                         '(nothing under %s started it); stop that process, then run the demo again' % (', '.join(busy), demo))
    os.makedirs(demo)


def fake_ibm_jre():
    """A Java home whose java says it is IBM's and runs this machine's OpenJDK; keytool is OpenJDK's."""
    real_java = os.path.realpath(shutil.which('java'))
    jre = os.path.join(DEMO, 'ibm-jre')
    os.makedirs(os.path.join(jre, 'bin'), exist_ok=True)
    script = ('#!/bin/sh\n'
              '# Stands in for IBM\'s JRE in the demo: reports IBM as its vendor, runs OpenJDK.\n'
              'for arg in "$@"; do\n'
              '    if [ "$arg" = "-XshowSettings:properties" ]; then\n'
              '        "%s" "$@" 2>&1 | sed -e "s/^\\( *java\\.vendor\\) = .*/\\1 = IBM Corporation/" >&2\n'
              '        exit 0\n'
              '    fi\n'
              'done\n'
              'exec "%s" "$@"\n' % (real_java, real_java))
    path = os.path.join(jre, 'bin', 'java')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(script)
    os.chmod(path, 0o755)
    keytool = os.path.join(jre, 'bin', 'keytool')
    if not os.path.lexists(keytool):
        os.symlink(os.path.join(os.path.dirname(real_java), 'keytool'), keytool)
    return jre


def write_inventory(archive, sha256, key_ranges, dialect='sunjce'):
    user = getpass.getuser()
    group = grp.getgrgid(os.getgid()).gr_name
    common = {
        'ansible_connection': 'local',
        'ansible_python_interpreter': sys.executable,
        'ekm_user': user,
        'ekm_group': group,
        'ekm_server_manage_user': False,
        'ekm_server_manage_packages': False,
        'ekm_service_manager': 'script',
        'ekm_server_archive': archive,
        'ekm_server_archive_sha256': sha256,
        'ekm_server_main_class': 'tapecrypt.standin.EkmStandin',
        'ekm_server_java_options': ['-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xmx128m'],
        'ekm_seed': {
            'site': 'demo',
            'keystore_password': PASSWORD,
            'key_ranges': key_ranges,
            'accept_unknown_drives': True,
            'backup': {'dest': os.path.join(DEMO, 'backup'), 'keep': 5},
        },
    }
    if dialect == 'ibm':
        common['ekm_java_home'] = fake_ibm_jre()
        # This machine's keytool is OpenJDK's, which cannot read IBM-dialect keys; on a real IBM JRE leave it on.
        common['ekm_primary_verify_with_keytool'] = False
    hosts = {}
    for host in (PRIMARY, REDUNDANT):
        hosts[host] = {
            'ekm_home': home(host),
            'ekm_host_settings': {'TransportListener.tcp.port': PORTS[host], 'TransportListener.ssl.port': PORTS[host] + 100,
                                  # A 1 KB metadata file rotates every few cartridges, as a busy library's does.
                                  'Audit.metadata.file.size': 1},
        }
    inventory = {'all': {'vars': common, 'children': {
        'ekm': {'children': {
            'ekm_primary': {'hosts': {PRIMARY: hosts[PRIMARY]}},
            'ekm_redundant': {'hosts': {REDUNDANT: hosts[REDUNDANT]}},
        }}}}}
    path = os.path.join(DEMO, 'inventory.yml')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(inventory, f, indent=2)  # JSON is YAML
    return path


def playbook(inventory, name, *extra, expect_fail=False):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0',
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0', ANSIBLE_DISPLAY_SKIPPED_HOSTS='0',
               PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    cmd = [os.path.join(BIN, 'ansible-playbook'), '-i', inventory, os.path.join(ROOT, name)] + list(extra)
    proc = subprocess.run(cmd, cwd=DEMO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    with open(os.path.join(DEMO, 'ansible.log'), 'a', encoding='utf-8') as log:
        log.write('$ %s\n%s\n' % (' '.join(cmd), proc.stdout))
    recap = {}
    for host, counts in re.findall(r'^(\S+)\s+:\s+(ok=.*)$', proc.stdout, re.M):
        recap[host] = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', counts)}
    if expect_fail is not None and (proc.returncode != 0) != expect_fail:
        print(proc.stdout[-6000:])
        raise SystemExit('demo step %s %s (rc=%d); see demo/ansible.log' % (
            name, 'failed' if not expect_fail else 'did not fail as it should', proc.returncode))
    return recap, proc.stdout


def changed(recap):
    return ', '.join('%s changed=%d' % (h, c['changed']) for h, c in sorted(recap.items()))


def keytool_count(path):
    """keytool's entry count, or what it says when it cannot load the file (OpenJDK on an IBM-dialect keystore)."""
    proc = subprocess.run(['keytool', '-list', '-storetype', 'JCEKS', '-keystore', path, '-storepass:env', 'KSP'],
                          env=dict(os.environ, KSP=PASSWORD, LANG='C'), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False)
    found = re.search(r'Your keystore contains (\d+) entr', proc.stdout)
    if proc.returncode == 0 and found:
        return int(found.group(1))
    return 'refused by OpenJDK keytool (%s)' % proc.stdout.strip().splitlines()[-1][:80]


def inventory_of(host):
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _keystore  # pylint: disable=import-outside-toplevel
    path = os.path.join(home(host), 'keystore', 'EKMKeys.jck')
    ks, data = _keystore.read(path, PASSWORD)
    if ks is None:
        return path, None
    return path, _keystore.inventory(ks, path, data)


def ekmctl(host, action):
    return subprocess.run([os.path.join(home(host), 'bin', 'ekmctl'), action], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)


def ekm_pid(host):
    with open(os.path.join(home(host), 'run', 'ekm.pid'), encoding='utf-8') as handle:
        return handle.read().strip()


def primary_watch():
    """The rulebook's event source (tapecrypt.ekm.ekm_files) on the primary's files, run here without ansible-rulebook:
    its first look now; the function it returns looks until the change settles and describes the one event."""
    import asyncio  # pylint: disable=import-outside-toplevel
    import importlib.util  # pylint: disable=import-outside-toplevel
    spec = importlib.util.spec_from_file_location('ekm_files', os.path.join(
        ROOT, 'extensions', 'eda', 'plugins', 'event_source', 'ekm_files.py'))
    ekm_files = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ekm_files)
    events = []

    class Queue:
        async def put(self, event):
            events.append(event['ekm_files'])
    files = {name: os.path.join(home(PRIMARY), name_) for name, name_ in
             (('keystore', 'keystore/EKMKeys.jck'), ('keygroups', 'KeyGroups.xml'), ('drivetable', 'filedrive.table'))}
    source = ekm_files.Source(Queue(), {'files': files, 'interval': 0.5, 'settle': 1, 'primary': PRIMARY})
    asyncio.run(source.step())

    def settled():
        for _look in range(60):
            if asyncio.run(source.step()):
                break
            time.sleep(0.5)
        return ('event source tapecrypt.ekm.ekm_files: %d event for the burst, files changed: %s' % (
            len(events), ', '.join(events[0]['changed'])) if events else 'event source: no event within 30 s')
    return settled


def write_cartridges(host, count, tag):
    written = []
    os.makedirs(os.path.join(DEMO, 'cartridges'), exist_ok=True)
    for i in range(count):
        path = os.path.join(DEMO, 'cartridges', '%s-%02d.cart' % (tag, i))
        res = tapeclient.write_cartridge(('127.0.0.1', PORTS[host]), 'DRIVE%02d' % (i % 4), path,
                                         payload=('demo cartridge %s %d\n' % (tag, i)).encode() * 100)
        written.append(res)
    return written


def read_all(host):
    paths = sorted(os.path.join(DEMO, 'cartridges', n) for n in os.listdir(os.path.join(DEMO, 'cartridges')))
    ok = 0
    for path in paths:
        tapeclient.read_cartridge(('127.0.0.1', PORTS[host]), 'DRIVE00', path)
        ok += 1
    return ok, len(paths)


def newest_backup(host):
    """The newest verified backup set of a host, from its MANIFEST.json (None when there is none)."""
    base = os.path.join(DEMO, 'backup', 'demo', host)
    if not os.path.isdir(base):
        return None
    for name in sorted(os.listdir(base), reverse=True):
        manifest = os.path.join(base, name, 'MANIFEST.json')
        if name.startswith('.') or not os.path.isfile(manifest):
            continue
        with open(manifest, encoding='utf-8') as f:
            if json.load(f).get('verified'):
                return os.path.join(base, name)
    return None


def count_sets(host):
    base = os.path.join(DEMO, 'backup', 'demo', host)
    return len([n for n in os.listdir(base) if not n.startswith('.')]) if os.path.isdir(base) else 0


def show(out, marker):
    """Print the lines of a debug message whose text starts with ``marker`` (e.g. verify.yml's table)."""
    for block in re.findall(r'"msg": \[(.*?)\]\n', out, re.S):
        lines = [json.loads(x) for x in re.findall(r'^\s*(".*?"),?$', block, re.M)]
        if lines and marker in lines[0]:
            for line in lines:
                print('   ' + line)
            return


def messages(out):
    """The one-line debug messages (``"msg": "..."``) of a playbook run."""
    return [json.loads(m) for m in re.findall(r'^\s*"msg": ("(?:[^"\\]|\\.)*")$', out, re.M)]


def failure_lines(out, marker):
    """The problems of the failed task's message (one JSON line) whose first line starts with ``marker``."""
    for found in re.findall(r'^fatal: \[[^\]]+\]: FAILED! => (\{.*\})$', out, re.M):
        lines = json.loads(found).get('msg')
        if isinstance(lines, list) and lines and str(lines[0]).startswith(marker):
            return [line for line in lines[1:] if re.match(r'^[\w.-]+: [A-Z]', line)]
    return []


def print_problems(problems):
    for line in problems:
        print('     ' + line[:150] + ('...' if len(line) > 150 else ''))


def show_safety(out):
    """Print what the run's phase 4 found on the primary: served, staged and held back keys."""
    for line in dict.fromkeys(re.findall(r'^\s*"((?:served|staged \(|held back)[^"]*)",?$', out, re.M)):
        print('   ' + line)


def key_set(host):
    with open(os.path.join(home(host), 'KeyManagerConfig.properties'), encoding='utf-8') as f:
        return re.search(r'^symmetricKeySet\s*=\s*(.*)$', f.read(), re.M).group(1).strip()


def step(title):
    print('\n-- ' + title)


STOP_COMMAND = 'make demo-stop   (or: .venv/bin/python tests/demo/run_demo.py --stop)'


def parse_args():
    global DEMO, PORTS  # pylint: disable=global-statement
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--stop', action='store_true', help="only stop the demo's EKM servers")
    ap.add_argument('--dialect', choices=['sunjce', 'ibm'], default='sunjce',
                    help="the hosts' Java: OpenJDK (sunjce, default) or a stand-in for IBM's JRE (ibm)")
    ap.add_argument('--dir', default=DEMO, help='where everything goes (default: demo/ of the checkout)')
    ap.add_argument('--port', type=int, default=PORTS[PRIMARY], help="the primary's port; the redundant's is the next")
    args = ap.parse_args()
    DEMO = os.path.abspath(args.dir)
    PORTS = {PRIMARY: args.port, REDUNDANT: args.port + 1}
    return args


def main():
    args = parse_args()
    if args.stop:
        failed = stop_servers()
        if failed:
            raise SystemExit('could not stop: %s' % '; '.join(failed))
        print('the demo EKM servers are stopped')
        return 0
    ensure_collection_link()
    print('== tapecrypt.ekm demo, everything under %s (log: %s)' % (DEMO, os.path.join(DEMO, 'ansible.log')))
    print('   a clean start: stopping the servers of an earlier run and removing %s' % DEMO)
    clean_start()
    if args.dialect == 'ibm':
        print("   both hosts run a stand-in for IBM's JRE (%s): keystores in the IBM JRE's dialect" % os.path.join(DEMO, 'ibm-jre'))
    try:
        run_story(args.dialect)
    except BaseException:
        failed = stop_servers()
        print('\nThe demo failed; its EKM servers were stopped%s. The files are still under %s.'
              % (' except: %s' % '; '.join(failed) if failed else '', DEMO))
        raise
    print('\nBoth stand-in EKM servers are still running (127.0.0.1 ports %s), for writing and reading cartridges '
          'yourself (roles/standin/files/tapeclient.py). Stop them with:\n   %s\nThe next make demo stops them and starts '
          'from scratch.' % (', '.join(str(PORTS[h]) for h in (PRIMARY, REDUNDANT)), STOP_COMMAND))
    return 0


def run_story(dialect):
    archive, sha256 = build_standin()
    # The backup medium: in a real site a mounted volume that is not encrypted with these keys.
    os.makedirs(os.path.join(DEMO, 'backup'), exist_ok=True)
    first_range = [{'prefix': 'DMA', 'first': 1, 'count': 200}]
    both_ranges = first_range + [{'prefix': 'DMB', 'first': 1, 'count': 56}]
    inventory = write_inventory(archive, sha256, first_range, dialect)
    report = {'servers': {}, 'dialect': dialect}

    step('1. playbooks/site.yml: a primary EKM from the seed, and a redundant one built from it (stand-in EKM)')
    recap, _out = playbook(inventory, 'playbooks/site.yml')
    print('   first run : %s' % changed(recap))
    recap, _out = playbook(inventory, 'playbooks/site.yml')
    print('   second run: %s' % changed(recap))
    if any(c['changed'] for c in recap.values()):
        raise SystemExit('the second site.yml run changed something: not idempotent')
    path, inv = inventory_of(PRIMARY)
    counted = keytool_count(path)
    print('   primary keystore: %s keys in the %s dialect; keytool -list: %s; ranges %s'
          % (inv['count'], inv['dialect'], counted, ', '.join(inv['ranges'])))
    if inv['dialect'] != dialect:
        raise SystemExit('the primary keystore is in the %s dialect, not %s' % (inv['dialect'], dialect))
    for host in (PRIMARY, REDUNDANT):
        print('   %-14s digest %s' % (host, inventory_of(host)[1]['digest'][:16]))

    step('2. cartridges written through the primary EKM (tape client, AES-256-GCM, keys handed out round robin)')
    written = write_cartridges(PRIMARY, 6, 'a')
    print('   wrote %d cartridges with keys %s' % (len(written), ', '.join(compress_aliases(w['alias'] for w in written))))

    step('3. playbooks/add_keys.yml: a new range DMB001-038, first with its backup phase switched off: it stays staged')
    new_range = ['-e', json.dumps({'ekm_add_key_ranges': both_ranges[1:]})]
    recap, out = playbook(inventory, 'playbooks/add_keys.yml', *new_range, '-e', 'ekm_add_keys_backup=false')
    show_safety(out)
    print('   %s; symmetricKeySet of %s: %s' % (changed(recap), PRIMARY, key_set(PRIMARY)))
    inventory = write_inventory(archive, sha256, both_ranges, dialect)  # and the seed now says so, for every later run
    _recap, out = playbook(inventory, 'playbooks/verify.yml', expect_fail=True)
    print('   verify.yml fails: %s' % (re.search(r'KEYS STAGED: [^"]*', out).group(0)[:100] + '...'))
    if key_set(PRIMARY) != 'DMA001-0C8':
        raise SystemExit('keys that no verified backup set holds were served')
    print('   the same command with the backup phase: the keys are backed up, then served')
    recap, out = playbook(inventory, 'playbooks/add_keys.yml', *new_range)
    show_safety(out)
    print('   %s; symmetricKeySet of %s: %s' % (changed(recap), REDUNDANT, key_set(REDUNDANT)))
    if key_set(PRIMARY) != key_set(REDUNDANT) or 'DMB' not in key_set(PRIMARY):
        raise SystemExit('the new range, now safe, was not served on both servers')
    watch = primary_watch()
    written += write_cartridges(PRIMARY, 4, 'b')
    print('   wrote 4 more cartridges through the primary')
    print('   %s' % watch())

    step('4. playbooks/sync.yml (what the rulebook runs on that event, or a timer) and playbooks/verify.yml (the drift report)')
    pid = ekm_pid(REDUNDANT)
    recap, _out = playbook(inventory, 'playbooks/sync.yml')
    how = 'reloaded its key groups and drive table, no restart' if ekm_pid(REDUNDANT) == pid else 'was restarted'
    print('   sync.yml: %s; the redundant EKM %s' % (changed(recap), how))
    recap, out = playbook(inventory, 'playbooks/verify.yml')
    show(out, 'server')
    in_sync = inventory_of(PRIMARY)[1]['digest'] == inventory_of(REDUNDANT)[1]['digest']

    step('5. playbooks/backup.yml: verified backup sets on non-encrypted media (demo/backup), run twice')
    playbook(inventory, 'playbooks/backup.yml')
    recap, _out = playbook(inventory, 'playbooks/backup.yml')
    print('   second run: %s; sets: %s' % (changed(recap), ', '.join('%s %d' % (h, count_sets(h)) for h in (PRIMARY, REDUNDANT))))

    step('5a. the key-usage ledger: cartridges with VolSers, playbooks/collect_ledger.yml between metadata rotations')
    report['ledger'] = ledger_story(inventory)

    step('6. the primary is lost: its EKM stops; the library fails over: it writes and reads through the redundant EKM')
    print('   ' + ekmctl(PRIMARY, 'stop').stdout.strip().splitlines()[-1])
    failover = write_failover_cartridges()
    print('   wrote %d cartridges through %s, from drives %s that neither server knew; its KeyGroups.xml and drive '
          'table changed there' % (len(failover), REDUNDANT, ', '.join(FAILOVER_DRIVES)))
    ok, total = read_all(REDUNDANT)
    print('   read back %d of %d cartridges through %s' % (ok, total, REDUNDANT))
    report['cartridges'] = {'written': total, 'read_back': ok, 'read_via': REDUNDANT}
    if ok != total:
        raise SystemExit('cartridges could not be read through the redundant EKM')
    _recap, out = playbook(inventory, 'playbooks/verify.yml', expect_fail=True)
    problems = failure_lines(out, 'The EKM site is not healthy')
    named = [tuple(p.split(': ')[:2]) for p in problems]
    if (PRIMARY, 'SERVICE DOWN') not in named or (REDUNDANT, 'SERVED SINCE SYNC') not in named:
        raise SystemExit('verify.yml did not name the lost primary and the redundant that served alone: %s' % problems)
    print('   verify.yml fails, as it should, until the site is back:')
    print_problems(problems)

    step('6a. the primary is back: sync.yml refuses the redundant\'s changed files; playbooks/failback.yml')
    report['failback'] = failback_story(inventory, failover)
    recap, out = playbook(inventory, 'playbooks/verify.yml')
    print('   verify.yml after the failback: the site is back, nothing is reported')
    show(out, 'server')

    step('7. disaster on the primary: its keystore and key groups are gone; playbooks/restore.yml brings them back')
    for name in ('keystore/EKMKeys.jck', 'KeyGroups.xml'):
        os.remove(os.path.join(home(PRIMARY), name))
    recap, _out = playbook(inventory, 'playbooks/restore.yml', '-e', 'restore_host=%s' % PRIMARY)
    print('   restore.yml: %s' % changed(recap))
    ok, total = read_all(PRIMARY)
    print('   read back %d of %d cartridges through the restored primary' % (ok, total))
    recap, out = playbook(inventory, 'playbooks/verify.yml', expect_fail=None)
    problems = failure_lines(out, 'The EKM site is not healthy')
    if any(c.get('failed') for c in recap.values()) and not problems:
        raise SystemExit('verify.yml after the restore failed without a report; see demo/ansible.log')
    if problems:
        # Real, and expected here: the reads through the restored primary wrote more usage records than the demo's
        # small metadata file holds, before any collection.
        if {tuple(p.split(': ')[:2]) for p in problems} != {(PRIMARY, 'METADATA GAP')}:
            raise SystemExit('verify.yml after the restore names more than the rotated metadata: %s' % problems)
        print('   verify.yml after the restore fails: those reads rotated usage records out of the small metadata file')
        print_problems(problems)
        recap, _out = playbook(inventory, 'playbooks/collect_ledger.yml')
        print('   collect_ledger.yml takes in what is left (and warns of what rotated away): %s' % changed(recap))
        recap, out = playbook(inventory, 'playbooks/verify.yml')
    show(out, 'server')
    in_sync = in_sync and inventory_of(PRIMARY)[1]['digest'] == inventory_of(REDUNDANT)[1]['digest']
    print('   verify.yml: the site is healthy; the servers are %s' % ('in sync' if in_sync else 'NOT in sync'))

    for host, role in ((PRIMARY, 'primary'), (REDUNDANT, 'redundant')):
        path, inv = inventory_of(host)
        report['servers'][host] = {'role': role, 'keystore': path, 'keys': inv['count'], 'digest': inv['digest'],
                                   'dialect': inv['dialect'], 'newest_backup': newest_backup(host)}
    report['in_sync'] = in_sync
    with open(os.path.join(DEMO, 'report.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write('\n')
    print('\n== report: %s' % os.path.join(DEMO, 'report.json'))
    print(json.dumps(report, indent=2, sort_keys=True))


FAILOVER_DRIVES = ('DRIVE11', 'DRIVE12')


def write_failover_cartridges():
    """Cartridges with VolSers written through the redundant EKM from drives it learns: {VolSer: alias}."""
    written = {}
    for i, drive in enumerate(FAILOVER_DRIVES * 2):
        volser = 'FOV%03d' % i
        written[volser] = tapeclient.write_cartridge(
            ('127.0.0.1', PORTS[REDUNDANT]), drive, os.path.join(DEMO, 'cartridges', 'r-%02d.cart' % i),
            payload=b'written during the failover\n', volser=volser)['alias'].lower()
    return written


def failback_story(inventory, failover):
    """The primary's EKM starts again; failback.yml keeps, adds and syncs; a second run changes nothing."""
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _ledger  # pylint: disable=import-outside-toplevel
    print('   ' + ekmctl(PRIMARY, 'start').stdout.strip().splitlines()[-1])
    _recap, out = playbook(inventory, 'playbooks/sync.yml', expect_fail=True)
    refused = sorted(set(re.findall(r'(KeyGroups\.xml|The drive table) on this redundant server \([^)]*\) was changed '
                                    r'locally since the last sync', out)))
    print('   sync.yml fails: %s on %s changed locally since the last sync (not overwritten without force)'
          % (' and '.join(r.replace('The drive', 'the drive') for r in refused), REDUNDANT))
    if not refused:
        raise SystemExit('sync.yml did not name the files the redundant EKM changed while it served alone')
    add = ['-e', json.dumps({'ekm_failback_add_drive_command': [
        sys.executable, os.path.join(ROOT, 'roles', 'standin', 'files', 'tapeclient.py'), 'adddrive',
        '--server', '127.0.0.1:%d' % PORTS[PRIMARY], '--drive', '@DRIVE@']})]
    recap, out = playbook(inventory, 'playbooks/failback.yml', *add)
    for marker in ('drives added to', '%s: replaced' % REDUNDANT):
        print('   ' + next((m for m in messages(out) if m.startswith(marker)), marker + ' ... (not found in the output)'))
    print('   failback.yml: %s' % changed(recap))
    same = all(inventory_of(h)[1]['digest'] for h in (PRIMARY, REDUNDANT)) and \
        inventory_of(PRIMARY)[1]['digest'] == inventory_of(REDUNDANT)[1]['digest']
    ledger = _ledger.Ledger.load(os.path.join(DEMO, 'ekm-ledger', 'demo-key-ledger.jsonl'))
    kept = [v for v, alias in failover.items() if alias in [a.lower() for a in ledger.aliases_for_volser(v)]]
    print('   the ledger names the key of %d of the %d cartridges written during the failover' % (len(kept), len(failover)))
    reads = {host: read_all(host) for host in (PRIMARY, REDUNDANT)}
    print('   read back through both servers: %s' % ', '.join('%s %d of %d' % ((h,) + reads[h]) for h in reads))
    recap, _out = playbook(inventory, 'playbooks/failback.yml', *add)
    print('   failback.yml again after those reads: %s' % changed(recap))
    playbook(inventory, 'playbooks/collect_ledger.yml')
    print('   the usage records of those reads go into the ledger with the next collect_ledger.yml')
    if len(kept) != len(failover) or any(ok != total for ok, total in reads.values()) or not same:
        raise SystemExit('the failback lost usage records or cartridges could not be read through both servers')
    if any(c['changed'] for c in recap.values()):
        raise SystemExit('the second failback.yml run changed something: not idempotent')
    return {'failover_cartridges': len(failover), 'in_ledger': len(kept), 'read_back': {h: reads[h][0] for h in reads}}


def ledger_story(inventory):
    """Ten cartridges in three batches, the ledger collected after each, then batches of three more until EKM's metadata
    file has rotated at least twice (how full it was at the start depends on the steps before); the rotations take
    the oldest records away, the ledger keeps every one."""
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _ekm_records, _ledger  # pylint: disable=import-outside-toplevel
    os.makedirs(os.path.join(DEMO, 'ledger-cartridges'), exist_ok=True)
    metadata = os.path.join(home(PRIMARY), 'metadata', 'ekm_metadata.xml')
    written, rotations = {}, 0
    inode = os.stat(metadata).st_ino if os.path.exists(metadata) else None
    batches = [(0, 4), (4, 3), (7, 3)] + [(10 + 3 * n, 3) for n in range(6)]
    for number, (first, count) in enumerate(batches):
        if number >= 3 and rotations >= 2:
            break
        for i in range(first, first + count):
            path = os.path.join(DEMO, 'ledger-cartridges', 'VOL%03d.cart' % i)
            result = tapeclient.write_cartridge(('127.0.0.1', PORTS[PRIMARY]), 'DRIVE01', path, b'ledger demo',
                                                volser='VOL%03d' % i, wwn='57574E414D453031')
            written['VOL%03d' % i] = result['alias']
            # A rotation renames the file and starts a new one: the file's inode changes from one write to the next.
            rotations += inode is not None and os.stat(metadata).st_ino != inode
            inode = os.stat(metadata).st_ino
        recap, _out = playbook(inventory, 'playbooks/collect_ledger.yml')
    kept = {r['volser'] for r in _ekm_records.read_metadata(metadata)['records']} & set(written)
    if rotations < 2 or len(kept) == len(written):
        raise SystemExit('the metadata file did not rotate twice (%d rotations, it holds %d of the %d cartridges): the '
                         'ledger story proves nothing' % (rotations, len(kept), len(written)))
    copies = {'controller': os.path.join(DEMO, 'ekm-ledger', 'demo-key-ledger.jsonl'),
              'backup': os.path.join(DEMO, 'backup', 'demo-key-ledger.jsonl')}
    found = {}
    for where, path in copies.items():
        ledger = _ledger.Ledger.load(path)
        found[where] = {v: ledger.aliases_for_volser(v) for v in written}
        if any(found[where][v] != [alias] for v, alias in written.items()) or _ledger.verify_checksum(path):
            raise SystemExit('the ledger %s lacks cartridges or their aliases: %s' % (path, found[where]))
    print('   %d cartridges VOL000-%s written; the metadata file rotated %d times and now holds %d of them'
          % (len(written), max(written), rotations, len(kept)))
    print('   the ledger (%s) and its copy on the backup medium list all %d; VOL004 needs %s; last run: %s'
          % (copies['controller'], len(written), found['controller']['VOL004'][0], changed(recap)))
    return {'cartridges': len(written), 'rotations': rotations, 'in_metadata_files': len(kept),
            'in_ledger': len(found['controller']), 'in_backup_copy': len(found['backup'])}


def compress_aliases(aliases):
    from ansible_collections.tapecrypt.ekm.plugins.module_utils._aliases import compress  # pylint: disable=import-outside-toplevel
    return compress(aliases)


if __name__ == '__main__':
    sys.exit(main())
