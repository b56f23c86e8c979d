"""Secrets: the type never prints its value; the env backend's names; the AWS backend against a real moto_server."""

from __future__ import annotations

import copy
import json
import logging
import pickle
import threading
import time
import typing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from urllib.parse import quote

import pytest

from nodeops.errors import EXIT_INVALID, EXIT_UNREACHABLE, InvalidInput, NodeopsError
from nodeops.inventory import Inventory, SecretBackend, SecretRef, Service
from nodeops.secrets import (
    BACKENDS,
    Backend,
    Secret,
    SecretLeak,
    mask_secrets,
    open_backend,
    resolve,
    strict_rendering,
)
from nodeops.secrets.env import env_variable_name
from tests.conftest import fab
from tests.unit.conftest import free_port as _free_port
from tests.unit.test_cli_errors import GOOD

SENTINEL = "s3nt%\\'\"$`#=&@:/? ∆-value"  # every character a format could mangle, a space, a unicode one


# ---------------------------------------------------------------- the type


@pytest.mark.parametrize(
    "show",
    [
        repr,
        str,
        format,
        lambda s: f"{s}",
        lambda s: f"{s!r}",
        lambda s: f"{s:>40}",
        lambda s: "%s %r" % (s, s),  # noqa: UP031 - the old formatting is what logging uses
        lambda s: "{}".format(s),  # noqa: UP032
        lambda s: str([s, {"k": s}]),
        lambda s: str(ValueError(s)),
        lambda s: str(NodeopsError(s)),
    ],
    ids=[
        "repr",
        "str",
        "format",
        "fstring",
        "fstring-r",
        "fstring-spec",
        "percent",
        "str.format",
        "in-containers",
        "exception",
        "nodeops-error",
    ],  # fmt: skip
)
def test_a_secret_never_shows_its_value(show):
    secret = Secret(SENTINEL, "db")
    text = show(secret)
    assert SENTINEL not in text and "s3nt" not in text
    assert "***" in text


def test_a_secret_reveals_only_on_request_and_compares_by_value():
    secret = Secret(SENTINEL, "db")
    assert secret.reveal() == SENTINEL
    assert repr(secret) == "Secret('***', name='db')" and repr(Secret("x")) == "Secret('***')"
    assert secret == Secret(SENTINEL, "other") and secret != Secret("other") and secret != SENTINEL
    assert len({secret, Secret(SENTINEL)}) == 1
    assert copy.copy(secret) is secret and copy.deepcopy(secret) is secret
    with pytest.raises(AttributeError):
        secret._value = "x"


