"""A rotation the role issues (role.py ``ISSUERS``, a pool's KES key) in ``fab status`` and ``fab check``, over the
played container engine (test_executor_keys's Engine and Keys, test_executor_groups's pool): a run left under way
(its secret's AWSPENDING, read from the version stages alone, one AWS client per backend) is said with the command
that completes it, as for a lease service's rotation; and the value in force as the store holds it against the
chain (the issuer's optional ``standing``, over the role's query run in the holder's container)."""

from __future__ import annotations

import dataclasses
import json
import types

import jsonschema
import pytest

from nodeops import check as chk
from nodeops import program
from nodeops.console.views import status_view
from nodeops.edges import aws
from nodeops.facts import issued
from nodeops.facts.observe import Observer
from nodeops.inventory import CheckPolicy, SecretRef
from nodeops.rotate.service import interrupted_rotations
from nodeops.status import rotation_status, service_status
from tests.unit.test_console import printed
from tests.unit.test_executor_groups import POOL, R1, R2
from tests.unit.test_executor_groups import A as PRODUCER
from tests.unit.test_executor_groups import B as STANDBY
from tests.unit.test_executor_keys import KES, Keys, make_job
from tests.unit.test_executor_kinds import NOW, SCHEMA, UP, engine_of, views

ROTATION = (
    "rotation:\n  hot: {kind: kes, secret: kes, reads: [cold]}\n  other: {kind: kes, secret: vrf, reads: [cold]}\n"
)
ISSUER = """\
import json

class Kes:
    change = "a new certificate"
    def query(self, variables): return ["cli", "query", variables["PROFILE"]]
    def issue(self, variables, secrets, chain, pending, held): return None
    def in_use(self, health_body, issued): return False
    def taken(self, chain, issued): return False
    def standing(self, variables, secrets, chain):
        doc = json.loads(chain)
        store = len(secrets.get("kes", ""))
        return {"store": store, "chain": doc["counter"], "read": ",".join(sorted(secrets))}, \\
            doc["counter"] == store, f"store   {store},\\n chain {doc['counter']}"

ISSUERS = {"kes": Kes()}
"""
NO_STANDING = ISSUER.replace("def standing", "def _standing")
BACKEND = types.SimpleNamespace(kind="aws-secretsmanager", name="sm", region="eu-west-1", endpoint_url=None)


class Client:
    """Secrets Manager, played: {secret: {version: stages}}; every call kept (``calls``)."""

    def __init__(self, stages) -> None:
        self.stages, self.calls = stages, []

    def describe_secret(self, SecretId):
        self.calls.append(("describe_secret", SecretId))
        return {"VersionIdsToStages": self.stages[SecretId]}

    def get_secret_value(self, **kwargs):  # status reads no value
        raise AssertionError(f"a value read: {kwargs}")


def pool(tmp_path, hook=ISSUER, boxes=UP):
    """The pool (relays r1 r2, producer a holding the keys, standby b) whose role issues ``hot`` (the secret kes,
    whose document pool/HotKeys holds pw too) and ``other`` (vrf, in pool/Vrf), both on the backend sm."""
    job = make_job(tmp_path, role=POOL + ROTATION, hook=hook)
    refs = {"kes": SecretRef("sm", "pool/HotKeys", "kes"), "pw": SecretRef("sm", "pool/HotKeys", "pw"),
            "vrf": SecretRef("sm", "pool/Vrf", None)}  # fmt: skip
    job = dataclasses.replace(job, service=dataclasses.replace(job.service, nodes=(R1, R2, PRODUCER, STANDBY),
                                                               secrets=refs))  # fmt: skip
    run = Keys(job, engine_of(job, boxes))
    return job, run, views(run)


def inventory(tmp_path):
    return types.SimpleNamespace(secret_backends={"sm": BACKEND}, source=tmp_path / "inv.yaml", environment="prod")


def played_aws(monkeypatch, stages) -> tuple[Client, list]:
    client, made = Client(stages), []
    monkeypatch.setattr(aws, "client", lambda backend, _file, kind: made.append((backend.name, kind)) or client)
    return client, made


FRESH = {"pool/HotKeys": {"v1": ["AWSCURRENT"]}, "pool/Vrf": {"w1": ["AWSCURRENT"]}}
PENDING = {"pool/HotKeys": {"v1": ["AWSCURRENT"], "v2": ["AWSPENDING"]}, "pool/Vrf": {"w1": ["AWSCURRENT"]}}


FENCED = {**PENDING, "pool/HotKeys": {"v1": ["AWSCURRENT"], "v2": ["AWSPENDING", "nodeops-fence"]}}


