"""The pure parts of "a failed change never leaves a pair worse": what a container records of its inputs and how
they are rendered again, secret versions in the plan, a lease that would move, where a run may stop, and the
signals that ask it to."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import types

import pytest

from nodeops import job as job_module
from nodeops.deploy import ServiceDeploy
from nodeops.edges.postgres import LoginRefused
from nodeops.errors import EXIT_UNSAFE, OperationFailed, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import load_inventory
from nodeops.job import changed_inputs, input_labels, job_for, restore_job
from nodeops.plan import (
    SINGLE,
    ServicePlan,
    Step,
    lease_moves,
    older_than,
    replaces_a_standby,
    restart_image,
    secret_changes,
)
from nodeops.render import render
from nodeops.run import guards as guards_module
from nodeops.run import restore as restore_module
from nodeops.run.guards import Guards
from nodeops.run.runner import stop_action
from nodeops.secrets import Secret
from nodeops.stopping import StopRequests
from tests.conftest import override_config


def container_of(job, **labels) -> Container:
    recorded = {"config": job.rendered.config_hash, **input_labels(job), **labels}
    return Container(name="nodeops-cl", running=True, status="running", image_id="sha256:1", image=job.service.image,
                     labels={f"io.nodeops.{k}": v for k, v in recorded.items() if v is not None})  # fmt: skip


# ---------------------------------------------------------------- what a container records, rendered again


def test_the_labels_record_the_services_variables_and_the_version_of_each_secret_the_files_use(job):
    labels = input_labels(job)
    assert json.loads(labels["variables"]) == {"DATABASE_HOST": "10.0.0.9", "DATABASE_NAME": "cl"}
    assert set(json.loads(labels["secrets"])) == {"db", "db_user", "keystore", "api_email", "api_password"}
    passwords = [v.reveal() for v in job.secrets.values() if len(v.reveal()) >= 16]  # "cl", the user, is a name too
    assert passwords and not any(p in "".join(labels.values()) for p in passwords)


def test_the_labels_record_the_text_of_the_plain_files_only(job):
    texts = json.loads(input_labels(job)["files"])
    assert texts == {"config.toml": job.rendered.files["config.toml"].data.decode()}  # secrets.toml, .api: never
    assert not any(f.secret for name, f in job.rendered.files.items() if name in texts)


def test_a_plain_file_that_holds_a_secret_form_is_never_recorded(job, tmp_path):
    """A plain variable that equals a masked secret's value (a webhook URL pasted as LOG_LEVEL): config.toml then
    holds the value, so its text is kept out of the labels and the audit record, and restore_job falls back to
    today's templates for it."""
    sentinel = "RecSentinel-0xLabel-q9q9q9"
    service = dataclasses.replace(job.service, variables={**job.service.variables, "LOG_LEVEL": sentinel})
    leaky = job_for(load_inventory(tmp_path / "t.yaml"), service, secrets=job.secrets,
                    masked=[Secret(sentinel, "hook")])  # fmt: skip
    assert sentinel.encode() in leaky.rendered.files["config.toml"].data  # so the check below can fail
    labels = input_labels(leaky)
    assert json.loads(labels["files"]) == {} and sentinel not in labels["files"]  # (variables: the operator's own)
    again = restore_job(load_inventory(tmp_path / "t.yaml"), leaky, "a", container_of(leaky))
    assert again.rendered.config_hash == leaky.rendered.config_hash  # today's templates are those it ran on


def test_a_container_is_restarted_on_the_text_it_read_when_the_templates_changed_since(job, tmp_path):
    container = container_of(job)
    override_config(tmp_path, "SecureCookies = false", "SecureCookies = true")
    today = job_module.prepare(load_inventory(tmp_path / "t.yaml"))[0]
    assert today.rendered.config_hash != job.rendered.config_hash  # so the check below can fail
    then = restore_job(load_inventory(tmp_path / "t.yaml"), today, "a", container)
    assert then.rendered.files["config.toml"].data == job.rendered.files["config.toml"].data
    assert then.rendered.config_hash == job.rendered.config_hash
    forged = container_of(job, files=json.dumps({"config.toml": "RootDir = '/elsewhere'\n"}))
    inexact = restore_job(load_inventory(tmp_path / "t.yaml"), today, "a", forged)  # a record that is not what ran
    assert inexact.rendered.files["config.toml"].data == today.rendered.files["config.toml"].data


