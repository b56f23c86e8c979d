"""The lab's AWS: ``moto_server`` on 127.0.0.1 in the operator's network namespace, serving Secrets Manager, Parameter
Store, KMS and S3 on its one port (the secret backends' and ``fab backup``'s tests). It keeps everything in memory,
checks no credentials and has no IAM.

Credentials for moto clients: the lab writes none, anywhere. moto accepts any key pair, but botocore refuses to sign
without one, so a lab client passes ``AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing``
(``MOTO_CREDENTIALS``; these are not secrets). The age identity backups are encrypted to is generated at ``lab.up``
into ``nodeops/BackupIdentity`` (never a file), and only its public key goes into the inventory.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.daemons import Daemons, Started, accepts
from nodeops.errors import OperationFailed

if TYPE_CHECKING:
    from lab.host import Lab

REGION = "us-east-1"
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
BACKUP_SECRET = "nodeops/BackupIdentity"  # the lab's age identity for fab restore: made at lab.up, only in moto
BACKUP_BUCKET = "nodeops-backups"


def moto_endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def moto_argv(moto_server: str, port: int) -> tuple[str, ...]:
    """moto_server on loopback; ``--port=N`` as one word, so that it can serve as the Daemons marker."""
    return (moto_server, "--host", "127.0.0.1", f"--port={port}")


def ensure_backup_store(client: Any, port: int) -> str:
    """The bucket in moto's S3 and the age identity in moto's Secrets Manager (made once, never on disk);
    returns its public key, the recipient the inventory names."""
    import pyrage

    # Made once; a rerun keeps it (a restarted moto starts empty: new identity, new bucket, no old backups).
    seed_secrets(client, {BACKUP_SECRET: {"identity": str(pyrage.x25519.Identity.generate())}})
    identity = pyrage.x25519.Identity.from_str(read_secret(client, BACKUP_SECRET)["identity"])
    s3 = aws_client_for(port, "s3")
    if BACKUP_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BACKUP_BUCKET)
    return str(identity.to_public())


def secrets_client(port: int) -> Any:
    """A boto3 Secrets Manager client for the lab's moto (its dummy credentials passed, not exported)."""
    return aws_client_for(port, "secretsmanager")


def aws_client_for(port: int, service: str) -> Any:
    """A boto3 client of the lab's moto for ``service`` (secretsmanager, s3), its dummy credentials passed."""
    import boto3  # here: boto3 takes ~0.3 s to import and only lab.up needs it

    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=moto_endpoint(port),
        aws_access_key_id=MOTO_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=MOTO_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def seed_secrets(client: Any, documents: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Create each secret that does not exist yet; never overwrite. Returns the names created."""
    existing = {s["Name"] for page in client.get_paginator("list_secrets").paginate() for s in page["SecretList"]}
    created = []
    for name, doc in documents.items():
        if name in existing:
            continue
        try:
            client.create_secret(Name=name, SecretString=json.dumps(doc))
        except client.exceptions.ResourceExistsException:
            continue
        created.append(name)
    return created


def put_secret(client: Any, name: str, doc: Mapping[str, str]) -> None:
    """Write ``doc`` as secret ``name``'s current value: a new version of an existing secret, else a new secret."""
    try:
        client.put_secret_value(SecretId=name, SecretString=json.dumps(doc))
    except client.exceptions.ResourceNotFoundException:
        client.create_secret(Name=name, SecretString=json.dumps(doc))


def read_secret(client: Any, name: str) -> dict[str, str]:
    return json.loads(client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"])


def _port_free(port: int) -> bool:
    """Whether a server may listen on the port (SO_REUSEADDR, as moto's server sets: a TIME_WAIT is no obstacle)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_moto(lab: Lab, daemons: Daemons) -> Started | None:
    """moto_server on the port kept in the lab's state (a new one only if another program took it)."""
    key = "operator/moto"
    if daemons.running(key):
        return None
    moto_server = Path(sys.executable).with_name("moto_server")
    if not moto_server.exists():
        raise OperationFailed(f"lab: {moto_server} not found; install the test extras (pip install -e '.[test]')")
    port = lab.state.get("secrets_port")
    if port is None or not _port_free(port):
        lab.state["secrets_port"] = port = _free_port()
        lab.save()
    log = lab.dir / "operator" / "moto.log"
    log.parent.mkdir(mode=0o700, exist_ok=True)
    return daemons.start(
        key, moto_argv(str(moto_server), port), f"--port={port}", log, lambda: accepts("127.0.0.1", port)
    )
