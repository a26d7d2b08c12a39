# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection as a user gets it: the built tarball, installed outside the checkout, and examples/.

The tarball is built from a copy of the checkout to which files that .gitignore names were added, so
that a build_ignore gap shows up as a test failure instead of depending on what happens to lie around.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, 'examples')
VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))
EXAMPLE_VAULT_PASSWORD = 'tapecrypt-example'  # published in examples/README.md; protects nothing
WRAPPED_PLAYBOOKS = ('site', 'add_keys', 'sync', 'verify', 'backup', 'restore', 'promote', 'failback', 'collect_ledger')

# Files .gitignore names, created in the copy that is built (they must not reach the tarball).
IGNORED_SENTINELS = (
    'tests/output/logs/unit.log',
    '.pytest_cache/v/cache/lastfailed',
    'tests/unit/.pytest_cache/README.md',
    'tests/standin/build/ekm-standin-0.1.0.tar.gz',
    'tests/integration/inventory',
    'plugins/modules/__pycache__/keystore.cpython-311.pyc',
    'demo/report.json',
    '.build/ansible_collections/README',
    '.ansible/collections/README',
    'roles/standin/files/src/Leftover.class',
    'changelogs/.plugin-cache.yaml',
    'tapecrypt-ekm-0.0.1.tar.gz',
)
# Development-only paths that must stay out of the tarball although git tracks them.
DEVELOPMENT_ONLY = ('.ci/', '.gitignore', '.ansible-lint', '.yamllint', 'Makefile', 'pytest.ini', 'requirements-dev.txt',
                    'constraints.txt', 'extensions/molecule/', 'tests/lab/', 'tests/demo/', 'tests/bench/',
                    'tests/interop/', 'tests/playbooks/', 'tests/standin/', 'tests/examples/', 'tests/run_all.py',
                    'tests/conftest.py')


def tool(name):
    path = os.path.join(VENV_BIN, name)
    return path if os.path.exists(path) else (shutil.which(name) or name)


def run(cmd, cwd=None, env=None, check=True):
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    if check and proc.returncode != 0:
        pytest.fail('%s failed (rc=%d):\n%s' % (' '.join(cmd), proc.returncode, proc.stdout[-6000:]))
    return proc


