"""fab backup and restore, the pure parts: retention tables, ids and keys, the target rules, the child's
environment and argv, the manifest, the inventory's and role's backup: sections, the streaming age round
trip, and bad input refused with one line and exit 2 before any host or bucket is contacted."""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import textwrap

import pyrage
import pytest

from nodeops.backup import recover, rules, store
from nodeops.errors import InvalidInput, InventoryError, OperationFailed
from nodeops.roles import BackupSpec, RoleError, load_role
from tests.conftest import fab
from tests.unit.test_inventory import edited, parse
from tests.unit.test_roles import GOOD, make_role

RECIPIENT = str(pyrage.x25519.Identity.generate().to_public())


def ids(*stamps: str) -> list[str]:
    return [f"{s}-abcdef" for s in stamps]


# ---------------------------------------------------------------- retention

RETENTION = [
    # (backups, keep_daily, keep_weekly, deleted)
    ([], 7, 4, []),
    (["20261121T030000Z"], 1, 0, []),
    # several a day: only the newest of the day is kept
    (["20261121T010000Z", "20261121T020000Z", "20261121T030000Z"], 1, 0, ["20261121T020000Z", "20261121T010000Z"]),
    # the last 2 days *that have a backup*, not the last 2 calendar days
    (["20261101T030000Z", "20261110T030000Z", "20261121T030000Z"], 2, 0, ["20261101T030000Z"]),
    # weekly: the newest of each ISO week (2026-11-16 is a Monday); daily and weekly overlap
    (
        ["20261102T030000Z", "20261109T030000Z", "20261110T030000Z", "20261116T030000Z", "20261121T030000Z"],
        1,
        2,
        ["20261116T030000Z", "20261109T030000Z", "20261102T030000Z"],
    ),
    # 3 weeks kept: Sunday 2026-11-15 belongs to the week before Monday 2026-11-16
    (
        ["20261108T230000Z", "20261115T230000Z", "20261116T000000Z", "20261117T000000Z"],
        2,
        3,
        [],
    ),
    (
        ["20261108T230000Z", "20261115T220000Z", "20261115T230000Z", "20261116T000000Z", "20261117T000000Z"],
        2,
        2,
        ["20261115T220000Z", "20261108T230000Z"],
    ),
    # the year boundary: 2026-12-31 (Thursday) and 2027-01-01 are in ISO week 2026-W53
    (["20261231T120000Z", "20270101T120000Z", "20270104T120000Z"], 1, 2, ["20261231T120000Z"]),
]


@pytest.mark.parametrize(("stamps", "daily", "weekly", "deleted"), RETENTION)
def test_retention_keeps_the_newest_of_each_day_and_week(stamps, daily, weekly, deleted):
    assert rules.retention(ids(*stamps), daily, weekly) == ids(*deleted)


def test_retention_never_deletes_the_newest():
    many = ids(*(f"202611{d:02d}T{h:02d}0000Z" for d in range(1, 29) for h in (1, 13)))
    for daily in (1, 2, 7):
        for weekly in (0, 1, 4):
            doomed = rules.retention(many, daily, weekly)
            assert max(many) not in doomed
            assert len(many) - len(doomed) <= daily + weekly


def test_unfinished_objects_older_than_this_run_are_deleted():
    objects = ids("20261120T000000Z", "20261121T000000Z", "20261122T000000Z")
    manifests = ids("20261121T000000Z")
    assert rules.unfinished(objects, manifests, "20261121T120000Z-123456") == ids("20261120T000000Z")


UNFINISHED = [
    # (objects, manifests, this run's stamp, deleted): backups take no lock, so an object without a manifest
    # younger than the grace (a day) may be a concurrent run's between its upload and its manifest
    (["20261121T115900Z"], [], "20261121T120000Z", []),  # a minute old: another run's, in progress
    (["20261120T120000Z"], [], "20261121T120000Z", []),  # exactly the grace: kept
    (["20261120T115959Z"], [], "20261121T120000Z", ["20261120T115959Z"]),  # older than the grace: died
    (["20261101T000000Z"], ["20261101T000000Z"], "20261121T120000Z", []),  # finished: retention's, not this
    (["20261122T000000Z"], [], "20261121T120000Z", []),  # newer than this run
]


@pytest.mark.parametrize(("objects", "manifests", "current", "deleted"), UNFINISHED)
def test_unfinished_objects_are_reaped_only_past_the_grace(objects, manifests, current, deleted):
    assert rules.unfinished(ids(*objects), ids(*manifests), f"{current}-123456") == ids(*deleted)


# ---------------------------------------------------------------- ids, keys, target


