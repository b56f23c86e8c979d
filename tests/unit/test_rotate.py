"""fab rotate-secrets, the pure parts: passwords, stage bookkeeping, documents, selection, the roll's plan,
the role's rotation: section, and the refusals that come before any host is contacted."""

from __future__ import annotations

import dataclasses
import json
import random
import textwrap
import types
from pathlib import Path
from urllib.parse import quote

import pytest

from nodeops.errors import (
    EXIT_INVALID,
    EXIT_UNSAFE,
    Interrupted,
    InvalidInput,
    InventoryError,
    OperationFailed,
    Unsafe,
)
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import parse_inventory
from nodeops.passwords import SYMBOLS, UNRESERVED, generate_password, password_problems
from nodeops.plan import Desired
from nodeops.render import toml_filter
from nodeops.roles import RoleError, load_role
from nodeops.rotate.rules import (
    Stages,
    check_service,
    discard_calls,
    finish_calls,
    needs_admin,
    rotation_plan,
    select,
    stages_of,
    value_of,
    with_value,
)
from nodeops.secrets import Secret
from tests.conftest import fab
from tests.unit.test_deploy_preflight import ENV, KEY
from tests.unit.test_deploy_preflight import inventory as env_inventory
from tests.unit.test_roles import GOOD, make_role

EMAIL = "ops@cl1.nodeops.example"
CHAINLINK = load_role("chainlink")
RULES = CHAINLINK.passwords  # the node's (role.yaml passwords:)


# ---------------------------------------------------------------- passwords


@pytest.mark.parametrize("seed", range(200))
def test_rotation_passwords_meet_the_rules_and_need_no_escaping_anywhere(seed):
    password = generate_password(random.Random(seed), EMAIL, rules=RULES, symbols=UNRESERVED)
    assert password_problems(password, EMAIL, rules=RULES, symbols=UNRESERVED) == []
    assert len(password) == 32 and EMAIL not in password.lower()
    assert quote(password, safe="") == password  # a URL userinfo or query value as it is
    assert toml_filter(Secret(password)) == f'"{password}"'  # a TOML basic string with nothing escaped
    assert json.dumps(password) == f'"{password}"'


@pytest.mark.parametrize(
    ("password", "symbols", "problem"),
    [
        ("Aa1-bcdefghijklm", UNRESERVED, None),
        ("Aa1%bcdefghijklm", UNRESERVED, "outside the alphabet"),  # the lab's symbols are not all unreserved
        ("Aa1%bcdefghijklm", SYMBOLS, None),
        ("Aa1@bcdefghijklm", UNRESERVED, "outside the alphabet"),
        ("Aa1bcdefghijklmn", UNRESERVED, "no symbol"),
        ("~Aa1bcdefghijklm", UNRESERVED, "starts or ends with a symbol"),
        ("Aa1-bcdefghijkl", UNRESERVED, "length 15"),
    ],
)
def test_password_rules_per_symbol_set(password, symbols, problem):
    found = password_problems(password, rules=RULES, symbols=symbols)
    assert (found == []) if problem is None else any(problem in p for p in found), found


def test_generated_passwords_differ():
    rng = random.Random(1)
    assert len({generate_password(rng, rules=RULES, symbols=UNRESERVED) for _ in range(100)}) == 100


# ---------------------------------------------------------------- stages


@pytest.mark.parametrize(
    ("versions", "expected", "state"),
    [
        ({"v1": ["AWSCURRENT"]}, Stages("v1"), "fresh"),
        ({"v0": ["AWSPREVIOUS"], "v1": ["AWSCURRENT"]}, Stages("v1"), "fresh"),
        ({"v1": ["AWSCURRENT"], "v2": ["AWSPENDING"]}, Stages("v1", "v2"), "interrupted"),
        ({"v1": ["AWSPREVIOUS"], "v2": ["AWSPENDING", "AWSCURRENT"]}, Stages("v2", "v2"), "finishing"),
        ({"v0": [], "v1": ["AWSPREVIOUS"], "v2": ["AWSCURRENT"]}, Stages("v2"), "fresh"),  # unlabelled: ignored
    ],
    ids=["first", "rotated-before", "interrupted", "finish-half-done", "deprecated-version"],
)
def test_stages(versions, expected, state):
    stages = stages_of("cl1/DBSecret", versions)
    assert stages == expected and stages.state == state


