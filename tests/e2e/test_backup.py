"""fab backup and fab restore on a lab of its own (bak): a backup, the database destroyed, restored into a new
one and the pair deployed on it (booted with the original keystore password, the same key rows); a corrupt
and a truncated object refused by checksum before anything is created; no plaintext row in the objects and
no secret in output, audit, argv or on the operator's disk; the retention policy applied."""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pyrage
import pytest

from lab.aws import BACKUP_BUCKET, BACKUP_SECRET, aws_client_for, read_secret, secrets_client
from lab.host import Lab
from nodeops.edges.ssh import Fleet
from nodeops.inventory import load_inventory
from tests.conftest import ROOT, fab
from tests.e2e.conftest import inventory_variant, own_lab
from tests.e2e.probe import Watch, superuser_sql

pytestmark = pytest.mark.lab

NAME, CIDR = "bak", "10.228.0.0/16"
SENTINEL = f"sentinel-row-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def bak(root):
    with own_lab(NAME, CIDR, deployed=True) as lab:
        yield lab


def s3(lab: Lab):
    return aws_client_for(lab.load_state()["secrets_port"], "s3")


def objects(lab: Lab, service: str) -> dict[str, bytes]:
    client, prefix = s3(lab), f"nodeops/{NAME}/{service}/"
    listed = client.list_objects_v2(Bucket=BACKUP_BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"].removeprefix(prefix): client.get_object(Bucket=BACKUP_BUCKET, Key=o["Key"])["Body"].read()
            for o in listed}  # fmt: skip


def secret_values(lab: Lab, service: str) -> list[str]:
    """Every password of the service and the admin role, and the backup identity."""
    client = secrets_client(lab.load_state()["secrets_port"])
    docs = [read_secret(client, f"{service}/{name}") for name in ("DBSecret", "WalletSecret", "ApiSecret")]
    docs += [read_secret(client, "nodeops/DBAdminSecret"), read_secret(client, BACKUP_SECRET)]
    return [v for d in docs for k, v in d.items() if k != "username"]


def backup_identity(lab: Lab) -> str:
    return read_secret(secrets_client(lab.load_state()["secrets_port"]), BACKUP_SECRET)["identity"]


def backup_id(res: subprocess.CompletedProcess, service: str) -> str:
    return next(e["backup"] for e in map(json.loads, res.stdout.splitlines()) if e.get("backup") and
                e.get("service") == service)  # fmt: skip


def eth_keys(lab: Lab, inventory: Path, service: str) -> list[str]:
    """The node's keys as it reports them: GET /v2/keys/eth on the active, logged in with the API user."""
    inv = load_inventory(inventory)
    api = read_secret(secrets_client(lab.load_state()["secrets_port"]), f"{service}/ApiSecret")
    body = json.dumps({"email": api["username"], "password": api["password"]}).encode()
    with Fleet(inv) as fleet:
        for node in inv.services[service].nodes:
            login = fleet.request(node.host, 6688, "POST", "/sessions", body, {"Content-Type": "application/json"})
            if login is not None and login.status == 200:
                cookie = login.headers["Set-Cookie"].split(";")[0]
                reply = fleet.request(node.host, 6688, "GET", "/v2/keys/eth", headers={"Cookie": cookie})
                return sorted(k["id"] for k in json.loads(reply.body)["data"])
    raise AssertionError(f"{service}: no node answers the API")


def databases(lab: Lab) -> set[str]:
    return set(superuser_sql(lab, "SELECT datname FROM pg_database").split())


def key_rows(lab: Lab, database: str) -> list[str]:
    """The digests fab backup records, computed here by the superuser: the session's time zone and date style set."""
    query = ("SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, YMD'; SELECT encode(sha256(convert_to(t::text, 'UTF8')), "
             "'hex') FROM encrypted_key_rings t ORDER BY 1")  # fmt: skip
    return superuser_sql(lab, query, database).split()