def test_ids_and_keys():
    when = datetime.datetime(2026, 11, 21, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    bid = rules.backup_id(when, "3f2a1c9e")
    assert bid == "20261121T030506Z-3f2a1c"
    assert rules.stamp_of(bid) == datetime.datetime(2026, 11, 21, 3, 5, 6, tzinfo=datetime.UTC)
    base = "nodeops/prod/cl1/"
    assert rules.split_key(base + bid + ".dump.age", base) == (bid, ".dump.age")
    assert rules.split_key(base + bid + ".manifest.json", base) == (bid, ".manifest.json")
    for other in (base + "notes.txt", base + bid + ".dump", "nodeops/prod/cl2/" + bid + ".dump.age"):
        assert rules.split_key(other, base) is None


@pytest.mark.parametrize("bad", ["yesterday", "20261121T030506Z", "20261121-030506Z-3f2a1c", ""])
def test_a_bad_backup_id_is_exit_2(bad):
    with pytest.raises(InvalidInput, match="not a backup id"):
        rules.stamp_of(bad)


@pytest.mark.parametrize(
    ("into", "live", "replace", "problem"),
    [
        ("cl1_restored", "cl1", False, None),
        ("cl1", "cl1", True, None),
        ("cl1", "cl1", False, r"the service's live database \(DB_VAR\)"),  # the role's lease.database names it
        ("Cl1", "cl1", False, "new database name"),
        ('x"; DROP DATABASE cl1; --', "cl1", False, "new database name"),
        (None, "cl1", False, "new database name"),
        ("a" * 64, "cl1", False, "new database name"),
    ],
)
def test_the_restore_target(into, live, replace, problem):
    if problem is None:
        assert rules.check_target(into, live, replace, "DB_VAR") == into
    else:
        with pytest.raises(InvalidInput, match=problem):
            rules.check_target(into, live, replace, "DB_VAR")


# ---------------------------------------------------------------- the child processes


def test_the_password_is_in_the_childs_environment_only_and_the_operators_pg_settings_are_dropped():
    environ = {"PATH": "/usr/bin", "HOME": "/root", "PGSERVICE": "elsewhere", "PGHOST": "evil", "AWS_SECRET": "x"}
    env = rules.libpq_environment("db.internal", 40001, "cl1", "cl1", "pw-Secret.1", "verify-full", environ)
    assert env == {"PATH": "/usr/bin", "HOME": "/root", "LC_ALL": "C.UTF-8", "PGHOST": "db.internal",
                   "PGHOSTADDR": "127.0.0.1", "PGPORT": "40001", "PGDATABASE": "cl1", "PGUSER": "cl1",
                   "PGPASSWORD": "pw-Secret.1", "PGSSLMODE": "verify-full", "PGAPPNAME": "nodeops-backup",
                   "PGCONNECT_TIMEOUT": "10"}  # fmt: skip
    argv = rules.dump_argv("/usr/bin/pg_dump") + rules.restore_argv("/usr/bin/pg_restore", "cl1_restored")
    assert not any(v in " ".join(argv) for v in ("pw-Secret.1", "db.internal"))
    assert rules.restore_argv("pg_restore", "x")[1:] == ["--no-password", "--exit-on-error", "--single-transaction",
                                                     "--no-owner", "--dbname", "x"]  # fmt: skip


def test_pg_dump_dumps_the_snapshot_the_manifest_was_read_in():
    assert rules.dump_argv("pg_dump", "00000003-0000001B-1") == ["pg_dump", "--format=custom", "--no-password",
                                                            "--snapshot=00000003-0000001B-1"]  # fmt: skip


def test_pg_restore_exiting_early_is_its_own_error_not_a_broken_pipe(tmp_path, monkeypatch):
    """pg_restore refuses at once and reads nothing: the decrypted stream meets a closed pipe. The failure is
    pg_restore's stderr as one OperationFailed, not a BrokenPipeError traceback."""
    import types

    from tests.unit.test_lease import WHERE, FakeFleet, job_of

    fake = tmp_path / "pg_restore"
    fake.write_text("#!/bin/sh\necho 'pg_restore: error: connection to server failed: FATAL: no such role' >&2\n"
                    "exit 1\n")  # fmt: skip
    fake.chmod(0o755)
    monkeypatch.setattr(recover, "tool", lambda _name: str(fake))
    identity = pyrage.x25519.Identity.generate()
    sealed = io.BytesIO()
    pyrage.encrypt_io(io.BytesIO(os.urandom(4 * 1024 * 1024)), sealed, [identity.to_public()])

    s3 = types.SimpleNamespace(body=lambda _key: io.BytesIO(sealed.getvalue()))
    req = recover.RestoreRequest(job_of(WHERE), (None, None), "20261121T030506Z-3f2a1c", "cl1_r", False)
    with pytest.raises(OperationFailed) as err:
        recover.load(FakeFleet(), req, identity, s3, manifest())
    assert str(err.value) == "cl1: pg_restore into cl1_r failed: pg_restore: error: connection to server failed: " \
                             "FATAL: no such role"  # fmt: skip


def test_key_rows_query_quotes_the_table():
    assert 'FROM "encrypted_key_rings" AS t ORDER BY 1' in rules.key_rows_query("encrypted_key_rings").as_string(None)


# ---------------------------------------------------------------- manifest


def manifest(**over):
    doc = rules.manifest_doc(
        id="20261121T030506Z-3f2a1c",
        database={"name": "cl1"},
        dump={"bytes": 10, "sha256": "a" * 64},
        object={"key": "k", "bytes": 20, "sha256": "b" * 64, "recipients": [RECIPIENT]},
        keys={"encrypted_key_rings": ["c" * 64]},
    )
    return {**doc, **over}


def test_a_manifest_of_this_format_is_accepted_and_others_refused():
    assert rules.check_manifest(manifest(), "m")["format"] == rules.FORMAT
    for bad in (manifest(format=2), manifest(kind="other"), manifest(object={"key": "k"}), [], {"format": 1}):
        with pytest.raises(OperationFailed, match="not a nodeops backup manifest of format 1"):
            rules.check_manifest(bad, "m")


# ---------------------------------------------------------------- streaming encryption


def test_the_streamed_age_round_trip_hashes_both_forms():
    identity = pyrage.x25519.Identity.generate()
    plain_bytes = os.urandom(3 * 1024 * 1024 + 17)
    plain, parts = store.HashingReader(io.BytesIO(plain_bytes).read), []
    sealed = store.HashingWriter(parts.append)
    pyrage.encrypt_io(plain, sealed, [identity.to_public()])
    blob = b"".join(parts)
    assert len(parts) > 10  # written as it goes, not at the end
    assert (plain.size, plain.sha.hexdigest()) == (len(plain_bytes), hashlib.sha256(plain_bytes).hexdigest())
    assert (sealed.size, sealed.sha.hexdigest()) == (len(blob), hashlib.sha256(blob).hexdigest())
    assert plain_bytes[:4096] not in blob
    back = []
    pyrage.decrypt_io(store.HashingReader(io.BytesIO(blob).read), store.HashingWriter(back.append), [identity])
    assert b"".join(back) == plain_bytes
    with pytest.raises(OSError):  # a truncated object does not decrypt
        pyrage.decrypt_io(io.BytesIO(blob[:-100]), store.HashingWriter(back.append), [identity])


# ---------------------------------------------------------------- the inventory's and role's sections


def test_the_backup_section_loads_with_defaults():
    inv = parse(edited(("backup", {"bucket": "nodeops-backups", "aws": "aws", "recipients": RECIPIENT})))
    policy = inv.backup
    assert (policy.bucket, policy.recipients, policy.prefix) == ("nodeops-backups", (RECIPIENT,), "nodeops/")
    assert (policy.keep_daily, policy.keep_weekly, policy.identity) == (7, 4, None)
    assert parse(edited()).backup is None


@pytest.mark.parametrize(
    ("change", "where", "fragment"),
    [
        ({"bucket": "Bad_Bucket"}, "backup.bucket", "an S3 bucket name"),
        ({"aws": "ci"}, "backup.aws", "not a secret backend of kind aws-secretsmanager (those: aws)"),
        ({"recipients": []}, "backup.recipients", "expected at least 1 recipient"),
        ({"recipients": ["age1short"]}, "backup.recipients[0]", "an age public key"),
        ({"keep_daily": 0}, "backup.keep_daily", "an integer 1..3660"),
        ({"keep_weekly": -1}, "backup.keep_weekly", "an integer 0..520"),
        ({"prefix": "no-slash"}, "backup.prefix", "ending in /"),
        ({"identity": {"backend": "nope", "name": "x"}}, "backup.identity.backend", "unknown secret backend"),
        ({"identity": {"backend": "aws", "name": "x"}, "identity_file": "id.txt"}, "backup", "at most one"),
        ({"colour": 1}, "backup.colour", "unknown key"),
    ],
)
def test_a_bad_backup_section_is_one_located_line(change, where, fragment):
    section = {"bucket": "nodeops-backups", "aws": "aws", "recipients": [RECIPIENT], **change}
    with pytest.raises(InventoryError) as info:
        parse(edited(("backup", section)))
    assert info.value.where == where and fragment in info.value.problem, str(info.value)


def test_the_chainlink_role_names_its_key_store():
    spec = load_role("chainlink").backup
    assert (spec.key_tables, spec.version_table) == (("encrypted_key_rings",), "node_versions")


LEASE = (
    "variables: [H, P, D, S]\n"  # the variables that locate the database: declared by the role
    "lease: {table: lease, host: H, port: P, database: D, sslmode: S, user: pw, password: pw}\n"
)


@pytest.mark.parametrize(
    ("section", "where", "fragment"),
    [
        (LEASE + "backup: {key_tables: [keys], version_table: versions}", None, None),
        (LEASE + 'backup: {key_tables: ["x; DROP"]}', "backup.key_tables[0]", "expected a table name"),
        (LEASE + "backup: {key_tables: [k], version_table: 3}", "backup.version_table", "expected a table name"),
        (LEASE + "backup: {tables: [k]}", "backup.tables", "unknown key 'tables'"),
        ("backup: {key_tables: [k]}", "backup", "needs the role's lease: section"),
    ],
)
def test_a_roles_backup_section(tmp_path, section, where, fragment):
    root = make_role(tmp_path, GOOD + section + "\n")
    if where is None:
        assert load_role("thing", [root]).backup == BackupSpec(("keys",), "versions")
        return
    with pytest.raises(RoleError) as err:
        load_role("thing", [root])
    assert err.value.where == where and fragment in err.value.problem


# ---------------------------------------------------------------- the CLI's refusals, before any host


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAexdbHB36tcwydKJhbUhZib3vTlDloQOUKT1P7lVkKp"


def inventory(tmp_path, backup: str = "") -> str:
    """Secrets from the env backend (set below), a bastion nobody listens on: a run that got that far fails."""
    refs = {"db": "DB_PASSWORD", "db_user": "DB_USER", "keystore": "KS", "api_email": "API_EMAIL",
            "api_password": "API_PASSWORD", "db_admin_user": "ADMIN_USER", "db_admin": "ADMIN_PASSWORD"}  # fmt: skip
    secrets = "".join(f"      {k}: {{backend: ci, name: {v}}}\n" for k, v in refs.items())
    text = textwrap.dedent(f"""\
        environment: t
        bastion: {{host: 127.0.0.1, port: 9, user: root, host_key: "{KEY}"}}
        ssh: {{user: root}}
        secret_backends:
          ci: {{kind: env, prefix: NODEOPS_UT_}}
          aws: {{kind: aws-secretsmanager, region: us-east-1, endpoint_url: "http://127.0.0.1:9"}}
        services:
          cl1:
            role: chainlink
            image: smartcontract/chainlink:2.10.0
            variables: {{DATABASE_HOST: 10.0.0.9, DATABASE_NAME: cl1}}
            nodes:
              - {{name: a, host: 10.0.0.1, preferred: active, host_key: "{KEY}"}}
              - {{name: b, host: 10.0.0.2, preferred: standby, host_key: "{KEY}"}}
            secrets:
        """) + secrets + backup  # fmt: skip
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def ci_secrets(monkeypatch):
    for name in ("DB_PASSWORD", "DB_USER", "KS", "API_EMAIL", "API_PASSWORD", "ADMIN_USER", "ADMIN_PASSWORD"):
        monkeypatch.setenv(f"NODEOPS_UT_{name}", f"value-of-{name.lower()}-0123")


BACKUP = f"backup: {{bucket: nodeops-backups, aws: aws, recipients: [{RECIPIENT}], identity_file: missing.txt}}\n"


@pytest.mark.parametrize(
    ("args", "backup", "fragment"),
    [
        (("backup",), "", "no backup: section"),
        (("restore", "--service", "cl1", "--from", "latest", "--into", "cl1_r"), "", "no backup: section"),
        (("restore", "--from", "latest", "--into", "cl1_r"), BACKUP, "--service names the one service"),
        (("restore", "--service", "cl1", "--into", "cl1_r"), BACKUP, "restore needs --from NAME"),
        (("restore", "--service", "cl1", "--from", "latest", "--into", "cl1"), BACKUP, "live database (DATABASE_NAME)"),
        (("restore", "--service", "cl1", "--from", "latest", "--into", "bad-name"), BACKUP, "new database name"),
        (
            ("restore", "--service", "cl1", "--from", "latest", "--into", "cl1_r"),
            BACKUP,
            "backup.identity_file: cannot read",
        ),
    ],
)
def test_bad_requests_are_one_line_and_exit_2_before_any_host(tmp_path, ci_secrets, args, backup, fragment):
    res = fab(*args, "--inventory", inventory(tmp_path, backup))
    assert (res.returncode, res.stdout) == (2, ""), res.stderr
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("nodeops: ") and "Traceback" not in res.stderr
    assert fragment in res.stderr
    assert "value-of-" not in res.stderr
