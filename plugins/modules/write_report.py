#!/usr/bin/python
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r'''
---
module: write_report
short_description: Write the site health report of verify.yml on the controller, as JSON and as one HTML page
version_added: 0.2.0
description:
  - Writes a report made by the P(tapecrypt.ekm.verify_report#filter) filter on the controller, as two files. The JSON
    report holds every key of the report but its HTML page (indented, keys sorted); the HTML page is self-contained.
  - Each file is written atomically (a complete temporary file renamed over the old one) with the mode given; a file
    it replaces keeps its owner.
  - Runs entirely on the controller, in its action plugin. Writing the two files of a report with 10000 keys takes a
    few milliseconds, where M(ansible.builtin.copy) spends about half a second per file.
  - A report is not managed state. A new one is written every run, and the task never reports a change.
author:
  - tapecrypt.ekm contributors (!UNKNOWN)
extends_documentation_fragment:
  - tapecrypt.ekm.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is written.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - The files are written again every run (the report holds the time it was made); the task never reports a change.
  action:
    description: Runs entirely in its action plugin, on the controller.
    support: full
options:
  report:
    description: The report, as the P(tapecrypt.ekm.verify_report#filter) filter returns it.
    type: dict
    required: true
  json_path:
    description: The JSON report file on the controller; not written when not given. Its directory must exist.
    type: path
  html_path:
    description: The HTML page on the controller; not written when not given. Its directory must exist.
    type: path
  mode:
    description: The files' mode, octal.
    type: raw
    default: '0640'
seealso:
  - plugin: tapecrypt.ekm.verify_report
    plugin_type: filter
'''

EXAMPLES = r'''
- name: Write the report beside the inventory
  tapecrypt.ekm.write_report:
    report: "{{ ekm_verify_report }}"
    json_path: "{{ inventory_dir }}/ekm-verify.json"
    html_path: "{{ inventory_dir }}/ekm-verify.html"
  run_once: true
'''

RETURN = r'''
written:
  description: The files written, in the order JSON report, HTML page.
  returned: always
  type: list
  elements: str
  sample: [/srv/ansible/ekm-verify.json, /srv/ansible/ekm-verify.html]
'''