def test_a_container_is_rendered_again_on_its_own_variables_not_todays(job, tmp_path):
    then = restore_job(load_inventory(tmp_path / "t.yaml"), job, "a", container_of(job))
    assert then.rendered.config_hash == job.rendered.config_hash
    other = dataclasses.replace(job.service, variables={**job.service.variables, "DATABASE_NAME": "other"})
    today = dataclasses.replace(job, service=other)  # the inventory changed since the container started
    again = restore_job(load_inventory(tmp_path / "t.yaml"), today, "a", container_of(job))
    assert again.service.variables["DATABASE_NAME"] == "cl" and again.rendered.config_hash == job.rendered.config_hash
    assert b"/cl?" in again.rendered.files["secrets.toml"].data


PINNED = "reg:5000/chainlink:2.10.0@sha256:" + "d" * 64


@pytest.mark.parametrize("recorded", [True, False], ids=["image-label", "older-nodeops"])
def test_a_container_podman_reports_without_its_tag_is_rendered_again_on_its_pinned_reference(job, tmp_path, recorded):
    """Podman's Config.Image of ``repo:2.10.0@sha256:...`` is ``repo@sha256:...``; the config hash covers the
    reference, so the tag must come from what nodeops recorded (the image label; else the version label)."""
    pinned = dataclasses.replace(job.service, image=PINNED)
    ran = dataclasses.replace(job, service=pinned, rendered=render(job.role, job.profile, pinned, job.secrets))
    engine = container_of(ran, **({} if recorded else {"image": None}), version="2.10.0")
    engine = dataclasses.replace(engine, image=PINNED.replace(":2.10.0", ""))
    then = restore_job(load_inventory(tmp_path / "t.yaml"), ran, "a", engine)
    assert then.service.image == PINNED and then.rendered.config_hash == ran.rendered.config_hash


def test_a_secret_reference_added_since_is_left_out_of_the_old_inputs(job, tmp_path):
    """The inventory gained an RPC URL secret after the container started: its inputs are rendered again without
    it (the files it used, and no other), so the restart is the very container it was, not the change."""
    refs = {**job.service.secrets, "eth_url": job.service.secrets["db"]}
    secrets = {**job.secrets, "eth_url": Secret("wss://rpc.example.net/v3/key0123456789", "eth_url")}
    today = dataclasses.replace(job, service=dataclasses.replace(job.service, secrets=refs), secrets=secrets)
    assert render(job.role, job.profile, today.service, secrets).config_hash != job.rendered.config_hash
    then = restore_job(load_inventory(tmp_path / "t.yaml"), today, "a", container_of(job))
    assert "eth_url" not in then.secrets and then.rendered.config_hash == job.rendered.config_hash


def test_a_template_cannot_compare_a_secret():
    """`{% if secrets.db == "guess" %}` in a plain file would let the config hash confirm a guess: refused."""
    from nodeops.secrets import SecretLeak, strict_rendering

    with strict_rendering(), pytest.raises(SecretLeak):
        _ = Secret("value-1234", "db") == "value-1234"
    assert Secret("value-1234", "db") == Secret("value-1234", "other")  # outside a template: by value


@pytest.mark.parametrize("missing", ["variables", "secrets"])
def test_a_container_that_records_no_inputs_is_refused_naming_the_flag(job, tmp_path, missing):
    with pytest.raises(Unsafe, match="records none .*--allow-inexact-restore"):
        restore_job(load_inventory(tmp_path / "t.yaml"), job, "a", container_of(job, **{missing: None}))


def test_a_recorded_version_the_env_backend_cannot_read_is_refused(job, tmp_path):
    recorded = json.dumps({**json.loads(input_labels(job)["secrets"]), "keystore": "v-gone"})
    with pytest.raises(Unsafe, match=r"\(keystore v-gone\) are not of the secret backend .* \(ci, kind env\)"):
        restore_job(load_inventory(tmp_path / "t.yaml"), job, "a", container_of(job, secrets=recorded))


# ---------------------------------------------------------------- the config hash and secret versions


def with_secret(job, name: str, value: str, version: str | None):
    secrets = {**job.secrets, name: Secret(value, name, version)}
    return render(job.role, job.profile, job.service, secrets)


