"""promote-standby --force under activation keys with the holder cut off (nodeops.promote_forced): the role's chain
fence carried out as its issued rotation for the reachable standby, over the keys tables' played container engine
(test_executor_keys: every line a node is sent, no host touched) and a played Secrets Manager: assessed and refused
before anything is staged, the standby started with the fence's new hot keys though the lost holder cannot be seen,
the counter and AWSCURRENT moved, the operator told what to do about the lost host, and a rerun after a kill once
the standby took the pending version converging on it."""

from __future__ import annotations

import json
import textwrap
import types

import pytest

from nodeops import deploy, promote
from nodeops.errors import EXIT_INVALID, EXIT_UNSAFE, InvalidInput, OperationFailed, Unsafe
from nodeops.facts.holders import FencePending
from nodeops.facts.view import NodeView
from nodeops.inventory import parse_inventory
from nodeops.job import job_for
from nodeops.promote_forced import ForcedHandover
from nodeops.rotate import issued
from nodeops.rotate import service as rotate_service
from nodeops.run.report import Reporter
from nodeops.secrets import Secret
from nodeops.status import rotation_status
from tests.unit.test_executor_keys import KES, NAME, PW, ROLE, VRF, Engine, Keys, check_secrets, container, sent
from tests.unit.test_rotate import KEY, FakeSecretsManager

NEW_KES, COLD = "s3ntinel-NEWKES-0123456789", "s3ntinel-COLD-0123456789"
MODULE = textwrap.dedent(f"""\
    import json
    from nodeops.role_protocols import Issued

    ASKED = []
    TAKEN = [True]  # what taken answers: False plays a testSecret that fails (the chain never takes it)

    class Hot:
        change = "new hot keys"
        def query(self, variables): return ["cli", "query"]
        def issue(self, variables, secrets, chain, pending, held): raise AssertionError("a promotion never rotates")
        def in_use(self, health_body, issued): return json.loads(health_body).get("forging") is True
        def taken(self, chain, issued): return TAKEN[-1]

    class Fence:
        change = "new hot keys past the lost holder's"
        def fence(self, variables, secrets, chain, pending, held):
            ASKED.append((secrets["cold"], secrets["counter"], pending, held))
            if pending is not None and held:
                return Issued(dict(pending), {{"counter": "2"}}, {{"counter": 1}}, True, "3 periods left: rotate")
            return Issued({{"kes": "{NEW_KES}"}}, {{"counter": "2"}}, {{"counter": 1}})

    def keys_in_use(body): return json.loads(body).get("forging")

    ISSUERS = {{"hot": Hot()}}
    CHAIN_FENCE = Fence()
    """)
ROTATION = "rotation:\n  hot: {kind: hot, secret: kes, reads: [cold, counter]}\n"


class Manager(FakeSecretsManager):
    """Secrets Manager played: a put without stages makes the new version AWSCURRENT (the old one AWSPREVIOUS)."""

    def __init__(self) -> None:
        self.store = {
            "pool/Hot": {"v1": (json.dumps({"kes": KES, "vrf": VRF}), ["AWSCURRENT"])},
            "pool/Counter": {"v1": ("1", ["AWSCURRENT"])},
            "pool/Cold": {"v1": (COLD, ["AWSCURRENT"])},
        }
        self.fail_put = None

    def put_secret_value(self, SecretId, ClientRequestToken, SecretString, VersionStages=None):
        if VersionStages is None:
            for _, stages in self.store[SecretId].values():
                if "AWSCURRENT" in stages:
                    stages[:] = ["AWSPREVIOUS"]
            VersionStages = ["AWSCURRENT"]
        self.store[SecretId][ClientRequestToken] = (SecretString, list(VersionStages))

    def current(self, name: str) -> str:
        return next(text for text, stages in self.store[name].values() if "AWSCURRENT" in stages)


def asked(role) -> list[tuple]:
    """What the role's fence was given, each call (its module's ASKED)."""
    return type(role.hooks.chain_fence.fence.__wrapped__.__self__).fence.__globals__["ASKED"]


def look(run, a_seen: bool = False) -> dict[str, NodeView]:
    """What the observer sees now: a cut off (unseen) or back, b as it runs; set as ``run``'s observer's views."""
    a, b = run.job.service.nodes
    run.unseen = set() if a_seen else {"a"}
    views = {"a": NodeView(a, run.inspect("a"), *run.health(a)) if a_seen else
                  NodeView(a, None, False, unreachable="a: Timeout"),
             "b": NodeView(b, run.inspect("b"), *run.health(b))}  # fmt: skip
    run.observer = types.SimpleNamespace(views=lambda: views)
    return views


