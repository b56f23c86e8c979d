"""Roles: the built-in chainlink role, role.yaml validation with located errors, search path and profiles."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import jinja2
import pytest
from jinja2 import nodes

from nodeops.errors import EXIT_INVALID, InvalidInput, InventoryError
from nodeops.inventory import Node, SecretRef, Service
from nodeops.render import render
from nodeops.roles import (
    BUILTIN_ROLES,
    BUILTIN_TEMPLATES,
    PROFILE_VARIABLE,
    Role,
    RoleError,
    check_service,
    check_variables,
    load_role,
    profile_name,
    role_for,
    role_search_path,
    templates_folder,
)

GOOD = textwrap.dedent("""\
    description: test role
    user: 1000
    port: 8080
    health: /health
    mount: /data
    stop_timeout: 5
    defaults: {A: x, N: 1}
    secrets: [pw]
    profiles:
      main:
        files:
          app.conf: {template: app.j2, secret: false}
          .pw: {template: pw.j2, secret: true}
        command: [serve, --conf, "{mount}/app.conf"]
        env_file: null
    default_profile: main
    """)


def make_role(root: Path, text: str = GOOD, name: str = "thing", templates: dict[str, str] | None = None) -> Path:
    """Role ``name`` in a project folder ``root``: ``roles/<name>/role.yaml`` and ``templates/<name>/``; returns the
    ``roles`` folder (what a search path lists)."""
    (root / "roles" / name).mkdir(parents=True)
    (root / "roles" / name / "role.yaml").write_text(text)
    (root / "templates" / name).mkdir(parents=True)
    for tname, body in (
        templates or {"app.j2": "a={{ vars.A | raw }}\n", "pw.j2": "{{ secrets.pw | line }}\n"}
    ).items():
        (root / "templates" / name / tname).parent.mkdir(parents=True, exist_ok=True)
        (root / "templates" / name / tname).write_text(body)
    return root / "roles"


def service(**variables) -> Service:
    return Service(
        name="cl1", role="chainlink", image="smartcontract/chainlink:2.10.0", runtime="docker",
        variables=MappingProxyType(variables), secrets=MappingProxyType({}), nodes=(),
    )  # fmt: skip


def test_builtin_chainlink_role():
    role = load_role("chainlink")
    assert (role.user, role.port, role.health, role.mount, role.stop_timeout) == (
        14933,
        6688,
        "/health",
        "/chainlink",
        10,
    )
    assert role.source == BUILTIN_ROLES / "chainlink" / "role.yaml"
    assert role.default_profile == "v2" and set(role.profiles) == {"v1", "v2"}
    assert set(role.secrets) == {"db", "db_user", "keystore", "api_email", "api_password"}
    v2, v1 = role.profile("v2"), role.profile("v1")
    assert v2.argv(role.mount) == (
        "node", "-config", "/chainlink/config.toml", "-config", "/chainlink/rpc.toml",
        "-secrets", "/chainlink/secrets.toml", "start", "-a", "/chainlink/.api",
    )  # fmt: skip
    assert v1.argv(role.mount) == ("local", "n", "-p", "/chainlink/.password", "-a", "/chainlink/.api")
    assert (v2.env_file, v1.env_file) == (None, ".env")
    assert {f.name: f.secret for f in v2.files.values()} == {
        "config.toml": False, "rpc.toml": True, "secrets.toml": True, ".api": True,
    }  # fmt: skip
    assert {f.name: f.secret for f in v1.files.values()} == {".env": True, ".password": True, ".api": True}
    assert {f.name for f in v2.files.values() if f.read == "lease"} == {".api"}  # read only after the lease
    assert {f.name for f in v1.files.values() if f.read == "lease"} == {".api"}
    assert role.defaults["LEASE_DURATION"] == "10s" and role.defaults["LEASE_REFRESH_INTERVAL"] == "1s"


def test_a_good_role_loads_frozen(tmp_path):
    role = load_role("thing", [make_role(tmp_path)])
    assert role.profile("main").argv(role.mount) == ("serve", "--conf", "/data/app.conf")
    assert role.template_dirs == (tmp_path / "templates" / "thing",)
    with pytest.raises(TypeError):
        role.defaults["A"] = "y"  # type: ignore[index]
    with pytest.raises(AttributeError):
        role.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "where", "problem"),
    [
        (("user: 1000\n", "user: 1000\ncolour: red\n"), "colour", "unknown key 'colour' (allowed: description, user,"),
        (("port: 8080\n", ""), "port", "missing required key 'port'"),
        (("port: 8080", "port: 70000"), "port", "expected an integer 1..65535, got 70000"),
        (("user: 1000", "user: root"), "user", "expected an integer"),
        (("health: /health", "health: health"), "health", "expected an HTTP path starting with '/'"),
        (("mount: /data", "mount: data"), "mount", "expected an absolute path"),
        (("{A: x, N: 1}", "{A: null}"), "defaults.A", "expected a string, number or boolean (or a list"),
        (("{A: x, N: 1}", "{a-b: 1}"), "defaults.a-b", "expected a variable name"),
        (("secrets: [pw]", "secrets: [PW]"), "secrets[0]", "expected a secret name"),
        (("default_profile: main", "default_profile: other"), "default_profile", "expected one of main, got 'other'"),
        (("env_file: null", "env_file: nope"), "profiles.main.env_file", "expected one of this profile's files"),
        (("env_file: null", "envfile: null"), "profiles.main.envfile", "unknown key 'envfile'"),
        (('"{mount}/app.conf"', '"{root}/app.conf"'), "profiles.main.command[2]", "only the placeholder {mount}"),
        (("template: app.j2", "template: missing.j2"), "profiles.main.files.app.conf.template",
         "template 'missing.j2' not found in"),
        (("template: app.j2", "template: ../app.j2"), "profiles.main.files.app.conf.template",
         "expected a path relative to templates/"),
        (("secret: false", "secret: no-thanks"), "profiles.main.files.app.conf.secret", "expected true or false"),
        (("secret: false", "secret: false, read: later"), "profiles.main.files.app.conf.read",
         "expected start or lease, got 'later'"),
        (("app.conf:", "a/b.conf:"), "profiles.main.files.a/b.conf", "expected a plain file name"),
        (("stop_timeout: 5", "stop_timeout: 5\nuser: 2"), "line 7, column 1", "invalid YAML: duplicate key 'user'"),
        (("secrets: [pw]", "secrets: [pw]\nwritable_paths: [ROOT]"), "writable_paths[0]",
         "expected a variable of the role's defaults, got 'ROOT'"),
        (("{A: x, N: 1}", "{A: /data/root}\nwritable_paths: [A]"), "defaults.A",
         "'/data/root' is at or under the role's mount /data"),
        (("{A: x, N: 1}", "{A: rel/root}\nwritable_paths: [A]"), "defaults.A", "expected an absolute path"),
        (("secrets: [pw]", "secrets: [pw]\nsecret_variables: {U: u}"), "secret_variables.U",
         "expected a variable of the role's defaults"),
        (("secrets: [pw]", "secrets: [pw]\nsecret_variables: {A: pw}"), "secret_variables.A",
         "outside the role's required secrets, got 'pw'"),
        (("secrets: [pw]", "secrets: [pw]\nvariables: [A]"), "variables[0]", "A is declared already (defaults"),
        (("secrets: [pw]", "secrets: [pw]\nvariables: [B, B]"), "variables[1]", "B is declared already"),
        (("secrets: [pw]", "secrets: [pw]\nvariables: [PROFILE]"), "variables[0]", "PROFILE is declared already"),
        (("secrets: [pw]", "secrets: [pw]\nvariables: [a-b]"), "variables[0]", "expected a variable name"),
        (("secrets: [pw]", "secrets: [pw]\nvariables: B"), "variables", "expected a list of variable names"),
        (("secrets: [pw]", "secrets: [pw]\nunused_with: [A]"), "unused_with", "expected a mapping"),
        (("secrets: [pw]", "secrets: [pw]\nunused_with: {Z: [A]}"), "unused_with.Z",
         "expected a variable the role declares"),
        (("secrets: [pw]", "secrets: [pw]\nunused_with: {N: A}"), "unused_with.N", "expected a list of variables"),
        (("secrets: [pw]", "secrets: [pw]\nunused_with: {N: [A, Z]}"), "unused_with.N[1]",
         "expected a variable of the role's defaults other than N, got 'Z'"),
        (("secrets: [pw]", "secrets: [pw]\nunused_with: {N: [N]}"), "unused_with.N[0]", "other than N, got 'N'"),
        # issue 15: role.yaml goes through the inventory's validator: its located, worded errors
        (("secrets: [pw]", "secrets: [pw]\nrotation: {x: 3}"), "rotation.x", "expected a mapping, got 3"),
        (("secrets: [pw]", "secrets: [pw]\nrotation: {x: {secret: pw}}"), "rotation.x.kind",
         "missing required key 'kind'"),
        (("secrets: [pw]", "secrets: [pw]\nrotation: {x: {kind: refused, secret: pw, reason: r, user: pw}}"),
         "rotation.x.user", "unknown key 'user' (allowed: kind, secret, reason)"),
        (("{A: x, N: 1}", "{A: [[[[[1]]]]]}"), "defaults.A", "at [0][0][0][0]: lists and mappings nest at most 4 deep"),
        (("app.conf: {template: app.j2, secret: false}", "app.conf: x"), "profiles.main.files.app.conf",
         "expected a mapping, got 'x'"),
    ],
)  # fmt: skip
def test_bad_role_yaml_is_exit_2_naming_file_and_path(tmp_path, change, where, problem):
    old, new = change
    assert old in GOOD
    root = make_role(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(RoleError) as err:
        load_role("thing", [root])
    assert err.value.exit_code == EXIT_INVALID
    assert (err.value.file, err.value.where) == (str(root / "thing" / "role.yaml"), where)
    assert problem in err.value.problem and "\n" not in str(err.value)


ALL = ("mount: /data\n", "mount: /data\nactivation: all\n")
KEYS = ("mount: /data\n", "mount: /data\nactivation: keys\n")
HOT = ("secret: true}", "secret: true, hot: true}")
LEASE = (
    "secrets: [pw]",
    "secrets: [pw]\nlease: {table: t, host: A, port: N, database: A, sslmode: A, user: pw, password: pw}",
)


@pytest.mark.parametrize(
    ("changes", "where", "problem"),
    [
        ([("mount: /data\n", "mount: /data\nactivation: relays\n")], "activation",
         "expected lease or keys or all, got 'relays'"),
        ([("secret: true}", "secret: true, hot: maybe}")], "profiles.main.files..pw.hot", "expected true or false"),
        ([ALL, HOT], "profiles.main.files..pw.hot", "a hot file needs activation: keys (this role's is all)"),
        ([("mount: /data\n", "mount: /data\nactivation: lease\n"), HOT], "profiles.main.files..pw.hot",
         "a hot file needs activation: keys (this role's is lease)"),
        ([KEYS], "profiles.main.files", "activation keys needs at least one file marked hot: true"),
        ([("secret: false}", "secret: false, hot: true}")], "profiles.main.files.app.conf.secret",
         "a hot file holds keys: set secret: true"),
        ([HOT, ("secret: false}", "secret: false, read: lease}")], "profiles.main.files.app.conf.read",
         "read: lease needs activation: lease (this role's is keys)"),
        ([ALL, LEASE], "lease", "a lease needs activation: lease (this role's is all): remove it"),
        ([HOT, LEASE], "lease", "a lease needs activation: lease (this role's is keys)"),
        ([(" env_file: null", " env_file: null\n    hot_command: [--key, x]")], "profiles.main.hot_command",
         "arguments for the holder of the hot files need activation: keys (this role's is lease)"),
        ([HOT, (" env_file: null", " env_file: null\n    hot_command: [--key, '{keys}/k']")],
         "profiles.main.hot_command[1]", "only the placeholder {mount} is known"),
    ],
    ids=["unknown", "hot-not-bool", "hot-under-all", "hot-under-lease", "keys-without-hot", "hot-not-secret",
         "read-lease-under-keys", "lease-under-all", "lease-under-keys", "hot-command-under-lease",
         "hot-command-placeholder"],
)  # fmt: skip
def test_activation_is_validated_with_the_path(tmp_path, changes, where, problem):
    text = GOOD
    for old, new in changes:
        assert old in text
        text = text.replace(old, new, 1)
    root = make_role(tmp_path, text)
    with pytest.raises(RoleError) as err:
        load_role("thing", [root])
    assert err.value.exit_code == EXIT_INVALID and "\n" not in str(err.value)
    assert (err.value.file, err.value.where) == (str(root / "thing" / "role.yaml"), where)
    assert problem in err.value.problem


@pytest.mark.parametrize(
    ("changes", "activation", "hot"),
    [
        ([], "lease", set()),  # written before the key: today's behaviour
        ([LEASE], "lease", set()),
        ([ALL], "all", set()),
        ([HOT], "keys", {".pw"}),  # a hot file says keys
        ([KEYS, HOT], "keys", {".pw"}),
    ],
)
def test_activation_defaults_from_what_the_role_declares(tmp_path, changes, activation, hot):
    text = GOOD
    for old, new in changes:
        text = text.replace(old, new, 1)
    role = load_role("thing", [make_role(tmp_path, text)])
    assert role.activation == activation
    assert {f.name for f in role.profile("main").files.values() if f.hot} == hot


def test_the_chainlink_role_says_lease_explicitly_and_an_older_copy_without_it_is_lease_too(tmp_path):
    role = load_role("chainlink")
    text = role.source.read_text()
    assert role.activation == "lease" and role.lease is not None and "\nactivation: lease " in text
    assert not any(f.hot for p in role.profiles.values() for f in p.files.values())
    mine = tmp_path / "roles"  # an operator's copy of role.yaml written before the key; templates: the built-in ones
    (mine / "chainlink").mkdir(parents=True)
    (mine / "chainlink" / "role.yaml").write_text("".join(
        line for line in text.splitlines(keepends=True) if not line.startswith("activation:")))  # fmt: skip
    older = load_role("chainlink", [mine, BUILTIN_ROLES])
    assert older.source == mine / "chainlink" / "role.yaml" and "activation" not in older.source.read_text()
    assert older == dataclasses.replace(role, source=older.source, template_dirs=older.template_dirs)


def test_unknown_role_names_the_role_the_service_path_the_folders_and_the_roles_found(tmp_path):
    roles = make_role(tmp_path, GOOD, name="mine")
    with pytest.raises(InventoryError) as err:
        load_role("nosuch", [roles, BUILTIN_ROLES], file="/inv/prod.yaml", where="services.cl1.role")
    assert err.value.exit_code == EXIT_INVALID
    assert str(err.value) == (
        f"/inv/prod.yaml: services.cl1.role: unknown role 'nosuch': no nosuch/role.yaml in {roles}, {BUILTIN_ROLES} "
        "(roles found: cardano, chainlink, mine)"
    )
    with pytest.raises(InvalidInput, match=r"invalid role name '\.\./x'"):
        load_role("../x")


@pytest.mark.parametrize(
    ("marker", "inventory", "expected"),
    [
        (None, "prod.yaml", "roles"),  # outside any project: roles/ next to the inventory
        ("nodeops.yaml", "inventory/prod.yaml", "roles"),  # the project's roles/, not inventory/roles
        ("nodeops.yaml", "inventory/deep/prod.yaml", "roles"),  # the nearest marker above, however deep
        ("sub/nodeops.yaml", "sub/inventory/prod.yaml", "sub/roles"),  # the nearest one wins over one further up
        (None, "inventory/prod.yaml", "inventory/roles"),
    ],
)
def test_search_path_is_the_projects_roles_then_the_built_in_ones(tmp_path, marker, inventory, expected):
    if marker == "sub/nodeops.yaml":
        (tmp_path / "nodeops.yaml").write_text("# an outer project\n")
    if marker:
        (tmp_path / marker).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / marker).write_text("# marks the project\n")
    (tmp_path / inventory).parent.mkdir(parents=True, exist_ok=True)
    assert role_search_path(tmp_path / inventory) == (tmp_path / expected, BUILTIN_ROLES)


def test_search_path_without_an_inventory_or_in_the_source_repository():
    assert role_search_path(None) == (BUILTIN_ROLES,)
    # this repository is a project whose roles/ are the built-in ones: searched once
    assert role_search_path(BUILTIN_ROLES.parent / "inventory" / "lab.yaml") == (BUILTIN_ROLES,)


def test_the_first_role_yaml_wins_and_templates_fall_back(tmp_path):
    mine = tmp_path / "mine" / "roles"  # a project with templates only: role.yaml is the built-in one
    (tmp_path / "mine" / "templates" / "chainlink" / "v2").mkdir(parents=True)
    (tmp_path / "mine" / "templates" / "chainlink" / "v2" / "config.toml.j2").write_text("# mine\n")
    role = load_role("chainlink", [mine, BUILTIN_ROLES])
    assert role.source == BUILTIN_ROLES / "chainlink" / "role.yaml"
    assert role.template_dirs == (tmp_path / "mine" / "templates" / "chainlink", BUILTIN_TEMPLATES / "chainlink")
    other = make_role(tmp_path / "other", GOOD, name="chainlink", templates={"app.j2": "x\n", "pw.j2": "y\n"})
    assert load_role("chainlink", [other, BUILTIN_ROLES]).source == other / "chainlink" / "role.yaml"


def test_the_built_in_roles_and_templates_sit_side_by_side_as_in_a_project():
    assert BUILTIN_TEMPLATES == BUILTIN_ROLES.parent / "templates"
    assert templates_folder(BUILTIN_ROLES, "chainlink") == BUILTIN_TEMPLATES / "chainlink"
    assert (BUILTIN_TEMPLATES / "chainlink" / "v2" / "secrets.toml.j2").is_file()
    assert not (BUILTIN_ROLES / "chainlink" / "templates").exists()


def test_a_missing_template_names_both_template_folders(tmp_path):
    """One line naming the operator's templates folder (even when it does not exist) and the built-in one."""
    roles = make_role(tmp_path, GOOD.replace("template: app.j2", "template: v2/nosuch.j2"), name="chainlink")
    with pytest.raises(RoleError) as err:
        load_role("chainlink", [roles, BUILTIN_ROLES])
    assert err.value.where == "profiles.main.files.app.conf.template"
    assert err.value.problem == (f"template 'v2/nosuch.j2' not found in {tmp_path}/templates/chainlink, "
                                 f"{BUILTIN_TEMPLATES}/chainlink")  # fmt: skip