@pytest.mark.parametrize(
    ("value", "version", "same"),
    [
        ("Bb2!bbbbbbbbbbbbbbbb", None, True),  # as the job has it
        ("Zz9!zzzzzzzzzzzzzzzz", None, True),  # another value, no version: the hash cannot tell (env backend)
        ("Bb2!bbbbbbbbbbbbbbbb", "v2", False),  # another version: a change, even with the same value
    ],
    ids=["same", "value-only", "version"],
)
def test_the_config_hash_covers_secret_versions_never_values(job, value, version, same):
    got = with_secret(job, "keystore", value, version)
    assert (got.config_hash == job.rendered.config_hash) is same
    assert got.secret_versions["keystore"] == version


def test_a_secret_the_files_do_not_use_is_not_in_the_versions(job):
    secrets = {**job.secrets, "db_admin": Secret("Admin1!admin-admin-admin", "db_admin", "v9")}
    got = render(job.role, job.profile, job.service, secrets)
    assert "db_admin" not in got.secret_versions and got.config_hash == job.rendered.config_hash


# ---------------------------------------------------------------- plan: moved versions, a moving lease


def state(name: str, versions: dict | None) -> NodeView:
    labels = {} if versions is None else {"io.nodeops.secrets": json.dumps(versions)}
    node = type("N", (), {"name": name})()
    return NodeView(node, Container(name="c", running=True, status="running", image_id="i", labels=labels), True)


@pytest.mark.parametrize(
    ("recorded", "wanted", "lines"),
    [
        ({"db": "v1"}, {"db": "v1"}, []),
        ({"db": "v1"}, {"db": "v2"}, ["secret db: version v1 on a -> v2"]),
        ({"db": "1234567890ab"}, {"db": "abcdef123456"}, ["secret db: version 12345678 on a -> abcdef12"]),
        (None, {"db": "v2"}, []),  # started by an older nodeops: nothing to compare
        ({"db": None}, {"db": None}, []),  # env backend
        ({}, {"db": "v2"}, []),  # a secret the container's files did not use
    ],
    ids=["same", "moved", "cut", "no-label", "env", "new-secret"],
)
def test_secret_changes_name_the_secret_and_versions_never_a_value(recorded, wanted, lines):
    assert secret_changes([state("a", recorded)], wanted) == lines


@pytest.mark.parametrize(
    ("running", "wanted", "moves"),
    [
        ({"DATABASE_NAME": "cl1"}, {"DATABASE_NAME": "cl1"}, []),
        ({"DATABASE_NAME": "cl1"}, {"DATABASE_NAME": "cl1r"}, ["DATABASE_NAME cl1 -> cl1r"]),
        (
            {"DATABASE_HOST": "10.0.0.2", "DATABASE_PORT": 5432},
            {"DATABASE_HOST": "10.0.0.3", "DATABASE_PORT": 5432},
            ["DATABASE_HOST 10.0.0.2 -> 10.0.0.3"],
        ),  # fmt: skip
        ({"LOG_LEVEL": "info"}, {"LOG_LEVEL": "debug"}, []),
        ({"DATABASE_PORT": 5432}, {"DATABASE_PORT": "5432"}, []),  # as the templates write it: no move
    ],
    ids=["same", "database", "host", "unrelated", "quoted-port"],
)
def test_lease_moves(running, wanted, moves):
    assert lease_moves(("DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME"), running, wanted) == moves


@pytest.mark.parametrize(
    ("tag", "recorded", "older"),
    [
        ("2.10.0", "2.11.0", True),
        ("2.11.0", "2.11.0", False),
        ("2.12.0", "2.11.0", False),
        ("2.9.9", "2.10.0", True),  # numbers, not text: "2.9.9" > "2.10.0" as strings
        ("2.10.0", "2.11.0@abc123", True),  # a version with its commit
        ("v2.10.0-rc1", "2.10.0", False),  # the same release
        ("latest", "2.11.0", False),  # no version in the tag: the node's own check still runs
        ("2.10.0", None, False),  # nothing recorded: a fresh database
    ],
)
def test_an_image_older_than_the_databases_version_is_told_apart(tag, recorded, older):
    assert older_than(tag, recorded) is older