def test_backup_destroy_restore_and_the_pair_boots_on_it_with_the_same_keys(bak, tmp_path, figures):
    keys_before = eth_keys(bak, bak.inventory_file, "cl1")
    assert keys_before  # the node made its key at first boot
    superuser_sql(bak, f"\\c cl1\nSET ROLE cl1;\nCREATE TABLE nodeops_sentinel (v text);\n"
                       f"INSERT INTO nodeops_sentinel VALUES ('{SENTINEL}');")  # fmt: skip
    secrets = secret_values(bak, "cl1")
    inv = load_inventory(bak.inventory_file)
    with Watch(bak, [n.name for n in inv.nodes]) as watch:
        started = time.monotonic()
        res = fab("backup", "--env", NAME, "--service", "cl1", "--json")
        backup_seconds = time.monotonic() - started
        assert res.returncode == 0, res.stdout + res.stderr
        bid = backup_id(res, "cl1")
        stored = objects(bak, "cl1")
        manifest = json.loads(stored[f"{bid}.manifest.json"])
        sealed = stored[f"{bid}.dump.age"]

        # What was uploaded is age ciphertext: the sentinel row is not in it, nor any secret; with the
        # identity (read from moto here) it decrypts to a dump that holds the row.
        assert sealed.startswith(b"age-encryption.org/v1\n")
        assert SENTINEL.encode() not in sealed and not any(s.encode() in sealed for s in secrets)
        assert not any(s in json.dumps(manifest) for s in secrets)
        assert manifest["object"]["bytes"] == len(sealed)
        assert manifest["keys"]["encrypted_key_rings"] == key_rows(bak, "cl1")
        assert manifest["node"] == {"database_version": "2.10.0", "containers": {"cl1-a": "2.10.0", "cl1-b": "2.10.0"}}
        identity = pyrage.x25519.Identity.from_str(backup_identity(bak))
        plain = io.BytesIO()
        pyrage.decrypt_io(io.BytesIO(sealed), plain, [identity])
        assert plain.getvalue().startswith(b"PGDMP") and len(plain.getvalue()) == manifest["dump"]["bytes"]
        sql_text = subprocess.run(["pg_restore", "-f", "-"], input=plain.getvalue(), capture_output=True, check=True)
        assert SENTINEL.encode() in sql_text.stdout

        # The disaster: the service's database is gone; the nodes' containers are stopped (they ran on it).
        superuser_sql(bak, "DROP DATABASE cl1 WITH (FORCE);")
        assert "cl1" not in databases(bak)
        stop = fab("exec", "--env", NAME, "--nodes", "cl1-a,cl1-b", "--command", "docker stop -t 10 nodeops-cl1")
        assert stop.returncode == 0, stop.stdout + stop.stderr

        started = time.monotonic()
        restored = fab("restore", "--env", NAME, "--service", "cl1", "--from", bid, "--into", "cl1_restored", "--json")
        restore_seconds = time.monotonic() - started
        assert restored.returncode == 0, restored.stdout + restored.stderr
    figures(f"backup {backup_seconds:.2f}s ({manifest['dump']['bytes']} bytes dumped, {len(sealed)} encrypted); "
          f"restore {restore_seconds:.2f}s (whole fab processes)")  # fmt: skip
    assert key_rows(bak, "cl1_restored") == manifest["keys"]["encrypted_key_rings"]
    assert superuser_sql(bak, "SELECT v FROM nodeops_sentinel", "cl1_restored").strip() == SENTINEL

    # The drill: the pair deployed on the restored database, with the keystore password it always had.
    def on_restored(doc: dict) -> None:
        doc["services"] = {"cl1": doc["services"]["cl1"]}
        doc["services"]["cl1"]["variables"]["DATABASE_NAME"] = "cl1_restored"

    drill = inventory_variant(bak.inventory_file, tmp_path / "drill.yaml", on_restored)
    deploy = fab("deploy", "--inventory", str(drill), "--json", timeout=600)
    assert deploy.returncode == 0, deploy.stdout[-2000:] + deploy.stderr
    assert eth_keys(bak, drill, "cl1") == keys_before  # the node unlocked the restored key ring: the same keys
    assert key_rows(bak, "cl1_restored") == manifest["keys"]["encrypted_key_rings"]  # and made no new one

    # No secret value anywhere it should not be: output, audit, any process's argv, the operator's disk.
    audit = fab("audit", "--env", NAME, "--steps", "--json")
    said = res.stdout + res.stderr + restored.stdout + restored.stderr + audit.stdout
    assert '"op": "restore"' in audit.stdout and not any(s in said for s in secrets)
    assert not any(s in argv for s in secrets for argv in watch.argvs)
    assert any("pg_dump" in argv for argv in watch.argvs) and any("pg_restore" in argv for argv in watch.argvs)
    needles = [arg for s in [*secrets, SENTINEL] for arg in ("-e", s)]
    # (the lab's directory holds the database server's own files too: pgdata is the database, not the operator's disk)
    grep = subprocess.run(["grep", "-rlF", "-D", "skip", "--exclude-dir=pgdata", "--binary-files=text", *needles,
                           str(ROOT), str(bak.dir), tempfile.gettempdir()], capture_output=True, text=True)  # fmt: skip
    assert grep.stdout == "", f"a secret or row data reached the operator's disk: {grep.stdout}"


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_a_damaged_object_is_refused_by_checksum_before_anything_is_created(bak, damage):
    res = fab("backup", "--env", NAME, "--service", "cl2", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    bid = backup_id(res, "cl2")
    key = f"nodeops/{NAME}/cl2/{bid}.dump.age"
    good = objects(bak, "cl2")[f"{bid}.dump.age"]
    bad = good[:200] + bytes([good[200] ^ 1]) + good[201:] if damage == "corrupt" else good[: len(good) // 2]
    s3(bak).put_object(Bucket=BACKUP_BUCKET, Key=key, Body=bad)
    before = databases(bak)
    restored = fab("restore", "--env", NAME, "--service", "cl2", "--from", bid, "--into", "cl2_restored")
    assert restored.returncode == 1, restored.stdout + restored.stderr
    expected = "sha256" if damage == "corrupt" else f"{len(bad)} bytes, the manifest says {len(good)}: truncated"
    assert restored.stderr.count("\n") == 1 and expected in restored.stderr
    assert "nothing was restored" in restored.stderr
    assert restored.stdout == "" and databases(bak) == before  # refused before the lock, the audit or any database


def test_retention_keeps_the_newest_of_each_day_and_week(bak, tmp_path):
    """Older backups seeded as copies of a real one under older ids; one more backup applies keep 2 daily, 2 weekly."""
    client, prefix = s3(bak), f"nodeops/{NAME}/cl2/"
    for old in objects(bak, "cl2"):  # what the earlier tests left
        client.delete_object(Bucket=BACKUP_BUCKET, Key=prefix + old)
    res = fab("backup", "--env", NAME, "--service", "cl2", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    bid = backup_id(res, "cl2")
    seeded = ["20260101T010000Z-aaaaaa", "20260102T010000Z-aaaaaa", "20260102T020000Z-aaaaaa",  # week 1
              "20260105T010000Z-aaaaaa", "20260106T010000Z-aaaaaa"]  # week 2 (Monday, Tuesday)  # fmt: skip
    for sid in seeded:
        for suffix in (".dump.age", ".manifest.json"):
            client.copy_object(Bucket=BACKUP_BUCKET, Key=prefix + sid + suffix,
                               CopySource={"Bucket": BACKUP_BUCKET, "Key": prefix + bid + suffix})  # fmt: skip
    client.put_object(Bucket=BACKUP_BUCKET, Key=prefix + "20260106T020000Z-bbbbbb.dump.age", Body=b"unfinished")

    def small(doc: dict) -> None:
        doc["backup"].update(keep_daily=2, keep_weekly=2)

    policy = inventory_variant(bak.inventory_file, tmp_path / "retention.yaml", small)
    res = fab("backup", "--inventory", str(policy), "--service", "cl2", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    newest = backup_id(res, "cl2")
    # daily: today's newest and 2026-01-06's; weekly: this week's (today's newest) and 2026-W02's newest (01-06)
    kept = {newest, "20260106T010000Z-aaaaaa"}
    assert set(objects(bak, "cl2")) == {k + s for k in kept for s in (".dump.age", ".manifest.json")}
    deleted = next(e["deleted"] for e in map(json.loads, res.stdout.splitlines()) if "deleted" in e)
    assert sorted(deleted) == sorted([bid, *seeded[:4], "20260106T020000Z-bbbbbb"])  # bid: today, not the newest