def user_env(home, collections):
    """An environment like a user's: own HOME, the installed collection, nothing from the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ANSIBLE_', 'MOLECULE_'))}
    env.update(HOME=home, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
               ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_LOCALHOST_WARNING='0', PY_COLORS='0',
               PATH=VENV_BIN + os.pathsep + os.environ.get('PATH', ''))
    return env


def galaxy_version():
    with open(os.path.join(ROOT, 'galaxy.yml'), encoding='utf-8') as f:
        return yaml.safe_load(f)['version']


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """(tarball path, member names) built from a copy of the checkout plus ignored sentinel files."""
    base = tmp_path_factory.mktemp('build')
    src = base / 'src'
    listed = run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=ROOT).stdout.split('\0')
    for rel in filter(None, listed):
        if not os.path.lexists(os.path.join(ROOT, rel)):
            continue  # deleted in the working tree, not yet committed
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), dest, follow_symlinks=False)
    for rel in IGNORED_SENTINELS:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text('sentinel\n', encoding='utf-8')
    out = base / 'dist'
    run([tool('ansible-galaxy'), 'collection', 'build', str(src), '--output-path', str(out)],
        env=user_env(str(base / 'home'), str(base / 'none')))
    tarball = out / ('tapecrypt-ekm-%s.tar.gz' % galaxy_version())
    assert tarball.is_file(), sorted(os.listdir(out))
    with tarfile.open(tarball) as tar:
        members = [m.name.rstrip('/') for m in tar.getmembers()]
    return tarball, members


@pytest.fixture(scope='module')
def installed(built, tmp_path_factory):
    """A collections directory outside the checkout with the tarball installed into it."""
    base = tmp_path_factory.mktemp('installed')
    collections = base / 'collections'
    run([tool('ansible-galaxy'), 'collection', 'install', '--offline', '-p', str(collections), str(built[0])],
        env=user_env(str(base / 'home'), str(collections)))
    coll = collections / 'ansible_collections' / 'tapecrypt' / 'ekm'
    assert (coll / 'MANIFEST.json').is_file()
    return str(collections)


# ---------------------------------------------------------------------------------------------------------------------
# The tarball


def test_tarball_holds_no_file_that_git_ignores(built):
    _tarball, members = built
    proc = subprocess.run(['git', 'check-ignore', '--no-index', '--stdin'], cwd=ROOT, input='\n'.join(members) + '\n',
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    assert proc.stdout.split() == [], 'ignored files in the tarball: %s' % proc.stdout.split()
    # And the sentinels, each by name (a sentinel that git does not ignore would be a broken test).
    for rel in IGNORED_SENTINELS:
        assert rel not in members
        assert subprocess.run(['git', 'check-ignore', '-q', '--no-index', rel], cwd=ROOT, check=False).returncode == 0, rel


def test_tarball_leaves_out_development_files_and_keeps_the_content(built):
    _tarball, members = built
    dev = [m for m in members for d in DEVELOPMENT_ONLY if m == d.rstrip('/') or (d.endswith('/') and m.startswith(d))]
    assert dev == []
    # The stand-in ships as source, built by the standin role: no binary jar or class file, in the tarball or in git.
    assert [m for m in members if m.endswith(('.jar', '.class'))] == []
    assert run(['git', 'ls-files', '*.jar', '*.class'], cwd=ROOT).stdout.split() == []
    for needed in ('MANIFEST.json', 'FILES.json', 'README.md', 'COPYING', 'meta/runtime.yml',
                   'meta/execution-environment.yml', 'changelogs/changelog.yaml', 'plugins/modules/keystore.py',
                   'roles/primary/meta/argument_specs.yml', 'playbooks/site.yml', 'examples/README.md',
                   'examples/inventory/group_vars/ekm/vault.yml', 'examples/execution-environment/bindep.txt',
                   'examples/molecule/default/molecule.yml', 'roles/standin/files/build.sh',
                   'roles/standin/files/src/tapecrypt/standin/EkmStandin.java', 'roles/standin/files/tapeclient.py',
                   'tests/unit', 'tests/integration/targets'):
        assert needed in members, needed


# ---------------------------------------------------------------------------------------------------------------------
# examples/: inventory and vault


def vault_password_file(tmp_path, password=EXAMPLE_VAULT_PASSWORD):
    path = tmp_path / 'vault-pass'
    path.write_text(password + '\n', encoding='utf-8')
    path.chmod(0o600)
    return str(path)


def test_example_vault_is_encrypted_and_opens_with_the_documented_password(tmp_path):
    vault = os.path.join(EXAMPLES, 'inventory', 'group_vars', 'ekm', 'vault.yml')
    with open(vault, encoding='utf-8') as f:
        assert f.readline().startswith('$ANSIBLE_VAULT;1.1;AES256')
    env = user_env(str(tmp_path / 'home'), str(tmp_path / 'none'))
    shown = run([tool('ansible-vault'), 'view', '--vault-password-file', vault_password_file(tmp_path), vault], env=env)
    data = yaml.safe_load(shown.stdout)
    assert set(data) == {'vault_ekm_keystore_password'}
    wrong = run([tool('ansible-vault'), 'view', '--vault-password-file', vault_password_file(tmp_path, 'not-it'),
                 vault], env=env, check=False)
    assert wrong.returncode != 0 and 'Decryption failed' in wrong.stdout


def test_example_inventory_gives_every_server_a_sound_seed(tmp_path, installed):
    """The inventory parses, the vault decrypts into the seed, and the seed passes the collection's own checks."""
    playbook = tmp_path / 'check.yml'
    playbook.write_text('''---
- name: Check the example inventory
  hosts: ekm
  gather_facts: false
  tasks:
    - name: The seed is sound and its password comes from the vault
      ansible.builtin.assert:
        that:
          - ekm_seed | tapecrypt.ekm.validate_seed(groups['ekm_primary']) | length == 0
          - ekm_seed.keystore_password == vault_ekm_keystore_password
          - ekm_server_archive_sha256 is match('^[0-9a-f]{64}$')
''', encoding='utf-8')
    env = user_env(str(tmp_path / 'home'), installed)
    out = run([tool('ansible-playbook'), '-i', os.path.join(EXAMPLES, 'inventory', 'hosts.yml'), '--vault-password-file',
               vault_password_file(tmp_path), str(playbook)], cwd=str(tmp_path), env=env).stdout
    assert 'ekm1.example.com' in out and 'ekm2.example.com' in out
    graph = run([tool('ansible-inventory'), '-i', os.path.join(EXAMPLES, 'inventory', 'hosts.yml'), '--vault-password-file',
                 vault_password_file(tmp_path), '--graph'], env=env).stdout
    assert '@ekm_primary:' in graph and '@ekm_redundant:' in graph
    assert run([tool('ansible-inventory'), '-i', os.path.join(EXAMPLES, 'inventory', 'hosts.yml'), '--list'],
               env=env, check=False).returncode != 0, 'the inventory must need the vault password'