def test_a_secret_is_not_in_log_output(caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("t").info("password %s, again %r", Secret(SENTINEL), Secret(SENTINEL))
    logging.getLogger("t").info(Secret(SENTINEL))
    assert SENTINEL not in caplog.text and caplog.text.count("***") == 3


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_a_secret_cannot_be_pickled(protocol):
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps({"db": Secret(SENTINEL)}, protocol=protocol)


def test_in_strict_rendering_every_conversion_to_text_raises():
    secret = Secret(SENTINEL, "db")
    with strict_rendering():
        for show in (str, repr, format, lambda s: f"{s}", lambda s: "%s" % s):  # noqa: UP031
            with pytest.raises(SecretLeak, match="secret 'db' is printed without an escaping filter") as err:
                show(secret)
            assert SENTINEL not in str(err.value) and err.value.exit_code == EXIT_INVALID
    assert str(secret) == "Secret('***', name='db')"  # outside, back to the redaction


# ---------------------------------------------------------------- the backends: one per kind


def test_every_kind_the_inventory_accepts_has_its_backend_and_no_other():
    """BACKENDS (kind -> class) and the inventory's kinds agree: a kind added to one and not the other fails here."""
    kinds = set(typing.get_args(typing.get_type_hints(SecretBackend)["kind"]))
    assert set(BACKENDS) == kinds
    for kind in sorted(kinds):
        opened = open_backend(SecretBackend(name="b", kind=kind, region="us-east-1", prefix="T_"), {}, "/inv.yaml")
        assert isinstance(opened, Backend) and opened.backend.kind == kind


def test_an_unknown_kind_is_exit_2_naming_the_backend():
    """The loader refuses it first; a hand-made model reaching the registry gets the same kind of answer."""
    with pytest.raises(InvalidInput) as err:
        open_backend(SecretBackend(name="vault", kind="hashicorp"), {}, "/inv.yaml")  # type: ignore[arg-type]
    assert str(err.value) == "/inv.yaml: secret_backends.vault.kind: unsupported kind 'hashicorp'"
    assert err.value.exit_code == EXIT_INVALID


# ---------------------------------------------------------------- resolve: env backend


def _inventory(backends: dict[str, SecretBackend], refs: dict[str, SecretRef]) -> tuple[Inventory, Service]:
    service = Service(
        name="cl1", role="chainlink", image="smartcontract/chainlink:2.10.0", runtime="docker",
        variables=MappingProxyType({}), secrets=MappingProxyType(refs), nodes=(),
    )  # fmt: skip
    inv = Inventory(
        source=Path("/inv/prod.yaml"), environment="prod", bastions={}, ssh=None,  # type: ignore[arg-type]
        secret_backends=MappingProxyType(backends), services=MappingProxyType({"cl1": service}),
    )  # fmt: skip
    return inv, service


@pytest.mark.parametrize(
    ("prefix", "name", "key", "expected"),
    [
        ("NODEOPS_", "chainlink/DBSecret", "password", "NODEOPS_CHAINLINK_DBSECRET_PASSWORD"),
        ("NODEOPS_", "chainlink/DBSecret", None, "NODEOPS_CHAINLINK_DBSECRET"),
        ("", "cl1/ApiSecret", "username", "CL1_APISECRET_USERNAME"),
        ("X_", "a.b-c d", "k-1.x", "X_A_B_C_D_K_1_X"),
        ("CI_", "prod/wallet", "pass+word", "CI_PROD_WALLET_PASS_WORD"),
    ],
)
def test_env_backend_variable_names(prefix, name, key, expected):
    assert env_variable_name(prefix, name, key) == expected


def test_env_backend_reads_the_variables():
    ci = SecretBackend(name="ci", kind="env", prefix="NODEOPS_")
    inv, service = _inventory(
        {"ci": ci},
        {
            "db": SecretRef("ci", "chainlink/DBSecret", "password"),
            "user": SecretRef("ci", "chainlink/DBSecret", "username"),
        },
    )
    environ = {"NODEOPS_CHAINLINK_DBSECRET_PASSWORD": SENTINEL, "NODEOPS_CHAINLINK_DBSECRET_USERNAME": "cl"}
    got = resolve(inv, service, environ=environ)
    assert {k: v.reveal() for k, v in got.items()} == {"db": SENTINEL, "user": "cl"}
    assert got["db"].name == "db"


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({}, "services.cl1.secrets.db: environment variable NODEOPS_CHAINLINK_DBSECRET_PASSWORD is not set"),
        (
            {"NODEOPS_CHAINLINK_DBSECRET_PASSWORD": ""},
            "environment variable NODEOPS_CHAINLINK_DBSECRET_PASSWORD is empty",
        ),
    ],
)
def test_env_backend_missing_variable_is_exit_2_naming_path_and_variable(environ, fragment):
    inv, service = _inventory(
        {"ci": SecretBackend(name="ci", kind="env", prefix="NODEOPS_")},
        {"db": SecretRef("ci", "chainlink/DBSecret", "password")},
    )
    with pytest.raises(InvalidInput) as err:
        resolve(inv, service, environ=environ)
    assert err.value.exit_code == EXIT_INVALID
    assert str(err.value).startswith("/inv/prod.yaml: ") and fragment in str(err.value)


# ---------------------------------------------------------------- resolve: AWS backend against moto_server


