"""Secrets deploy never reads: a rotation kind the role issues (role.py ``ISSUERS``) names in ``reads`` the service's
secrets only it reads (a pool's cold key and issue counter). Their shape is checked when the role loads (exit 2, one
line naming the file and the key); they are resolved only for that rotation (RoleSpec.admin_secrets, needs_admin),
and a service that lacks one is refused before any host (exit 2)."""

from __future__ import annotations

import textwrap
from types import MappingProxyType

import pytest

from nodeops.errors import EXIT_INVALID, EXIT_UNSAFE, InvalidInput, InventoryError, Unsafe
from nodeops.inventory import SecretRef
from nodeops.roles import RoleError, load_role
from nodeops.rotate.rules import check_service, needs_admin, select
from tests.unit.test_role_interface import RESET, module_of
from tests.unit.test_roles import GOOD, make_role, service
from tests.unit.test_rotate import CHAINLINK, FakeSecretsManager, fake_rotation

ISSUER = textwrap.dedent("""\
    class Kes:
        change = "a new certificate"
        def query(self, variables): return ["cli", "query"]
        def issue(self, variables, secrets, chain, pending, held): return None
        def in_use(self, health_body, issued): return False
        def taken(self, chain, issued): return False
    ISSUERS = {"kes": Kes()}
    """)


def role_with(tmp_path, rotation: str, module: str = ISSUER):
    text = GOOD + textwrap.dedent(rotation)
    roles = make_role(tmp_path, text)
    (roles / "thing" / "role.py").write_text(module + RESET + "ROTATIONS = {'token-reset': Reset()}\n")
    return load_role("thing", [roles])


def test_an_issued_rotation_names_the_secrets_only_it_reads(tmp_path):
    role = role_with(tmp_path, "rotation:\n  hot: {kind: kes, secret: pw, reads: [cold, counter]}\n")
    spec = role.rotation["hot"]
    assert (spec.kind, spec.secret, spec.reads, spec.user) == ("kes", "pw", ("cold", "counter"), None)
    assert role.admin_secrets == {"cold", "counter"}  # never resolved by deploy, status, check (job.prepare)
    assert role.hooks.issuers["kes"].change == "a new certificate"


@pytest.mark.parametrize(
    ("rotation", "where", "problem"),
    [
        ("rotation:\n  hot: {kind: kes, secret: pw, reads: cold}\n", "rotation.hot.reads",
         "expected a list of secret names"),
        ("rotation:\n  hot: {kind: kes, secret: pw, reads: [pw]}\n", "rotation.hot.reads[0]",
         "expected a secret name outside the role's required secrets (deploy reads those), each once, got 'pw'"),
        ("rotation:\n  hot: {kind: kes, secret: pw, reads: [cold, cold]}\n", "rotation.hot.reads[1]",
         "each once, got 'cold'"),
        ("rotation:\n  hot: {kind: kes, secret: pw, reads: ['a b']}\n", "rotation.hot.reads[0]",
         "expected a secret name matching"),
        ("rotation:\n  hot: {kind: kes, secret: pw}\n", "rotation.hot.reads", "missing"),
        ("rotation:\n  hot: {kind: kes, secret: pw, user: pw, reads: [cold]}\n", "rotation.hot.user", ""),
        ("rotation:\n  hot: {kind: token-reset, secret: pw, user: pw, reads: [cold]}\n", "rotation.hot.reads", ""),
        ("rotation:\n  hot: {kind: refused, secret: pw, reason: no, reads: [cold]}\n", "rotation.hot.reads", ""),
        ("rotation:\n  hot: {kind: kes, secret: nope, reads: [cold]}\n", "rotation.hot.secret",
         "expected one of the role's secrets (pw), got 'nope'"),
    ],
    ids=["not-a-list", "a-deploy-secret", "twice", "bad-name", "missing", "user-on-issued", "reads-on-api",
         "reads-on-refused", "unknown-secret"],
)  # fmt: skip
def test_a_bad_reads_is_refused_when_the_role_loads(tmp_path, rotation, where, problem):
    with pytest.raises(RoleError) as err:
        role_with(tmp_path, rotation)
    message = str(err.value)
    assert err.value.exit_code == EXIT_INVALID and err.value.where == where, message
    assert problem in message and "\n" not in message


def test_an_issued_kind_needs_the_module_that_issues_it(tmp_path):
    roles, module = module_of(tmp_path, "")
    (roles / "thing" / "role.yaml").write_text(GOOD + "rotation:\n  hot: {kind: kes, secret: pw, reads: [c]}\n")
    with pytest.raises(RoleError) as err:
        load_role("thing", [roles])
    assert err.value.where == "rotation.hot.kind" and "its kinds: none" in str(err.value)


def test_the_secrets_it_reads_are_resolved_for_that_rotation_alone_and_must_be_given(tmp_path, monkeypatch):
    role = role_with(tmp_path, "rotation:\n  hot: {kind: kes, secret: pw, reads: [cold, counter]}\n")
    ref = SecretRef(backend="ci", name="x", key=None)
    given = MappingProxyType({"pw": ref, "cold": ref})
    svc = service().__class__(**{**service().__dict__, "role": "thing", "secrets": given})

    class Inv:
        services = {svc.name: svc}
        secret_backends = {"ci": type("B", (), {"kind": "aws-secretsmanager", "name": "ci"})()}
        source = tmp_path / "inv.yaml"

    monkeypatch.setattr("nodeops.rotate.rules.role_for", lambda *_: role)
    assert needs_admin(Inv, None, "hot") and needs_admin(Inv, None, "all")
    with pytest.raises(InventoryError) as err:
        check_service(Inv, svc, [role.rotation["hot"]])
    assert err.value.exit_code == EXIT_INVALID
    assert str(err.value).endswith("services.cl1.secrets: rotating hot reads counter: add their references (read "
                                   "by this rotation only, never by deploy)")  # fmt: skip


@pytest.mark.parametrize(("raised", "code"), [(InvalidInput, EXIT_INVALID), (Unsafe, EXIT_UNSAFE)])
def test_a_refusal_before_anything_was_staged_keeps_its_exit_code(tmp_path, monkeypatch, raised, code):
    """An issuer's refusal in createSecret (a wrong cold key, a reused counter: exit 2; records its protocol cannot
    have left: exit 4) is the run's exit code, not a failure's (1): nothing was staged or set."""
    client = FakeSecretsManager()
    mod, rotation, _ = fake_rotation(tmp_path, monkeypatch, client)

    def create(self):
        raise raised("secret cold_key: this cold key is not the pool's")

    monkeypatch.setattr(mod.ApiPassword, "create", create)
    with pytest.raises(raised) as err:
        rotation.run(select(CHAINLINK.rotation, "api", "role"))
    assert err.value.exit_code == code and str(err.value).startswith(
        "cl: createSecret api failed: secret cold_key: this cold key is not the pool's; changed: nothing"
    )
    assert client.staged("cl/ApiSecret") == {"v1": ["AWSCURRENT"]}