# ---------------------------------------------------------------------------------------------------------------------
# examples/awx


@pytest.mark.parametrize('name', WRAPPED_PLAYBOOKS)
def test_awx_wrapper_imports_the_collection_playbook(tmp_path, installed, name):
    path = os.path.join(EXAMPLES, 'awx', name + '.yml')
    with open(path, encoding='utf-8') as f:
        plays = yaml.safe_load(f)
    assert [p['ansible.builtin.import_playbook'] for p in plays] == ['tapecrypt.ekm.' + name]

    def tasks(playbook):
        out = run([tool('ansible-playbook'), '-i', os.path.join(EXAMPLES, 'inventory', 'hosts.yml'),
                   '--vault-password-file', vault_password_file(tmp_path), '--list-tasks', playbook], cwd=str(tmp_path),
                  env=user_env(str(tmp_path / 'home'), installed)).stdout
        return [line for line in out.splitlines() if not line.startswith('playbook:')]

    # The wrapper runs exactly what the collection's playbook runs, resolved from the installed tarball.
    wrapped = tasks(path)
    assert wrapped == tasks('tapecrypt.ekm.' + name)
    assert sum(1 for line in wrapped if line.strip().startswith('play #')) >= 1


def test_awx_wrappers_cover_every_collection_playbook():
    ours = sorted(n[:-4] for n in os.listdir(os.path.join(ROOT, 'playbooks')) if n.endswith('.yml'))
    assert sorted(WRAPPED_PLAYBOOKS) == ours
    assert sorted(n[:-4] for n in os.listdir(os.path.join(EXAMPLES, 'awx')) if n != 'credential-type.yml') == ours


def test_awx_credential_type_injects_the_password_and_never_the_seed():
    with open(os.path.join(EXAMPLES, 'awx', 'credential-type.yml'), encoding='utf-8') as f:
        ctype = yaml.safe_load(f)
    fields = {f['id']: f for f in ctype['inputs']['fields']}
    assert fields['keystore_password']['secret'] is True
    assert ctype['injectors'] == {'extra_vars': {'vault_ekm_keystore_password': '{{ keystore_password }}'}}
    with open(os.path.join(EXAMPLES, 'inventory', 'group_vars', 'ekm', 'main.yml'), encoding='utf-8') as f:
        assert yaml.safe_load(f)['ekm_seed']['keystore_password'] == '{{ vault_ekm_keystore_password }}'


# ---------------------------------------------------------------------------------------------------------------------
# examples/execution-environment and ansible-navigator.yml


