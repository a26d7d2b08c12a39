# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations


class ModuleDocFragment:
    """The ``attributes`` block of the collection's modules.

    Fragments merge so that whatever is merged first wins: a module's own ``attributes`` entries
    override these, and of two variants listed together the first one counts. Use exactly one
    variant per module; override single entries (or add ``details``) in the module itself. ``ACTION_GROUP``
    adds the one attribute it names and goes with either variant.
    """

    # Modules that change a file on the managed host: tapecrypt.ekm.attributes
    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check mode and then reports whether it would change anything, changing nothing.
    support: full
  diff_mode:
    description: Returns what changed (or, in check mode, what would change) when run in diff mode.
    support: full
  safe_file_operations:
    description:
      - Writes files atomically (a complete temporary file in the same directory renamed over the old one), so an
        interrupted run leaves either the old or the new file, never a partial one.
    support: full
  idempotent:
    description:
      - A second run with the same arguments reports no change and leaves the files as they are, provided nothing
        else changed them in between.
    support: full
  platform:
    description: The target systems the module runs on.
    support: full
    platforms: posix
'''

    # Modules that only read: tapecrypt.ekm.attributes.info_module (instead of the default variant, not with it)
    INFO_MODULE = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check mode and then reports whether it would change anything, changing nothing.
    support: full
    details:
      - The module never changes anything.
  diff_mode:
    description: Returns what changed (or, in check mode, what would change) when run in diff mode.
    support: N/A
    details:
      - The module never changes anything.
  safe_file_operations:
    description: Writes files atomically, so an interrupted run never leaves a partial file.
    support: N/A
    details:
      - The module writes no files.
  idempotent:
    description: A second run with the same arguments reports no change.
    support: full
  platform:
    description: The target systems the module runs on.
    support: full
    platforms: posix
'''

    # Modules of the action group "ekm" (meta/runtime.yml): tapecrypt.ekm.attributes.action_group, besides a variant
    ACTION_GROUP = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/tapecrypt.ekm.ekm) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - tapecrypt.ekm.ekm
'''