def test_templates_under_roles_the_layout_before_are_refused_not_ignored(tmp_path):
    """An override kept where it used to be (roles/chainlink/templates/) would otherwise silently stop applying."""
    old = tmp_path / "roles" / "chainlink" / "templates" / "v2"
    old.mkdir(parents=True)
    (old / "secrets.toml.j2").write_text("# mine\n")
    with pytest.raises(RoleError) as err:
        load_role("chainlink", [tmp_path / "roles", BUILTIN_ROLES])
    assert err.value.exit_code == EXIT_INVALID and "\n" not in str(err.value)
    assert str(err.value) == (
        f"{tmp_path}/roles/chainlink/templates: a role's templates are read from {tmp_path}/templates/chainlink now, "
        "not from roles/: move the files there (same paths inside), then remove this folder"
    )


@pytest.mark.parametrize(("variables", "expected"), [({}, "v2"), ({"PROFILE": "v1"}, "v1"), ({"PROFILE": "v2"}, "v2")])
def test_profile_is_chosen_by_the_profile_variable(variables, expected):
    assert profile_name(load_role("chainlink"), service(**variables)) == expected


def test_an_unknown_profile_names_the_variable():
    with pytest.raises(InventoryError) as err:
        profile_name(load_role("chainlink"), service(PROFILE="v3"), "/inv/prod.yaml")
    assert str(err.value) == (
        "/inv/prod.yaml: services.cl1.variables.PROFILE: role 'chainlink' has no profile 'v3' (profiles: v2, v1)"
    )


