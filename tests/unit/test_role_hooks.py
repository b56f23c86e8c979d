"""The role interface (nodeops.role_hooks): a role's module (roles/<role>/role.py) found and loaded with its
role.yaml, its hooks over the engine's defaults, bad modules refused (exit 2, naming the file); and the built-in
Chainlink role's hooks (roles/chainlink/role.py): its log format, its lease client, its failing health checks,
its API password change."""

from __future__ import annotations

import json
import shutil
import textwrap
from email.message import Message

import pytest

from nodeops.edges.http import Reply
from nodeops.errors import EXIT_INVALID, OperationFailed
from nodeops.role_hooks import (
    DEFAULT_HOOKS,
    ApiPassword,
    default_log_level,
    hooks_from,
    no_failing_checks,
    no_lease_client,
)
from nodeops.roles import BUILTIN_ROLES, RoleError, load_role, role_module, role_package
from tests.unit.test_roles import GOOD, make_role

CHAINLINK = load_role("chainlink")
HOOKS = CHAINLINK.hooks


# ---------------------------------------------------------------- the Chainlink role's hooks


@pytest.mark.parametrize(
    ("line", "chainlink", "default"),
    [
        ("2026-11-21T12:00:00.000Z [ERROR] Error trying to refresh database lease pg/lease_lock.go:200", "error", None),
        ("2026-11-21T12:00:00.000Z [CRIT]  Error starting server", "crit", None),
        ("2026-11-21T12:00:00.000Z [INFO]  Error-free boot, no error here", "info", None),
        ("[FATAL] Another node has taken the lease", "fatal", None),
        ("2026-11-21T12:00:00.000Z [ERROR] msg level=info", "error", "info"),  # the console tag comes first
        ('{"level": "error", "msg": "x"}', "error", "error"),
        ('{"level": "PANIC", "msg": "x"}', "panic", "panic"),
        ('{"level": "info", "msg": "error in the message only"}', "info", "info"),
        ('{"msg": "no level"}', None, None),
        ("{not json [ERROR]", None, None),
        ('ts=2026 level=error msg="db down"', "error", "error"),
        ("ConnectionResetError: [Errno 104] Connection reset by peer", None, None),  # a traceback line: no level
        ("Error running app: failed to read config file", None, None),
    ],
)  # fmt: skip
def test_log_level_of_the_chainlink_role_and_the_default(line, chainlink, default):
    assert HOOKS.log_level(line) == chainlink
    assert default_log_level(line) == DEFAULT_HOOKS.log_level(line) == default


def health(app: str | None) -> bytes:
    return json.dumps({"data": [], "meta": {"appID": app} if app else {}}).encode()


@pytest.mark.parametrize(
    ("body", "expected"),
    [(health("x1"), "x1"), (health(None), None), (b"not json", None), (b'{"meta": null}', None), (b"", None)],
)
def test_lease_client_of_the_chainlink_role_and_the_default(body, expected):
    assert HOOKS.lease_client(body) == expected
    assert no_lease_client(body) is None and DEFAULT_HOOKS.lease_client(body) is None


def checks(**status: str) -> bytes:
    """A body as Chainlink's /health writes it (core/web/health_controller.go): a JSON:API document of checks."""
    return json.dumps({"data": [{"type": "checks", "id": name, "attributes": {"name": name, "status": state,
                                                                               "output": ""}}
                                for name, state in status.items()]}).encode()  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (checks(Database="passing", RPC="failing", LeaseLock="failing"), ["RPC", "LeaseLock"]),
        (checks(Database="passing"), []),
        (checks(), []),
        (b"", []),
        (b"<html>", []),
        (b'{"data": [{"attributes": {}}]}', []),  # a check without a name or a status
        (b'{"data": null}', []),
        (b'{"errors": [{"detail": "x"}]}', []),
        (b"[1]", []),
    ],
)  # fmt: skip
def test_failing_checks_of_the_chainlink_role_and_the_default(body, expected):
    assert HOOKS.failing_checks(body) == expected
    assert list(no_failing_checks(body)) == list(DEFAULT_HOOKS.failing_checks(body)) == []


