# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight_problems filter; its documentation is in preflight_problems.yml."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# The host variable that names each file the preflight identifies (tapecrypt.ekm.common's preflight entry point).
FILE_VARIABLES = {
    'home': 'ekm_home',
    'keystore': 'ekm_keystore_path',
    'config': 'ekm_config_path',
    'keygroups': 'ekm_keygroups_path',
    'drivetable': 'ekm_drivetable_path',
}


def _names(value):
    """A list of host names from an inventory group list (any iterable of strings)."""
    return [str(v) for v in (value or [])]


def out_of_service_problems(out_of_service, primaries, redundants):
    """Messages about ekm_out_of_service itself: a list of redundant servers' inventory hostnames."""
    if out_of_service is None:
        return []
    if isinstance(out_of_service, (str, bytes, Mapping)) or not isinstance(out_of_service, (list, tuple)) \
            or not all(isinstance(h, str) for h in out_of_service):
        return ['ekm_out_of_service must be a list of inventory hostnames of redundant servers, such as [ekm2], '
                'not %r.' % (out_of_service,)]
    problems = []
    for host in out_of_service:
        if host in primaries:
            problems.append('ekm_out_of_service names %s, the primary: the primary cannot be out of service, since '
                            'keys are generated there only. Restore it (restore.yml) instead.' % host)
        elif host not in redundants:
            problems.append('ekm_out_of_service names %s, which is not a redundant server (a host of the group '
                            'ekm_redundant: %s).' % (host, ', '.join(redundants) or 'none'))
    return problems


def group_problems(primaries, redundants):
    """Messages about the groups ekm_primary and ekm_redundant."""
    problems = []
    if len(primaries) != 1:
        problems.append('The inventory group ekm_primary must hold exactly one host, since keys are generated on one '
                        'primary only; it holds %s.' % (('%d: %s' % (len(primaries), ', '.join(primaries)))
                                                        if primaries else 'none'))
    for host in primaries:
        if host in redundants:
            problems.append('%s is in both ekm_primary and ekm_redundant; a server is either the primary or a '
                            'redundant server.' % host)
    return problems


def host_problems(host, role, data):
    """Messages about one server in service: reachable, checked, backup destination, account and group."""
    result = data.get('result') or {}
    if result.get('unreachable'):
        advice = ('' if role == 'the primary' else ' Bring it back, or name it in ekm_out_of_service while it is '
                  'being rebuilt (docs/redundant-and-sync.md).')
        return ['%s (%s) cannot be reached: %s.%s' % (host, role, str(result.get('msg', '')).strip().rstrip('.'),
                                                      advice)]
    if result.get('skipped') or 'machine' not in result:
        return ['%s (%s) could not be checked: %s' % (host, role, str(result.get('msg') or 'no result').strip())]
    problems = []
    for item in result.get('directories') or []:
        if not item.get('writable'):
            problems.append('%s: the backup destination %s (ekm_backup_dest) is not usable: %s.'
                            % (host, item.get('path'), item.get('problem')))
    controller = data.get('controller') or {}
    if controller and not controller.get('skipped'):
        if 'directories' not in controller:
            problems.append('%s: the backup destination on the controller could not be checked: %s'
                            % (host, str(controller.get('msg') or 'no result').strip()))
        for item in controller.get('directories') or []:
            if not item.get('writable'):
                problems.append('%s: the backup destination %s on the controller (ekm_backup_controller_dest) is '
                                'not usable: %s.' % (host, item.get('path'), item.get('problem')))
    for kind, variable in (('users', 'ekm_user'), ('groups', 'ekm_group')):
        for name, exists in sorted((result.get(kind) or {}).items()):
            if not exists:
                problems.append("%s: the %s '%s' (%s) does not exist there; create it first, or let site.yml's "
                                'server role create it (ekm_server_manage_user: true).'
                                % (host, 'account' if kind == 'users' else 'group', name, variable))
    return problems


def shared_file_problems(hosts, servers):
    """Messages naming each pair of servers whose EKM files are the same files on one machine."""
    owners = {}
    for host in servers:
        result = (hosts.get(host) or {}).get('result') or {}
        if 'machine' not in result:
            continue
        for name, info in sorted((result.get('paths') or {}).items()):
            key = (result['machine'], info.get('identity'))
            owners.setdefault(key, []).append((host, name, info.get('real_path')))
    pairs = {}
    for found in owners.values():
        for i, (host_a, name_a, real) in enumerate(found):
            for host_b, name_b, _real in found[i + 1:]:
                if host_a != host_b:
                    same = '%s of %s and %s of %s are %s' % (FILE_VARIABLES.get(name_a, name_a), host_a,
                                                             FILE_VARIABLES.get(name_b, name_b), host_b, real)
                    pairs.setdefault((host_a, host_b), []).append(same)
    return ['%s and %s would share their EKM files, which would overwrite each other (%s). Give each server its '
            'own ekm_home (and file paths).' % (a, b, '; '.join(same)) for (a, b), same in pairs.items()]


def preflight_problems(hosts, primaries, redundants, out_of_service=None, inventory_only=False):
    """Every reason that stops a run before its first change, as messages; empty when there is none."""
    if not isinstance(hosts, Mapping):
        raise AnsibleFilterError('preflight_problems expects a mapping of inventory hostnames to their preflight '
                                 'results, not %s.' % type(hosts).__name__)
    primaries, redundants = _names(primaries), _names(redundants)
    problems = group_problems(primaries, redundants) + out_of_service_problems(out_of_service, primaries, redundants)
    absent = set(out_of_service) if isinstance(out_of_service, (list, tuple)) else set()
    # Servers outside the play (ansible-playbook --limit) are not part of this run.
    servers = [h for h in primaries + redundants if h not in absent and h in hosts]
    servers = [h for i, h in enumerate(servers) if h not in servers[:i]]
    if not inventory_only:
        for host in servers:
            problems += host_problems(host, 'the primary' if host in primaries else 'a redundant server',
                                      hosts.get(host) or {})
    return problems + shared_file_problems(hosts, servers)


class FilterModule:
    def filters(self):
        return {'preflight_problems': preflight_problems}