@pytest.mark.parametrize(
    "versions",
    [
        {},
        {"v1": ["AWSPREVIOUS"]},
        {"v1": ["AWSCURRENT"], "v2": ["AWSCURRENT"]},  # moto after a plain put onto a version also pending
        {"v1": ["AWSCURRENT"], "v2": ["AWSPENDING"], "v3": ["AWSPENDING"]},
    ],
    ids=["none", "no-current", "two-current", "two-pending"],
)
def test_stages_that_cannot_be_right_are_refused(versions):
    with pytest.raises(Unsafe, match="fix its stages by hand"):
        stages_of("cl1/DBSecret", versions)


@pytest.mark.parametrize(
    ("stages", "finish", "discard"),
    [
        (
            Stages("v1", "v2"),
            [("AWSCURRENT", "v2", "v1"), ("AWSPENDING", None, "v2")],
            [("AWSPENDING", None, "v2")],
        ),
        (Stages("v2", "v2"), [("AWSPENDING", None, "v2")], []),  # AWSCURRENT moved already: only the label left
    ],
    ids=["interrupted", "finishing"],
)
def test_finish_and_discard_calls(stages, finish, discard):
    def calls(found):
        assert all(c["SecretId"] == "s" for c in found)
        return [(c["VersionStage"], c.get("MoveToVersionId"), c.get("RemoveFromVersionId")) for c in found]

    assert calls(finish_calls("s", stages)) == finish
    assert calls(discard_calls("s", stages)) == discard


def test_nothing_pending_cannot_be_finished_and_discards_nothing():
    with pytest.raises(ValueError):
        finish_calls("s", Stages("v1"))
    assert discard_calls("s", Stages("v1")) == []


# ---------------------------------------------------------------- documents


def test_the_new_document_keeps_every_other_key():
    text = json.dumps({"username": "cl1", "password": "old-Passw0rd-xxxxx", "engine": "postgres"})
    new = json.loads(with_value(text, "password", "New-Passw0rd-yyyyy", "cl1/DBSecret"))
    assert new == {"username": "cl1", "password": "New-Passw0rd-yyyyy", "engine": "postgres"}
    assert list(new) == ["username", "password", "engine"]
    assert value_of(json.dumps(new), "password", "cl1/DBSecret") == "New-Passw0rd-yyyyy"
    assert with_value("plain-old", None, "plain-new", "s") == "plain-new"


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"username": "cl1"}', '{"password": 5}'])
def test_a_document_of_another_shape_is_refused_without_its_content(text):
    with pytest.raises(OperationFailed, match="'cl1/DBSecret': a version is not a JSON object") as err:
        with_value(text, "password", "New-Passw0rd-yyyyy", "cl1/DBSecret")
    assert text not in str(err.value)


# ---------------------------------------------------------------- selection and the role


@pytest.mark.parametrize(
    ("which", "expected"),
    [("db", ["db"]), ("api", ["api"]), ("all", ["api", "db"])],  # all: the role's order, keystore left out
)
def test_select(which, expected):
    assert [s.name for s in select(CHAINLINK.rotation, which, "role 'chainlink'")] == expected


@pytest.mark.parametrize(
    ("which", "fragment"),
    [
        ("keystore", "no command to change its keystore password"),
        ("wallet", "has no such rotatable secret (known: api, db, keystore, all)"),
        (None, "--secret is required: one of api, db, keystore, all"),
    ],
)
def test_select_refuses(which, fragment):
    with pytest.raises(InvalidInput) as err:
        select(CHAINLINK.rotation, which, "role 'chainlink'")
    assert fragment in str(err.value) and err.value.exit_code == EXIT_INVALID