def pool(tmp_path, monkeypatch, rotation: str = ROTATION, b_running: bool = True):
    """A keys pair a (holder, cut off: unseen) and b (running, no keys), its role's module MODULE, its secrets in
    a played Secrets Manager: (the run, its engine, the manager, the role's module)."""
    roles, templates = tmp_path / "roles" / "pool", tmp_path / "templates" / "pool"
    roles.mkdir(parents=True)
    templates.mkdir(parents=True)
    (roles / "role.yaml").write_text(ROLE + rotation)
    (roles / "role.py").write_text(MODULE)
    bodies = {"conf.j2": "port=8080\n", **{f"{n}.j2": f"{{{{ secrets.{n} | line }}}}\n" for n in ("pw", "kes", "vrf")}}
    for name, body in bodies.items():
        (templates / name).write_text(body)
    refs = {
        "kes": ("pool/Hot", "kes"),
        "vrf": ("pool/Hot", "vrf"),
        "pw": ("pool/Pw", None),
        "cold": ("pool/Cold", None),
        "counter": ("pool/Counter", None),
    }
    doc = {"environment": "t", "bastion": {"host": "127.0.0.1", "user": "root", "host_key": KEY},
           "ssh": {"user": "root"}, "secret_backends": {"aws": {"kind": "aws-secretsmanager", "region": "us-east-1"}},
           "services": {"pool": {"role": "pool", "image": "reg/node:2", "runtime": "docker",
                                 "secrets": {n: {"backend": "aws", "name": s, **({"key": k} if k else {})}
                                             for n, (s, k) in refs.items()},
                                 "nodes": [{"name": "a", "host": "10.0.0.1", "preferred": "active", "host_key": KEY},
                                           {"name": "b", "host": "10.0.0.2", "preferred": "standby",
                                            "host_key": KEY}]}}}  # fmt: skip
    inv = parse_inventory(json.dumps(doc), tmp_path / "t.yaml")
    secrets = {n: Secret(v, n) for n, v in (("kes", KES), ("vrf", VRF), ("pw", PW), ("cold", COLD), ("counter", "1"))}
    job = job_for(inv, inv.services["pool"], secrets=secrets)
    engine = Engine({"a": {NAME: container(job, hot=True)}, "b": {NAME: container(job, running=b_running)}})
    run = Keys(job, engine, unseen={"a"})
    run.fleet.inventory, run.report = inv, Reporter(True, write=lambda _line: None)
    look(run)
    manager = Manager()
    monkeypatch.setattr(rotate_service.aws, "client", lambda *_a, **_k: manager)
    return run, engine, manager, job.role


def test_force_with_a_chain_fence_promotes_the_standby_with_the_fences_keys(tmp_path, monkeypatch):
    """The holder a cut off: b gets the fence's new hot keys (its hot start does not wait to see a: the chain
    fences it), the counter the fence moved on and AWSCURRENT are the new ones, a is never sent a line, no secret
    is on any line sent, and the operator is told what to do about a."""
    run, engine, manager, role = pool(tmp_path, monkeypatch)
    looked, inspect = [], run.inspect
    run.inspect = lambda node, name=None: looked.append(node) or inspect(node, name)
    handover = promote.assess(run, force=True)
    assert isinstance(handover, ForcedHandover) and (handover.lost, handover.new) == (("a",), "b")
    assert handover.question(False) == ("pool: a cannot be reached: start b with new hot keys under the chain's own "
                                        "fence (new hot keys past the lost holder's), so the chain refuses the lost "
                                        "holder's")  # fmt: skip
    result = handover.promote(run)
    assert (result["active"], result["outage_seconds"], result["outage_measured"]) == ("b", None, False)
    assert engine.boxes["b"][NAME]["labels"].get("io.nodeops.hot") == "true"
    assert "b: run+hot" in sent(engine)
    check_secrets(engine, {"b"})  # no secret on a line, the hot bytes and label to b alone
    assert "a" not in looked  # the hot start never looks at the node the chain fences (it has no link to it)
    hot_doc = json.loads(manager.current("pool/Hot"))
    assert hot_doc == {"kes": NEW_KES, "vrf": VRF} and manager.current("pool/Counter") == "2"
    assert not any("AWSPENDING" in st for _, st in manager.store["pool/Hot"].values())
    uploaded = b"".join(stdin or b"" for node, _, stdin in engine.sent if node == "b")
    assert NEW_KES.encode() in uploaded and KES.encode() not in uploaded
    for _, command, _ in engine.sent:
        assert all(v not in command for v in (KES, NEW_KES, VRF, COLD)), command
    assert asked(role)[-1][:2] == (COLD, "1")  # the fence read the cold key and counter, in memory
    lost = [m for n, m in run.said if "must never come back" in m]
    assert lost == ["pool: a was not touched and must never come back with its hot keys: stop its container and wipe "
                    "its tmpfs (or power its host off) before it is reachable again, then fab deploy restarts it "
                    "without them as the standby; the chain refuses its old keys now (new hot keys past the lost "
                    "holder's)"]  # fmt: skip
    shown = run.job.redact(f"x {NEW_KES} {COLD}")  # the Redactor knows each new value and what the fence read
    assert NEW_KES not in shown and COLD not in shown