@pytest.mark.parametrize(
    ("raised", "recorded", "outcome"),
    [
        (LoginRefused("cl: cannot read the node version in 10.0.0.9:5432/cl: FATAL:  password authentication "
                      'failed for user "cl"'), None, "refused"),
        (OperationFailed("cl: cannot read the node version in 10.0.0.9:5432/cl: timeout expired"), None, "warned"),
        (None, "2.11.0", "refused"),  # the image (2.11.0-ish tags are newer) older than the database's: refused
        (None, None, "passed"),
    ],
    ids=["login-refused", "unreachable", "older-image", "fine"],
)  # fmt: skip
def test_a_database_that_refuses_the_runs_credentials_is_refused_before_anything_changes(
    job, monkeypatch, raised, recorded, outcome
):
    """Guards.database_version and refuse_downgrade (nodeops.run.guards), as run() calls them (the login itself is
    the lab's: tests/e2e/test_rotate.py)."""

    def read(_fleet, _job):
        if raised is not None:
            raise raised
        return recorded

    monkeypatch.setattr(guards_module, "recorded_version", read)
    said: list[str] = []
    run = ServiceDeploy(dataclasses.replace(job, service=dataclasses.replace(job.service, image="img:2.10.0")),
                        None, lambda _s, _n, message, **_d: said.append(message))  # fmt: skip
    if outcome == "refused":
        with pytest.raises(Unsafe) as err:
            Guards(run).refuse_downgrade(Guards(run).database_version())
        text = str(err.value)
        assert err.value.exit_code == EXIT_UNSAFE and not job.redact.leaks(text)
        if raised is not None:
            assert "the database refuses the credentials this run would give the nodes (services.cl.secrets.db_user " \
                   "(backend ci: 'cl/db' key 'username') and services.cl.secrets.db (backend ci: 'cl/db' key " \
                   "'password')): a node started on them could not boot; " \
                   "nothing was changed" in text, text  # fmt: skip
        else:
            assert "older than 2.11.0" in text
        return
    Guards(run).refuse_downgrade(Guards(run).database_version())
    assert (said[0] if said else None) == (None if outcome == "passed" else
        f"warning: {raised}; this run's database credentials and the image's version are not checked against the "
        "database")  # fmt: skip


# ---------------------------------------------------------------- after a failed change: which image the old inputs get


@pytest.mark.parametrize(
    ("previous", "change", "before", "now", "image"),
    [
        ("2.10.0", "2.11.0", "2.10.0", "2.11.0", "change"),  # the new node migrated the database, then failed
        ("2.10.0", "2.11.0", "2.10.0", "2.10.0", "previous"),  # it failed before migrating: equal, as it was
        ("2.10.0", "2.10.0", "2.10.0", "2.10.0", "previous"),  # a configuration change: one image
        ("2.11.0", "2.11.0", "2.11.0", "2.11.0", "previous"),
        ("2.10.0", "2.11.0", "2.10.0", None, "previous"),  # unreadable, or no version table: the node's own check
        ("2.10.0", "2.11.0", None, None, "previous"),
        ("2.10.0", "2.11.0", None, "2.11.0", "change"),  # not read before (promote, rotate), newer now
        ("latest", "2.11.0", None, "2.11.0", "previous"),  # ... with no version to judge by: as it was
        ("2.10.0", "2.11.0", "2.10.0", "2.11.0@abc1234", "change"),  # a version with its commit
        ("2.10.0", "2.11.0", "2.10.0", "2.12.0", "neither"),  # newer than both images: nothing here can run
        ("latest", "2.11.0", "2.10.0", "2.11.0", "change"),  # no version in the previous tag, the database moved
        ("latest", "2.11.0", "2.10.0", "2.10.0", "previous"),  # ... and did not: it ran on that database
        ("2.10.0", "latest", "2.10.0", "2.11.0", "change"),  # the change's tag names none but moved the database
        ("2.10.0", "latest", "2.11.0", "2.11.0", "neither"),  # it did not move it: nothing says it runs there
        ("2.10.0", "2.11.0", "dev", "dev", "previous"),  # the database's version has no number, unmoved
        ("2.12.0", "2.11.0", "2.11.0", "2.11.0", "previous"),  # the previous image is the newer one
    ],
    ids=["newer-db", "equal-db", "config-only", "config-only-newer", "unknown-db", "unknown-both",
         "unknown-before", "unknown-before-untagged", "with-commit", "newer-than-both", "untagged-previous-moved",
         "untagged-previous-unmoved", "untagged-change-moved", "untagged-change-unmoved", "db-version-no-number",
         "previous-newer"],
)  # fmt: skip
def test_the_old_inputs_go_back_on_the_image_the_database_now_runs(previous, change, before, now, image):
    assert restart_image(previous, change, before, now) == image


