# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""verify.yml's decisions: one state list per server, the problems, the table, the JSON report and the HTML page.

Runs on the controller (the ``verify_report`` filter), from the results verify.yml registered on
each server. Every state is one function of those results; a server is in order when none applies.
"""
from __future__ import annotations

import datetime
import html

FQCN = {
    'sync': 'tapecrypt.ekm.sync',
    'backup': 'tapecrypt.ekm.backup',
    'collect_ledger': 'tapecrypt.ekm.collect_ledger',
    'failback': 'tapecrypt.ekm.failback',
    'site': 'tapecrypt.ekm.site',
    'restore': 'tapecrypt.ekm.restore',
}
# State -> the advice printed once under the problems when any server is in that state.
HINTS = {
    'SERVICE DOWN': 'Start EKM (the tapecrypt.ekm.server role, entry point start) or find why it stopped (its log).',
    'CONFIG DRIFT': 'Run playbook %s to write the configuration from the seed again, or change the seed.' % FQCN['site'],
    'SYNC FAILURES': ("EKM's own sync to its partner failed (its audit log says so); run playbook %s and check the "
                      'network between the servers.' % FQCN['sync']),
    'SERVED SINCE SYNC': ('A redundant EKM served key requests since its last sync: the library could not reach the '
                          'primary. Bring the site back once the primary serves again: playbook %s when the redundant '
                          'wrote cartridges (its KeyGroups.xml or drive table changed), else playbook %s for the usage '
                          'records of its reads, then playbook %s; the state is reported until then.'
                          % (FQCN['failback'], FQCN['collect_ledger'], FQCN['sync'])),
    'DRIFT': 'Run playbook %s to copy what changed on the primary.' % FQCN['sync'],
    'CONFLICT': ('A conflict is not repaired by a sync: the same alias holds different keys; see '
                 'docs/redundant-and-sync.md.'),
    'STALE': 'An EKM marked STALE is restarted by playbook %s (a redundant server) or %s.' % (FQCN['sync'], FQCN['site']),
    'NO BACKUP': 'Run playbook %s to make a verified backup set; see docs/backup-and-restore.md.' % FQCN['backup'],
    'BACKUP TOO OLD': 'Run playbook %s to make a verified backup set; see docs/backup-and-restore.md.' % FQCN['backup'],
    'BACKUP LACKS KEYS': 'Run playbook %s to make a verified backup set; see docs/backup-and-restore.md.' % FQCN['backup'],
    'LEDGER NOT COLLECTED': 'Run playbook %s (with the backups, from cron).' % FQCN['collect_ledger'],
    'METADATA GAP': ('Key usage records were rotated away before they were collected; run playbook %s more often.'
                     % FQCN['collect_ledger']),
}
OK_STATES = ('primary', 'in sync')
# States shown in the table instead of 'primary' or 'in sync'.
REPLACE_BASE = ('UNREACHABLE', 'ERROR', 'CONFLICT', 'DRIFT', 'STALE')


def _state(name, detail=''):
    return {'state': name, 'detail': detail}


def _text(state):
    return state['state'] + (': ' + state['detail'] if state['detail'] else '')


def reach_states(ks):
    """UNREACHABLE or a keystore ERROR: nothing else about the server can be trusted then."""
    if ks.get('unreachable'):
        return [_state('UNREACHABLE', str(ks.get('msg') or '')[:160])]
    if ks.get('failed') or 'keystore' not in ks:
        return [_state('ERROR', 'keystore: ' + str(ks.get('msg') or 'not read')[:300])]
    if not ks['keystore'].get('exists'):
        return [_state('ERROR', 'no keystore at %s' % ks['keystore'].get('path'))]
    return []


def service_states(info):
    """SERVICE DOWN and CONFIG DRIFT (a missing file included) from tapecrypt.ekm.server_info."""
    if not info or info.get('skipped'):
        return []
    if info.get('failed') or 'config' not in info:
        return [_state('ERROR', 'server_info: ' + str(info.get('msg') or 'no result')[:300])]
    states = []
    service = info.get('service') or {}
    if service.get('state') == 'down':
        states.append(_state('SERVICE DOWN', '; '.join(service.get('reasons') or [])))
    config = info['config']
    if not config.get('exists'):
        states.append(_state('CONFIG DRIFT', 'the configuration file %s is gone' % config.get('path')))
    elif config.get('drift'):
        states.append(_state('CONFIG DRIFT', ', '.join('%s %s' % (d['key'], d['status']) for d in config['drift'])))
    return states


def audit_states(info):
    """SYNC FAILURES: sync failures in the audit log since the last check (reported once)."""
    audit = (info or {}).get('audit') or {}
    failures = [r for r in audit.get('records') or [] if r.get('kind') == 'sync_failure']
    if not failures:
        return []
    last = failures[-1]
    text = (last.get('fields') or {}).get('message') or last.get('type')
    return [_state('SYNC FAILURES', '%d in the audit log since the last check, the last at %s: %s'
                   % (len(failures), last.get('timestamp'), text))]


def _second(stamp):
    """A timestamp cut to the second ('2026-11-30T12:00:00'), so that EKM's and the controller's forms compare."""
    return str(stamp or '')[:19]


def served_states(host, info, last_sync, in_sync, ctx):
    """SERVED SINCE SYNC: a redundant server served keys after its last sync, and the site is not back yet.

    A redundant EKM serves keys only when the library cannot reach the primary. Found in the audit records since the
    last check and remembered in the report (``served_since_sync``), it is reported until the site is back: this server
    in sync with the primary again, the primary's EKM running and, where the ledger is checked, this server's usage
    records collected after it served.
    """
    served = (((info or {}).get('audit') or {}).get('summary') or {}).get('last_served')
    earlier = ctx['served'].get(host)
    if served and last_sync and _second(served) > _second(last_sync):
        earlier = max(served, earlier or '', key=_second)
    if not earlier:
        return []
    collected = (((ctx['ledger'] or {}).get('ledger') or {}).get('collected') or {}).get(host)
    records_kept = ctx['ledger'] is None or _second(collected) >= _second(earlier)
    if in_sync and ctx['primary_running'] and records_kept:
        ctx['served'].pop(host, None)
        return []
    ctx['served'][host] = earlier
    missing = [text for text, ok in (('in sync with the primary', in_sync), ('the primary serving', ctx['primary_running']),
                                     ('its usage records collected', records_kept)) if not ok]
    return [_state('SERVED SINCE SYNC', 'keys served at %s, last sync %s; the site is not back yet (%s)'
                   % (earlier, last_sync or '-', ', '.join('not ' + m for m in missing)))]


def sync_states(sync):
    """CONFLICT, DRIFT or 'in sync' from the sync module in check mode (redundant servers only)."""
    if sync.get('conflicts'):
        return [_state('CONFLICT', ', '.join('%s %s' % (c.get('file'), c.get('kind')) for c in sync['conflicts']))]
    if 'in_sync' not in sync:
        return [_state('ERROR', 'sync check: ' + str(sync.get('msg') or 'no result')[:300])]
    if not sync['in_sync']:
        drifted = [(name, d.get('status')) for name, d in (sync.get('drift') or {}).items()
                   if d.get('status') not in ('same', 'not_on_primary')]
        return [_state('DRIFT', ', '.join('%s %s' % d for d in drifted) or 'interrupted sync pending')]
    return []


def backup_states(report, max_age_hours):
    """NO BACKUP, BACKUP LACKS KEYS, BACKUP TOO OLD from the backup role's report (None: not checked)."""
    if report is None:
        return []
    if not report.get('found'):
        return [_state('NO BACKUP', str(report.get('problem') or 'no verified set')[:200])]
    if report.get('older_than_newest_key'):
        return [_state('BACKUP LACKS KEYS', ', '.join(report.get('aliases_not_in_set') or []) or 'keystore changed')]
    age = float(report.get('age_hours') or 0)
    if age > max_age_hours:
        return [_state('BACKUP TOO OLD', '%.2f h (limit %s h)' % (age, max_age_hours))]
    return []


