"""The AWS edge (nodeops.edges.aws): which endpoints count as loopback, and how a botocore error is reduced to
what a message may say. The calls against a real moto_server are in test_secrets.py (the Secrets Manager
backend), test_rotate.py and the lab's test_backup.py."""

from __future__ import annotations

import subprocess
import sys

import botocore.exceptions as bx
import pytest

from nodeops.edges import aws
from nodeops.errors import OperationFailed
from nodeops.inventory import SecretBackend

SENTINEL = "s3nt1nel-in-the-request"  # what botocore's message could quote: never passed on


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:5000", True),
        ("http://127.8.9.10", True),
        ("http://localhost:4566", True),
        ("http://[::1]:5000", True),
        ("https://secretsmanager.us-east-1.amazonaws.com", False),
        ("http://10.0.0.1:5000", False),
        ("http://localhost.example.com", False),
        (None, False),
    ],
)
def test_loopback_endpoints(url, loopback):
    assert aws.is_loopback_url(url) is loopback


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        (SecretBackend("aws", "aws-secretsmanager", region="eu-west-1"), "secret backend 'aws' (region eu-west-1)"),
        (SecretBackend("lab", "aws-secretsmanager", region="us-east-1", endpoint_url="http://127.0.0.1:5000",
                       profile="ops"), "secret backend 'lab' (region us-east-1, endpoint http://127.0.0.1:5000)"),
    ],
)  # fmt: skip
def test_a_backend_is_named_without_its_profile_or_credentials(backend, expected):
    assert aws.backend_where(backend) == expected


class Raising:
    """A stand-in client whose one operation raises what it was given (botocore's own exception types)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_thing(self, **_params):
        raise self.error


def client_error(code: str, status: int | None) -> bx.ClientError:
    meta = {"HTTPStatusCode": status} if status else {}
    return bx.ClientError({"Error": {"Code": code, "Message": SENTINEL}, "ResponseMetadata": meta}, "GetThing")


@pytest.mark.parametrize(
    ("error", "kind", "code", "status", "endpoint", "said"),
    [
        (client_error("ThrottlingException", 400), "answered", "ThrottlingException", 400, "?", "ThrottlingException"),
        (client_error("", 404), "answered", "", 404, "?", "ClientError"),
        (bx.NoCredentialsError(), "credentials", "", None, "?", "NoCredentialsError"),
        (bx.PartialCredentialsError(provider="env", cred_var=SENTINEL), "credentials", "", None, "?",
         "PartialCredentialsError"),
        (bx.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "unreachable", "", None,
         "http://127.0.0.1:9", "EndpointConnectionError"),
        (bx.ConnectTimeoutError(endpoint_url="https://sm.example"), "unreachable", "", None, "https://sm.example",
         "ConnectTimeoutError"),
        (bx.ReadTimeoutError(endpoint_url="https://sm.example"), "other", "", None, "?", "ReadTimeoutError"),
        (bx.ParamValidationError(report=SENTINEL), "other", "", None, "?", "ParamValidationError"),
    ],
    ids=["throttled", "no-code", "no-credentials", "partial-credentials", "refused", "connect-timeout",
         "read-timeout", "bad-parameter"],
)  # fmt: skip
def test_attempt_reduces_a_botocore_error_to_a_failure(error, kind, code, status, endpoint, said):
    with pytest.raises(aws.Failure) as got:
        aws.attempt(Raising(error), "get_thing", Name=SENTINEL)
    failure = got.value
    assert (failure.kind, failure.code, failure.status, failure.endpoint, failure.said) == (
        kind, code, status, endpoint, said)  # fmt: skip
    assert failure.name == type(error).__name__
    assert SENTINEL not in str(failure) and failure.__context__ is None and failure.__cause__ is None


def test_call_says_what_failed_and_the_code_only():
    with pytest.raises(OperationFailed) as got:
        aws.call(Raising(client_error("Throttled", 400)), "s3://b: reading k failed", "get_thing", Key=SENTINEL)
    assert str(got.value) == "s3://b: reading k failed: Throttled" and got.value.exit_code == 1
    assert got.value.__context__ is None  # no botocore exception (its frames, its text) travels with it


def test_other_errors_pass_unchanged_and_answers_are_returned():
    with pytest.raises(ValueError, match="not botocore's"):
        aws.call(Raising(ValueError("not botocore's")), "x failed", "get_thing")

    class Answering:
        def get_thing(self, **params):
            return {"Got": params}

    assert aws.call(Answering(), "x failed", "get_thing", Key="k") == {"Got": {"Key": "k"}}


def test_a_command_without_an_aws_backend_never_imports_boto3():
    """boto3 costs ~0.3 s to import: the engine modules that use AWS import it on first use only."""
    code = (
        "import sys\n"
        "import nodeops.backup, nodeops.check, nodeops.rotate, nodeops.secrets.env\n"
        "from nodeops.inventory import SecretBackend, SecretRef\n"
        "from nodeops.secrets import open_backend\n"
        "b = open_backend(SecretBackend('ci', 'env', prefix='T_'), {'T_X': 'v'}, 'inv.yaml')\n"
        "assert b.read(SecretRef('ci', 'x'), None) == ('v', None)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"
