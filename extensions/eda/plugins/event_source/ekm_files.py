# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Event source ``tapecrypt.ekm.ekm_files``: one event per settled change of an EKM server's files.

The files are watched by their SHA-256 digest, read from the path each time: an atomic
replacement (a new inode renamed over the old one), a rotation (the file moved away and a new
one created) and an edit in place all show up, and a file that is replaced by identical bytes
does not. A change becomes an event only once the digests have stayed the same for ``settle``
seconds (or ``max_delay`` seconds after the first change, when EKM keeps writing), so a burst of
cartridges gives one event.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
import os
import shlex
import shutil
import socket
import tempfile
import time

DOCUMENTATION = r'''
---
short_description: Watch an EKM server's keystore, KeyGroups.xml and drive table
description:
  - An ansible-rulebook event source. It reads the SHA-256 digests of the named files every O(interval) seconds,
    on this host or on a remote EKM host through one SSH call (no Ansible start-up, no Python needed there),
    and emits one event per settled change, naming every file, its digest and its digest before.
  - A change must stay unchanged for O(settle) seconds before it is emitted (debounce); while EKM keeps writing, an
    event is emitted at the latest O(max_delay) seconds after the first change.
  - Nothing is emitted while nothing changed, also not at start-up, unless O(state_file) holds digests that differ
    from the files' (changes made while the source was not running) or O(emit_initial=true).
options:
  files:
    description:
      - The files to watch, by name (C(keystore), C(keygroups), C(drivetable)) and path on the watched host.
    type: dict
    required: true
  host:
    description:
      - SSH destination (C(user@address)) of the EKM host. Without it the files are read on this host.
      - The SSH user must be able to read the files (C(root) or the EKM user).
    type: str
  ssh_args:
    description: Extra arguments for C(ssh), for example C(-i), C(-p) or C(-o UserKnownHostsFile=...).
    type: list
    elements: str
    default: []
  interval:
    description: Seconds between two looks at the files.
    type: float
    default: 2
  settle:
    description: Seconds the digests must stay the same before a change is emitted.
    type: float
    default: 2
  max_delay:
    description: Seconds after the first change at which the change is emitted even though the files still change.
    type: float
    default: 30
  primary:
    description: Inventory hostname of the watched server, passed on in the event (the rulebook syncs its site).
    type: str
  site:
    description: Site name passed on in the event.
    type: str
  state_file:
    description:
      - A JSON file on the rulebook's host that keeps the digests last emitted, so that a change made while the
        source was stopped is emitted after a restart. Written atomically after each event.
    type: str
  emit_initial:
    description: Emit one event with the digests found at start-up.
    type: bool
    default: false
  unreachable_after:
    description: Failed looks in a row after which one C(unreachable) event is emitted (one per outage).
    type: int
    default: 3
'''

EXAMPLES = r'''
- name: Sync the redundant EKM servers when the primary's files change
  hosts: all
  sources:
    - tapecrypt.ekm.ekm_files:
        host: root@ekm1.example.com
        primary: ekm1
        files:
          keystore: /opt/ekm/keystore/EKMKeys.jck
          keygroups: /opt/ekm/config/KeyGroups.xml
          drivetable: /opt/ekm/config/drivetable.dat
        interval: 2
        settle: 2
  rules:
    - name: Files changed
      condition: event.ekm_files.type == "changed"
      action:
        debug:
'''

LOG = logging.getLogger('tapecrypt.ekm.ekm_files')
EVENT_KEY = 'ekm_files'
SSH_TIMEOUT = 20


class DigestError(Exception):
    """The files could not be looked at (host unreachable, command failed)."""


def _now_iso(wall=None):
    stamp = datetime.datetime.fromtimestamp(time.time() if wall is None else wall, datetime.timezone.utc)
    return stamp.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