def service_with(variables: dict, secrets: tuple[str, ...] = ()) -> Service:
    refs = {name: SecretRef("ci", f"x/{name}") for name in secrets}
    return Service(
        name="cl1", role="chainlink", image="smartcontract/chainlink:2.10.0", runtime="docker",
        variables=MappingProxyType(variables), secrets=MappingProxyType(refs), nodes=(),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("variables", "secrets", "where", "problem"),
    [
        ({"ROOT_DIR": "/chainlink"}, (), "variables.ROOT_DIR", "'/chainlink' is at or under the role's mount"),
        ({"ROOT_DIR": "/chainlink/"}, (), "variables.ROOT_DIR", "at or under the role's mount"),
        ({"ROOT_DIR": "/chainlink/root"}, (), "variables.ROOT_DIR", "at or under the role's mount"),
        ({"ROOT_DIR": "//chainlink/./x"}, (), "variables.ROOT_DIR", "at or under the role's mount"),
        ({"ROOT_DIR": "/tmp/../chainlink/x"}, (), "variables.ROOT_DIR", "at or under the role's mount"),
        ({"ROOT_DIR": "chainlink"}, (), "variables.ROOT_DIR", "expected an absolute path (or ~/...)"),
        ({"ROOT_DIR": ""}, (), "variables.ROOT_DIR", "expected a path, got ''"),
        ({"ROOT_DIR": 5}, (), "variables.ROOT_DIR", "expected a path, got 5"),
        ({"ETH_URL": "wss://x/ws"}, ("eth_url",), "variables.ETH_URL",
         "given both as this variable and as the secret reference services.cl1.secrets.eth_url"),
        ({"ETH_HTTP_URL": "https://x"}, ("eth_http_url",), "variables.ETH_HTTP_URL", "keep one"),
        # good: a path beside the mount, home, the default; a URL given once either way
        ({"ROOT_DIR": "/chainlink2/root"}, (), None, None),
        ({"ROOT_DIR": "/home/chainlink/.chainlink"}, (), None, None),
        ({"ROOT_DIR": "~/.chainlink"}, (), None, None),
        ({"ROOT_DIR": "/"}, (), None, None),
        ({}, (), None, None),
        ({"ETH_URL": ""}, ("eth_url",), None, None),
        ({"ETH_URL": "wss://x/ws"}, ("eth_http_url",), None, None),
    ],
)  # fmt: skip
def test_the_role_refuses_what_it_knows_cannot_run(variables, secrets, where, problem):
    """Issue 13: ROOT_DIR at or under the read-only mount made both nodes of a pair fail; refused with the fix."""
    svc = service_with(variables, secrets)
    if problem is None:
        check_service(load_role("chainlink"), svc, "/inv/prod.yaml")
        return
    with pytest.raises(InventoryError) as err:
        check_service(load_role("chainlink"), svc, "/inv/prod.yaml")
    assert err.value.exit_code == EXIT_INVALID and "\n" not in str(err.value)
    assert (err.value.file, err.value.where) == ("/inv/prod.yaml", f"services.cl1.{where}")
    assert problem in err.value.problem
    if "mount" in problem:
        assert "remove it to use the role's default '/home/chainlink/.chainlink'" in err.value.problem