def _admin(endpoint: str):
    import boto3

    return boto3.client(
        "secretsmanager", region_name="us-east-1", endpoint_url=endpoint,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def _aws(endpoint: str, refs: dict[str, SecretRef]) -> tuple[Inventory, Service]:
    backend = SecretBackend(name="aws", kind="aws-secretsmanager", region="us-east-1", endpoint_url=endpoint)
    return _inventory({"aws": backend}, refs)


def test_aws_reads_json_keys_and_plain_strings_with_dummy_credentials_on_loopback(moto, aws_env):
    admin = _admin(moto)
    admin.create_secret(Name="t1/DBSecret", SecretString=json.dumps({"username": "cl1", "password": SENTINEL}))
    admin.create_secret(Name="t1/Plain", SecretString=SENTINEL + "-plain")
    inv, service = _aws(
        moto,
        {
            "db": SecretRef("aws", "t1/DBSecret", "password"),
            "db_user": SecretRef("aws", "t1/DBSecret", "username"),
            "plain": SecretRef("aws", "t1/Plain"),
        },
    )
    got = resolve(inv, service)
    assert {k: v.reveal() for k, v in got.items()} == {"db": SENTINEL, "db_user": "cl1", "plain": SENTINEL + "-plain"}


def test_aws_reads_awscurrent_after_a_rotation_moved_the_stage(moto, aws_env):
    admin = _admin(moto)
    first = admin.create_secret(Name="t2/DBSecret", SecretString=json.dumps({"password": "old-value"}))
    new = admin.put_secret_value(
        SecretId="t2/DBSecret", SecretString=json.dumps({"password": "new-value"}), VersionStages=["AWSPENDING"]
    )
    admin.update_secret_version_stage(
        SecretId="t2/DBSecret", VersionStage="AWSCURRENT",
        MoveToVersionId=new["VersionId"], RemoveFromVersionId=first["VersionId"],
    )  # fmt: skip
    inv, service = _aws(moto, {"db": SecretRef("aws", "t2/DBSecret", "password")})
    assert resolve(inv, service)["db"].reveal() == "new-value"


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        (SecretRef("aws", "t3/Missing", "password"), "services.cl1.secrets.db: no secret 't3/Missing'"),
        (SecretRef("aws", "t3/DBSecret", "nokey"), "secret 't3/DBSecret' has no key 'nokey' (its keys: password)"),
        (SecretRef("aws", "t3/NotJson", "password"), "secret 't3/NotJson' is not a JSON object"),
    ],
    ids=["no-secret", "no-key", "not-json"],
)
def test_aws_missing_secret_or_key_is_exit_2_naming_the_path(moto, aws_env, ref, fragment):
    admin = _admin(moto)
    for name, text in (("t3/DBSecret", json.dumps({"password": SENTINEL})), ("t3/NotJson", SENTINEL)):
        try:
            admin.create_secret(Name=name, SecretString=text)
        except admin.exceptions.ResourceExistsException:
            pass
    inv, service = _aws(moto, {"db": ref})
    with pytest.raises(InvalidInput) as err:
        resolve(inv, service)
    message = str(err.value)
    assert err.value.exit_code == EXIT_INVALID and message.count("\n") == 0
    assert message.startswith("/inv/prod.yaml: ") and fragment in message
    assert SENTINEL not in message


def test_aws_reads_each_secret_name_once(moto, aws_env, monkeypatch):
    import botocore.client

    _admin(moto).create_secret(Name="t4/ApiSecret", SecretString=json.dumps({"username": "u@x", "password": "p"}))
    calls = []
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):
        calls.append((operation, dict(params)))
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    inv, service = _aws(
        moto, {"a": SecretRef("aws", "t4/ApiSecret", "username"), "b": SecretRef("aws", "t4/ApiSecret", "password")}
    )
    resolve(inv, service)
    assert calls == [("GetSecretValue", {"SecretId": "t4/ApiSecret", "VersionStage": "AWSCURRENT"})]