@pytest.mark.parametrize(
    ("now", "inexact", "pulled", "outcome", "note"),
    [
        ("2.10.0", False, True, "previous", None),
        (None, False, True, "previous", None),
        ("2.11.0", False, True, "change", "the database was migrated to 2.11.0 by smartcontract/chainlink:2.11.0 and "
         "2.10.0 refuses to run on it, so the previous inputs went back on 2.11.0 (back to 2.10.0 only with the "
         "database restored from before); fix forward: correct variable ROOT_DIR in the inventory, then deploy"),
        ("2.11.0", True, True, "stopped", "the database was migrated to 2.11.0 by smartcontract/chainlink:2.11.0: "
         "2.10.0, the previous image, cannot run on it and its inputs are unknown (--allow-inexact-restore), so it "
         "was not started again; the way out is forward: correct what the change changed in the inventory, then "
         "deploy"),
        ("2.11.0", False, False, "stopped", "this run pulled no image to start it on"),
        ("2.12.0", False, True, "stopped", "neither can 2.11.0, this run's image"),
    ],
    ids=["unmoved", "unreadable", "migrated", "migrated-inexact", "migrated-not-pulled", "newer-than-both"],
)  # fmt: skip
def test_a_failed_upgrade_that_migrated_the_database_restarts_the_old_inputs_on_the_new_image(
    job, tmp_path, monkeypatch, now, inexact, pulled, outcome, note
):
    """ServiceDeploy.previous_on, with the database's version given: the inputs a node's previous container goes back
    on, and the fix forward the run's message then names (the restart itself is the lab's: tests/e2e/test_restore)."""
    monkeypatch.setattr(restore_module, "recorded_version", lambda _fleet, _job: now)
    inventory = load_inventory(tmp_path / "t.yaml")
    change = job_for(inventory, dataclasses.replace(job.service, image="smartcontract/chainlink:2.11.0",
                     variables={**job.service.variables, "ROOT_DIR": "/root/cl"}), secrets=job.secrets)  # fmt: skip
    said: list[str] = []
    run = ServiceDeploy(change, types.SimpleNamespace(inventory=inventory), lambda _s, _n, m, **_d: said.append(m))
    run.recorded, run.pulled = "2.10.0", pulled
    run.ran_on["a"] = change if inexact else job
    got = run.previous_on("a", container_of(job))  # the previous container: 2.10.0, whatever its inputs
    if outcome == "previous":
        assert got is run.ran_on["a"] and not run.forward and not run.stuck and not said
        return
    (forward,) = run.forward
    assert note in forward, forward
    if outcome == "stopped":
        assert got is None and run.stuck
        return
    assert not run.stuck and got.service.image == "smartcontract/chainlink:2.11.0"
    assert got.service.variables == job.service.variables and dict(got.secrets) == dict(job.secrets)
    assert got.rendered.secret_versions == job.rendered.secret_versions
    assert b"/root/cl" not in got.rendered.files["config.toml"].data  # its own inputs, not the change's


@pytest.mark.parametrize(
    ("variables", "secret", "named"),
    [
        ({}, None, []),
        ({"ROOT_DIR": "/root/cl"}, None, ["variable ROOT_DIR"]),
        ({"ROOT_DIR": "/root/cl", "LOG_LEVEL": "debug"}, None, ["variable LOG_LEVEL", "variable ROOT_DIR"]),
        ({}, "keystore", ["secret keystore"]),
    ],
    ids=["image-only", "one-variable", "two-variables", "a-secret-version"],
)
def test_the_fix_forward_names_what_the_change_changed_never_a_value(job, tmp_path, variables, secret, named):
    inventory = load_inventory(tmp_path / "t.yaml")
    secrets = dict(job.secrets)
    if secret:
        secrets[secret] = Secret("Other-value-0123456789", secret, "v2")
    change = job_for(inventory, dataclasses.replace(job.service, image="smartcontract/chainlink:2.11.0",
                     variables={**job.service.variables, **variables}), secrets=secrets)  # fmt: skip
    assert changed_inputs(job, change) == named