@pytest.mark.parametrize(
    ("activation", "count", "problem"),
    [
        ("lease", 2, None),
        ("lease", 3, "expected 1 to 2 nodes (an active and an optional standby), got 3: role chainlink has activation "
                     "lease; only activation all takes up to 32"),
        ("keys", 3, "expected 1 to 2 nodes (an active and an optional standby), got 3: role chainlink has activation "
                    "keys"),
        ("all", 3, None),
        ("all", 32, None),
    ],
)  # fmt: skip
def test_how_many_nodes_a_service_takes_is_its_roles_activations(activation, count, problem):
    """The inventory takes 1 to 32 nodes; the role's activation says how many of those a service may have: an active
    and a standby under lease and keys, up to 32 under all (every node serves). One line, exit 2, the path."""
    nodes = tuple(Node(f"n{i}", f"10.0.3.{i}", 22, "standby" if i else "active", (), "cl1") for i in range(count))
    svc = dataclasses.replace(service_with({}), nodes=nodes)
    role = dataclasses.replace(load_role("chainlink"), activation=activation)
    if problem is None:
        check_service(role, svc, "/inv/prod.yaml")
        return
    with pytest.raises(InventoryError) as err:
        check_service(role, svc, "/inv/prod.yaml")
    assert err.value.exit_code == EXIT_INVALID and "\n" not in str(err.value)
    assert (err.value.file, err.value.where) == ("/inv/prod.yaml", "services.cl1.nodes")
    assert problem in err.value.problem, err.value.problem