def test_a_rerun_after_the_standby_took_the_pending_version_keeps_it(tmp_path, monkeypatch):
    """A run killed once b runs the pending version (staged, b restarted onto it, not finished): the rerun hands
    the fence that version with held True; the fence keeps it, b is not restarted, the stages finish."""
    run, engine, manager, role = pool(tmp_path, monkeypatch)
    doc = json.dumps({"kes": NEW_KES, "vrf": VRF})
    manager.store["pool/Hot"]["v2"] = (doc, ["AWSPENDING"])
    labels = {"io.nodeops.hot": "true", "io.nodeops.secrets": json.dumps({"kes": "v2"})}
    engine.boxes["b"][NAME]["labels"].update(labels)
    ForcedHandover("pool", run.observer.views(), ("a",), "b", "x").promote(run)  # as the killed run assessed it
    assert asked(role)[-1][2:] == ({"kes": NEW_KES, "vrf": VRF}, True)
    assert "b: run+hot" not in sent(engine)
    assert json.loads(manager.current("pool/Hot"))["kes"] == NEW_KES and manager.current("pool/Counter") == "2"
    assert "pool: hot: 3 periods left: rotate" in [m for _n, m in run.said]  # the role's line on the kept value


def test_a_forced_promotions_pending_version_says_so_and_a_rotation_refuses_it(tmp_path, monkeypatch):
    """Review rev16b finding 1: a forced promotion killed after staging left a pending version a rotation took as
    its own (status prescribed rotate-secrets, which then asked for the lost holder back). The fence stages its
    version with the FENCE label in the same call; rotate-secrets on it is refused (exit 4) before any node is
    looked at, naming promote-standby --force, nothing changed."""
    run, engine, manager, _role = pool(tmp_path, monkeypatch)
    ForcedHandover("pool", run.observer.views(), ("a",), "b", "x").promote(run)
    fenced = [sorted(st) for _, st in manager.store["pool/Hot"].values() if "nodeops-fence" in st]
    assert fenced == [["AWSCURRENT", "nodeops-fence"]]  # staged with it, then finished
    manager.store["pool/Hot"]["v3"] = (json.dumps({"kes": NEW_KES, "vrf": VRF}), ["AWSPENDING", "nodeops-fence"])
    before, lines = json.dumps(manager.store), len(engine.sent)
    rotation = rotate_service.ServiceRotation(run.fleet.inventory, run.job, run.fleet, run.report, {})
    rotation.deploy = run
    with pytest.raises(Unsafe) as err:
        rotation.run([run.job.role.rotation["hot"]])
    assert err.value.exit_code == EXIT_UNSAFE and "\n" not in str(err.value)
    assert ("pool: createSecret hot failed: pool: the pending version v3 of 'pool/Hot' was staged by a forced "
            "promotion that did not finish; fab promote-standby --env t --service pool --force completes it") in \
        str(err.value)  # fmt: skip
    assert "reach" not in str(err.value)
    assert json.dumps(manager.store) == before and len(engine.sent) == lines


@pytest.mark.parametrize(
    ("rotation", "b_running", "error", "code", "said"),
    [
        (ROTATION, False, Unsafe, EXIT_UNSAFE, "pool: no reachable standby to take the hot keys"),
        ("", True, InvalidInput, EXIT_INVALID, "role pool: its chain-level fence (CHAIN_FENCE) is carried out as the "
         "role's one rotation of a kind its module issues (role.yaml rotation.<name>, role.py ISSUERS); it has 0"),
    ],
    ids=["standby-stopped", "no-issued-rotation"],
)  # fmt: skip
def test_a_forced_promotion_that_cannot_be_carried_out_is_refused_before_anything_is_staged(
        tmp_path, monkeypatch, rotation, b_running, error, code, said):  # fmt: skip
    run, engine, manager, _ = pool(tmp_path, monkeypatch, rotation, b_running)
    before = json.dumps(manager.store)
    with pytest.raises(error) as err:
        promote.assess(run, force=True)
    assert err.value.exit_code == code and said in str(err.value) and "\n" not in str(err.value)
    assert json.dumps(manager.store) == before and not [line for line in sent(engine) if "inspect" not in line]