# ---------------------------------------------------------------- where a run may stop


ROLLING = ServicePlan("cl", (Step("replace", "b"), Step("await-waiting", "b"), Step("handover", "a", to="b"),
                             Step("replace", "a"), Step("await-waiting", "a")), "rolling")  # fmt: skip
FRESH = ServicePlan("cl", (Step("replace", "a"), Step("await-serving", "a"), Step("replace", "b"),
                           Step("await-waiting", "b")), "fresh")  # fmt: skip


STANDBY_ONLY = ServicePlan("cl", (Step("replace", "b"), Step("await-waiting", "b")), "standby only")
ACTIVE_ONLY = ServicePlan("cl", (Step("handover", "a", to="b"), Step("replace", "a"), Step("await-waiting", "a")),
                          "active only")  # fmt: skip


@pytest.mark.parametrize(
    ("plan", "actions"),
    [
        (ROLLING, ["stop", "undo", "undo", "restart", None]),
        (STANDBY_ONLY, ["stop", "undo"]),
        (ACTIVE_ONLY, ["stop", "restart", None]),
        (FRESH, ["stop", None, "stop", None]),
    ],
    ids=["rolling", "standby-only", "active-only", "fresh"],
)
def test_a_stop_before_the_handover_undoes_the_standby_and_one_after_it_stops_there(plan, actions):
    """Issue 13 rv7 #6 and #7: a stop before the handover put nothing back (a mixed pair promote-standby refuses),
    and one during the handover went on to replace the old active. Now: the replaced standby goes back ("undo")
    while the old active still serves; just after a handover the old active is started again as the standby
    ("restart"); inside the old active's replace the run goes on (None); a fresh start stops before its next node."""
    assert [stop_action(plan, i) for i in range(len(plan.steps))] == actions


SINGLE_NODE = ServicePlan("cl", (Step("replace", "a", SINGLE), Step("await-serving", "a")), "single")


@pytest.mark.parametrize(
    ("plan", "checked"),
    [(ROLLING, [True, False, False, True, False]), (FRESH, [True, False, True, False]), (SINGLE_NODE, [False, False])],
    ids=["rolling", "fresh", "single-node"],
)
def test_every_replace_of_a_pairs_node_first_checks_it_does_not_hold_the_lease(plan, checked):
    """The standby (and the old active once it handed over) must not answer when it is replaced: one that does took
    over since the plan. A single node serves by design when it is replaced; a handover is checked by its own wait."""
    assert [replaces_a_standby(step) for step in plan.steps] == checked


def _child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=30)


def test_first_signal_asks_to_stop_the_second_is_refused_the_third_ends_the_process():
    """In a child process: a third signal must end it (worker threads cannot be interrupted), with SIGKILL."""
    res = _child("""
        import os, signal, sys, time
        from nodeops.stopping import StopRequests
        notes = []
        with StopRequests(notes.append) as stop:
            assert not stop.is_set()
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.requested.wait(5)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(50):
                if len(notes) == 2:
                    break
                time.sleep(0.1)
            print(repr(notes), flush=True)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        print("still alive", flush=True)
    """)
    assert res.returncode == -signal.SIGKILL, (res.returncode, res.stdout, res.stderr)
    notes = eval(res.stdout.splitlines()[0])  # noqa: S307 - the child's repr of a list of str
    assert notes[0].startswith("SIGTERM: stopping at the next safe point"), notes  # reported by its own thread,
    assert notes[1].startswith("SIGINT: already stopping"), notes  # never from the handler (see stopping)
    assert "still alive" not in res.stdout