def test_services_of_two_roles_on_one_host_must_serve_on_different_ports(tmp_path):
    """The inventory cannot tell two roles' ports apart; role_for can: a clash names both services."""
    from tests.unit.test_inventory import edited, key, parse  # noqa: PLC0415 - the inventory tables' builders

    (tmp_path / "roles" / "other").mkdir(parents=True)
    (tmp_path / "roles" / "other" / "role.yaml").write_text(
        (BUILTIN_ROLES / "chainlink" / "role.yaml").read_text().replace("port: 6688", "port: 7000")
    )
    (tmp_path / "roles" / "other" / "role.py").symlink_to(BUILTIN_ROLES / "chainlink" / "role.py")  # its API hook
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "other").symlink_to(BUILTIN_TEMPLATES / "chainlink")
    other = {"role": "other", "image": "smartcontract/chainlink:2.10.0",
             "nodes": [{"name": "o-a", "host": "10.0.1.10", "preferred": "active", "host_key": key(2)}]}  # fmt: skip
    path = [tmp_path / "roles", BUILTIN_ROLES]
    inv = parse(edited(("services.other", other)))
    assert role_for(inv, inv.services["other"], path).port == 7000  # 6688 and 7000 on one host: fine
    inv = parse(edited(("services.other", {**other, "port": 6688})))
    with pytest.raises(InventoryError, match="services chainlink and other share a host and both serve on port 6688"):
        role_for(inv, inv.services["other"], path)
    inv = parse(edited(("services.other", {**other, "port": 6690})))
    assert role_for(inv, inv.services["chainlink"], path).port == 6688
    assert role_for(inv, inv.services["other"], path).port == 6690  # its own port: config, publish, health all follow


