# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The verify_report filter; its documentation is in verify_report.yml. The decisions are in plugin_utils/_verify.py."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.tapecrypt.ekm.plugins.plugin_utils import _verify


def verify_report(inputs, primary, redundant=None, ledger=None, check_backups=True, backup_max_age_hours=26,
                  ledger_max_age_hours=26, site_problems=None, previous=None):
    """verify.yml's report from the per-server results: states, problems, hints, table lines, HTML page, stats."""
    if not isinstance(inputs, Mapping):
        raise AnsibleFilterError('verify_report expects a dictionary from server name to its results, not %r.' % (inputs,))
    try:
        report = _verify.build({str(k): dict(v or {}) for k, v in inputs.items()}, str(primary), list(redundant or []),
                               dict(ledger) if ledger else None, bool(check_backups), float(backup_max_age_hours),
                               float(ledger_max_age_hours), site_problems=list(site_problems or []),
                               previous=dict(previous) if isinstance(previous, Mapping) else None)
    except (TypeError, ValueError, AttributeError) as exc:
        raise AnsibleFilterError('verify_report could not read its input: %s' % exc) from None
    report['table'] = _verify.table(report)
    report['html'] = _verify.html_page(report)
    return report


class FilterModule:
    def filters(self):
        return {'verify_report': verify_report}