def test_a_signal_the_kernel_gives_a_worker_thread_is_seen_while_the_main_thread_waits_on_it():
    """The CI failure behind this: `fab deploy` waits in the main thread on its service workers (no timeout);
    a SIGINT delivered to a worker thread ran its Python handler only once the run had ended, so the deploy
    finished (exit 0) instead of stopping before the handover. Here the worker itself takes the signal."""
    res = _child("""
        import signal, threading, time
        from nodeops.stopping import StopRequests
        seen = []
        def worker():
            time.sleep(0.3)  # the main thread is in join() by then
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            for _ in range(50):  # the flag, set without the main thread
                if stop.is_set():
                    break
                time.sleep(0.1)
            seen.append(stop.is_set())
        with StopRequests(lambda line: None) as stop:
            t = threading.Thread(target=worker)
            t.start()
            t.join()  # the main thread blocked, as on a ThreadPoolExecutor's result
        print(seen)
    """)
    assert res.returncode == 0 and res.stdout.strip() == "[True]", (res.returncode, res.stdout, res.stderr)


def test_leaving_the_block_gives_the_signals_and_the_wakeup_fd_back():
    res = _child("""
        import signal
        from nodeops.stopping import StopRequests
        before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        with StopRequests(lambda line: None):
            pass
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
        assert signal.set_wakeup_fd(-1) == -1
        print("ok")
    """)
    assert res.stdout.strip() == "ok", res.stderr


def test_a_signal_that_comes_while_the_note_of_the_last_one_is_written_does_not_deadlock():
    """The handler runs between two bytecodes of the main thread, maybe inside a lock that thread holds. Here the
    note takes a non-reentrant lock and, holding it, the main thread is signalled again: it must go on."""
    lock, notes, second_sent = threading.Lock(), [], threading.Event()

    def note(line: str) -> None:
        with lock:
            notes.append(line)

    with StopRequests(note):
        with lock:  # the main thread holds the lock the note needs when the signals come
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            second_sent.set()
        deadline = threading.Event()
        for _ in range(50):
            if len(notes) == 2:
                break
            deadline.wait(0.1)
    assert second_sent.is_set() and len(notes) == 2, notes


# ---------------------------------------------------------------- a secret moved to another backend between runs

SM_VERSION = "a1b2c3d4-0000-4000-8000-00000000abcd"  # a Secrets Manager VersionId (nodeops writes UUIDs)


@pytest.mark.parametrize(
    ("kind", "version", "belongs"),
    [
        ("aws-secretsmanager", SM_VERSION, True),
        ("aws-secretsmanager", "3", False),  # a Parameter Store version number
        ("aws-secretsmanager", None, False),  # a file's or the environment's: no version
        ("aws-ssm", "12", True),
        ("aws-ssm", SM_VERSION, False),
        ("aws-ssm", None, False),
        ("sops", "sops:0123456789abcdef", True),
        ("sops", "kms:0123456789abcdef", False),
        ("sops", "3", False),
        ("sops", None, False),  # as aws-kms: an older nodeops's record without one is never asked of
        ("aws-kms", SM_VERSION, False),
        ("aws-kms", "kms:0123456789abcdef", True),
        ("aws-kms", "kms:0123", False),
        ("aws-secretsmanager", "kms:0123456789abcdef", False),
        ("aws-kms", None, False),  # foreign_versions never asks of an older nodeops's record without one
        ("env", None, True),
    ],
)
def test_a_recorded_version_is_told_to_be_of_a_backend_kind_by_its_shape(kind, version, belongs):
    from nodeops.secrets import version_of_kind

    assert version_of_kind(kind, version) is belongs


def test_a_secret_moved_to_another_backend_since_the_container_started_is_said_with_what_to_do(job, tmp_path):
    """Issue 17's review: an inventory that moved a service's secrets from Secrets Manager (or Parameter Store) to
    another backend made deploy and rotate-secrets refuse with "version X was asked for, but secret backend 'ci'
    (kind env) keeps no versions", which said neither what happened nor what to do."""
    recorded = {**json.loads(input_labels(job)["secrets"]), "db": SM_VERSION, "api_password": "7"}
    with pytest.raises(Unsafe) as err:
        restore_job(load_inventory(tmp_path / "t.yaml"), job, "a", container_of(job, secrets=json.dumps(recorded)))
    assert str(err.value) == (
        "cl a: the inputs container nodeops-cl was started from cannot be rendered again (to put it back if the "
        "change fails): the secret versions it records (api_password 7, db a1b2c3d4) are not of the secret backend "
        "the inventory now names for them (ci, kind env): the inventory moved them to another backend since it "
        "started, and a version of the old backend cannot be read through the new one; nothing was changed. To move "
        "the pair onto the new backend, run `fab deploy --env t --service cl --allow-inexact-restore` (a failure "
        "would then restart a node on the new backend's values); rotate-secrets and rollback work again once both "
        "nodes run on it (docs/secrets.md#moving-a-secret-to-another-backend)"
    )
    assert err.value.exit_code == EXIT_UNSAFE


