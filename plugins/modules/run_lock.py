#!/usr/bin/python
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r'''
---
module: run_lock
short_description: Take the controller's run lock, so that sync, verify and backup runs never overlap
version_added: 0.1.0
description:
  - Takes an exclusive lock (C(flock)) on a file on the controller and holds it until the C(ansible-playbook) process
    that ran the task ends, however it ends (success, failure, a signal). A small holder process keeps the lock and
    watches that process; nothing has to release it.
  - The collection's C(sync.yml), C(verify.yml) and C(backup.yml) take it in their first play, so runs started by hand,
    by the C(tapecrypt.ekm.schedule) timer or cron line, by the C(tapecrypt.ekm.ekm_sync) rulebook or by AWX on the
    same controller wait for each other instead of overlapping.
  - A run that holds the lock already (a playbook that imports another one that takes it) gets it again at once.
  - C(flock -w SECONDS FILE COMMAND) takes the same lock, for shell wrappers.
  - Runs on the controller only; it never connects to a host.
author:
  - tapecrypt.ekm contributors (!UNKNOWN)
extends_documentation_fragment:
  - tapecrypt.ekm.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the lock is not taken.
  diff_mode:
    support: none
  safe_file_operations:
    support: none
  idempotent:
    support: full
  action:
    description: Runs entirely in its action plugin, on the controller.
    support: full
options:
  path:
    description:
      - The lock file on the controller. It is created (mode 0600) when missing, never removed.
      - Default the environment variable C(TAPECRYPT_EKM_RUN_LOCK), else C(~/.ansible/tapecrypt-ekm-run.lock) of the
        user running Ansible. Runs under different users share a lock only when they name the same file.
    type: path
  timeout:
    description: Seconds to wait for another run to end before failing.
    type: float
    default: 1800
  name:
    description: What this run is, written into the lock file for the message of a run that has to wait.
    type: str
    default: ansible-playbook
notes:
  - Relies on Ansible running each task in a worker forked from the C(ansible-playbook) process, as ansible-core 2.17
    to 2.21 do.
'''

EXAMPLES = r'''
- name: Take the run lock
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Wait for other sync, verify and backup runs
      tapecrypt.ekm.run_lock:
        name: sync.yml
        timeout: 600
'''

RETURN = r'''
path:
  description: The lock file.
  returned: always
  type: str
  sample: /root/.ansible/tapecrypt-ekm-run.lock
owner_pid:
  description: The process id of the C(ansible-playbook) run that holds the lock.
  returned: always
  type: int
  sample: 4242
holder_pid:
  description: The process id of the holder process, when the lock was taken by this task.
  returned: when the lock was taken
  type: int
  sample: 4250
waited:
  description: Seconds waited for another run.
  returned: always
  type: float
  sample: 0.02
'''
