"""Choosing what to roll back to, from the audit log's records (pure)."""

from __future__ import annotations

import json

import pytest

from nodeops import program
from nodeops.errors import EXIT_INVALID, InvalidInput, OperationFailed
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import Node, Service
from nodeops.records import Deployed, Entry, entry
from nodeops.rollback import already_at, pick, question, ran, running_on, target_service
from tests.conftest import override_config

CUT = "unreachable"  # a NodeView's why, for a node that could not be reached

REG = "reg:5000/smartcontract/chainlink"


def stored(version: str, config: str, **extra) -> dict:
    """A deploy's result as the audit log stores it (ServiceDeploy.run)."""
    return {"service": "cl1", "changed": True, "active": "cl1-a", "image": f"{REG}:{version}",
            "digest": f"sha256:{version}", "config": config, "variables": {"LOG_LEVEL": config}, **extra}  # fmt: skip


def record(version: str, config: str, **extra) -> Deployed:
    return Deployed.model_validate(stored(version, config, **extra))


IDENTITY = {"time": "2026-11-30T10:00:00Z", "run": "0123456789abcdef", "who": "ops", "env": "prod"}


def stored_end(op: str, *results: dict, result: str = "ok") -> dict:
    return {**IDENTITY, "op": op, "event": "end", "result": result, "exit_code": 0 if result == "ok" else 1,
            "error": None, "seconds": 1.5, "services": ["cl1"], "results": list(results)}  # fmt: skip


def end(op: str, *results: dict | Deployed, result: str = "ok") -> Entry:
    return entry(stored_end(op, *(r.record() if isinstance(r, Deployed) else r for r in results), result=result))


def test_ran_keeps_successful_deploys_and_rollbacks_of_the_service_in_order():
    log = [
        end("deploy", record("2.10.0", "a")),
        entry(
            {
                **IDENTITY,
                "op": "deploy",
                "event": "step",
                "service": "cl1",
                "node": "",
                "message": "m",
                "results": [stored("9", "x")],
            }
        ),  # a step, not an outcome  # fmt: skip
        end("deploy", record("2.11.0", "b"), {**stored("1", "z"), "service": "cl2"}),
        end("deploy", {"service": "cl1", "error": "cl1 cl1-a: not serving"}, result="failed"),
        end("promote-standby", {"service": "cl1", "active": "cl1-b", "outage_seconds": 0.5, "outage_measured": True}),
        end("rollback", record("2.10.0", "a2")),
    ]
    assert [(r.image[-6:], r.config) for r in ran(log, "cl1")] == [("2.10.0", "a"), ("2.11.0", "b"),
                                                                    ("2.10.0", "a2")]  # fmt: skip


def test_rollback_reads_a_stored_line_through_its_type():
    """The line as an older nodeops wrote it (no secret_versions, no files: untyped then) reads as a Deployed record;
    a line that does not match (a result whose image is a number) is one line naming the entry, exit 1."""
    old = stored("2.10.0", "a")
    (got,) = ran([entry(json.loads(json.dumps(stored_end("deploy", old))))], "cl1")
    assert (got.image, got.digest, got.files, got.secret_versions) == (f"{REG}:2.10.0", "sha256:2.10.0", None, None)
    damaged = stored_end("deploy", {**old, "image": 7})
    with pytest.raises(OperationFailed) as err:
        entry(damaged, "s/prod/audit.jsonl on the bastion")
    message = str(err.value)
    assert "\n" not in message and err.value.exit_code == 1
    assert message.startswith(
        "s/prod/audit.jsonl on the bastion: the entry event end run 0123456789abcdef op "
        "deploy time 2026-11-30T10:00:00Z is not one this nodeops can read (results/0/"
    ), message


HISTORY = [record("2.10.0", "a"), record("2.11.0", "b"), record("2.11.0", "c")]


@pytest.mark.parametrize(
    ("running", "to", "expected"),
    [
        (("2.11.0", "c"), None, "b"),  # the newest that differs from what runs
        (("2.11.0", "b"), None, "c"),  # after rolling back, "previous" is the one rolled away from
        (None, None, "c"),  # nothing serves: the newest record
        (("2.11.0", "c"), "2.10.0", "a"),
        (("2.11.0", "c"), "2.11.0", "c"),  # --to the running version re-applies its newest record
    ],
)
def test_pick(running, to, expected):
    assert pick(HISTORY, running, to, "cl1").config == expected