class Debouncer:
    """The settling rule, apart from any clock or I/O: feed it digests, it answers with a change or None.

    ``baseline`` is what was last emitted (or seen at start). A new set of digests starts a
    candidate; the candidate is emitted once it has stayed the same for ``settle`` seconds, or
    ``max_delay`` seconds after the first difference from the baseline.
    """

    def __init__(self, settle, max_delay, baseline=None):
        self.settle = float(settle)
        self.max_delay = max(float(max_delay), self.settle)
        self.baseline = baseline
        self._candidate = None
        self._candidate_since = None
        self._first_change = None

    def observe(self, digests, now):
        """(previous, digests, seconds since the first change) when a change settles, else None."""
        if self.baseline is None:
            self.baseline = dict(digests)
            return None
        if digests == self.baseline:
            self._candidate = self._candidate_since = self._first_change = None
            return None
        if self._first_change is None:
            self._first_change = now
        if digests != self._candidate:
            self._candidate, self._candidate_since = dict(digests), now
        settled = now - self._candidate_since >= self.settle
        overdue = now - self._first_change >= self.max_delay
        if not (settled or overdue):
            return None
        previous, waited = self.baseline, now - self._first_change
        self.baseline = dict(digests)
        self._candidate = self._candidate_since = self._first_change = None
        return previous, dict(digests), waited


def build_event(args, previous, digests, sequence, waited):
    """The event for one settled change: every file with its path, digest and digest before."""
    files = {}
    for name in sorted(args['files']):
        files[name] = {'path': args['files'][name], 'digest': digests.get(name),
                       'previous': (previous or {}).get(name)}
    return {EVENT_KEY: {
        'type': 'changed',
        'primary': args.get('primary') or args.get('host') or socket.gethostname(),
        'site': args.get('site') or '',
        'host': args.get('host') or 'localhost',
        'changed': [name for name in sorted(files) if files[name]['digest'] != files[name]['previous']],
        'missing': [name for name in sorted(files) if files[name]['digest'] is None],
        'complete': all(files[name]['digest'] is not None for name in files),
        'files': files,
        'sequence': sequence,
        'waited_seconds': round(waited, 3),
        'observed_at': _now_iso(),
    }}


class LocalDigests:
    """Digests of files on this host; a file whose inode, size and times did not change is not read again."""

    def __init__(self, files):
        self.files = dict(files)
        self._cache = {}

    def _digest(self, path):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        if not os.path.isfile(path):
            raise DigestError('%s is not a regular file' % path)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._cache.get(path)
        if cached and cached[0] == key:
            return cached[1]
        digest = hashlib.sha256()
        try:
            with open(path, 'rb') as handle:
                for block in iter(lambda: handle.read(1 << 20), b''):
                    digest.update(block)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DigestError('cannot read %s: %s' % (path, exc)) from exc
        self._cache[path] = (key, digest.hexdigest())
        return digest.hexdigest()

    def read(self):
        return {name: self._digest(path) for name, path in self.files.items()}

    async def __call__(self):
        return await asyncio.to_thread(self.read)

    def close(self):
        self._cache.clear()


def remote_script(paths):
    """A POSIX sh command printing one line per path: its SHA-256, or '-' when it is not a readable regular file."""
    quoted = ' '.join(shlex.quote(p) for p in paths)
    return ('for f in %s; do if [ -f "$f" ] && d=$(sha256sum < "$f" 2>/dev/null); then echo "${d%%%% *}"; '
            'else echo -; fi; done' % quoted)


def parse_remote(output, names):
    """Map the remote script's lines to the file names; a short or malformed answer is an error."""
    lines = output.split('\n')
    if len(lines) < len(names) or any(len(line) != 64 and line != '-' for line in lines[:len(names)]):
        raise DigestError('unexpected answer from the EKM host: %r' % output[:200])
    return {name: (None if line == '-' else line) for name, line in zip(names, lines)}


class RemoteDigests:
    """Digests of files on an EKM host, one SSH call per look over a shared (ControlMaster) connection."""

    def __init__(self, host, files, ssh_args=()):
        self.names = sorted(files)
        self.paths = [files[n] for n in self.names]
        self._control_dir = tempfile.mkdtemp(prefix='ekm_files-')
        self.base = ['ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-o', 'ControlMaster=auto',
                     '-o', 'ControlPath=%s/%%C' % self._control_dir, '-o', 'ControlPersist=120'] + list(ssh_args) + [host]

    def argv(self):
        return self.base + ['--', remote_script(self.paths)]

    async def __call__(self):
        proc = await asyncio.create_subprocess_exec(*self.argv(), stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), SSH_TIMEOUT)
        except asyncio.TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise DigestError('ssh did not answer within %d s' % SSH_TIMEOUT) from exc
        if proc.returncode != 0:
            raise DigestError('ssh exited with %d: %s' % (proc.returncode, err.decode(errors='replace').strip()[:300]))
        return parse_remote(out.decode(errors='replace'), self.names)

    def close(self):
        master = self.base[:-1] + ['-O', 'exit', self.base[-1]]
        try:
            os.spawnvp(os.P_WAIT, master[0], master)  # ends the shared connection, if one is open
        except OSError:
            pass
        shutil.rmtree(self._control_dir, ignore_errors=True)


