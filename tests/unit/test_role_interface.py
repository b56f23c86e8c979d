"""A broken role module is refused when the role loads, before any host (exit 2, one line naming the file, the hook,
what is wrong and the fix): a hook of the wrong shape (nodeops.role_hooks.INTERFACE, checked with
inspect.signature), a module that fails, exits or is interrupted while it is imported. A hook that raises during an
operation ends in one line naming the role and the hook (exit 1), never a traceback."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from nodeops.errors import EXIT_FAILED, EXIT_INVALID, InvalidInput, NodeopsError, OperationFailed
from nodeops.inventory import Service
from nodeops.render import render
from nodeops.role_hooks import INTERFACE, hooks_from
from nodeops.role_protocols import ApiPassword, ChainFence, Issuer
from nodeops.roles import BUILTIN_ROLES, RoleError, load_role
from nodeops.secrets import Secret
from tests.unit.test_deploy_preflight import deploy, inventory
from tests.unit.test_roles import make_role

RESET = textwrap.dedent("""\
    class Reset:
        change = "POST /reset"
        def login(self, api, user, password): return "s=1"
        def logout(self, api, session): pass
        def set_password(self, api, session, old, new): pass
    """)
FENCE = textwrap.dedent("""\
    class Fence:
        change = "a new certificate"
        def fence(self, variables, secrets, chain, pending, held): return None
    """)


def module_of(tmp_path: Path, source: str) -> tuple[Path, Path]:
    """A project role ``thing`` whose role.py is ``source``: (the search path's folder, the module's file)."""
    roles = make_role(tmp_path)
    module = roles / "thing" / "role.py"
    module.write_text(textwrap.dedent(source))
    return roles, module


# ---------------------------------------------------------------- hooks of the wrong shape


@pytest.mark.parametrize(
    ("source", "where", "problem"),
    [
        ("def log_level(): return None", "log_level",
         "takes (), but the engine calls it with 1 argument (line): define it as def log_level(line)"),
        ("def log_level(line, extra): return None", "log_level",
         "takes (line, extra), but the engine calls it with 1 argument (line): define it as def log_level(line)"),
        ("def lease_client(*, health_body): return None", "lease_client",
         "takes (*, health_body), but the engine calls it with 1 argument (health_body): "
         "define it as def lease_client(health_body)"),
        ("async def failing_checks(health_body): return []", "failing_checks",
         "is a coroutine function (async def), which the engine calls without awaiting: define it with plain def"),
        ("class failing_checks:\n    def __init__(self, body): self.body = body", "failing_checks",
         "expected a function, got the class failing_checks: define it as def failing_checks(health_body)"),
        ("def keys_in_use(health_body):\n    yield True", "keys_in_use",
         "is a generator function (it yields), but must return bool | None: return the value"),
        ("lease_client = max", "lease_client",
         "its parameters cannot be read (builtin_function_or_method): define it as def lease_client(health_body)"),
        ("log_level = 'error'", "log_level", "expected a function, got str: define it as def log_level(line)"),
        (RESET + "ROTATIONS = {'token-reset': Reset}", "ROTATIONS['token-reset']",
         "expected an ApiPassword (change: str, login, logout, set_password), got the class Reset: "
         "write Reset() (an instance)"),
        (RESET.replace("login(self, api, user, password)", "login(self, api, user)") + "ROTATIONS = {'k': Reset()}",
         "ROTATIONS['k'].login", "takes (api, user), but the engine calls it with 3 arguments (api, user, password): "
         "define it as def login(self, api, user, password)"),
        (RESET.replace("def logout", "async def logout") + "ROTATIONS = {'k': Reset()}", "ROTATIONS['k'].logout",
         "is a coroutine function (async def)"),
        (RESET.replace('"POST /reset"', "None") + "ROTATIONS = {'k': Reset()}", "ROTATIONS['k']",
         "expected an ApiPassword (change: str, login, logout, set_password), got Reset"),
        (FENCE + "CHAIN_FENCE = Fence", "CHAIN_FENCE",
         "expected a ChainFence (change: str, fence), got the class Fence: write Fence() (an instance)"),
        (FENCE.replace("fence(self, variables, secrets, chain, pending, held)", "fence(self, secrets, hot_files)")
         + "CHAIN_FENCE = Fence()", "CHAIN_FENCE.fence", "takes (secrets, hot_files), but the engine calls it with 5 "
         "arguments (variables, secrets, chain, pending, held)"),
        ("TEMPLATE_FUNCTIONS = [len]", "TEMPLATE_FUNCTIONS", "expected a mapping of name -> function, got list"),
        ("TEMPLATE_FUNCTIONS = {'node': len}", "TEMPLATE_FUNCTIONS['node']",
         "expected a name templates can call: an identifier other than fail, node, nodes, role, secrets, service"),
        ("TEMPLATE_FUNCTIONS = {'a-b': len}", "TEMPLATE_FUNCTIONS['a-b']", "expected a name templates can call"),
        ("TEMPLATE_FUNCTIONS = {'doc': dict}", "TEMPLATE_FUNCTIONS['doc']",
         "expected a function, got the class dict: define it as def doc(...)"),
        ("async def doc(x): return ''\nTEMPLATE_FUNCTIONS = {'doc': doc}", "TEMPLATE_FUNCTIONS['doc']",
         "is a coroutine function (async def)"),
    ],
    ids=["no-parameter", "two-parameters", "keyword-only", "coroutine", "class", "generator", "unreadable",
         "not-callable", "rotation-class", "rotation-method", "rotation-async", "rotation-change", "fence-class",
         "fence-method", "functions-list", "functions-reserved", "functions-name", "functions-class",
         "functions-async"],
)  # fmt: skip
def test_a_hook_of_the_wrong_shape_is_refused_when_the_role_loads(tmp_path, source, where, problem):
    roles, module = module_of(tmp_path, source)
    with pytest.raises(RoleError) as err:
        load_role("thing", [roles])
    assert err.value.exit_code == EXIT_INVALID and err.value.where == where, str(err.value)
    assert str(err.value).startswith(f"{module}: {where}: ") and problem in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "source",
    [
        "def keys_in_use(body): return None",  # the engine passes its arguments by position: any names
        "def log_level(line, extra=None): return None",
        "def failing_checks(*args): return []",
        "def failing_checks(health_body):\n    yield 'RPC'",  # an iterable: a generator may give it
        "log_level = lambda line: None",
        "class Levels:\n    def __call__(self, line): return None\nlog_level = Levels()",
        "lease_client = len",
        RESET + "ROTATIONS = {'token-reset': Reset()}",
        FENCE + "CHAIN_FENCE = Fence()",
        "TEMPLATE_FUNCTIONS = {'doc': lambda *a, **k: '', 'upper': str.upper}",
    ],
    ids=["other-names", "optional", "star-args", "generator-of-names", "lambda", "callable-object", "builtin",
         "rotation", "fence", "template-functions"],
)  # fmt: skip
def test_a_hook_of_the_right_shape_loads(tmp_path, source):
    roles, module = module_of(tmp_path, source)
    assert load_role("thing", [roles]).hooks.source == str(module)


FUNCTIONS = "import json\nTEMPLATE_FUNCTIONS = {'doc': lambda k, v: json.dumps({k: v}, indent=1)}\n"


@pytest.mark.parametrize(("template", "written", "problem"), [
    ("{{ doc('a', vars.A) }}\n", '{\n "a": "1"\n}\n', None),  # the function's text, as it returns it
    ("{{ doc('a', secrets.pw) }}\n", None, "doc: a template function is given no secret; write a secret with a filter"),
    ("{{ doc('a', secrets) }}\n", None, "doc: a template function is given no secret"),
    ("{{ doc(k='a', v=secrets.pw) }}\n", None, "doc: a template function is given no secret"),
])  # fmt: skip
def test_a_template_calls_the_roles_functions_and_never_hands_them_a_secret(tmp_path, template, written, problem):
    """TEMPLATE_FUNCTIONS (issue 16: the Cardano configuration and topology come from the role's code): a function's
    code could reveal a Secret outside the escaping filters, into a file whose bytes are hashed and recorded."""
    roles = make_role(tmp_path, templates={"app.j2": template, "pw.j2": "{{ secrets.pw | line }}\n"})
    (roles / "thing" / "role.py").write_text(FUNCTIONS)
    role = load_role("thing", [roles])
    service = Service("cl1", "thing", "img:1", "docker", {"A": "1"}, {}, ())
    secrets = {"pw": Secret("s3ntinel-fn-0042", "pw")}
    if problem is None:
        assert render(role, "main", service, secrets).files["app.conf"].data.decode() == written
        return
    with pytest.raises(InvalidInput) as err:
        render(role, "main", service, secrets)
    assert problem in str(err.value) and "s3ntinel" not in str(err.value) and err.value.exit_code == EXIT_INVALID


def test_the_interface_table_is_the_protocols_and_docs_roles_md():
    """One table (nodeops.role_hooks.INTERFACE): the protocols' methods take what it says, and docs/roles.md's table
    of the role interface lists the same names in the same order, each row's shape naming its parameters."""
    for hook in INTERFACE:
        protocol = {"ApiPassword": ApiPassword, "ChainFence": ChainFence, "Issuer": Issuer}.get(hook.kind)
        for method, parameters in hook.methods.items():
            code = getattr(protocol, method).__code__
            assert code.co_varnames[1 : code.co_argcount] == parameters, (hook.name, method)
    page = (Path(__file__).parents[2] / "docs" / "roles.md").read_text()
    section = page.split("## The role interface", 1)[1].split("\n## ", 1)[0]
    table = section.split("\n\n| ", 1)[1].split("\n\n", 1)[0]  # the section's first table
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| `")]
    assert [row[0].strip("|` ") for row in rows] == [hook.name for hook in INTERFACE]
    for row, hook in zip(rows, INTERFACE, strict=True):
        for word in (*hook.parameters, *hook.methods):
            assert re.search(rf"\b{word}\b", row[1]), (hook.name, word, row[1])


# ---------------------------------------------------------------- a module that fails while it is imported


@pytest.mark.parametrize(
    ("source", "line", "problem"),
    [
        ("import sys\n\nsys.exit(3)\n", 3,
         "cannot load the role's module: it called sys.exit(3) while it was imported"),
        ("raise SystemExit\n", 1, "cannot load the role's module: it called sys.exit(None) while it was imported"),
        ("x = 1\nraise BaseException('odd')\n", 2, "cannot load the role's module: BaseException: odd"),
        ("def f():\n    return {}['k']\n\nf()\n", 2, "cannot load the role's module: KeyError: 'k'"),
        ("def f(:\n", 1, "cannot load the role's module: SyntaxError: invalid syntax"),
    ],
    ids=["sys-exit", "system-exit", "base-exception", "exception", "syntax"],
)  # fmt: skip
def test_a_module_that_fails_while_imported_is_exit_2_naming_the_file_and_line(tmp_path, source, line, problem):
    roles, module = module_of(tmp_path, source)
    with pytest.raises(RoleError) as err:
        load_role("thing", [roles])
    assert err.value.exit_code == EXIT_INVALID and err.value.where == f"line {line}", str(err.value)
    assert str(err.value).startswith(f"{module}: line {line}: {problem}"), str(err.value)
    assert "\n" not in str(err.value)


def test_a_failure_in_a_module_beside_role_py_names_that_file(tmp_path):
    roles, _ = module_of(tmp_path, "from .helper import level as log_level\n")
    (roles / "thing" / "helper.py").write_text("import os\n\nos.environ['NO_SUCH_VARIABLE_HERE']\n")
    with pytest.raises(RoleError) as err:
        load_role("thing", [roles])
    assert str(err.value) == (f"{roles / 'thing' / 'helper.py'}: line 3: cannot load the role's module: "
                              "KeyError: 'NO_SUCH_VARIABLE_HERE'")  # fmt: skip


@pytest.mark.parametrize(
    ("source", "line", "problem"),
    [
        ("import sys\nsys.exit(3)\n", 2, "it called sys.exit(3) while it was imported"),
        ("raise KeyboardInterrupt\n", 1, "KeyboardInterrupt"),
        ("raise BaseException('odd')\n", 1, "BaseException: odd"),
        ("x = 1\n\nraise RuntimeError('no\\nway')\n", 3, "RuntimeError: no way"),
    ],
    ids=["sys-exit", "keyboard-interrupt", "base-exception", "exception"],
)  # fmt: skip
def test_the_cli_says_a_failing_role_module_in_one_line_exit_2(tmp_path, monkeypatch, source, line, problem):
    """The reviewer's report: sys.exit(3) at import exited 3 saying nothing; KeyboardInterrupt and BaseException
    printed a traceback. Now: exit 2, one line, before any host (the bastion is never dialled)."""
    (tmp_path / "roles" / "chainlink").mkdir(parents=True)
    shutil.copy(BUILTIN_ROLES / "chainlink" / "role.yaml", tmp_path / "roles" / "chainlink" / "role.yaml")
    (tmp_path / "roles" / "chainlink" / "role.py").write_text(source)
    code, out = deploy(tmp_path, inventory(), monkeypatch, "--dry-run")
    module = tmp_path / "roles" / "chainlink" / "role.py"
    assert code == 2 and out.count("\n") == 1, out
    assert out.startswith(f"nodeops: {module}: line {line}: cannot load the role's module: {problem}"), out
    assert "Traceback" not in out and "cannot connect" not in out


# ---------------------------------------------------------------- a hook that raises during an operation


def test_a_hook_that_raises_is_one_line_naming_the_role_and_hook_exit_1(tmp_path):
    roles, module = module_of(tmp_path, """\
        import json
        import sys

        def lease_client(health_body):
            return json.loads(health_body)["meta"]["appID"]

        def log_level(line):
            sys.exit(4)
        """)  # fmt: skip
    hooks = load_role("thing", [roles]).hooks
    assert hooks.lease_client(b'{"meta": {"appID": "x1"}}') == "x1"
    with pytest.raises(OperationFailed) as err:
        hooks.lease_client(b"<html>\n</html>")
    assert err.value.exit_code == EXIT_FAILED
    said = f"role thing: its hook lease_client raised JSONDecodeError ({module}:5): fix the role's module"
    assert str(err.value) == said
    with pytest.raises(OperationFailed, match=r"^role thing: its hook log_level raised SystemExit \(.*role.py:8\)"):
        hooks.log_level("a line")


SENTINEL = "Zq7-sentinel-Xv9"


@pytest.mark.parametrize(
    "raised",
    [
        "ValueError(line)",  # str, whole
        "ValueError(line[2:9])",  # str, sliced
        "ValueError(repr(body))",  # bytes, whole
        "ValueError(body[3:11].decode())",  # bytes, sliced
        "KeyError(body[:2])",  # bytes, sliced, shorter than any mask would look for
    ],
)
def test_a_hook_error_says_nothing_derived_from_what_the_hook_was_given(tmp_path, raised):
    """review15 F7: only whole ``str`` arguments of 4+ characters were masked: a bytes body, or a slice of an
    argument, was printed raw. The message of an exception from a hook given any argument is dropped; the line
    names the role, the hook, the exception's type and the role file's line that raised it."""
    roles, module = module_of(tmp_path, f"""\
        def log_level(line):
            body = line.encode()
            raise {raised}
        """)  # fmt: skip
    with pytest.raises(OperationFailed) as err:
        load_role("thing", [roles]).hooks.log_level(f"a {SENTINEL} b")
    said = str(err.value)
    kind = raised.split("(")[0]
    assert said == f"role thing: its hook log_level raised {kind} ({module}:3): fix the role's module"
    for part in (SENTINEL, SENTINEL[2:9], SENTINEL[:2], "sentinel"):
        assert part not in said
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_a_rotation_hook_that_raises_is_masked_and_a_nodeops_error_passes(tmp_path):
    """A rotation hook's own exception may quote what it was given (a password): its message is dropped.
    A NodeopsError it raises (``api.refused(...)``, already worded and masked by the engine) passes unchanged."""
    refused = OperationFailed("cl a: POST /sessions answered 500")
    roles, module = module_of(tmp_path, RESET.replace('return "s=1"', "raise ValueError(f'bad {password} for {user}')")
                              .replace("pass\n    def set_password", "raise api\n    def set_password")
                              + "ROTATIONS = {'token-reset': Reset()}\n")  # fmt: skip
    hook = load_role("thing", [roles]).hooks.rotations["token-reset"]
    assert hook.change == "POST /reset" and isinstance(hook, ApiPassword)
    with pytest.raises(OperationFailed) as err:
        hook.login(None, "ops@example.com", "Cc3!cccccccccccccccc")
    assert str(err.value) == (f"role thing: its hook ROTATIONS['token-reset'].login raised ValueError ({module}:3): "
                              "fix the role's module")  # fmt: skip
    with pytest.raises(NodeopsError) as passed:
        hook.logout(refused, "s=1")
    assert passed.value is refused


def test_hooks_from_checks_a_namespace_without_importing_anything():
    assert hooks_from({"log_level": lambda: None}, "m.py") == (
        "log_level",
        "takes (), but the engine calls it with 1 argument (line): define it as def log_level(line)",
    )