def _hours_since(stamp, now):
    try:
        then = datetime.datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None
    return (now - then).total_seconds() / 3600


def ledger_states(host, ledger, info, max_age_hours, now):
    """LEDGER NOT COLLECTED (never, or longer ago than the limit); METADATA GAP when records were rotated away."""
    if ledger is None:
        return []
    collected = (ledger.get('ledger') or {}).get('collected') or {}
    states = []
    age = _hours_since(collected.get(host), now)
    if age is None:
        states.append(_state('LEDGER NOT COLLECTED', 'never collected into %s' % (ledger.get('ledger') or {}).get('path')))
    elif age > max_age_hours:
        states.append(_state('LEDGER NOT COLLECTED', 'last %.1f h ago (limit %s h)' % (age, max_age_hours)))
    if ((info or {}).get('metadata') or {}).get('gap'):
        states.append(_state('METADATA GAP', 'the metadata file rotated twice since the last collection'))
    return states


def stale_states(running):
    """STALE: EKM started before its keystore or configuration last changed, so it serves older files."""
    stale = (running or {}).get('stale_files') or []
    if not stale:
        return []
    return [_state('STALE', 'EKM started before %s last changed: it serves older files'
                   % ', '.join(str(f).rsplit('/', 1)[-1] for f in stale))]