# -- the variables a role knows: declared in role.yaml, checked against its templates; any other is refused --------


def template_variables(templates: Path) -> set[str]:
    """Every ``vars.NAME`` / ``vars["NAME"]`` the role's templates read (parsed, not rendered: every branch)."""
    env = jinja2.Environment()

    def read(tree: nodes.Node) -> Iterator[str]:
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            if isinstance(node.node, nodes.Name) and node.node.name == "vars":
                if isinstance(node, nodes.Getattr):
                    yield node.attr
                else:
                    assert isinstance(node.arg, nodes.Const), f"vars[...] with a computed name in {templates}"
                    yield node.arg.value

    return {name for path in templates.rglob("*.j2") for name in read(env.parse(path.read_text()))}


def test_the_chainlink_role_declares_exactly_the_variables_its_templates_and_lease_read():
    """role.yaml's defaults + variables (+ PROFILE, which picks the profile) are what the templates read, plus what
    the role itself locates its database by: a variable added to a template without declaring it (or declared and
    read by nothing) fails here, so the list a service is checked against cannot drift."""
    role = load_role("chainlink")
    lease = role.lease
    assert lease is not None
    read = template_variables(BUILTIN_TEMPLATES / "chainlink") | {lease.host, lease.port, lease.database, lease.sslmode}
    assert read | {PROFILE_VARIABLE} == role.known_variables
    assert set(role.variables) == {"DATABASE_HOST", "DATABASE_NAME", "EVM_CHAINS"}  # the ones with no default