def test_aws_unreachable_endpoint_is_a_one_line_exit_5(aws_env):
    """review14 #6: it was exit 1, which means "ran and failed on at least one host"."""
    endpoint = f"http://127.0.0.1:{_free_port()}"  # nothing listens there: the connection is refused
    inv, service = _aws(endpoint, {"db": SecretRef("aws", "x/DBSecret", "password")})
    started = time.monotonic()
    with pytest.raises(NodeopsError) as err:
        resolve(inv, service)
    assert time.monotonic() - started < 30
    message = str(err.value)
    assert err.value.exit_code == EXIT_UNREACHABLE == 5 and message.count("\n") == 0
    assert message == (
        f"/inv/prod.yaml: services.cl1.secrets.db: secret backend 'aws' (region us-east-1, endpoint {endpoint}) "
        "could not be reached: EndpointConnectionError; nothing was done (check the endpoint and the network, "
        "then run again)"
    )
    assert err.value.__context__ is None  # no botocore error (its frames, its text) chained to it


@pytest.fixture
def answering():
    """A real HTTP server on 127.0.0.1 that answers every request with the status and body set on it (a backend
    behind a proxy that says 404, a throttled or failing service); yields (endpoint, answer list to set)."""
    answer: list = [404, b"<html>Not Found</html>", "text/html"]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, body, kind = answer
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answer
    finally:
        server.shutdown()
        server.server_close()


JSON_ERROR = "application/x-amz-json-1.1"


@pytest.mark.parametrize(
    ("status", "body", "kind", "said"),
    [
        (404, b"<html>Not Found</html>", "text/html", "404"),
        (500, b'{"__type": "InternalServiceError", "message": "boom"}', JSON_ERROR, "InternalServiceError (HTTP 500)"),
        (400, b'{"__type": "ThrottlingException", "message": "Rate exceeded"}', JSON_ERROR,
         "ThrottlingException (HTTP 400)"),
        (503, b"Service Unavailable", "text/plain", "503"),
    ],
    ids=["404", "500", "throttled", "503"],
)  # fmt: skip
def test_aws_backend_answering_an_error_is_a_one_line_exit_5(aws_env, answering, status, body, kind, said):
    """review14b #6: an error answer from the backend was exit 1 ("ran and failed on a host"), though no host was
    contacted: it is exit 5, "the backend could not be read", saying that nothing was done."""
    endpoint, answer = answering
    answer[:] = [status, body, kind]
    inv, service = _aws(endpoint, {"db": SecretRef("aws", "x/DBSecret", "password")})
    with pytest.raises(NodeopsError) as err:
        resolve(inv, service)
    assert err.value.exit_code == EXIT_UNREACHABLE == 5
    assert str(err.value) == (
        f"/inv/prod.yaml: services.cl1.secrets.db: secret backend 'aws' (region us-east-1, endpoint {endpoint}) "
        f"could not be read: it answered {said} for secret 'x/DBSecret'; nothing was done (check the endpoint and "
        "the backend's status, then run again)"
    )
    assert err.value.__context__ is None


def test_deploy_dry_run_with_an_unreachable_backend_exits_5(aws_env, tmp_path):
    """The whole command, as an operator runs it: exit 5 and one line, before any host (the bastion is not asked)."""
    endpoint = f"http://127.0.0.1:{_free_port()}"
    path = tmp_path / "t.yaml"
    path.write_text(GOOD.replace("ssh: {user: root}", f"ssh: {{user: root}}\nsecret_backends: {{aws: {{kind: "
                                 f"aws-secretsmanager, region: us-east-1, endpoint_url: '{endpoint}'}}}}").replace(
        "    nodes:", "    secrets: {db: {backend: aws, name: x/DBSecret, key: password}}\n    nodes:"))  # fmt: skip
    res = fab("deploy", "--inventory", str(path), "--dry-run")
    assert res.returncode == 5, res.stderr
    assert res.stderr == (f"nodeops: {path}: services.cl1.secrets.db: secret backend 'aws' (region us-east-1, "
                          f"endpoint {endpoint}) could not be reached: EndpointConnectionError; nothing was done "
                          "(check the endpoint and the network, then run again)\n")  # fmt: skip


