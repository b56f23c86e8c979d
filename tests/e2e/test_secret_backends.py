"""The sops and aws-ssm secret backends on a lab of their own (issue 17): cl1's secrets in a SOPS file encrypted to an
age recipient (the identity only in this process's environment, SOPS_AGE_KEY), cl2's in the lab's moto Parameter
Store; sentinel values in both. fab deploy, then rotate-secrets --secret db on each, then a killed Parameter Store
rotation completed by the next run, and one stopped (SIGTERM) and undone that leaves nothing for a deploy to roll.
Every check reads the systems themselves: the file through the real sops, the parameters and their labels from moto,
logins against PostgreSQL through the bastion, every process's argv."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time

import pytest
import yaml

from lab.aws import REGION, aws_client_for, moto_endpoint, read_secret, secrets_client
from lab.host import Lab
from lab.services import ADMIN_SECRET, api_email, inventory_fragment
from lab.topology import plan_lab
from nodeops.inventory import load_inventory
from nodeops.secrets import resolve
from nodeops.secrets.sops import sops_program
from tests.conftest import fab
from tests.e2e.conftest import own_lab
from tests.e2e.probe import (
    Watch,
    events,
    killed_at,
    lb_answers,
    on_the_operators_disk,
    pg_accepts,
    serving_nodes,
    status,
    superuser_sql,
    terminated_at,
)

pytestmark = pytest.mark.lab

NAME, CIDR = "sbk", "10.225.0.0/16"
# Every character that breaks a naive .env, TOML, URL or shell rendering, and a space; one marker per backend.
SOPS_SENTINEL = "So9%\\'\"$`#=&@:/? q-Z"
SSM_SENTINEL = "Sm9%\\'\"$`#=&@:/? q-Z"
SOPS_FILE = f"{NAME}-cl1.sops.yaml"  # beside the lab's inventory (inventory/, git-ignored)
VALUES: dict[str, dict[str, str]] = {}  # service -> its secrets' current values, as the tests move them


def sops(*argv: str, data: bytes = b"") -> bytes:
    """The real sops with this process's age identity, stdin to stdout."""
    done = subprocess.run([sops_program(), *argv], input=data, capture_output=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def sops_document(lab: Lab) -> dict:
    data = (lab.inventory_file.parent / SOPS_FILE).read_bytes()
    return json.loads(sops("decrypt", "--input-type", "yaml", "--output-type", "json", data=data))


def ssm(lab: Lab):
    return aws_client_for(lab.load_state()["secrets_port"], "ssm")


def parameter(lab: Lab, name: str) -> dict:
    return json.loads(ssm(lab).get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])


def labels(lab: Lab, name: str) -> dict[int, list[str]]:
    history = ssm(lab).get_parameter_history(Name=name)["Parameters"]
    return {p["Version"]: p.get("Labels", []) for p in history}