def safety_states(safety, finisher):
    """KEYS STAGED: keys symmetricKeySet asks for that are not yet safe to serve (the primary's key_safety fact)."""
    if not safety or safety.get('complete', True):
        return []
    held = [line for line in safety.get('summary') or [] if str(line).startswith('held back')]
    return [_state('KEYS STAGED', '%s key(s) that symmetricKeySet asks for are served nowhere yet (%s). Run %s '
                   'to finish the job: it copies, backs up and then serves them.'
                   % (safety.get('held_back_count'), '; '.join(held), finisher))]


def host_states(host, inp, ctx):
    """Every state of one server, worst first; [] when it is in order."""
    if inp.get('out_of_service'):
        return []
    ks = inp.get('keystore') or {}
    states = reach_states(ks)
    if states and states[0]['state'] == 'UNREACHABLE':
        return states
    info = inp.get('info')
    is_redundant = host in ctx['redundant']
    sync = inp.get('sync') or {}
    keystore_read = not states
    synced = sync_states(sync) if is_redundant and keystore_read else []
    states += service_states(info)
    states += audit_states(info)
    if is_redundant:
        states += served_states(host, info, sync.get('last_sync'), keystore_read and not synced, ctx)
    if keystore_read:
        states += stale_states(inp.get('running'))
    states += synced
    if host == ctx['primary']:
        states += safety_states(inp.get('safety'), ctx['finisher'])
    states += [_state(str(p.get('state', 'PROBLEM')), str(p.get('detail', ''))) if isinstance(p, dict) else _state(str(p))
               for p in inp.get('extra') or []]
    states += backup_states(inp.get('backup') if ctx['check_backups'] else None, ctx['backup_max_age'])
    states += ledger_states(host, ctx['ledger'], info, ctx['ledger_max_age'], ctx['now'])
    return states


def _age_text(report):
    if report and report.get('found'):
        return '%.1f h' % float(report.get('age_hours') or 0)
    return '-'


def _row(host, inp, ctx, states):
    ks = (inp.get('keystore') or {}).get('keystore') or {}
    sync = inp.get('sync') or {}
    service = ((inp.get('info') or {}).get('service') or {}).get('state')
    if inp.get('out_of_service'):
        summary = 'out of service'
    else:
        # As the first version of verify.yml: the comparison with the primary first ('primary', 'in sync' or what
        # replaces it), then every other state with its detail.
        base = [] if any(s['state'] in REPLACE_BASE for s in states) else ['primary' if host == ctx['primary'] else 'in sync']
        summary = '; '.join(base + [_text(s) for s in states])
    return {
        'server': host, 'role': 'primary' if host == ctx['primary'] else 'redundant',
        'keys': ks.get('count') if ks.get('exists') else None, 'digest': (ks.get('digest') or '')[:16] or None,
        'last_sync': sync.get('last_sync'), 'backup_age': _age_text(inp.get('backup')), 'service': service or '-',
        'ok': not states, 'state': summary, 'states': states,
    }


def _finisher(inputs):
    """The playbook that finishes staged keys: tapecrypt.ekm.site when a server has no keystore yet, else add_keys."""
    for inp in inputs.values():
        ks = (inp or {}).get('keystore') or {}
        if 'keystore' in ks and not ks['keystore'].get('exists'):
            return FQCN['site']
    return 'tapecrypt.ekm.add_keys'