def test_the_chainlink_role_declares_its_rotations():
    db, api, keystore = (CHAINLINK.rotation[n] for n in ("db", "api", "keystore"))
    assert (db.kind, db.secret, db.user, db.admin_user, db.admin_password) == (
        "postgres-password", "db", "db_user", "db_admin_user", "db_admin")  # fmt: skip
    assert (api.kind, api.secret, api.user) == ("chainlink-api-password", "api_password", "api_email")
    assert keystore.kind == "refused" and "docs/commands/rotate-secrets.md" in keystore.reason


ROTATION = textwrap.dedent("""\
    variables: [H, P, D, S]
    lease: {table: lease_lock, host: H, port: P, database: D, sslmode: S, user: pw_user, password: pw}
    rotation:
      pw: {kind: postgres-password, secret: pw, user: pw_user, admin_user: admin_user, admin_password: admin_pw}
    """)


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (None, None, None),
        ("kind: postgres-password", "kind: magic", "rotation.pw.kind"),
        ("secret: pw,", "secret: nope,", "rotation.pw.secret"),
        ("admin_pw}", "pw}", "rotation.pw.admin_password"),  # an admin secret must not be a required one
        ("admin_pw}", "admin_pw, reason: x}", "rotation.pw.reason"),  # not a key of this kind
        ("user: pw_user, admin_user", "admin_user", "rotation.pw.user"),
        ("  pw: {kind", "  all: {kind", "rotation.all"),
        ("lease: {table: lease_lock, host: H, port: P, database: D, sslmode: S, user: pw_user, password: pw}\n",
         "", "rotation.pw"),  # postgres-password finds its database through the lease: section
    ],
)  # fmt: skip
def test_the_rotation_section_is_validated(tmp_path, old, new, where):
    text = GOOD.replace("secrets: [pw]", "secrets: [pw, pw_user]") + ROTATION
    if old is not None:
        assert old in text
        text = text.replace(old, new)
    root = make_role(tmp_path, text)
    if where is None:
        assert load_role("thing", [root]).rotation["pw"].admin_password == "admin_pw"
        return
    with pytest.raises(RoleError) as err:
        load_role("thing", [root])
    assert err.value.where == where, str(err.value)


# ---------------------------------------------------------------- the inventory a rotation needs


def aws_inventory(tmp_path: Path, admin: bool = True, nodes: int = 2, shared: bool = False):
    secrets = {
        "db": {"backend": "aws", "name": "cl/DBSecret", "key": "password"},
        "db_user": {"backend": "aws", "name": "cl/DBSecret", "key": "username"},
        "keystore": {"backend": "aws", "name": "cl/WalletSecret", "key": "password"},
        "api_email": {"backend": "aws", "name": "cl/ApiSecret", "key": "username"},
        "api_password": {"backend": "aws", "name": "cl/DBSecret" if shared else "cl/ApiSecret", "key": "password"},
    }
    if admin:
        secrets |= {"db_admin_user": {"backend": "aws", "name": "adm", "key": "username"},
                    "db_admin": {"backend": "aws", "name": "adm", "key": "password"}}  # fmt: skip
    doc = {
        "environment": "t",
        "bastion": {"host": "127.0.0.1", "user": "root", "host_key": KEY},
        "ssh": {"user": "root"},
        "secret_backends": {"aws": {"kind": "aws-secretsmanager", "region": "us-east-1"}},
        "services": {"cl": {
            "role": "chainlink", "image": "smartcontract/chainlink:2.10.0", "secrets": secrets,
            "nodes": [{"name": n, "host": f"10.0.0.{i}", "preferred": p, "host_key": KEY}
                      for i, (n, p) in enumerate([("a", "active"), ("b", "standby")][:nodes], 1)],
        }},
    }  # fmt: skip
    return parse_inventory(json.dumps(doc), tmp_path / "t.yaml")


def test_a_complete_inventory_passes(tmp_path):
    inv = aws_inventory(tmp_path)
    check_service(inv, inv.services["cl"], select(CHAINLINK.rotation, "all", "role"))