@pytest.mark.parametrize(
    ("own", "dropped"),
    [
        ({}, set()),
        ({"ETH_CHAIN_ID": 5, "ETH_URL": "wss://x"}, set()),
        ({"EVM_CHAINS": []}, {"ETH_CHAIN_ID", "ETH_URL", "ETH_HTTP_URL", "LINK_CONTRACT_ADDRESS"}),
        ({"EVM_CHAINS": [], "ETH_CHAIN_ID": 5}, {"ETH_CHAIN_ID", "ETH_URL", "ETH_HTTP_URL", "LINK_CONTRACT_ADDRESS"}),
    ],
)  # fmt: skip
def test_read_variables_are_the_defaults_and_the_own_without_those_made_unused(own, dropped):
    role = load_role("chainlink")
    got = role.read_variables(own)
    assert got == {k: v for k, v in {**role.defaults, **own}.items() if k not in dropped}
    assert dropped <= {*role.defaults, *own} and not dropped & set(got)


def test_what_the_chainlink_role_declares_unused_changes_no_file():
    """role.yaml's ``unused_with`` is a claim about the templates: with EVM_CHAINS set, another value of each
    variable it names renders the same files, or is refused (a non-empty ETH_URL). Else the diff would hide a
    real change."""
    from tests.unit.test_render import CHAIN_SECRETS, CHAINS, secrets  # noqa: PLC0415 - the render tables' inputs
    from tests.unit.test_render import service as render_service  # noqa: PLC0415

    role = load_role("chainlink")
    single_chain = ("ETH_CHAIN_ID", "ETH_URL", "ETH_HTTP_URL", "LINK_CONTRACT_ADDRESS")
    assert dict(role.unused_with) == {"EVM_CHAINS": single_chain}
    found = secrets(**CHAIN_SECRETS)
    base = render(role, "v2", render_service(EVM_CHAINS=CHAINS), found)
    rendered = refused = 0
    for name in role.unused_with["EVM_CHAINS"]:
        for other in ({name: 5}, {name: "0xab"}, {name: "wss://x.example"}, {name: ""}):
            try:
                got = render(role, "v2", render_service(EVM_CHAINS=CHAINS, **other), found)
            except InvalidInput:
                refused += 1
                continue
            rendered += 1
            assert {f.name: f.data for f in got.files.values()} == {f.name: f.data for f in base.files.values()}, other
    assert rendered >= 4 + 3 and refused >= 3  # each ETH_CHAIN_ID, each empty one; a non-empty URL or address


def test_template_variables_reads_every_branch(tmp_path):
    """The control for the test above: attribute and item reads, in and out of branches, and nothing else."""
    make_role(tmp_path, templates={"a.j2": "{% if vars.X %}{{ vars['Y'] }}{% endif %}{{ secrets.s }}{{ other.Z }}"})
    assert template_variables(tmp_path / "templates" / "thing") == {"X", "Y"}


def two_roles(tmp_path: Path, variables: dict, defaults: dict | None = None):
    """An inventory of the chainlink service (with ``variables``) and a service of role ``other`` (a copy of
    chainlink that also declares OTHER_ONLY), with ``defaults.variables``; and the roles' search path."""
    from tests.unit.test_inventory import BASE, edited, key, parse  # noqa: PLC0415 - the inventory tables' builders

    (tmp_path / "roles" / "other").mkdir(parents=True)
    chainlink = (BUILTIN_ROLES / "chainlink" / "role.yaml").read_text()
    (tmp_path / "roles" / "other" / "role.yaml").write_text(
        chainlink.replace("port: 6688", "port: 7000").replace("  - EVM_CHAINS ", "  - OTHER_ONLY\n  - EVM_CHAINS ")
    )
    (tmp_path / "roles" / "other" / "role.py").symlink_to(BUILTIN_ROLES / "chainlink" / "role.py")  # its API hook
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "other").symlink_to(BUILTIN_TEMPLATES / "chainlink")
    other = {"role": "other", "image": "smartcontract/chainlink:2.10.0",
             "nodes": [{"name": "o-a", "host": "10.0.1.10", "preferred": "active", "host_key": key(2)}]}  # fmt: skip
    mine = {**BASE["services"]["chainlink"]["variables"], **variables}
    changes = [("services.other", other), ("services.chainlink.variables", mine)]
    inv = parse(edited(*changes, *([("defaults", {"variables": defaults})] if defaults else [])))
    return inv, [tmp_path / "roles", BUILTIN_ROLES]