@pytest.mark.parametrize(
    ("history", "running", "to", "message"),
    [
        (HISTORY, ("2.11.0", "c"), "2.9.0", "2.9.0 never ran according to the audit log (known: 2.10.0, 2.11.0)"),
        ([record("2.10.0", "a")], ("2.10.0", "a"), None, "nothing ran before what runs now"),
        ([], None, None, "(versions recorded: none); name one with --to VERSION"),
    ],
)
def test_pick_refuses_with_what_there_is(history, running, to, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        pick(history, running, to, "cl1")
    assert err.value.exit_code == 2


def test_target_service_pins_the_digest_that_ran_and_takes_the_variables_of_then():
    service = Service(name="cl1", role="chainlink", image=f"{REG}:2.11.0", runtime="docker",
                      variables={"LOG_LEVEL": "debug"}, secrets={}, nodes=())  # fmt: skip
    back = target_service(service, record("2.10.0", "info"))
    assert back.image == f"{REG}:2.10.0@sha256:2.10.0" and back.variables == {"LOG_LEVEL": "info"}
    assert target_service(service, record("2.10.0", "info"), pinned=False).image == f"{REG}:2.10.0"
    assert target_service(service, record("2.10.0", "info", digest=None)).image == f"{REG}:2.10.0"


A = Node("a", "10.0.0.1", 22, "active", (), "cl1")
B = Node("b", "10.0.0.2", 22, "standby", (), "cl1")


def on(version: str, config: str) -> Container:
    return Container("nodeops-cl1", True, "running", "sha256:x",
                     {"io.nodeops.version": version, "io.nodeops.config": config})  # fmt: skip


@pytest.mark.parametrize(
    ("seen", "running"),
    [
        ([NodeView(A, on("2.11.0", "c"), True), NodeView(B, on("2.11.0", "c"), False)], ("2.11.0", "c")),
        # the active answers 503 (its RPC is down) while it holds the lease: what it runs is what runs
        ([NodeView(A, on("2.11.0", "c"), False, ("HTTP 503",)), NodeView(B, on("2.11.0", "c"), False)],
         ("2.11.0", "c")),
        ([NodeView(A, on("2.11.0", "b"), False), NodeView(B, on("2.11.0", "c"), False, ("RPC",))],
         ("2.11.0", "c")),
        ([NodeView(A, on("2.11.0", "c"), False), NodeView(B, None, False, unreachable=CUT)], None),  # nobody active
        ([NodeView(A, on("2.11.0", "b"), True), NodeView(B, on("2.11.0", "c"), False, ("RPC",))], None),
    ],
    ids=["healthy", "unhealthy-a", "unhealthy-b", "nobody", "two"],
)  # fmt: skip
def test_what_runs_is_read_from_the_lease_holder_healthy_or_not(seen, running):
    assert running_on(seen) == running
    if running is not None:  # and the record rolled back to is the one before it, not what runs
        assert pick(HISTORY, running_on(seen), None, "cl1").config == "b"


@pytest.mark.parametrize(
    ("seen", "to", "there"),
    [
        # Issue 13 review: --to the version that runs did a needless handover onto a digest-pinned config hash
        ([NodeView(A, on("2.11.0", "c"), True), NodeView(B, on("2.11.0", "c"), False)], "2.11.0",
         "already at version 2.11.0: a runs it (config c), and the standby the same; nothing to roll back"),
        ([NodeView(A, on("2.11.0", "c"), False, ("RPC",)), NodeView(B, None, False, unreachable=CUT)], "2.11.0",
         "already at version 2.11.0: a runs it (config c); nothing to roll back"),  # the standby unreachable
        ([NodeView(A, on("2.11.0", "c"), True), NodeView(B, on("2.11.0", "b"), False)], "2.11.0", None),
        ([NodeView(A, on("2.11.0", "c"), True), NodeView(B, on("2.10.0", "a"), False)], "2.11.0", None),
        ([NodeView(A, on("2.11.0", "c"), True), NodeView(B, on("2.11.0", "c"), False)], "2.10.0", None),
        ([NodeView(A, on("2.11.0", "c"), True), NodeView(B, on("2.11.0", "c"), False)], None, None),
        ([NodeView(A, on("2.11.0", "c"), False), NodeView(B, on("2.11.0", "c"), False)], "2.11.0", None),
    ],
    ids=["both-on-it", "active-on-it-standby-unseen", "standby-other-config", "standby-other-version",
         "another-version", "no-to", "nobody-active"],
)  # fmt: skip
def test_rollback_to_what_already_runs_changes_nothing(seen, to, there):
    got = already_at(seen, to)
    assert (got is None) if there is None else (got is not None and got.startswith(there)), got


# -- the question names the target; a downgrade the database refuses is refused before asking -------------------
DIGEST = "sha256:6bc87626beba" + "0" * 52


@pytest.mark.parametrize(
    ("rec", "expected"),
    [
        (record("2.10.0", "c" * 64, digest=DIGEST),
         f"cl1: back to version 2.10.0 ({REG}:2.10.0@sha256:6bc87626beba, config cccccccccccc), standby first, "
         "one planned handover"),
        (record("2.10.0", "c" * 64, digest=None),
         f"cl1: back to version 2.10.0 ({REG}:2.10.0, config cccccccccccc), standby first, one planned handover"),
    ],
)  # fmt: skip
def test_the_question_names_version_image_and_config(rec, expected):
    assert question("cl1", rec, "c" * 64) == expected


@pytest.mark.parametrize(("recorded", "asked"), [("2.11.0", False), ("2.10.0", True), (None, True)])
def test_a_downgrade_is_refused_before_asking(monkeypatch, recorded, asked):
    import dataclasses
    import types

    from nodeops import deploy
    from nodeops import rollback as rb
    from nodeops.errors import Unsafe
    from nodeops.run import guards

    a = Node("a", "10.0.0.1", 22, "active", (), "cl1")
    service = Service("cl1", "chainlink", f"{REG}:2.11.0", "docker", {}, {}, (a,))
    current = types.SimpleNamespace(service=service, role=types.SimpleNamespace(activation="lease"), secrets={},
                                    redact=None)  # fmt: skip
    rec = record("2.10.0", "c" * 64, digest=DIGEST)
    monkeypatch.setattr(rb, "audit_log", lambda *_a, **_k: [end("deploy", rec)])
    no_container = {"a": NodeView(a, None, False)}
    monkeypatch.setattr(rb, "Observer", lambda *_a: types.SimpleNamespace(views=lambda: no_container))
    job = types.SimpleNamespace(service=rb.target_service(service, rec), role=None, profile="v2", secrets={},
                                rendered=types.SimpleNamespace(config_hash="c" * 64))  # fmt: skip
    monkeypatch.setattr(rb, "job_for", lambda *_a, **_k: job)
    monkeypatch.setattr(dataclasses, "replace", lambda obj, **_k: obj)  # the fakes above are not dataclasses
    monkeypatch.setattr(rb, "the_start", lambda started, _then, _record: (started, []))
    monkeypatch.setattr(guards, "recorded_version", lambda *_a: recorded)
    finishing = []  # the command a failure or a stop of the run names to carry it out again (ServiceChange.rerun)
    ran = {"service": "cl1", "rolled": True}
    monkeypatch.setattr(deploy.ServiceDeploy, "run", lambda self, **_k: finishing.append(self.rerun) or ran)
    monkeypatch.setattr(deploy.ServiceDeploy, "now", lambda _self: {"active": "a", "nodes": {"a": {"state": "serves"}}})
    inventory = types.SimpleNamespace(source="inventory/prod.yaml", environment="prod")
    questions = []
    report = lambda *_a, **_k: None  # noqa: E731
    if asked:
        result = rb.rollback(None, inventory, current, None, report, ask=questions.append)
        assert result == {"service": "cl1", "rolled": True, "now": {"active": "a", "nodes": {"a": {"state": "serves"}}}}
        assert questions == [rb.question("cl1", rec, "c" * 64)]
        assert finishing == [f"{program()} rollback --env prod --service cl1 --to 2.10.0"]  # never a deploy
    else:
        with pytest.raises(Unsafe) as err:
            rb.rollback(None, inventory, current, None, report, ask=questions.append)
        assert "older than 2.11.0" in str(err.value) and questions == []


# -- what a rollback really starts: the text that ran, today's secrets, the hash it labels ------------------------
def recorded_run(job, digest: str | None = DIGEST) -> Deployed:
    """The audit record a deploy of ``job`` leaves (ServiceDeploy.ran)."""
    from nodeops.job import recorded_texts

    return Deployed(service=job.service.name, changed=True, active="a", image=job.service.image, digest=digest,
                    config=job.rendered.config_hash, variables=dict(job.service.variables),
                    secret_versions=dict(job.rendered.secret_versions), files=recorded_texts(job))  # fmt: skip


def targets(job, tmp_path, record: Deployed):
    """(the target as today renders it, pinned; the same unpinned), from ``tmp_path / "t.yaml"`` as it is now."""
    from nodeops.inventory import load_inventory
    from nodeops.job import job_for

    inventory = load_inventory(tmp_path / "t.yaml")
    return tuple(job_for(inventory, target_service(job.service, record, pinned), secrets=job.secrets)
                 for pinned in (True, False))  # fmt: skip


def test_a_rollback_starts_the_text_that_ran_and_announces_the_hash_it_starts(job, tmp_path):
    """The version rolled away from came with an override of config.toml in the operator's roles/: rolling back
    starts the text that ran then (not today's override), says that today's templates differ, and announces and
    labels the config hash it really starts (the digest pin is in it), not the record's."""
    from nodeops.job import input_labels
    from nodeops.rollback import announce, the_start

    rec = recorded_run(job)
    override_config(tmp_path, "SecureCookies = false", "SecureCookies = true")
    pinned, then = targets(job, tmp_path, rec)
    assert b"SecureCookies = true" in pinned.rendered.files["config.toml"].data  # so the checks below can fail
    started, notes = the_start(pinned, then, rec)
    assert started.rendered.files["config.toml"].data == job.rendered.files["config.toml"].data
    assert started.rendered.files["secrets.toml"] is pinned.rendered.files["secrets.toml"]  # today's secrets
    assert notes == ["note: today's templates render config.toml differently from what ran then: the text that ran "
                     "is started"]  # fmt: skip
    config = started.rendered.config_hash
    assert config != rec.config  # the image reference is in the hash: pinned by digest now
    assert json.loads(input_labels(started)["files"])["config.toml"] == rec.files["config.toml"]
    assert announce(rec, started) == (
        f"rolling back to {rec.image} (config {config[:12]}, digest {DIGEST}); it "
        f"ran as config {rec.config[:12]}, now with the image pinned by its digest"
    )


@pytest.mark.parametrize(
    ("edit", "files", "note"),
    [
        (None, True, None),  # nothing changed since: today's rendering is the text that ran, no line
        (None, False, None),  # an older record, templates unchanged: nothing to say
        ("override", False, "note: today's templates or defaults differ from those it ran on, and the audit record "
                            "holds no text of its files (an older nodeops): its files are today's templates' "
                            "rendering of the variables of then"),
    ],
    ids=["same", "older-record-same", "older-record-override"],
)  # fmt: skip
def test_what_a_rollback_says_of_the_templates(job, tmp_path, edit, files, note):
    from nodeops.rollback import the_start

    rec = recorded_run(job)
    if not files:
        rec = rec.model_copy(update={"files": None})  # a record of an older nodeops
    if edit:
        override_config(tmp_path, "SecureCookies = false", "SecureCookies = true")
    pinned, then = targets(job, tmp_path, rec)
    started, notes = the_start(pinned, then, rec)
    assert notes == ([note] if note else [])
    if files:  # the text that ran, whatever today's templates say
        assert started.rendered.files["config.toml"].data == job.rendered.files["config.toml"].data
    else:  # nothing recorded: today's rendering, and its hash is the one started
        assert started is pinned


def test_a_rollback_to_a_rollbacks_record_says_nothing_changed_when_nothing_did(job, tmp_path):
    """review15 F6: a rollback records the config hash computed on the digest-pinned image it started; rolling
    back to that record recomputed the hash on the unpinned reference, so it never matched and the note "today's
    templates or defaults differ ... changed since" showed though nothing had changed."""
    from nodeops.rollback import announce, the_start

    first = targets(job, tmp_path, recorded_run(job))[0]  # what a first rollback started: pinned by digest
    rec = recorded_run(first)  # its record: the pinned image, the config hash computed on it
    assert "@" in rec.image  # so the test can fail
    pinned, then = targets(job, tmp_path, rec)
    started, notes = the_start(pinned, then, rec)
    assert notes == []
    assert started.rendered.config_hash == rec.config
    assert announce(rec, started) == f"rolling back to {rec.image} (config {rec.config[:12]}, digest {DIGEST})"


def test_the_announcement_names_the_secrets_whose_version_moved_never_a_value(job):
    from nodeops.rollback import announce

    rec = recorded_run(job, digest=None)  # it ran on another version of db:
    rec = rec.model_copy(
        update={"secret_versions": {**job.rendered.secret_versions, "db": "v-then"}, "config": "f" * 64}
    )
    line = announce(rec, job)
    assert line.endswith(f"; it ran as config {'f' * 12}, now with today's secrets (db moved since)"), line
    assert not any(s.reveal() in line for s in job.secrets.values() if len(s.reveal()) >= 16)


# -- per activation model (issue 15): what runs now, already there, the question -----------------------------------
C = Node("c", "10.0.0.3", 22, "standby", (), "cl1")


def hot(version: str, config: str) -> Container:
    c = on(version, config)
    return Container(c.name, True, c.status, c.image_id, {**c.labels, "io.nodeops.hot": "true"})


KEYS_PAIR = [NodeView(A, on("2.11.0", "c"), True), NodeView(B, hot("2.11.0", "c"), True)]  # b holds the keys
RELAYS = [NodeView(n, on("2.11.0", "c"), True) for n in (A, B, C)]


@pytest.mark.parametrize(
    ("activation", "seen", "running"),
    [
        ("keys", KEYS_PAIR, ("2.11.0", "c")),  # both answer: the holder's is what runs (it was: nobody, so no undo)
        ("keys", [NodeView(A, on("2.11.0", "c"), True), NodeView(B, on("2.11.0", "c"), True)], None),  # no holder
        ("all", RELAYS, ("2.11.0", "c")),  # every node serves, all on one version: that is what runs
        ("all", [RELAYS[0], NodeView(B, on("2.11.0", "c"), False), NodeView(C, None, False)], ("2.11.0", "c")),
    ],
    ids=["keys-holder", "keys-no-holder", "all-serving", "all-one-silent-one-empty"],
)  # fmt: skip
def test_what_runs_now_is_read_by_the_roles_model(activation, seen, running):
    """Issue 15: fab rollback under keys or all went back to what runs now and exited 0 (running_on found no one
    lease holder, so pick took the newest record: the running one). Now the record rolled back to is the one before
    what runs."""
    assert running_on(seen, activation) == running
    if running is not None:
        assert pick(HISTORY, running_on(seen, activation), None, "cl1").config == "b"


def test_a_mixed_all_service_is_refused_naming_what_each_node_runs_and_the_fix():
    mixed = [RELAYS[0], NodeView(B, on("2.10.0", "a"), True), RELAYS[2]]
    with pytest.raises(InvalidInput) as refused:
        running_on(mixed, "all")
    assert refused.value.exit_code == EXIT_INVALID and "\n" not in str(refused.value)
    assert str(refused.value) == (
        "cl1: its nodes run different versions or configurations (a runs 2.11.0 config c, b runs 2.10.0 config a, "
        "c runs 2.11.0 config c): there is no one version to roll back from; name the version every node goes to "
        "with --to VERSION"
    )
    assert running_on(mixed, "all", "2.10.0") is not None  # --to names the target: every node goes to it
    assert already_at(mixed, "2.11.0", "all") is None  # b is not on it: the rolling path brings it there


@pytest.mark.parametrize(
    ("activation", "seen", "there"),
    [
        ("keys", KEYS_PAIR, "already at version 2.11.0: b runs it (config c), and the standby the same; nothing"),
        ("all", RELAYS, "already at version 2.11.0: a, b, c run it (config c); nothing to roll back"),
    ],
)
def test_already_there_per_model(activation, seen, there):
    assert (already_at(seen, "2.11.0", activation) or "").startswith(there)


@pytest.mark.parametrize(
    ("activation", "how"),
    [
        ("lease", "standby first, one planned handover"),
        ("keys", "standby first, then the active in place with its hot keys, no handover"),
        ("all", "every node, one at a time, each awaited serving, never all down"),
    ],
)
def test_the_question_says_how_the_roles_model_rolls_back(activation, how):
    """Issue 15: the question said "standby first, one planned handover" whatever the model (all has no standby)."""
    rec = record("2.10.0", "c" * 64, digest=None)
    assert question("cl1", rec, "c" * 64, activation) == (
        f"cl1: back to version 2.10.0 ({REG}:2.10.0, config cccccccccccc), {how}"
    )


@pytest.mark.parametrize(
    ("activation", "seen", "how"),
    [
        ("keys", KEYS_PAIR, "standby first, then the active in place with its hot keys, no handover"),
        ("all", RELAYS, "every node, one at a time, each awaited serving, never all down"),
    ],
)
def test_a_rollback_under_keys_or_all_goes_back_to_the_version_before_what_runs(monkeypatch, activation, seen, how):
    """Issue 15: it went back to what runs now (2.11.0: the newest record, no one lease holder being found) and
    exited 0; it goes back to 2.10.0, and asks the question of its model. The change itself runs through deploy's
    path (ServiceDeploy.run), whose plan and runner are the model's (under all: every node, AllRunner)."""
    import dataclasses
    import types

    from nodeops import deploy
    from nodeops import rollback as rb
    from nodeops.run import guards
    from nodeops.run.rolling import AllRunner
    from nodeops.run.runner import ServiceRunner

    service = Service("cl1", "chainlink", f"{REG}:2.11.0", "docker", {}, {}, tuple(s.node for s in seen))
    current = types.SimpleNamespace(service=service, role=types.SimpleNamespace(activation=activation), secrets={},
                                    redact=None)  # fmt: skip
    monkeypatch.setattr(rb, "audit_log", lambda *_a, **_k: [end("deploy", record("2.10.0", "a")),
                                                            end("deploy", record("2.11.0", "c"))])  # fmt: skip
    monkeypatch.setattr(rb, "Observer", lambda *_a: types.SimpleNamespace(views=lambda: {s.node.name: s for s in seen}))
    job = types.SimpleNamespace(service=service, role=current.role, profile="v2", secrets={},
                                rendered=types.SimpleNamespace(config_hash="c" * 64, secret_versions={}))  # fmt: skip
    monkeypatch.setattr(rb, "job_for", lambda *_a, **_k: job)
    monkeypatch.setattr(dataclasses, "replace", lambda obj, **_k: obj)  # the fakes above are not dataclasses
    monkeypatch.setattr(rb, "the_start", lambda job, _then, _record: (job, []))
    monkeypatch.setattr(guards, "recorded_version", lambda *_a: None)
    monkeypatch.setattr(deploy.ServiceDeploy, "run", lambda self, **_k: {"runner": type(self.model.runner(self))})
    monkeypatch.setattr(deploy.ServiceDeploy, "now", lambda _self: {})
    questions = []
    inventory = types.SimpleNamespace(source="i.yaml", environment="t")
    result = rb.rollback(None, inventory, current, None, lambda *_a, **_k: None, ask=questions.append)
    assert result["runner"] is (AllRunner if activation == "all" else ServiceRunner)  # all: every node, in turn
    (asked,) = questions
    assert asked.startswith("cl1: back to version 2.10.0 (") and asked.endswith(f", config cccccccccccc), {how}")