def test_ansible_builder_creates_the_execution_environment_context(tmp_path, built):
    ee = tmp_path / 'ee'
    shutil.copytree(os.path.join(EXAMPLES, 'execution-environment'), ee)
    shutil.copy(built[0], ee)
    with open(ee / 'execution-environment.yml', encoding='utf-8') as f:
        definition = yaml.safe_load(f)
    assert definition['version'] == 3
    with open(ee / 'requirements.yml', encoding='utf-8') as f:
        wanted = yaml.safe_load(f)['collections']
    assert [c['type'] for c in wanted] == ['file']
    assert os.path.basename(wanted[0]['name']) == built[0].name, 'requirements.yml names another version'
    run([tool('ansible-builder'), 'create', '-f', 'execution-environment.yml', '-c', 'context',
         '--output-filename', 'Containerfile'], cwd=str(ee), env=user_env(str(tmp_path / 'home'), str(tmp_path / 'c')))
    context = ee / 'context'
    containerfile = (context / 'Containerfile').read_text(encoding='utf-8')
    assert 'ansible-core>=2.17,<2.22' in containerfile
    assert (context / '_build' / wanted[0]['name']).is_file()
    for name in ('requirements.txt', 'bindep.txt', 'requirements.yml'):
        assert (context / '_build' / name).read_text(encoding='utf-8') == (ee / name).read_text(encoding='utf-8')


def requirement_lines(path):
    with open(path, encoding='utf-8') as f:
        return [Requirement(line.split('#')[0].strip()) for line in f if line.split('#')[0].strip()]


def test_ee_python_requirements_are_ranges_that_admit_the_tested_pins():
    ee = requirement_lines(os.path.join(EXAMPLES, 'execution-environment', 'requirements.txt'))
    pins = {r.name.lower(): r for r in requirement_lines(os.path.join(ROOT, 'requirements.txt'))}
    assert {r.name.lower() for r in ee} == set(pins) - {'ansible-core'}
    for req in ee:
        assert req.specifier and not any(s.operator in ('==', '===') for s in req.specifier), str(req)
        pinned = Version(next(iter(pins[req.name.lower()].specifier)).version)
        assert req.specifier.contains(pinned), '%s does not admit the tested %s' % (req, pinned)