def build(inputs, primary, redundant, ledger=None, check_backups=True, backup_max_age=26.0, ledger_max_age=26.0,
          now=None, site_problems=None, previous=None):
    """The whole report: rows, problems, hints, cartridges per key, audit positions and the stats for set_stats.

    ``previous`` is the last report: what it remembered (``served_since_sync``) is carried on.
    """
    primary_info = (inputs.get(primary) or {}).get('info') or {}
    ctx = {'primary': primary, 'redundant': set(redundant or []), 'ledger': ledger, 'check_backups': check_backups,
           'backup_max_age': float(backup_max_age), 'ledger_max_age': float(ledger_max_age),
           'now': now or datetime.datetime.now(datetime.timezone.utc), 'finisher': _finisher(inputs),
           'served': {str(h): str(t) for h, t in ((previous or {}).get('served_since_sync') or {}).items() if t},
           'primary_running': (primary_info.get('service') or {}).get('state') == 'running'}
    rows, problems, seen = [], list(site_problems or []), []
    for host in inputs:
        states = host_states(host, inputs[host] or {}, ctx)
        rows.append(_row(host, inputs[host] or {}, ctx, states))
        problems += ['%s: %s' % (host, _text(s)) for s in states]
        seen += [s['state'] for s in states if s['state'] not in seen]
    hints = [HINTS[s] for s in seen if s in HINTS]
    hints = [h for i, h in enumerate(hints) if h not in hints[:i]]
    per_key = (ledger or {}).get('cartridges_per_key')
    if per_key is None:
        per_key = {alias: len(volsers) for alias, volsers in ((ledger or {}).get('aliases_used') or {}).items()}
    return {
        'generated': ctx['now'].strftime('%Y-%m-%dT%H:%M:%SZ'), 'ok': not problems, 'servers': rows,
        'problems': problems, 'hints': hints,
        'ledger': {'path': ((ledger or {}).get('ledger') or {}).get('path'),
                   'records': ((ledger or {}).get('ledger') or {}).get('records', 0),
                   'cartridges_per_key': dict(per_key)},
        'audit_positions': {h: ((inputs[h] or {}).get('info') or {}).get('audit', {}).get('position') for h in inputs
                            if (((inputs[h] or {}).get('info') or {}).get('audit') or {}).get('position')},
        'served_since_sync': dict(sorted(ctx['served'].items())),
        'stats': {'ekm_verify_ok': not problems, 'ekm_verify_problems': len(problems),
                  'ekm_verify_servers_down': sum(1 for r in rows if r['service'] == 'down')},
    }


# The first version's columns, which scripts read; the service's state is a state (SERVICE DOWN), and a column of the
# JSON report and the HTML page.
TABLE_FORMAT = '%-24s %-9s %7s  %-16s  %-20s  %-12s %s'


def table(report):
    """The text table verify.yml prints: one line per server."""
    lines = [TABLE_FORMAT % ('server', 'role', 'keys', 'digest', 'last sync', 'backup age', 'state')]
    for r in report['servers']:
        lines.append(TABLE_FORMAT % (r['server'][:24], r['role'], '-' if r['keys'] is None else r['keys'], r['digest'] or '-',
                                     r['last_sync'] or '-', r['backup_age'], r['state']))
    return lines


def _cell(value):
    return '<td>%s</td>' % html.escape('-' if value is None else str(value))


def html_page(report):
    """One self-contained HTML file (inline style, no script, no external asset) of the same report."""
    esc = html.escape
    rows = ''.join('<tr class="%s">%s%s%s%s%s%s%s%s</tr>\n' % (
        'ok' if r['ok'] else 'bad', _cell(r['server']), _cell(r['role']), _cell(r['keys']), _cell(r['digest']),
        _cell(r['last_sync']), _cell(r['backup_age']), _cell(r['service']),
        '<td>%s</td>' % ('<br>'.join(esc(_text(s)) for s in r['states']) or esc(r['state']))) for r in report['servers'])
    per_key = report['ledger']['cartridges_per_key']
    keys = ''.join('<tr><td>%s</td><td>%d</td></tr>\n' % (esc(a), n) for a, n in sorted(per_key.items()))
    problems = ''.join('<li>%s</li>\n' % esc(p) for p in report['problems'] + report['hints']) or '<li>none</li>'
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>EKM site health</title>\n'
            '<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #999;'
            'padding:2px 6px;text-align:left}tr.bad td{background:#fdd}tr.ok td{background:#dfd}</style></head><body>\n'
            '<h1>EKM site health: %s</h1>\n<p>Generated %s.</p>\n<h2>Servers</h2>\n<table><tr><th>server</th><th>role'
            '</th><th>keys</th><th>digest</th><th>last sync</th><th>backup age</th><th>service</th><th>state</th></tr>\n'
            '%s</table>\n<h2>Problems</h2>\n<ul>\n%s</ul>\n<h2>Cartridges per key</h2>\n<p>Key-usage ledger %s, %d '
            'records.</p>\n<table><tr><th>alias</th><th>cartridges</th></tr>\n%s</table>\n</body></html>\n'
            % ('OK' if report['ok'] else 'PROBLEMS', esc(report['generated']), rows, problems,
               esc(str(report['ledger']['path'])), report['ledger']['records'], keys))