class FakeApi:
    """A node's API as the engine hands it to a hook (nodeops.role_protocols.NodeApi), answering from a script: the
    hook's own logic is pure; the engine's side runs against the lab's simulator (tests/e2e/test_rotate.py)."""

    def __init__(self, *replies: Reply) -> None:
        self.replies, self.calls = list(replies), []

    def call(self, method, path, doc=None, cookie=None):
        self.calls.append((method, path, doc, cookie))
        return self.replies.pop(0)

    def refused(self, what, reply, shown=None):
        return OperationFailed(f"cl a: {what} answered {reply.status}: {reply.body.decode()[:shown]}")

    def failed(self, problem):
        return OperationFailed(f"cl a: {problem}")


def reply(status: int, body: bytes = b"", cookie: str | None = None) -> Reply:
    headers = Message()
    if cookie:
        headers["Set-Cookie"] = cookie
    return Reply(status, headers, body)


API = HOOKS.rotations["chainlink-api-password"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (reply(200, cookie="clsession=abc; Path=/; HttpOnly"), "clsession=abc"),
        (reply(401, b'{"errors": []}'), None),  # the password is refused: not an error
        (reply(500, b"x" * 300), OperationFailed("cl a: POST /sessions answered 500: " + "x" * 200)),
        (reply(200), OperationFailed("cl a: POST /sessions set no cookie")),
    ],
)
def test_the_chainlink_api_login(answer, expected):
    api = FakeApi(answer)
    if isinstance(expected, Exception):
        with pytest.raises(OperationFailed) as err:
            API.login(api, "ops@example.com", "pw-0123456789abcdef")
        assert str(err.value) == str(expected)
    else:
        assert API.login(api, "ops@example.com", "pw-0123456789abcdef") == expected
    assert api.calls == [("POST", "/sessions", {"email": "ops@example.com", "password": "pw-0123456789abcdef"}, None)]


def test_the_chainlink_api_password_change_and_logout():
    api = FakeApi(reply(200), reply(422, b"bad"), reply(204))
    API.set_password(api, "clsession=abc", "old", "new")
    with pytest.raises(OperationFailed, match=r"^cl a: PATCH /v2/user/password answered 422: bad$"):
        API.set_password(api, "clsession=abc", "old", "new")
    API.logout(api, "clsession=abc")
    patch = ("PATCH", "/v2/user/password", {"oldPassword": "old", "newPassword": "new"}, "clsession=abc")
    assert api.calls == [patch, patch, ("DELETE", "/sessions", None, "clsession=abc")]
    assert API.change == "PATCH /v2/user/password" and isinstance(API, ApiPassword)


def test_the_chainlink_profiles_say_which_shows_secrets_to_docker_inspect():
    """v1 passes its secret .env with --env-file (docker inspect shows it): deploy's leak check skips it."""
    assert {name: p.shows_secrets for name, p in CHAINLINK.profiles.items()} == {"v2": False, "v1": True}


# ---------------------------------------------------------------- loading a role's module


def test_the_built_in_role_loads_its_module():
    assert HOOKS.source == str(BUILTIN_ROLES / "chainlink" / "role.py")
    assert list(HOOKS.rotations) == ["chainlink-api-password"]
    assert CHAINLINK.rotation["api"].kind == "chainlink-api-password"


def test_a_role_without_a_module_gets_the_engine_defaults(tmp_path):
    assert load_role("thing", [make_role(tmp_path)]).hooks == DEFAULT_HOOKS