def test_a_db_rotation_refuses_a_pair_whose_secrets_moved_backend_before_anything_changes(job, tmp_path):
    """The same, for rotate-secrets --secret db: its roll could not put a node back on what it ran, so the rotation
    is refused in its preflight (PairRoll.observe), before any new value is staged, saying what to do."""
    from nodeops.rotate.roll import refuse_moved_secrets

    inventory, node = load_inventory(tmp_path / "t.yaml"), job.service.nodes[0]
    recorded = {**json.loads(input_labels(job)["secrets"]), "db": SM_VERSION}
    moved = {node.name: NodeView(node, container_of(job, secrets=json.dumps(recorded)), True)}
    with pytest.raises(Unsafe, match=r"^cl a: container nodeops-cl: the secret versions it records \(db a1b2c3d4\) "
                                     r"are not of the secret backend .* --allow-inexact-restore"):  # fmt: skip
        refuse_moved_secrets(inventory, job.service, moved)
    refuse_moved_secrets(inventory, job.service, {node.name: NodeView(node, container_of(job), True)})
    refuse_moved_secrets(inventory, job.service, {node.name: NodeView(node, None, False)})


def test_a_secret_recorded_without_a_version_is_read_at_its_current_one_wherever_it_lives(job, tmp_path):
    """A container whose secrets came from a backend that keeps no versions (CI's env, a SOPS file) records None:
    nothing tells where from, and the same values are expected in the backend the inventory names now (CI deploys
    from its env store, a workstation from Secrets Manager): no refusal, as before the moved-backend check."""
    from nodeops.job import foreign_versions

    inventory = load_inventory(tmp_path / "t.yaml")
    sm = dataclasses.replace(inventory.secret_backends["ci"], name="ci", kind="aws-secretsmanager")
    moved = dataclasses.replace(inventory, secret_backends={**inventory.secret_backends, "ci": sm})
    assert foreign_versions(moved, job.service, {"db": None, "keystore": None}) is None
    assert "(db a1b2c3d4)" in foreign_versions(inventory, job.service, {"db": SM_VERSION, "keystore": None})


def test_a_kms_file_changed_since_the_container_started_is_a_change_and_restores_on_todays_file(
    job, tmp_path, moto, aws_env
):
    """Issue 17's review (F2): an aws-kms secret recorded no version, so a changed file was no change to deploy. It
    records its ciphertext's version now: a new file is a new config, and the container it replaces, which recorded
    the older version (gone from the file), is put back on today's file rather than refused."""
    import base64

    import boto3

    from nodeops.job import prepare

    kms = boto3.client("kms", region_name="us-east-1", endpoint_url=moto, aws_access_key_id="testing",
                       aws_secret_access_key="testing")  # fmt: skip
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    text = (tmp_path / "t.yaml").read_text()
    text = text.replace("secret_backends: {", f"secret_backends: {{kms: {{kind: aws-kms, region: us-east-1, "
                        f"endpoint_url: '{moto}'}}, ")  # fmt: skip
    text = text.replace(
        "keystore: {backend: ci, name: cl/wallet, key: password}", "keystore: {backend: kms, name: k.b64}"
    )
    (tmp_path / "t.yaml").write_text(text)
    jobs = []
    for plain in ("a keystore password 1", "a keystore password 2"):
        blob = kms.encrypt(KeyId=key, Plaintext=plain.encode())["CiphertextBlob"]
        (tmp_path / "k.b64").write_text(base64.b64encode(blob).decode())
        jobs.append(prepare(load_inventory(tmp_path / "t.yaml"))[0])
    old, new = jobs
    assert old.rendered.secret_versions["keystore"] != new.rendered.secret_versions["keystore"]
    assert old.rendered.config_hash != new.rendered.config_hash, "deploy would see no change"
    back = restore_job(load_inventory(tmp_path / "t.yaml"), new, "a", container_of(old))
    assert back.secrets["keystore"].reveal() == "a keystore password 2"
