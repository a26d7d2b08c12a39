# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``tapecrypt.ekm.write_report``: verify.yml's JSON report and HTML page, written on the controller."""

from __future__ import annotations

import json
import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files

SPEC = {
    'report': {'type': 'dict', 'required': True},
    'json_path': {'type': 'path'},
    'html_path': {'type': 'path'},
    'mode': {'type': 'raw', 'default': '0640'},
}


def report_files(report, json_path, html_path):
    """``[(path, bytes)]``: the report as JSON without its HTML page, and the page on its own."""
    files = []
    if json_path:
        body = {k: v for k, v in report.items() if k != 'html'}
        files.append((json_path, (json.dumps(body, indent=4, sort_keys=True, separators=(',', ': '), ensure_ascii=False) + '\n').encode('utf-8')))
    if html_path:
        if not isinstance(report.get('html'), str):
            raise ValueError('the report has no HTML page (html); make it with the tapecrypt.ekm.verify_report filter')
        files.append((html_path, report['html'].encode('utf-8')))
    return files


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars or {})
        del tmp
        try:
            dummy, args = self.validate_argument_spec(argument_spec=SPEC)
            mode = _files.parse_mode(args['mode'])
            if mode is None:
                raise ValueError('mode must be an octal mode such as 0640, not %r' % (args['mode'],))
            files = report_files(args['report'], args['json_path'], args['html_path'])
        except (AnsibleError, ValueError, TypeError) as exc:
            result.update(failed=True, msg='write_report: %s' % to_text(exc))
            return result
        # A report is not managed state: a new one every run, so never "changed".
        result.update(changed=False, written=[])
        if self._task.check_mode:
            result['msg'] = 'Check mode: the report was not written.'
            return result
        # Every directory first, so that a missing one leaves no half of the report written.
        missing = [path for path, dummy in files if not os.path.isdir(os.path.dirname(os.path.abspath(path)))]
        if missing:
            result.update(failed=True, msg='Cannot write the report %s: its directory does not exist; nothing was '
                                           'written.' % ', '.join(missing))
            return result
        for path, data in files:
            try:
                _files.atomic_write(path, data, mode=mode)
            except _files.FileError as exc:
                result.update(failed=True, msg=to_text(exc))
                return result
            result['written'].append(path)
        return result