def test_a_project_role_ships_its_own_module(tmp_path):
    roles = make_role(tmp_path, GOOD + "rotation: {api: {kind: token-reset, secret: pw, user: pw}}\n")
    (roles / "thing" / "role.py").write_text(
        textwrap.dedent("""\
        def log_level(line):
            return "error" if line.startswith("E ") else None

        class Reset:
            change = "POST /reset"
            def login(self, api, user, password): return "s=1"
            def logout(self, api, session): pass
            def set_password(self, api, session, old, new): pass

        ROTATIONS = {"token-reset": Reset()}
        """)
    )
    role = load_role("thing", [roles])
    assert role.hooks.log_level("E boom") == "error" and role.hooks.log_level('{"level": "error"}') is None
    assert role.hooks.lease_client(health("x1")) is None  # not defined: the default
    assert role.hooks.failing_checks(checks(RPC="failing")) == ()  # nor this one: the default names none
    assert role.rotation["api"].kind == "token-reset" and role.hooks.source == str(roles / "thing" / "role.py")


def test_an_operators_copy_of_a_built_in_role_yaml_keeps_the_built_in_module(tmp_path):
    """As templates do: a project's roles/chainlink/role.yaml alone still rotates the API password and reads the
    node's log format with the built-in role's module."""
    (tmp_path / "roles" / "chainlink").mkdir(parents=True)
    shutil.copy(BUILTIN_ROLES / "chainlink" / "role.yaml", tmp_path / "roles" / "chainlink" / "role.yaml")
    role = load_role("chainlink", [tmp_path / "roles", BUILTIN_ROLES])
    assert role.source == tmp_path / "roles" / "chainlink" / "role.yaml" and role.hooks == HOOKS


def test_a_roles_module_imports_the_modules_beside_it(tmp_path):
    """roles/<role>/role.py and the modules beside it are one package: ``from .helper import ...`` works, and
    role_module imports a module beside it as the same package's (one copy in the process)."""
    roles = make_role(tmp_path)
    (roles / "thing" / "helper.py").write_text(
        "LEVEL = 'error'\ndef level(line):\n    return LEVEL if 'E' in line else None\n"
    )
    (roles / "thing" / "role.py").write_text("from .helper import level as log_level\n")
    role = load_role("thing", [roles])
    assert role.hooks.log_level("E boom") == "error" and role.hooks.log_level("fine") is None
    helper = role_module("thing", "helper", [roles])
    assert helper.level is role.hooks.log_level.__wrapped__ and helper.__file__ == str(roles / "thing" / "helper.py")
    assert helper.__name__ == f"{role_package(roles / 'thing')}.helper"


def test_role_module_takes_the_first_folder_with_the_module(tmp_path):
    mine, builtin = make_role(tmp_path / "mine"), make_role(tmp_path / "builtin")
    (builtin / "thing" / "helper.py").write_text("WHERE = 'builtin'\n")
    assert role_module("thing", "helper", [mine, builtin]).WHERE == "builtin"
    (mine / "thing" / "helper2.py").write_text("WHERE = 'mine'\n")
    (builtin / "thing" / "helper2.py").write_text("WHERE = 'builtin'\n")
    assert role_module("thing", "helper2", [mine, builtin]).WHERE == "mine"


@pytest.mark.parametrize(
    ("role", "module", "source", "problem"),
    [
        ("thing", "absent", None, "thing/absent.py: no such role module in "),
        ("thing", "../role", None, "thing/../role.py: no such role module in "),
        ("Thing", "helper", None, "Thing/helper.py: no such role module in "),
        ("thing", "broken", "import no_such_module_anywhere\n", "broken.py: line 1: cannot load the role's module: "
         "ModuleNotFoundError: No module named 'no_such_module_anywhere'"),
    ],
)  # fmt: skip
def test_a_missing_or_broken_role_module_is_exit_2_naming_it(tmp_path, role, module, source, problem):
    roles = make_role(tmp_path)
    if source is not None:
        (roles / "thing" / f"{module}.py").write_text(source)
    with pytest.raises(RoleError) as err:
        role_module(role, module, [roles])
    assert err.value.exit_code == EXIT_INVALID and problem in str(err.value), str(err.value)