def test_aws_gives_each_value_its_version_id_and_reads_an_older_version_when_asked(moto, aws_env):
    """The version id travels with the value (a container's labels record it); ``versions`` reads what a container
    was started with, after the secret moved on; a deleted version is exit 2 naming it."""
    admin = _admin(moto)
    first = admin.create_secret(Name="t4/DBSecret", SecretString=json.dumps({"password": "old-value", "username": "u"}))
    inv, service = _aws(moto, {"db": SecretRef("aws", "t4/DBSecret", "password"),
                                "db_user": SecretRef("aws", "t4/DBSecret", "username")})  # fmt: skip
    got = resolve(inv, service)
    assert {n: s.version for n, s in got.items()} == {"db": first["VersionId"], "db_user": first["VersionId"]}
    second = admin.put_secret_value(SecretId="t4/DBSecret", SecretString=json.dumps({"password": "new-value",
                                                                                    "username": "u"}))  # fmt: skip
    now = resolve(inv, service)
    assert (now["db"].reveal(), now["db"].version) == ("new-value", second["VersionId"])
    then = resolve(inv, service, versions={"db": first["VersionId"]})
    assert (then["db"].reveal(), then["db"].version) == ("old-value", first["VersionId"])
    assert then["db_user"].version == second["VersionId"]  # not asked: current
    with pytest.raises(InvalidInput) as err:
        resolve(inv, service, versions={"db": "00000000-0000-0000-0000-000000000000"})
    assert "no secret 't4/DBSecret' with version 00000000-0000-0000-0000-000000000000" in str(err.value)


def test_the_env_backend_keeps_no_versions_and_refuses_to_pretend():
    inv, service = _inventory({"ci": SecretBackend(name="ci", kind="env", prefix="T_")},
                              {"db": SecretRef("ci", "x", "password")})  # fmt: skip
    assert resolve(inv, service, environ={"T_X_PASSWORD": "value-1234"})["db"].version is None
    with pytest.raises(InvalidInput, match="keeps no versions"):
        resolve(inv, service, environ={"T_X_PASSWORD": "value-1234"}, versions={"db": "v1"})


# ---------------------------------------------------------------- masking values in messages

PASSWORD = "hunter2-" + SENTINEL


@pytest.mark.parametrize(
    ("text", "values", "public", "expected"),
    [
        ("services.cl1.variables.X: no URL", ["cl1"], ["cl1"], "services.cl1.variables.X: no URL"),  # short: kept
        (
            "services.chainlink-prod.variables.X",
            ["chainlink-prod"],
            ["chainlink-prod"],
            "services.chainlink-prod.variables.X",
        ),  # a user named like its service: a public name, kept
        ("services.chainlink-prod-2.x", ["chainlink-prod"], ["chainlink-prod-2"], "services.chainlink-prod-2.x"),
        ("value 'chainlink-prod'", ["chainlink-prod"], [], "value '*****'"),  # not a public name: masked
        (f"url {PASSWORD}@h", [PASSWORD], ["cl1"], "url *****@h"),
        (f"url {PASSWORD.replace('-', '%2D')}", [PASSWORD.replace("-", "%2D")], [], "url *****"),
        (f"x {quote('p@ss/w:rd!', safe='')} y", ["p@ss/w:rd!"], [], "x ***** y"),  # its percent-encoded form too
        (f"cl1-{PASSWORD}", [f"cl1-{PASSWORD}"], ["cl1"], "*****"),  # contains a public name: masked whole
    ],
    ids=["short", "service-named", "part-of-a-name", "quoted", "password", "literal-percent", "encoded", "contains"],
)
def test_mask_secrets_hides_every_value_but_public_names(text, values, public, expected):
    masked = mask_secrets(text, [Secret(v) for v in values], public)
    assert masked == expected
    assert SENTINEL not in masked