def test_ee_bindep_entries_are_all_installed():
    from bindep.depends import Depends  # pylint: disable=import-outside-toplevel
    path = os.path.join(EXAMPLES, 'execution-environment', 'bindep.txt')
    with open(path, encoding='utf-8') as f:
        depends = Depends(f.read())
    rules = depends._rules  # pylint: disable=protected-access
    assert rules
    # ansible-builder installs bindep's default profile for the image's platform: every entry must be in it.
    chosen = depends.active_rules(['default', 'platform:rpm', 'platform:redhat', 'platform:centos']) + \
        depends.active_rules(['default', 'platform:dpkg', 'platform:debian'])
    assert sorted(r[0] for r in chosen) == sorted(r[0] for r in rules)
    # On this Debian machine the dpkg entries are installed (make test's system-deps installs them).
    proc = run([tool('bindep'), '--brief', '--file', path], check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == '', proc.stdout


def test_collection_ee_metadata_names_the_example_files():
    with open(os.path.join(ROOT, 'meta', 'execution-environment.yml'), encoding='utf-8') as f:
        meta = yaml.safe_load(f)
    assert meta['version'] == 1
    assert meta['dependencies'] == {'python': 'examples/execution-environment/requirements.txt',
                                    'system': 'examples/execution-environment/bindep.txt'}


def test_navigator_settings_use_the_example_inventory_and_image():
    with open(os.path.join(EXAMPLES, 'ansible-navigator.yml'), encoding='utf-8') as f:
        nav = yaml.safe_load(f)['ansible-navigator']
    for entry in nav['ansible']['inventory']['entries']:
        assert os.path.isfile(os.path.join(EXAMPLES, entry)), entry
    with open(os.path.join(EXAMPLES, 'execution-environment', 'execution-environment.yml'), encoding='utf-8') as f:
        tags = yaml.safe_load(f)['options']['tags']
    assert nav['execution-environment']['image'] in ['localhost/' + t for t in tags]
    assert nav['playbook-artifact']['enable'] is False


# ---------------------------------------------------------------------------------------------------------------------
# Publishing manners, as a user of the installed collection sees them


def installed_docs(installed, tmp_path, plugin_type, names):
    out = run([tool('ansible-doc'), '-t', plugin_type, '-j'] + ['tapecrypt.ekm.' + n for n in names],
              env=user_env(str(tmp_path / 'home'), installed)).stdout
    return {k.split('.')[-1]: v for k, v in json.loads(out).items()}


def test_module_docs_name_requirements_action_group_and_internal_options(tmp_path, installed):
    modules = sorted(n[:-3] for n in os.listdir(os.path.join(ROOT, 'plugins', 'modules')) if n.endswith('.py')
                     and not n.startswith('_'))
    with open(os.path.join(ROOT, 'meta', 'runtime.yml'), encoding='utf-8') as f:
        group = set(yaml.safe_load(f)['action_groups']['ekm'])
    docs = installed_docs(installed, tmp_path, 'module', modules)
    assert sorted(docs) == modules
    for name, data in docs.items():
        doc = data['doc']
        assert doc.get('version_added'), name
        membership = doc['attributes'].get('action_group', {}).get('membership')
        assert membership == (['tapecrypt.ekm.ekm'] if name in group else None), name
        # No internal option is shown to users (the sync's phase request travels beside the options, not as one).
        assert [o for o in doc['options'] if o.startswith('_')] == [], name
    for name in ('keystore', 'keystore_info', 'sync'):  # they seal or unseal keys (module_utils/_jceks.py)
        assert any('cryptography' in r for r in docs[name]['doc'].get('requirements', [])), name


def test_every_role_entry_point_has_version_added(tmp_path, installed):
    roles = sorted(os.listdir(os.path.join(ROOT, 'roles')))
    docs = installed_docs(installed, tmp_path, 'role', roles)
    assert sorted(docs) == roles
    for name, data in docs.items():
        for entry, spec in data['entry_points'].items():
            assert spec.get('version_added'), '%s:%s' % (name, entry)


def test_changelog_is_generated_from_changelog_yaml_and_lints(tmp_path):
    env = user_env(str(tmp_path / 'home'), str(tmp_path / 'none'))
    work = tmp_path / 'changelog'
    shutil.copytree(os.path.join(ROOT, 'changelogs'), work / 'changelogs')
    shutil.copy(os.path.join(ROOT, 'galaxy.yml'), work)
    run([tool('antsibull-changelog'), 'generate'], cwd=str(work), env=env)
    with open(os.path.join(ROOT, 'CHANGELOG.rst'), encoding='utf-8') as f:
        assert (work / 'CHANGELOG.rst').read_text(encoding='utf-8') == f.read(), 'CHANGELOG.rst is not generated'
    run([tool('antsibull-changelog'), 'lint'], cwd=ROOT, env=env)
    run([tool('antsibull-changelog'), 'lint-changelog-yaml', 'changelogs/changelog.yaml'], cwd=ROOT, env=env)


# ---------------------------------------------------------------------------------------------------------------------
# examples/molecule: the scenario a user copies into their own repository


def test_example_molecule_scenario_passes_from_a_fresh_directory(tmp_path, installed):
    """Copied out of the checkout, with only the installed tarball: converge, idempotence, verify (cartridges
    written through the primary read back through the redundant), destroy. Run under the lab lock (fixed ports)."""
    project = tmp_path / 'site-repo'
    shutil.copytree(os.path.join(EXAMPLES, 'molecule', 'default'), project / 'molecule' / 'default')
    home = tmp_path / 'home'
    env = user_env(str(home), installed)
    proc = run([tool('molecule'), 'test'], cwd=str(project), env=env, check=False)
    tail = proc.stdout[-8000:]
    assert proc.returncode == 0, tail
    for action in ('converge', 'idempotence', 'verify', 'destroy'):
        assert 'default > %s: Executed: Successful' % action in proc.stdout, tail
    assert 'default                   : actions=6  successful=6' in proc.stdout, tail
    # verify.yml read the cartridges through the redundant server (a failed read fails the task and the run).
    assert re.search(r'TASK \[Read the cartridges\][^\n]*\n(ok: \[ekm-redundant\] => \(item=\d\)\n){3}', proc.stdout), tail
    # Destroy stopped both servers and removed their homes.
    ephemeral = home / '.cache' / 'molecule'
    assert not list(ephemeral.glob('**/ekm-primary/bin/ekmctl')), 'destroy left an EKM home behind'