def failed_forced_run(tmp_path, monkeypatch):
    """Review rev16c F3's first half: a forced promotion (a cut off) whose testSecret fails (the chain never takes
    b's new certificate within the test's time): exit 1, b left on the pending version it runs, AWSPENDING (with
    the fence's label) kept. Returns (the run, its engine, the manager, the role, the failure's message)."""
    run, engine, manager, role = pool(tmp_path, monkeypatch)
    monkeypatch.setattr(issued, "TEST_TIMEOUT", 0.0)
    taken = type(role.hooks.chain_fence.fence.__wrapped__.__self__).fence.__globals__["TAKEN"]
    taken.append(False)
    job = run.job
    with pytest.raises(OperationFailed) as err:
        promote.assess(run, force=True).promote(run)
    taken.append(True)  # the chain takes it from now on (b's link back)
    run.job = job  # the rerun is a new run: it reads the store's current versions again
    return run, engine, manager, role, str(err.value)


def test_a_forced_run_whose_test_fails_names_its_own_command_not_a_rotation(tmp_path, monkeypatch):
    """It said `run fab rotate-secrets again to complete that rotation`, which refuses a forced promotion's pending
    version (exit 4): the message names promote-standby --force, the one command that completes it."""
    run, engine, manager, _role, message = failed_forced_run(tmp_path, monkeypatch)
    assert "testSecret hot failed" in message and "rotate-secrets" not in message, message
    assert message.endswith(
        "AWSPENDING kept where the system may hold it: fab promote-standby --env t --service "
        "pool --force completes it (a rotation refuses a forced promotion's version)"
    ), message
    pending = [v for v, (_, st) in manager.store["pool/Hot"].items() if "AWSPENDING" in st]
    assert len(pending) == 1 and "nodeops-fence" in manager.store["pool/Hot"][pending[0]][1]
    assert engine.boxes["b"][NAME]["labels"].get("io.nodeops.hot") == "true"  # b runs it: nothing undone


@pytest.mark.parametrize(
    ("new_hot", "a_back", "said"),
    [
        (True, False, "pool: a was not touched and must never come back with its hot keys"),
        (True, True, "pool: a was not touched and holds hot keys this promotion supersedes: never keep it"),
        (False, False, "pool: a was not touched and must never come back with its hot keys"),
        (False, True, "pool: a was not touched and holds hot keys this promotion supersedes: never keep it"),
    ],
    ids=["new-holder-hot-lost-cut-off", "new-holder-hot-lost-back", "new-holder-not-hot-lost-cut-off",
         "new-holder-not-hot-lost-back"],
)  # fmt: skip
def test_the_forced_promotion_completes_its_failed_runs_version_in_each_state_it_left(
        tmp_path, monkeypatch, new_hot, a_back, said):  # fmt: skip
    """Review rev16c F3: after that failure, promote-standby --force (what the failure, status and check name) was
    refused: with b carrying the hot label, as a promotion of the cut-off a (`it is the standby to be promoted`);
    with a back, as `every node can be seen`. It now completes the pending version in each state the run can leave
    (b holding it or not: a failure before its restart leaves it the standby; a still cut off, or back with its
    keys): b holds the keys with it, AWSCURRENT and the counter move, nothing is pending, a is never touched and the
    operator is told to stop it (never to keep it)."""
    run, engine, manager, role, _message = failed_forced_run(tmp_path, monkeypatch)
    (pending,) = [v for v, (_, st) in manager.store["pool/Hot"].items() if "AWSPENDING" in st]
    if not new_hot:  # the run failed before b took it: b serves as the standby again
        engine.boxes["b"][NAME]["labels"].pop("io.nodeops.hot")
        engine.boxes["b"][NAME]["labels"]["io.nodeops.secrets"] = json.dumps({"kes": "v1"})
    restarts = sent(engine).count("b: run+hot")
    look(run, a_seen=a_back)
    handover = promote.assess(run, force=True)
    assert isinstance(handover, ForcedHandover) and (handover.lost, handover.new) == (("a",), "b")
    asked_line = f"pool: a {'holds old keys' if a_back else 'cannot be reached'}: start b with new hot keys under "
    assert handover.question(False).startswith(asked_line), handover.question(False)
    run.said.clear()
    handover.promote(run)
    assert engine.boxes["b"][NAME]["labels"].get("io.nodeops.hot") == "true"
    assert sent(engine).count("b: run+hot") == restarts + (not new_hot)  # b running it is not restarted
    stages = manager.store["pool/Hot"]
    (current,) = [v for v, (_, st) in stages.items() if "AWSCURRENT" in st]
    assert (current == pending) is new_hot  # kept as b runs it; else the played fence issues anew (as a stale one)
    assert not any("AWSPENDING" in st for _, st in stages.values())
    assert json.loads(engine.boxes["b"][NAME]["labels"]["io.nodeops.secrets"])["kes"] == current
    assert manager.current("pool/Counter") == "2" and asked(role)[-1][3] is new_hot  # held: kept as b runs it
    lines = [m for _n, m in run.said]
    assert [m for m in lines if m.startswith("pool: a was not touched")][0].startswith(said), lines
    assert not [m for m in lines if "keep a" in m or "rotate-secrets" in m], lines