@pytest.fixture(scope="module")
def sbk(root):
    """The lab, its cl1 secrets moved into a SOPS file (age) and its cl2 secrets into Parameter Store, each with
    sentinel values (the database roles set to them), the inventory pointing there; the age identity in
    SOPS_AGE_KEY for the module (the fab runs inherit it), never in a file."""
    keygen = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True).stdout
    identity = next(line for line in keygen.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    recipient = subprocess.run(["age-keygen", "-y"], input=identity, capture_output=True, text=True,
                               check=True).stdout.strip()  # fmt: skip
    with pytest.MonkeyPatch.context() as mp, own_lab(NAME, CIDR) as lab, contextlib.ExitStack() as cleanup:
        cleanup.callback((lab.inventory_file.parent / SOPS_FILE).unlink, missing_ok=True)  # ciphertext, but not ours
        mp.setenv("SOPS_AGE_KEY", identity)
        port = lab.load_state()["secrets_port"]
        admin = read_secret(secrets_client(port), ADMIN_SECRET)
        values = {}
        for service, mark in (("cl1", SOPS_SENTINEL), ("cl2", SSM_SENTINEL)):
            values[service] = {"db": f"Db1{mark}db", "keystore": f"Ks1{mark}ks", "api": f"Api1{mark}api"}
            literal = values[service]["db"].replace("'", "''")
            superuser_sql(lab, f"ALTER ROLE {service} PASSWORD '{literal}';")  # on stdin: never in an argv
        one, two = values["cl1"], values["cl2"]
        doc = {"db": {"username": "cl1", "password": one["db"]}, "wallet": {"password": one["keystore"]},
               "api": {"username": api_email("cl1"), "password": one["api"]}, "admin": admin}  # fmt: skip
        encrypted = sops("encrypt", "--age", recipient, "--input-type", "yaml", "--output-type", "yaml",
                         "--filename-override", SOPS_FILE, data=yaml.safe_dump(doc).encode())  # fmt: skip
        (lab.inventory_file.parent / SOPS_FILE).write_bytes(encrypted)
        client = ssm(lab)
        for name, text, kind in (
            ("/sbk/cl2/db", json.dumps({"username": "cl2", "password": two["db"]}), "SecureString"),
            ("/sbk/cl2/keystore", two["keystore"], "SecureString"),
            ("/sbk/cl2/api", json.dumps({"username": api_email("cl2"), "password": two["api"]}), "SecureString"),
            ("/sbk/admin", json.dumps(admin), "SecureString"),
        ):
            client.put_parameter(Name=name, Value=text, Type=kind, Overwrite=True)
        inv = yaml.safe_load(lab.inventory_file.read_text())
        inv["secret_backends"]["sops"] = {"kind": "sops"}
        inv["secret_backends"]["ssm"] = {"kind": "aws-ssm", "region": REGION, "endpoint_url": moto_endpoint(port)}

        def refs(backend: str, where: dict[str, tuple[str, str | None]]) -> dict[str, dict]:
            return {secret: {"backend": backend, "name": name, **({"key": key} if key else {})}
                    for secret, (name, key) in where.items()}  # fmt: skip

        f = SOPS_FILE
        inv["services"]["cl1"]["secrets"] = refs("sops", {
            "db": (f, "db.password"), "db_user": (f, "db.username"), "keystore": (f, "wallet.password"),
            "api_email": (f, "api.username"), "api_password": (f, "api.password"),
            "db_admin_user": (f, "admin.username"), "db_admin": (f, "admin.password"),
        })  # fmt: skip
        inv["services"]["cl2"]["secrets"] = refs("ssm", {
            "db": ("/sbk/cl2/db", "password"), "db_user": ("/sbk/cl2/db", "username"),
            "keystore": ("/sbk/cl2/keystore", None), "api_email": ("/sbk/cl2/api", "username"),
            "api_password": ("/sbk/cl2/api", "password"), "db_admin_user": ("/sbk/admin", "username"),
            "db_admin": ("/sbk/admin", "password"),
        })  # fmt: skip
        lab.inventory_file.write_text(yaml.safe_dump(inv))
        VALUES.update(values)
        yield lab


def test_deploy_reads_one_service_from_sops_and_the_other_from_parameter_store(sbk):
    since = time.time()
    inv = load_inventory(sbk.inventory_file)
    with Watch(sbk, [n.name for n in inv.nodes]) as watch:
        res = fab("deploy", "--env", NAME, "--json", timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    for service in ("cl1", "cl2"):
        assert len(serving_nodes(sbk, service)) == 1 and lb_answers(sbk, service)
        assert status(NAME, "--service", service)[service]["state"] == "healthy"
        assert pg_accepts(sbk, service, service, VALUES[service]["db"])  # the node booted on the sentinel
    # The values leaked nowhere: output, any process's argv (sops's included), the containers, the operator's disk.
    forms = [v for vs in VALUES.values() for v in vs.values()] + [SOPS_SENTINEL, SSM_SENTINEL]
    for form in forms:
        assert form not in out
        assert not any(form in argv for argv in watch.argvs), "a secret was in a process argument list"
    assert watch.saw("sops", "decrypt", "--input-type yaml"), "the sampler never saw sops decrypt"
    for service in ("cl1", "cl2"):
        assert watch.saw("docker", f"run --detach --name nodeops-{service} "), f"no docker run of {service} seen"
    inspect = fab("exec", "--env", NAME, "--command", "docker inspect nodeops-cl1 nodeops-cl2")
    assert not any(f in inspect.stdout for f in (SOPS_SENTINEL, SSM_SENTINEL))
    written = on_the_operators_disk([SOPS_SENTINEL, SSM_SENTINEL], since, sbk.dir)
    assert written == [], f"a secret reached the operator's disk: {written}"


@pytest.mark.parametrize(
    ("service", "field", "wrong", "said"),
    [("cl1", "key", "wallet.nope", "SOPS file 'sbk-cl1.sops.yaml' has no key 'wallet.nope' (wallet has: password)"),
     ("cl2", "name", "/sbk/cl2/nope", "no parameter '/sbk/cl2/nope' in secret backend 'ssm'")],
    ids=["sops", "aws-ssm"],
)  # fmt: skip
def test_a_missing_key_is_exit_2_naming_the_reference_before_any_host(sbk, service, field, wrong, said):
    inv = yaml.safe_load(sbk.inventory_file.read_text())
    inv["services"][service]["secrets"]["keystore"][field] = wrong
    variant = sbk.inventory_file.with_name(f"{NAME}-missing.yaml")
    variant.write_text(yaml.safe_dump(inv))
    try:
        res = fab("deploy", "--inventory", str(variant), "--service", service)
    finally:
        variant.unlink()
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stdout + res.stderr
    assert f"{variant}: services.{service}.secrets.keystore: {said}" in res.stderr, res.stderr
    assert "cannot connect" not in res.stdout + res.stderr and "Traceback" not in res.stderr


def test_rotating_db_writes_through_sops_and_a_new_parameter_version(sbk, figures):
    since = time.time()
    inv = load_inventory(sbk.inventory_file)
    with Watch(sbk, [n.name for n in inv.nodes]) as watch:
        sops_run = fab("rotate-secrets", "--env", NAME, "--service", "cl1", "--secret", "db", "--json")
        ssm_run = fab("rotate-secrets", "--env", NAME, "--service", "cl2", "--secret", "db", "--json")
    for res in (sops_run, ssm_run):
        assert res.returncode == 0, res.stdout + res.stderr
        steps = [e["step"] for e in events(res) if e.get("secret") == "db" and "step" in e]
        assert steps == ["createSecret", "setSecret", "testSecret", "finishSecret"], steps
    doc = sops_document(sbk)
    new_sops, old_sops = doc["db"]["password"], VALUES["cl1"]["db"]
    assert new_sops != old_sops and "nodeops_pending" not in doc and doc["wallet"]["password"].startswith("Ks1So9")
    new_ssm, old_ssm = parameter(sbk, "/sbk/cl2/db")["password"], VALUES["cl2"]["db"]
    assert new_ssm != old_ssm and parameter(sbk, "/sbk/cl2/db")["username"] == "cl2"
    assert labels(sbk, "/sbk/cl2/db") == {1: [], 2: []}, "a new version, and no label left"
    for service, new, old in (("cl1", new_sops, old_sops), ("cl2", new_ssm, old_ssm)):
        assert pg_accepts(sbk, service, service, new) and not pg_accepts(sbk, service, service, old)
        assert len(serving_nodes(sbk, service)) == 1 and lb_answers(sbk, service)
        assert status(NAME, "--service", service)[service]["state"] == "healthy"
        VALUES[service]["db"] = new
    out = sops_run.stdout + sops_run.stderr + ssm_run.stdout + ssm_run.stderr
    for new in (new_sops, new_ssm):
        assert new not in out
        assert not any(new in argv for argv in watch.argvs), "the new password was in a process argument list"
    assert watch.saw("sops", "set", "--value-stdin"), "the sampler never saw sops set"
    assert on_the_operators_disk([new_sops, new_ssm], since, sbk.dir) == []
    took = [max((e["outage_seconds"] for e in events(r) if e.get("outage_seconds")), default=None)
            for r in (sops_run, ssm_run)]  # fmt: skip
    figures(f"rotate db: planned handover outage {took[0]}s (sops), {took[1]}s (aws-ssm)")


def deploy_cl1(*flags: str) -> dict:
    """`fab deploy --service cl1 --json` (with ``flags``): it succeeded; cl1's result from its end event."""
    res = fab("deploy", "--env", NAME, "--service", "cl1", "--json", *flags, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    (end,) = [e for e in events(res) if e.get("event") == "end"]
    return next(r for r in end["results"] if r["service"] == "cl1")


def test_a_sops_value_changed_outside_nodeops_is_seen_and_a_rotation_leaves_no_change(sbk):
    """Issue 17: a SOPS reference reported no version, so a value changed in the file by `sops set` outside nodeops
    left deploy saying "no change", and nothing rolled it out. The file's version (a hash of its encrypted values)
    moves with any value written: deploy sees the change; and a rotation writes the key before it rolls, so the
    version its nodes record is the file's after the write-back: a deploy right after it has nothing to do."""
    path = sbk.inventory_file.parent / SOPS_FILE
    keystore = VALUES["cl1"]["keystore"]
    changed = f"Ks2{SOPS_SENTINEL}ks"
    for value in (changed, keystore):  # a new value by hand, seen; then the old one back (a new ciphertext again)
        sops("set", "--value-stdin", str(path), '["wallet"]["password"]', data=json.dumps(value).encode())
        planned = deploy_cl1("--dry-run")
        assert planned["changed"] and any(line.startswith("secret keystore: version ") for line in
                                          planned["secrets_moved"]), planned  # fmt: skip
    assert deploy_cl1()["changed"]  # rolled onto the file as it is now: the same values, its version recorded
    assert not deploy_cl1("--dry-run")["changed"]
    rotated = fab("rotate-secrets", "--env", NAME, "--service", "cl1", "--secret", "db", "--json")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    doc = sops_document(sbk)
    assert "nodeops_pending" not in doc and doc["db"]["password"] != VALUES["cl1"]["db"]
    VALUES["cl1"]["db"] = doc["db"]["password"]
    after = deploy_cl1("--dry-run")
    assert not after["changed"] and after["secrets_moved"] == [], after
    assert status(NAME, "--service", "cl1")["cl1"]["state"] == "healthy"


def test_a_killed_parameter_store_rotation_is_completed_by_the_next_run(sbk):
    before = parameter(sbk, "/sbk/cl2/db")
    seen = killed_at(["rotate-secrets", "--env", NAME, "--service", "cl2", "--secret", "db", "--json"],
                     lambda e: e.get("step") == "setSecret" and e.get("secret") == "db")  # fmt: skip
    assert seen
    versions = labels(sbk, "/sbk/cl2/db")
    latest = max(versions)
    assert versions[latest] == ["nodeops-pending"] and versions[latest - 1] == ["nodeops-current"], versions
    pending = json.loads(ssm(sbk).get_parameter(Name=f"/sbk/cl2/db:{latest}", WithDecryption=True)["Parameter"]
                         ["Value"])["password"]  # fmt: skip
    assert pg_accepts(sbk, "cl2", "cl2", pending), "killed before setSecret had happened"
    # a reader meanwhile (a deploy's preflight) still reads the current version, not the latest
    inv = load_inventory(sbk.inventory_file)
    read = resolve(inv, inv.services["cl2"])["db"]
    assert (read.reveal(), read.version) == (before["password"], str(latest - 1))
    released = fab("lock.release", "--env", NAME, "--service", "cl2", "--force", "--json")
    assert released.returncode == 0, released.stdout + released.stderr
    rerun = fab("rotate-secrets", "--env", NAME, "--service", "cl2", "--secret", "db", "--json")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "an interrupted run left reused" in rerun.stdout + rerun.stderr
    after = labels(sbk, "/sbk/cl2/db")
    assert max(after) == latest and all(not ls for ls in after.values()), after  # no new version, no label
    assert parameter(sbk, "/sbk/cl2/db")["password"] == pending != before["password"]
    assert pg_accepts(sbk, "cl2", "cl2", pending) and not pg_accepts(sbk, "cl2", "cl2", before["password"])
    assert len(serving_nodes(sbk, "cl2")) == 1 and lb_answers(sbk, "cl2")


def test_a_parameter_store_rotation_stopped_after_setsecret_is_undone_leaving_nothing_to_roll(sbk):
    """Review rv17 F1: SIGTERM right after setSecret undid the rotation ("the current version unchanged"), but the
    undo's copy of the current value (Parameter Store cannot delete the pending version) was read as a new version:
    the next deploy planned a rolling replace with a failover onto the same value ("secret db: version 3 -> 5"),
    and check warned of drift. The copy is now read as the version it copies, the one the nodes run."""
    before, history = parameter(sbk, "/sbk/cl2/db"), labels(sbk, "/sbk/cl2/db")
    code, seen, out = terminated_at(["rotate-secrets", "--env", NAME, "--service", "cl2", "--secret", "db", "--json"],
                                    lambda e: e.get("step") == "setSecret" and e.get("secret") == "db")  # fmt: skip
    assert code == 130, out
    assert "undone: the database role <db_user> is back on its current password, db: the label nodeops-pending " \
           "removed" in out, out  # fmt: skip
    after, runs = labels(sbk, "/sbk/cl2/db"), max(history)
    assert after == {**history, runs: ["nodeops-original"], runs + 1: [], runs + 2: ["nodeops-copy"]}, after
    assert parameter(sbk, "/sbk/cl2/db") == before, "the latest version (a reader without labels) holds the value"
    assert pg_accepts(sbk, "cl2", "cl2", before["password"])
    inv = load_inventory(sbk.inventory_file)
    assert resolve(inv, inv.services["cl2"])["db"].version == str(runs), "the copy is read as the version it copies"
    dry = fab("deploy", "--env", NAME, "--service", "cl2", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert next(e["steps"] for e in events(dry) if e.get("message", "").startswith("plan:")) == [], dry.stdout
    assert "version" not in dry.stdout, dry.stdout
    check = fab("check", "--env", NAME, "--service", "cl2", "--json")
    drift = [f for f in map(json.loads, check.stdout.splitlines()) if f.get("check") == "drift"]
    assert drift and {f["result"] for f in drift} == {"pass"}, drift
    assert len(serving_nodes(sbk, "cl2")) == 1 and lb_answers(sbk, "cl2")


def test_lab_up_again_keeps_the_rotated_passwords_so_deploy_and_check_still_work(sbk):
    """Issue 17's review: a rerun of lab.up set each database role's password back to the lab's seeded one, so the
    passwords rotated into the SOPS file and Parameter Store no longer logged in. lab.up now only creates what is
    missing. Also (issue 17's review, secret age): check gives the sops secret its file's date and names its backend."""
    current = {"cl1": sops_document(sbk)["db"]["password"], "cl2": parameter(sbk, "/sbk/cl2/db")["password"]}
    ours = sbk.inventory_file.read_text()  # lab.up writes the lab's own inventory again; the operator's is this one
    try:
        up = fab("lab.up", "--name", NAME, "--nodes", "4", "--cidr", CIDR)
    finally:
        sbk.inventory_file.write_text(ours)
    assert up.returncode == 0, up.stdout + up.stderr
    for service, password in current.items():
        assert pg_accepts(sbk, service, service, password), f"lab.up changed {service}'s rotated password"
    deploy = fab("deploy", "--env", NAME, "--json", timeout=600)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    doc = yaml.safe_load(ours)
    doc["check"] = {"load_max_per_cpu": 1000}  # this shared 2-core machine's load is not what is checked here
    variant = sbk.inventory_file.with_name(f"{NAME}-check.yaml")  # beside the SOPS file its reference names
    variant.write_text(yaml.safe_dump(doc))
    try:
        check = fab("check", "--inventory", str(variant), "--json")
    finally:
        variant.unlink()
    findings = {(f["service"], f["node"], f["check"]): f for f in map(json.loads, check.stdout.splitlines())}
    assert check.returncode == 0, check.stdout + check.stderr
    for service in ("cl1", "cl2"):
        assert findings[(service, "", "lease")]["result"] == "pass", findings[(service, "", "lease")]
    age = findings[("cl1", "", "secret-age")]
    assert age["result"] == "pass" and age["reason"].startswith(f"oldest {SOPS_FILE}: 0.0 days"), age
    assert "env backend" not in age["reason"] + findings[("cl2", "", "secret-age")]["reason"]


def test_a_service_moved_to_another_backend_is_refused_saying_what_to_do_and_then_moved(sbk):
    """Issue 17's review: an inventory that moves a service's secrets to another backend between runs (cl2: from
    Parameter Store to the lab's Secrets Manager, holding the same values) made deploy and rotate-secrets say only
    that a version could not be read. Both now refuse before anything changes (exit 4), saying that the versions
    the containers record are another backend's and what to do; the deploy it names moves the pair over, after
    which rotate-secrets works again."""
    port = sbk.load_state()["secrets_port"]
    sm = secrets_client(port)
    keystore = ssm(sbk).get_parameter(Name="/sbk/cl2/keystore", WithDecryption=True)["Parameter"]["Value"]
    for name, doc in (("cl2/DBSecret", parameter(sbk, "/sbk/cl2/db")), ("cl2/WalletSecret", {"password": keystore}),
                      ("cl2/ApiSecret", parameter(sbk, "/sbk/cl2/api"))):  # fmt: skip
        sm.put_secret_value(SecretId=name, SecretString=json.dumps(doc))  # the values cl2 runs on, new versions
    doc = yaml.safe_load(sbk.inventory_file.read_text())
    lab_refs = inventory_fragment(plan_lab(NAME, CIDR, 4), sbk.load_state())["services"]["cl2"]["secrets"]
    doc["services"]["cl2"]["secrets"] = lab_refs  # as lab.up wrote them: the lab's Secrets Manager (backend aws)
    moved = sbk.inventory_file.with_name(f"{NAME}-moved.yaml")
    moved.write_text(yaml.safe_dump(doc))

    def started_at() -> dict[str, str]:
        res = fab("exec", "--env", NAME, "--nodes", "cl2-a,cl2-b", "--json", "--command",
                  "docker inspect --format '{{.State.StartedAt}}' nodeops-cl2")  # fmt: skip
        return {e["node"]: e["stdout"] for e in events(res) if e["event"] == "host"}

    started = started_at()
    try:
        said = "are not of the secret backend the inventory now names for them (aws, kind aws-secretsmanager)"
        todo = f"run `fab deploy --env {NAME} --service cl2 --allow-inexact-restore`"
        for args in (("deploy",), ("rotate-secrets", "--secret", "db")):
            res = fab(*args, "--inventory", str(moved), "--service", "cl2", timeout=600)
            out = res.stdout + res.stderr
            assert res.returncode == 4 and said in out and todo in out, out
        assert "AWSPENDING" not in json.dumps(sm.describe_secret(SecretId="cl2/DBSecret")["VersionIdsToStages"])
        assert started_at() == started and len(started) == 2, started  # no container touched
        over = fab("deploy", "--inventory", str(moved), "--service", "cl2", "--allow-inexact-restore", timeout=600)
        assert over.returncode == 0, over.stdout + over.stderr
        again = fab("rotate-secrets", "--inventory", str(moved), "--service", "cl2", "--secret", "db", timeout=600)
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        moved.unlink()
    new = read_secret(sm, "cl2/DBSecret")["password"]
    assert pg_accepts(sbk, "cl2", "cl2", new) and len(serving_nodes(sbk, "cl2")) == 1 and lb_answers(sbk, "cl2")