@pytest.mark.parametrize(("stages", "found"), [(FRESH, {}), (PENDING, {"hot": False}), (FENCED, {"hot": True})],
                         ids=["fresh", "pending", "fenced"])  # fmt: skip
def test_a_keys_services_issued_rotation_left_under_way_is_found_from_its_stages_alone(tmp_path, monkeypatch, stages,
                                                                                       found):  # fmt: skip
    """A keys service's model rolls no pair, but the rotation its role issues is read (it was skipped): its
    secret's version stages only, one client for the backend both rotations' secrets are on."""
    job, _run, _seen = pool(tmp_path)
    client, made = played_aws(monkeypatch, stages)
    assert {name: stages.fenced for name, stages in interrupted_rotations(inventory(tmp_path), job).items()} == found
    assert client.calls == [("describe_secret", "pool/HotKeys"), ("describe_secret", "pool/Vrf")]
    assert made == [("sm", "secretsmanager")]


@pytest.mark.parametrize(
    ("stages", "finish"),
    [(PENDING, f"{program()} rotate-secrets --env prod --service pool --secret hot"),
     (FENCED, f"{program()} promote-standby --env prod --service pool --force")],
    ids=["rotation", "forced-promotion"],
)  # fmt: skip
def test_status_and_check_say_the_pending_rotation_and_the_command_that_completes_it(tmp_path, monkeypatch, stages,
                                                                                    finish):  # fmt: skip
    """forced-promotion: review rev16b finding 1: a promote-standby --force killed after staging its keys left
    status and check prescribing rotate-secrets, which is refused (it would need the lost holder back). The pending
    version's FENCE label says a forced promotion staged it: both say the promotion that completes it."""
    job, run, seen = pool(tmp_path, hook=NO_STANDING)
    client, _made = played_aws(monkeypatch, stages)
    rotation, fence = rotation_status(inventory(tmp_path), job)
    assert rotation == {"interrupted": ["hot"], "finish": finish}
    assert client.calls == [("describe_secret", "pool/HotKeys"), ("describe_secret", "pool/Vrf")]  # once each
    assert fence is None  # this role has no chain fence (fence_of; test_promote_forced's has)
    result = {"event": "status", **service_status(job, seen, None, rotation, None, NOW)}
    jsonschema.validate(result, SCHEMA)
    assert f"hot interrupted: {finish} completes it" in " ".join(printed(status_view([result])).split())
    found = probe(tmp_path, monkeypatch, job, run)
    assert found[("", "rotation")] == ("fail", f"hot interrupted: {finish} completes it")
    assert not any(check.startswith("issued:") for _node, check in found)  # no standing: nothing asked


def test_check_adds_no_rotation_finding_when_none_is_under_way(tmp_path, monkeypatch):
    job, run, _seen = pool(tmp_path, hook=NO_STANDING)
    played_aws(monkeypatch, FRESH)
    assert not any(check == "rotation" for _node, check in probe(tmp_path, monkeypatch, job, run))


def probe(tmp_path, monkeypatch, job, run) -> dict:
    """check's whole probe_service over the engine: {(node, check): (result, reason)}."""

    class Fleet:
        settings = types.SimpleNamespace(command_timeout=30)

        def http_get(self, host, _port, _path, **_where):
            node = next(n for n in job.service.nodes if n.host == host)
            return (200, b"{}") if run.health(node)[0] else None

    monkeypatch.setattr(Observer, "connect", lambda self, node: self.adopt(node.name, f"link to {node.name}"))
    monkeypatch.setattr(Observer, "container", lambda _self, node, _name=None: run.inspect(node))
    monkeypatch.setattr("nodeops.facts.observe.execute", lambda link, command, **_: run.edge(link, command))
    monkeypatch.setattr(chk, "secret_ages", lambda *_: {"kes": types.SimpleNamespace(seconds=60.0, kind="aws")})
    monkeypatch.setattr(chk, "probe_node", lambda *_a, **_k: ([], []))
    job = dataclasses.replace(job, service=dataclasses.replace(job.service, check=CheckPolicy()))
    result = chk.probe_service(Fleet(), inventory(tmp_path), job)
    return {(f.node, f.check): (f.result, f.reason) for f in result.findings}


def chain_said(run, counter: int, node: str = "a", exit_code: int = 0) -> None:
    run.edge.fails.append((node, r"docker exec", (exit_code, json.dumps({"counter": counter}), "")))