def test_a_deploy_is_refused_while_a_forced_promotions_version_waits(tmp_path, monkeypatch):
    """Once the lost holder a is stopped (as every line says to do with it), a deploy planned b, which runs the
    pending version, restarted in place with its hot keys at the store's current versions: the certificate the
    forced promotion supersedes, the lost holder's, undoing the fence (the plan, before: `replace b (the active in
    place with its hot keys, no handover)`). It is refused (exit 4) before any node is looked at, naming the one
    command that completes the promotion (the lab test: a deploy with the lost producer still cut off names it
    too, rather than the unreachable node)."""
    run, engine, manager, _role, _message = failed_forced_run(tmp_path, monkeypatch)
    engine.boxes["a"][NAME]["running"] = False
    look(run, a_seen=True)
    lines = len(engine.sent)
    with pytest.raises(Unsafe) as err:
        deploy.refuse_while_fenced(run)  # ServiceDeploy.run's first step, before it looks at any node
    assert err.value.exit_code == EXIT_UNSAFE and "\n" not in str(err.value)
    assert str(err.value).startswith("pool: a forced promotion staged new hot keys and did not finish (kes version "), \
        str(err.value)  # fmt: skip
    assert "fab promote-standby --env t --service pool --force completes it first; nothing changed" in str(err.value)
    assert len(engine.sent) == lines
    (pending,) = [v for v, (_, st) in manager.store["pool/Hot"].items() if "AWSPENDING" in st]
    forced = "fab promote-standby --env t --service pool --force"
    rotation, fence = rotation_status(run.fleet.inventory, run.job)  # status's and check's: one read of the stages
    assert rotation == {"interrupted": ["hot"], "finish": forced}, rotation
    assert fence == FencePending("kes", pending, forced)  # their holders line names it (test_holders)


@pytest.mark.parametrize(("new_hot", "a_back"), [(True, False), (True, True), (False, True)],
                         ids=["new-holder-hot-lost-cut-off", "new-holder-hot-lost-back",
                              "new-holder-not-hot-lost-back"])  # fmt: skip
def test_a_planned_promotion_is_refused_while_a_forced_promotions_version_waits(
        tmp_path, monkeypatch, new_hot, a_back):  # fmt: skip
    """A planned promote-standby (no --force) after that failure went on to plan_promotion: with a back and b the
    standby it would fence a and push the store's current hot keys, the ones the forced promotion supersedes; else
    it refused naming a node, not the command that completes the promotion. It is refused (exit 4) before any node
    is touched, naming that command, in each state the failed run can leave."""
    run, engine, _manager, _role, _message = failed_forced_run(tmp_path, monkeypatch)
    if not new_hot:
        engine.boxes["b"][NAME]["labels"].pop("io.nodeops.hot")
    look(run, a_seen=a_back)
    lines = len(engine.sent)
    with pytest.raises(Unsafe) as err:
        promote.assess(run, force=False)
    message = str(err.value)
    assert err.value.exit_code == EXIT_UNSAFE and "\n" not in message
    assert message.startswith("pool: a forced promotion staged new hot keys and did not finish (kes version "), message
    assert "a planned promotion would hand over the keys it supersedes; fab promote-standby --env t --service pool " \
           "--force completes it first; nothing changed" in message  # fmt: skip
    assert len(engine.sent) == lines