@pytest.mark.parametrize(
    ("module", "where", "problem"),
    [
        ("raise RuntimeError('no')", "line 1", "cannot load the role's module: RuntimeError: no"),
        ("def f(:\n", "line 1", "cannot load the role's module: SyntaxError"),
        ("log_level = 3", "log_level", "expected a function, got int"),
        ("failing_checks = {}", "failing_checks", "expected a function, got dict"),
        ("ROTATIONS = [1]", "ROTATIONS", "expected a mapping of kind name -> ApiPassword, got list"),
        ("ROTATIONS = {'k': 1}", "ROTATIONS['k']", "expected an ApiPassword (change: str, login, logout, "
                                                  "set_password), got int"),
        ("keys_in_use = True", "keys_in_use", "expected a function, got bool"),
        ("CHAIN_FENCE = print", "CHAIN_FENCE", "expected a ChainFence (change: str, fence), got builtin_function"),
    ],
)  # fmt: skip
def test_a_bad_module_is_exit_2_naming_the_file(tmp_path, module, where, problem):
    roles = make_role(tmp_path)
    (roles / "thing" / "role.py").write_text(module)
    with pytest.raises(RoleError) as err:
        load_role("thing", [roles])
    assert err.value.exit_code == EXIT_INVALID and err.value.where == where
    assert str(err.value).startswith(f"{roles / 'thing' / 'role.py'}: ") and problem in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("rotation", "where", "problem"),
    [
        ("{api: {kind: chainlink-api-password, secret: pw, user: pw}}", "rotation.api.kind",
         "expected one of postgres-password, refused or a kind the role's module provides (no role.py beside the "
         "role.yaml; its kinds: none), got 'chainlink-api-password'"),
        ("{api: {kind: magic, secret: pw, reason: r, admin_user: x}}", "rotation.api.kind", "got 'magic'"),
        ("{api: {kind: [1], secret: pw}}", "rotation.api.kind", "got [1]"),
    ],
)  # fmt: skip
def test_a_rotation_kind_no_module_provides_is_exit_2_naming_it(tmp_path, rotation, where, problem):
    roles = make_role(tmp_path, GOOD + f"rotation: {rotation}\n")
    with pytest.raises(RoleError) as err:
        load_role("thing", [roles])
    assert err.value.where == where and problem in str(err.value), str(err.value)


def test_hooks_from_a_namespace():
    assert hooks_from({}, "m.py") == DEFAULT_HOOKS.__class__(source="m.py")
    assert hooks_from({"lease_client": len}, "m.py").lease_client(b"abc") == 3
    assert hooks_from({"lease_client": "x"}, "m.py") == (
        "lease_client",
        "expected a function, got str: define it as def lease_client(health_body)",
    )


def test_the_keys_hooks_default_to_saying_nothing_and_a_module_provides_them(tmp_path):
    """Activation keys (issue 15): ``keys_in_use`` reads a health reply (default: None, the container's hot label
    decides); ``CHAIN_FENCE`` is a ChainFence (default: None; no built-in role has one)."""
    assert DEFAULT_HOOKS.keys_in_use(b'{"forging": true}') is None and DEFAULT_HOOKS.chain_fence is None
    assert not DEFAULT_HOOKS.says_keys_in_use  # a restart fence then awaits no reply (nodeops.run.keys)
    assert HOOKS.chain_fence is None  # the Chainlink role: a lease role, no chain fence
    roles = make_role(tmp_path)
    (roles / "thing" / "role.py").write_text(
        textwrap.dedent("""\
        import json

        def keys_in_use(body):
            return json.loads(body).get("forging")

        class Fence:
            change = "a new certificate"
            def fence(self, variables, secrets, chain, pending, held): return None

        CHAIN_FENCE = Fence()
        """)
    )
    hooks = load_role("thing", [roles]).hooks
    assert hooks.keys_in_use(b'{"forging": true}') is True and hooks.keys_in_use(b'{"forging": false}') is False
    assert hooks.says_keys_in_use
    assert hooks.chain_fence.change == "a new certificate"