@pytest.mark.parametrize(("counter", "ok"), [(len(KES), True), (len(KES) + 2, False)], ids=["agree", "differ"])
def test_status_shows_the_value_in_force_against_the_chain_and_check_judges_it(tmp_path, monkeypatch, counter, ok):
    """The issuer's standing over its query's output, run in the holder's container (argv without a secret) and the
    rotated document's current values (kes and pw, not vrf's document): its facts per rotation in the status, its
    verdict as check's issued:<rotation>, its detail on one line."""
    job, run, seen = pool(tmp_path)
    chain_said(run, counter)
    found = issued.standing(job, seen, lambda node, command: run.x(node, command, check=False))
    detail = f"store {len(KES)}, chain {counter}"
    assert found == {
        "hot": {"holder": "a", "facts": {"store": len(KES), "chain": counter, "read": "kes,pw"}, "ok": ok,
                "detail": detail},
        "other": {"holder": "a", "facts": {"store": 0, "chain": counter, "read": "vrf"}, "ok": False,
                  "detail": f"store 0, chain {counter}"},
    }  # fmt: skip
    execs = [(node, line) for node, line, _ in run.edge.sent if "docker exec" in line]
    assert execs == [("a", f"docker exec {run.name} cli query main")] * 2 and KES not in str(run.edge.sent)
    result = issued.with_standing({"event": "status", **service_status(job, seen, None, None, None, NOW)}, job, found)
    jsonschema.validate(result, SCHEMA)
    shown = " ".join(printed(status_view([result])).split())
    assert f"hot on a: store {len(KES)}, chain {counter}, read kes,pw" + ("" if ok else f": {detail}") in shown
    assert issued.standing_findings(found)[0] == ("", "issued:hot", ("pass" if ok else "fail", detail))
    played_aws(monkeypatch, FRESH)
    assert probe(tmp_path, monkeypatch, job, run)[("", "issued:hot")] == ("pass" if ok else "fail", detail)


@pytest.mark.parametrize(
    ("boxes", "said", "hook", "error"),
    [
        ({**UP, "a": {}}, None, ISSUER, "not read: no node holds the hot keys (the chain is asked in the holder's "
         "container)"),
        ({**UP, "b": {"hot": True}}, None, ISSUER, "not read: 2 nodes hold the hot keys"),
        (UP, 1, ISSUER, "cli in a's container failed (exit 1)"),
        (UP, 0, ISSUER.replace('doc["counter"] == store', 'doc["nope"] == store'),
         "role pool: its hook ISSUERS['kes'].standing raised KeyError ("),
        (UP, 0, ISSUER.replace('doc["counter"] == store', '"yes"'),
         "role pool: its hook ISSUERS['kes'].standing returned what is not (facts: name -> str, number, bool or "
         "None, ok: bool, detail: str): fix the role's module"),
    ],
    ids=["no-holder", "two-holders", "query-fails", "hook-raises", "out-of-shape"],
)  # fmt: skip
def test_a_standing_that_cannot_be_read_is_its_rotations_error_in_one_line(tmp_path, boxes, said, hook, error):
    """It quotes nothing the hook was given (the secrets, the chain's output), and check fails it."""
    job, run, seen = pool(tmp_path, hook=hook, boxes=boxes)
    if said is not None:
        chain_said(run, 0, exit_code=said)
    found = issued.standing(job, seen, lambda node, command: run.x(node, command, check=False))
    assert set(found) == {"hot", "other"} and error in found["hot"]["error"], found
    assert "\n" not in found["hot"]["error"] and KES not in found["hot"]["error"]
    assert issued.standing_findings(found)[0] == ("", "issued:hot", ("fail", f"not checked: {found['hot']['error']}"))
    jsonschema.validate(issued.with_standing({"event": "status", **service_status(job, seen, None, None, None, NOW)},
                                             job, found), SCHEMA)  # fmt: skip


def test_a_role_whose_issuers_have_no_standing_keeps_its_status_and_asks_nothing(tmp_path):
    job, run, seen = pool(tmp_path, hook=NO_STANDING)
    result = service_status(job, seen, None, None, None, NOW)
    assert issued.standing(job, seen, lambda *_: pytest.fail("asked")) == {}
    assert issued.with_standing(result, job, {}) == result


def test_a_standing_of_the_wrong_shape_is_refused_when_the_role_loads(tmp_path):
    from nodeops.roles import RoleError

    with pytest.raises(RoleError) as err:
        pool(tmp_path, hook=ISSUER.replace("def standing(self, variables, secrets, chain)", "def standing(self, x)"))
    assert err.value.where == "ISSUERS['kes'].standing" and "takes (x), but the engine calls it with 3 " \
        "arguments (variables, secrets, chain)" in str(err.value), str(err.value)  # fmt: skip