@pytest.mark.parametrize(
    ("kwargs", "which", "fragment"),
    [
        ({"admin": False}, "db", "rotating db needs db_admin_user and db_admin"),
        ({"nodes": 1}, "db", "has one node"),
        ({"shared": True}, "all", "secret 'cl/DBSecret' also holds"),
    ],
)
def test_an_inventory_that_cannot_rotate_is_refused(tmp_path, kwargs, which, fragment):
    inv = aws_inventory(tmp_path, **kwargs)
    with pytest.raises(InvalidInput) as err:
        check_service(inv, inv.services["cl"], select(CHAINLINK.rotation, which, "role"))
    assert fragment in str(err.value) and err.value.exit_code == EXIT_INVALID


def test_an_api_rotation_needs_no_admin_and_no_standby(tmp_path):
    inv = aws_inventory(tmp_path, admin=False, nodes=1)
    check_service(inv, inv.services["cl"], select(CHAINLINK.rotation, "api", "role"))


@pytest.mark.parametrize(
    ("secret", "fragment"),
    [
        ("keystore", "--secret keystore: the Chainlink node has no command to change its keystore password"),
        ("db", "services.cl.secrets.db: backend 'ci' (kind env) keeps no versions to rotate"),
    ],
)
def test_refusals_come_before_any_host(tmp_path, monkeypatch, secret, fragment):
    """The bastion is 127.0.0.1:9, where nothing listens: a connection attempt would be exit 1."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "t.yaml"
    path.write_text(env_inventory())
    res = fab("rotate-secrets", "--inventory", str(path), "--secret", secret)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert fragment in out and "cannot connect" not in out and "Traceback" not in out
    assert out.count("\n") == 1 and out.startswith("nodeops: ")


# ---------------------------------------------------------------- the roll


WANT = Desired("img:2", "sha256:new", "h2")


def pair(tmp_path):
    service = aws_inventory(tmp_path).services["cl"]
    return service, service.nodes


def running(current: bool = True) -> Container:
    image, config = ("sha256:new", "h2") if current else ("sha256:old", "h1")
    labels = {"io.nodeops.config": config, "io.nodeops.version": "2"}
    return Container("nodeops-cl", True, "running", image, labels)


def states_of(na, nb, a, b, serving: str, unhealthy: str = "") -> dict[str, NodeView]:
    """``serving``: the nodes answering 200; ``unhealthy``: those answering 503 (the active, unhealthy)."""
    return {name: NodeView(node, c, name in serving, (RPC,) if name in unhealthy else ())
            for name, node, c in (("a", na, a), ("b", nb, b))}  # fmt: skip


RPC = "EVM.1.HeadTracker.HeadListener"


@pytest.mark.parametrize(
    ("a", "b", "serving", "unhealthy", "expected"),
    [
        (running(), running(), "a", "",
         ["replace b", "await-waiting b", "handover a->b", "replace a", "await-waiting a"]),
        (running(), running(), "b", "",
         ["replace a", "await-waiting a", "handover b->a", "replace b", "await-waiting b"]),
        # an interrupted run left the standby half-replaced, missing, or on something else: replaced anyway
        (running(), None, "a", "", ["replace b", "await-waiting b", "handover a->b", "replace a", "await-waiting a"]),
        (running(), running(False), "a", "",
         ["replace b", "await-waiting b", "handover a->b", "replace a", "await-waiting a"]),
        # the active answers 503 (its RPC is down) while it holds the lease: rolled from like a healthy one
        (running(), running(), "", "b",
         ["replace a", "await-waiting a", "handover b->a", "replace b", "await-waiting b"]),
    ],
    ids=["active-a", "active-b", "standby-missing", "standby-stale", "unhealthy-active-b"],
)  # fmt: skip
def test_the_roll_is_forced_even_when_nothing_else_changed(tmp_path, a, b, serving, unhealthy, expected):
    service, (na, nb) = pair(tmp_path)
    states = states_of(na, nb, a, b, serving, unhealthy)
    plan = rotation_plan(service, states, WANT)
    got = [f"handover {s.node}->{s.to}" if s.action == "handover" else f"{s.action} {s.node}" for s in plan.steps]
    assert got == expected


@pytest.mark.parametrize(
    ("a", "b", "serving", "unhealthy", "fragment"),
    [
        (running(), running(), "", "", "0 nodes hold the lease (answer their health path: none)"),
        (running(), running(), "ab", "", "2 nodes hold the lease (answer their health path: a, b)"),
        (running(), running(), "a", "b", "2 nodes hold the lease (answer their health path: a, b)"),
        (running(False), running(), "a", "", "fab deploy first: a rotation changes the secret only"),
        (running(False), running(), "", "a", "fab deploy first: a rotation changes the secret only"),
    ],
)  # fmt: skip
def test_the_roll_refuses_an_unclear_pair(tmp_path, a, b, serving, unhealthy, fragment):
    service, (na, nb) = pair(tmp_path)
    states = states_of(na, nb, a, b, serving, unhealthy)
    with pytest.raises(Unsafe) as err:
        rotation_plan(service, states, WANT)
    assert fragment in str(err.value) and err.value.exit_code == EXIT_UNSAFE


def test_inventory_errors_name_the_file(tmp_path):
    inv = aws_inventory(tmp_path, admin=False)
    with pytest.raises(InventoryError) as err:
        check_service(inv, inv.services["cl"], select(CHAINLINK.rotation, "db", "role"))
    assert err.value.file.endswith("t.yaml") and err.value.where == "services.cl.secrets"


# ---------------------------------------------------------------- least privilege: admin secrets only for db


@pytest.mark.parametrize(("which", "expected"), [("api", False), ("db", True), ("all", True)])
def test_admin_secrets_are_needed_only_for_a_database_password(tmp_path, which, expected):
    inv = aws_inventory(tmp_path)
    assert needs_admin(inv, [], which) is expected
    assert needs_admin(inv, ["cl"], which) is expected


def test_needs_admin_refuses_what_select_refuses(tmp_path):
    with pytest.raises(InvalidInput, match="no command to change its keystore password"):
        needs_admin(aws_inventory(tmp_path), ["cl"], "keystore")


# ---------------------------------------------------------------- the run's failure path, with fakes


OLD = {"cl/DBSecret": {"username": "cl", "password": "Old-db-Passw0rd-xxxx"},
       "cl/ApiSecret": {"username": EMAIL, "password": "Old-api-Passw0rd-xxx"}}  # fmt: skip


class FakeSecretsManager:
    """describe/get/put/update_secret_version_stage over {secret: {version: (text, stages)}}."""

    def __init__(self, fail_put: str | None = None) -> None:
        self.store = {name: {"v1": (json.dumps(doc), ["AWSCURRENT"])} for name, doc in OLD.items()}
        self.fail_put = fail_put

    def describe_secret(self, SecretId):
        return {"VersionIdsToStages": {v: list(st) for v, (_, st) in self.store[SecretId].items()}}

    def get_secret_value(self, SecretId, VersionId):
        return {"SecretString": self.store[SecretId][VersionId][0]}

    def put_secret_value(self, SecretId, ClientRequestToken, SecretString, VersionStages):
        import botocore.exceptions

        if SecretId == self.fail_put:
            raise botocore.exceptions.ClientError({"Error": {"Code": "Throttled"}}, "PutSecretValue")
        self.store[SecretId][ClientRequestToken] = (SecretString, list(VersionStages))

    def update_secret_version_stage(self, SecretId, VersionStage, RemoveFromVersionId=None, MoveToVersionId=None):
        versions = self.store[SecretId]
        if RemoveFromVersionId:
            versions[RemoveFromVersionId][1].remove(VersionStage)
        if MoveToVersionId:
            versions[MoveToVersionId][1].append(VersionStage)

    def staged(self, name: str) -> dict[str, list[str]]:
        return {v: st for v, (_, st) in self.store[name].items() if st}

    def pending(self, name: str) -> str:
        version = next(v for v, (_, st) in self.store[name].items() if "AWSPENDING" in st)
        return json.loads(self.store[name][version][0])["password"]


def fake_rotation(tmp_path, monkeypatch, client: FakeSecretsManager):
    from nodeops.deploy import ServiceDeploy
    from nodeops.job import Job
    from nodeops.rotate import api, database, roll, service, versions
    from nodeops.run.report import Redactor, Reporter

    mod = types.SimpleNamespace(  # where each part lives now that rotate is a package
        ServiceRotation=service.ServiceRotation,
        SecretVersions=versions.SecretVersions,
        ApiPassword=api.ApiPassword,
        PostgresPassword=database.PostgresPassword,
        PairRoll=roll.PairRoll,
        service=service,
        ServiceDeploy=ServiceDeploy,
    )

    inv = aws_inventory(tmp_path)
    service = inv.services["cl"]
    secrets = {"db": Secret(OLD["cl/DBSecret"]["password"], "db"), "db_user": Secret("cl", "db_user"),
               "api_password": Secret(OLD["cl/ApiSecret"]["password"], "api_password"),
               "api_email": Secret(EMAIL, "api_email"), "db_admin_user": Secret("admin", "db_admin_user"),
               "db_admin": Secret("Admin-Passw0rd-xxxx", "db_admin")}  # fmt: skip
    job = Job(service, CHAINLINK, "v2", None, Redactor(secrets.values()), secrets)
    events: list[str] = []
    rotation = mod.ServiceRotation(inv, job, None, Reporter(True, write=events.append), {})
    monkeypatch.setattr(
        mod.ServiceRotation,
        "versions",
        lambda _self, spec: mod.SecretVersions(
            client, service.secrets[spec.secret].name, "aws", service.secrets[spec.secret].key
        ),
    )
    monkeypatch.setattr(mod.PairRoll, "observe", lambda _self: None)  # the pair: not here
    return mod, rotation, events


def test_a_failed_api_set_also_discards_the_db_version_it_never_started(tmp_path, monkeypatch):
    """--secret all: api's setSecret dies with a raw error that shows the pending value; db was created but
    never started. Both pending versions go, no secret value in the message, no chained cause."""
    client = FakeSecretsManager()
    mod, rotation, events = fake_rotation(tmp_path, monkeypatch, client)
    seen = {}

    def set_(self):
        self.node = None  # no active found: nothing changed
        seen["api"], seen["db"] = client.pending("cl/ApiSecret"), client.pending("cl/DBSecret")
        raise RuntimeError(f"boom {self.pending.reveal()}")

    monkeypatch.setattr(mod.ApiPassword, "set", set_)
    with pytest.raises(OperationFailed) as err:
        rotation.run(select(CHAINLINK.rotation, "all", "role"))
    message = str(err.value)
    assert message.startswith("cl: setSecret api failed: internal error RuntimeError: boom *****"), message
    for fragment in ("the API password was not changed", "api: AWSPENDING removed",
                     "db: AWSPENDING removed (never set: no system held it)", "AWSCURRENT unchanged"):  # fmt: skip
        assert fragment in message, message
    assert "NOT undone" not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert all(v not in message + "".join(events) for v in seen.values())
    assert client.staged("cl/DBSecret") == {"v1": ["AWSCURRENT"]} == client.staged("cl/ApiSecret")


def test_a_failed_second_create_discards_the_first(tmp_path, monkeypatch):
    client = FakeSecretsManager(fail_put="cl/DBSecret")
    mod, rotation, _ = fake_rotation(tmp_path, monkeypatch, client)
    with pytest.raises(OperationFailed) as err:
        rotation.run(select(CHAINLINK.rotation, "all", "role"))
    message = str(err.value)
    assert message.startswith("cl: createSecret db failed: aws: put_secret_value of secret 'cl/DBSecret' failed: "
                              "Throttled"), message  # fmt: skip
    assert "api: AWSPENDING removed (never set: no system held it)" in message and "NOT undone" not in message
    assert client.staged("cl/DBSecret") == {"v1": ["AWSCURRENT"]} == client.staged("cl/ApiSecret")


def test_a_raw_error_in_the_undo_is_reported_masked_and_keeps_pending(tmp_path, monkeypatch):
    """The undo itself dies with a raw (non-nodeops) error that shows both values: it does not escape,
    its text is masked, and AWSPENDING is kept so that a rerun completes the rotation."""
    client = FakeSecretsManager()
    mod, rotation, _ = fake_rotation(tmp_path, monkeypatch, client)
    monkeypatch.setattr(mod.ApiPassword, "set", lambda _self: None)

    def test_(self):
        raise OperationFailed("the pending password does not log in")

    def undo(self):
        raise ValueError(f"paramiko said {self.pending.reveal()} / {self.current.reveal()}")

    monkeypatch.setattr(mod.ApiPassword, "test", test_)
    monkeypatch.setattr(mod.ApiPassword, "undo", undo)
    with pytest.raises(OperationFailed) as err:
        rotation.run(select(CHAINLINK.rotation, "api", "role"))
    message = str(err.value)
    assert "NOT undone: api: ValueError: paramiko said ***** / *****" in message, message
    assert client.pending("cl/ApiSecret") not in message and OLD["cl/ApiSecret"]["password"] not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert "AWSPENDING" in [s for st in client.staged("cl/ApiSecret").values() for s in st]


@pytest.mark.parametrize("undo_works", [True, False], ids=["undone", "undo-failed"])
def test_the_undo_says_what_had_changed_and_what_was_undone(tmp_path, monkeypatch, undo_works):
    """Issue 13: the role password set and a node replaced, then the roll failed; when ALTER ROLE back failed too,
    the message said "undone: nothing had changed"."""
    client = FakeSecretsManager()
    mod, rotation, _ = fake_rotation(tmp_path, monkeypatch, client)
    altered, rolls = [], []

    def alter(self, password):
        altered.append(password)
        if len(altered) > 1 and not undo_works:
            raise OperationFailed("the database does not answer")

    def roll(self, job):
        self.touched = True
        rolls.append(job)
        if len(rolls) == 1:
            raise OperationFailed("cl cl-b: the new standby did not start")

    monkeypatch.setattr(mod.PostgresPassword, "alter", alter)
    monkeypatch.setattr(mod.PostgresPassword, "test", lambda _self: None)
    monkeypatch.setattr(mod.PairRoll, "roll", roll)
    monkeypatch.setattr(mod.service, "job_with", lambda job, _values: job)  # the files: not rendered here
    now = "now: cl-a waits (2.11.0, config c), cl-b serves (2.11.0, config c)"  # the undo roll handed over
    monkeypatch.setattr(mod.ServiceDeploy, "standing", lambda _self: now)
    with pytest.raises(OperationFailed) as err:
        rotation.run(select(CHAINLINK.rotation, "db", "role"))
    failure = "cl: roll failed: cl cl-b: the new standby did not start"
    changed = "changed: the password of the database role <db_user>, the pair's containers (the roll began)"
    if undo_works:
        assert str(err.value) == (
            f"{failure}; {changed}; undone: the database role <db_user> is back on its current password, the pair "
            "rolled back onto the current password, db: AWSPENDING removed; AWSCURRENT unchanged; after the undo, "
            + now
        )
    else:
        assert str(err.value) == (
            f"{failure}; {changed}; undone: nothing; AWSCURRENT unchanged; NOT undone: db: the database does not "
            "answer; AWSPENDING kept where the system may hold it: run fab rotate-secrets again to complete that "
            f"rotation; after the undo, {now}"
        )


@pytest.mark.parametrize("activation", ["keys", "all"])
def test_rotation_under_keys_or_all_is_refused_at_the_preflight(job, tmp_path, activation):
    """Issue 15: rotation per model is not built. A keys or all service is refused at the preflight (before the
    question, the lock, any secret backend write or host: rotate_secrets stages nothing before prepare_rotations),
    exit 4, one line saying so and what to do instead; before any other refusal of the rotation (here: an env
    backend, which would be exit 2)."""
    from nodeops.inventory import load_inventory
    from nodeops.rotate import prepare_rotations

    inventory = load_inventory(tmp_path / "t.yaml")
    other = dataclasses.replace(job, role=dataclasses.replace(job.role, activation=activation))
    with pytest.raises(Unsafe) as refused:
        prepare_rotations(inventory, [other], "api")
    assert refused.value.exit_code == EXIT_UNSAFE and "\n" not in str(refused.value)
    assert str(refused.value).startswith(f"cl: rotate-secrets supports activation lease only so far (role chainlink "
                                         f"has activation {activation}): ")  # fmt: skip
    with pytest.raises(InvalidInput, match="keeps no versions to rotate"):
        prepare_rotations(inventory, [job], "api")  # the control: a lease service gets as far as its backend


# ---------------------------------------------------------------- a stop request (Ctrl-C, SIGTERM) during a rotation


class StopAt:
    """The run's stop request (StopRequests.is_set), set by the test's fakes when the rotation reaches ``when``."""

    def __init__(self, when: str) -> None:
        self.when, self.requested = when, when == "before"

    def reached(self, step: str) -> None:
        self.requested |= step == self.when

    def is_set(self) -> bool:
        return self.requested


@pytest.mark.parametrize(
    ("when", "said", "current_moved", "altered", "rolls"),
    [
        ("before", "cl: stopped as asked before any new value was staged; nothing changed", False, 0, 0),
        ("create", "cl: stopped as asked before setSecret db; changed: nothing; undone: db: AWSPENDING removed "
                   "(never set: no system held it); AWSCURRENT unchanged", False, 0, 0),
        ("set", "cl: stopped as asked before the roll; changed: the password of the database role <db_user>; undone: "
                "the database role <db_user> is back on its current password, db: AWSPENDING removed; AWSCURRENT "
                "unchanged", False, 2, 0),
        ("roll", "cl: the stop came during the roll, past the last safe point, so the rotation was completed: db "
                 "rotated, the new value current; now: cl-a waits, cl-b serves", True, 1, 1),
    ],
    ids=["before-create", "during-create", "during-set", "during-roll"],
)  # fmt: skip
def test_a_stop_ends_the_rotation_consistently_and_says_how_with_exit_130(tmp_path, monkeypatch, when, said,
                                                                          current_moved, altered, rolls):  # fmt: skip
    """Issue 17's review: on SIGTERM rotate-secrets said "no new step starts", then finished the rotation and exited 0.
    Before the roll (nothing the nodes read has changed) the stop undoes what this run staged and set; once the pair
    is rolling onto the new password it completes the rotation; either way exit 130 and a message that says which."""
    client = FakeSecretsManager()
    mod, rotation, _ = fake_rotation(tmp_path, monkeypatch, client)
    rotation.stop = stop = StopAt(when)
    put, calls = client.put_secret_value, {"alter": 0, "roll": 0}

    def put_(**kwargs):
        put(**kwargs)
        stop.reached("create")

    def alter(_self, _password):
        calls["alter"] += 1
        stop.reached("set")

    def roll(self, _job):
        self.touched = True
        calls["roll"] += 1
        stop.reached("roll")

    client.put_secret_value = put_
    monkeypatch.setattr(mod.PostgresPassword, "alter", alter)
    monkeypatch.setattr(mod.PostgresPassword, "test", lambda _self: None)
    monkeypatch.setattr(mod.PairRoll, "roll", roll)
    monkeypatch.setattr(mod.service, "job_with", lambda job, _values: job)  # the files: not rendered here
    monkeypatch.setattr(mod.ServiceDeploy, "standing", lambda _self: "now: cl-a waits, cl-b serves")
    with pytest.raises(Interrupted) as err:
        rotation.run(select(CHAINLINK.rotation, "db", "role"))
    assert (str(err.value), err.value.exit_code) == (said, 130)
    assert (calls["alter"], calls["roll"]) == (altered, rolls)
    staged = client.staged("cl/DBSecret")
    assert "AWSPENDING" not in [s for st in staged.values() for s in st], staged
    assert (staged != {"v1": ["AWSCURRENT"]}) == current_moved, staged