@pytest.mark.parametrize(
    ("variables", "defaults", "where", "problem"),
    [
        ({"LOG_LEVEL": "debug", "PROFILE": "v1", "EVM_CHAINS": []}, None, None, None),
        ({"LOGLEVEL": "debug"}, None, "services.chainlink.variables.LOGLEVEL",
         "role 'chainlink' has no variable LOGLEVEL (did you mean LOG_LEVEL?); its variables: DATABASE_HOST, "),
        ({"log_level": "debug"}, None, "services.chainlink.variables.log_level", "(did you mean LOG_LEVEL?)"),
        ({"ETH_CHAINID": 5}, None, "services.chainlink.variables.ETH_CHAINID", "(did you mean ETH_CHAIN_ID?)"),
        ({"LB_PORT": 6688}, None, "services.chainlink.variables.LB_PORT", "has no variable LB_PORT; its variables"),
        ({}, {"LOGLEVEL": "x"}, "defaults.variables.LOGLEVEL", "(did you mean LOG_LEVEL?)"),
        ({"LOGLEVEL": "x"}, {"LOGLEVEL": "x"}, "services.chainlink.variables.LOGLEVEL", "has no variable LOGLEVEL"),
        ({}, {"OTHER_ONLY": 1}, None, None),  # a default the other service's role reads: not chainlink's concern
        ({"OTHER_ONLY": 1}, None, "services.chainlink.variables.OTHER_ONLY", "has no variable OTHER_ONLY"),
        # review14b #10: a lease variable of the wrong kind, named where it is set (was `cl1: variable ...`, or an
        # error about the internal database_url.j2 for a list)
        ({"DATABASE_PORT": "abc"}, None, "services.chainlink.variables.DATABASE_PORT",
         "must be a port number (1-65535), got 'abc' (it locates the lease database)"),
        ({"DATABASE_PORT": [1, 2]}, None, "services.chainlink.variables.DATABASE_PORT",
         "must be a port number (1-65535), got [1, 2] (it locates the lease database)"),
        ({}, {"DATABASE_PORT": 0}, "defaults.variables.DATABASE_PORT", "must be a port number (1-65535), got 0"),
        ({"DATABASE_HOST": ["a", "b"]}, None, "services.chainlink.variables.DATABASE_HOST",
         "must be a host: one value, got ['a', 'b']"),
        ({"DATABASE_PORT": "5433", "DATABASE_NAME": "cl"}, None, None, None),
    ],
    ids=["known", "typo", "case", "close", "unrelated", "in-defaults", "own-and-defaults", "default-for-other",
         "own-for-other", "port-word", "port-list", "port-0-in-defaults", "host-list", "port-digits"],
)  # fmt: skip
def test_a_variable_the_role_does_not_know_is_refused_naming_where_it_is_set(tmp_path, variables, defaults, where,
                                                                             problem):  # fmt: skip
    inv, path = two_roles(tmp_path, variables, defaults)
    svc = inv.services["chainlink"]
    role = role_for(inv, svc, path)
    if where is None:
        check_variables(inv, svc, role, path)
        check_variables(inv, inv.services["other"], role_for(inv, inv.services["other"], path), path)
        return
    with pytest.raises(InventoryError) as err:
        check_variables(inv, svc, role, path)
    assert err.value.exit_code == EXIT_INVALID and "\n" not in str(err.value)
    assert (err.value.file, err.value.where) == (str(inv.source), where)
    assert problem in err.value.problem


def test_role_yaml_is_declared_once_and_validated_like_the_inventory():
    """Issue 15: role.yaml's pydantic models are generated from the role's dataclasses by the inventory's generator
    (the same unknown-key, path and wording rules), in the order the file's keys are documented."""
    from nodeops import role_file
    from nodeops.inventory.schema import _Spec

    spec = role_file._RoleSpec
    assert issubclass(spec, _Spec) and spec.ENGINE is Role
    assert list(spec.model_fields)[:5] == ["description", "user", "port", "health", "mount"]
    assert set(spec.FIELDS.values()) <= {f.name for f in dataclasses.fields(Role)}
