# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``tapecrypt.ekm.run_lock``: take the controller's run lock for the rest of this ansible-playbook run."""

from __future__ import annotations

import os
import time

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.tapecrypt.ekm.plugins.plugin_utils import _run_lock

SPEC = {
    'path': {'type': 'str'},
    'timeout': {'type': 'float', 'default': 1800},
    'name': {'type': 'str', 'default': 'ansible-playbook'},
}


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars or {})
        del tmp
        try:
            dummy, args = self.validate_argument_spec(argument_spec=SPEC)
        except AnsibleError as exc:
            result.update(failed=True, msg=to_text(exc))
            return result
        path = _run_lock.lock_path(args['path'])
        # Tasks run in workers forked from the ansible-playbook process: that process owns the lock.
        owner = os.getppid()
        result.update(path=path, owner_pid=owner, changed=False)
        if _run_lock.held_by(path, owner):
            result.update(waited=0.0, msg='This run holds the lock %s already.' % path)
            return result
        if self._task.check_mode:
            result.update(waited=0.0, msg='Check mode: the lock %s is not taken.' % path)
            return result
        start = time.monotonic()
        state, detail = _run_lock.acquire(path, owner, args['timeout'], '%s (pid %d)' % (args['name'], owner))
        result['waited'] = round(time.monotonic() - start, 3)
        if state == 'locked':
            result.update(holder_pid=detail, msg='Lock %s taken for this run (waited %.1f s).' % (path, result['waited']))
            return result
        result.update(failed=True, msg=(
            'Another run holds the lock %s (%s) and did not end within %s s; this run changed nothing. Runs of '
            'sync.yml, verify.yml and backup.yml (by hand, by the timer or cron, by the rulebook) never overlap.'
            % (path, detail, args['timeout'])))
        return result