def load_state(path):
    """The digests last emitted, from the state file, or None."""
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path, encoding='utf-8') as handle:
            state = json.load(handle)
        return dict(state['files'])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        LOG.warning('ignoring the state file %s: %s', path, exc)
        return None


def save_state(path, digests):
    """Write the digests atomically (temporary file, rename)."""
    if not path:
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.ekm_files-')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            json.dump({'files': digests, 'written_at': _now_iso()}, handle, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_args(args):
    """The arguments with their defaults; a ValueError naming what is wrong."""
    files = args.get('files')
    if not isinstance(files, dict) or not files or not all(isinstance(p, str) and p for p in files.values()):
        raise ValueError('tapecrypt.ekm.ekm_files: files must map names to paths, e.g. {keystore: /opt/ekm/...}')
    out = dict(args)
    for name, default in (('interval', 2.0), ('settle', 2.0), ('max_delay', 30.0)):
        out[name] = float(args.get(name, default))
        if out[name] < 0 or (name == 'interval' and out[name] <= 0):
            raise ValueError('tapecrypt.ekm.ekm_files: %s must be positive' % name)
    out['unreachable_after'] = int(args.get('unreachable_after', 3))
    out['ssh_args'] = [str(a) for a in args.get('ssh_args') or []]
    return out


class Source:
    """The polling loop: look, debounce, put events on the queue."""

    def __init__(self, queue, args, reader=None, clock=time.monotonic):
        self.queue = queue
        self.args = check_args(args)
        if reader is None:
            reader = (RemoteDigests(self.args['host'], self.args['files'], self.args['ssh_args'])
                      if self.args.get('host') else LocalDigests(self.args['files']))
        self.reader = reader
        self.clock = clock
        self.debouncer = Debouncer(self.args['settle'], self.args['max_delay'], load_state(self.args.get('state_file')))
        self.sequence = 0
        self.failures = 0

    async def emit(self, previous, digests, waited):
        self.sequence += 1
        await self.queue.put(build_event(self.args, previous, digests, self.sequence, waited))
        save_state(self.args.get('state_file'), digests)

    async def step(self):
        """One look at the files; True when an event was put on the queue."""
        try:
            digests = await self.reader()
        except DigestError as exc:
            self.failures += 1
            LOG.warning('tapecrypt.ekm.ekm_files: %s', exc)
            if self.failures == self.args['unreachable_after']:
                await self.queue.put({EVENT_KEY: {'type': 'unreachable', 'host': self.args.get('host') or 'localhost',
                                                  'primary': self.args.get('primary') or '', 'reason': str(exc),
                                                  'observed_at': _now_iso()}})
                return True
            return False
        self.failures = 0
        if self.sequence == 0 and self.debouncer.baseline is None and self.args.get('emit_initial'):
            self.debouncer.baseline = dict(digests)
            await self.emit({}, digests, 0.0)
            return True
        change = self.debouncer.observe(digests, self.clock())
        if change is None:
            return False
        await self.emit(*change)
        return True

    async def run(self):
        try:
            while True:
                await self.step()
                await asyncio.sleep(self.args['interval'])
        finally:
            self.reader.close()


async def main(queue, args):
    """Entry point called by ansible-rulebook."""
    await Source(queue, args).run()


if __name__ == '__main__':
    # Run alone: python ekm_files.py '{"files": {"keygroups": "/tmp/KeyGroups.xml"}}'
    import sys

    class _PrintQueue:
        async def put(self, event):
            print(json.dumps(event, sort_keys=True), flush=True)

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(_PrintQueue(), json.loads(sys.argv[1])))
