"""The lab's managed services, made to agree with the lab's plan on every ``lab.up`` (``ensure``): PostgreSQL on ``db``
(lab.postgres), AWS for the operator (lab.aws: Secrets Manager and the rest, simulated by moto_server), HAProxy on
``lb`` (lab.balancer); and what the generated inventory gets from them (``inventory_fragment``).

The secrets carry the AWS Quick Start names (``<service>/DBSecret``, ``<service>/WalletSecret``,
``<service>/ApiSecret``) plus ``nodeops/DBAdminSecret`` for the admin role. The inventory fragment names only the
endpoint and the region, exactly as a real-AWS inventory would, with no ``profile``: a profile would need a file in
the operator's ``~/.aws``, outside the lab.

Every ``lab.up`` is idempotent: a secret is created only if missing (re-runs keep its value), and every run
re-applies the database passwords read back from Secrets Manager (``VersionStage="AWSCURRENT"``). So when moto had
to be restarted, and thus re-seeded with new values, PostgreSQL follows at once and the two never disagree; nodes
deployed with the old values must be redeployed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from lab.aws import (
    BACKUP_BUCKET,
    BACKUP_SECRET,
    REGION,
    ensure_backup_store,
    ensure_moto,
    moto_endpoint,
    read_secret,
    secrets_client,
    seed_secrets,
)
from lab.balancer import ensure_haproxy
from lab.daemons import Daemons
from lab.postgres import ADMIN_ROLE, ensure_postgres, psql, roles_sql
from lab.topology import DB_PORT, LabPlan
from nodeops.passwords import Rng, generate_password
from nodeops.roles import load_role

if TYPE_CHECKING:
    from lab.host import Lab

BACKEND = "aws"  # the inventory's name for the lab's secret backend
ADMIN_SECRET = "nodeops/DBAdminSecret"
ETH_CHAIN_ID = 1337


def secret_names(service: str) -> dict[str, str]:
    """The AWS Quick Start secret names of one service."""
    return {"db": f"{service}/DBSecret", "wallet": f"{service}/WalletSecret", "api": f"{service}/ApiSecret"}


def api_email(service: str) -> str:
    return f"ops@{service}.nodeops.example"


def secret_documents(services: Iterable[str], rng: Rng) -> dict[str, dict[str, str]]:
    """Secret name -> its JSON document, for the admin role and every service; each password meets the lab's
    node's rules (the built-in chainlink role's ``passwords:``)."""
    rules = load_role("chainlink").passwords
    docs = {ADMIN_SECRET: {"username": ADMIN_ROLE, "password": generate_password(rng, rules=rules)}}
    for service in services:
        names, email = secret_names(service), api_email(service)
        docs[names["db"]] = {"username": service, "password": generate_password(rng, rules=rules)}
        docs[names["wallet"]] = {"password": generate_password(rng, rules=rules)}
        docs[names["api"]] = {"username": email, "password": generate_password(rng, email, rules=rules)}
    return docs


def inventory_fragment(plan: LabPlan, state: Mapping[str, Any]) -> dict[str, Any]:
    """What the generated inventory gets from the services: the secret backend, and per service
    its ``variables`` and ``secrets`` (references only; no value and no credential)."""

    def ref(name: str, key: str) -> dict[str, str]:
        return {"backend": BACKEND, "name": name, "key": key}

    services = {}
    for service in plan.services():
        names = secret_names(service)
        services[service] = {
            "variables": {
                "DATABASE_HOST": plan.db.private_ip,
                "DATABASE_PORT": DB_PORT,
                "DATABASE_NAME": service,
                "ETH_CHAIN_ID": ETH_CHAIN_ID,
            },
            "load_balancer": f"http://{plan.lb.public_ip}:{plan.lb_port(service)}/health",
            "secrets": {
                "db": ref(names["db"], "password"),
                "db_user": ref(names["db"], "username"),
                "keystore": ref(names["wallet"], "password"),
                "api_email": ref(names["api"], "username"),
                "api_password": ref(names["api"], "password"),
                "db_admin_user": ref(ADMIN_SECRET, "username"),  # for fab rotate-secrets --secret db
                "db_admin": ref(ADMIN_SECRET, "password"),
            },
        }
    backend = {"kind": "aws-secretsmanager", "region": REGION, "endpoint_url": moto_endpoint(state["secrets_port"])}
    fragment: dict[str, Any] = {"secret_backends": {BACKEND: backend}, "services": services}
    if state.get("backup_recipient"):  # fab backup: moto's S3, to the lab identity's public key; restore reads it
        fragment["backup"] = {"bucket": BACKUP_BUCKET, "aws": BACKEND, "recipients": [state["backup_recipient"]],
                              "identity": ref(BACKUP_SECRET, "identity"),
                              "keep_daily": 7, "keep_weekly": 4}  # fmt: skip
    return fragment


def reseeded_roles(created: Iterable[str], services: Iterable[str]) -> set[str]:
    """The roles whose password secret is among ``created`` (the secrets seed_secrets just made: a restarted moto
    came back empty): their password is set again, to the new secret's (roles_sql's ``reset``)."""
    made = set(created)
    roles = {ADMIN_ROLE} if ADMIN_SECRET in made else set()
    return roles | {service for service in services if secret_names(service)["db"] in made}


def ensure(lab: Lab, daemons: Daemons, plan: LabPlan) -> None:
    """Make the three services run and agree with ``plan`` (idempotent; called by Lab.up).

    When the lab shrank, HAProxy drops the gone services' listeners, but their
    roles, databases (with their data) and secrets stay; ``lab.down`` removes all.
    """
    started = [
        s
        for s in (ensure_postgres(lab, daemons, plan), ensure_moto(lab, daemons), ensure_haproxy(lab, daemons, plan))
        if s
    ]
    Daemons.wait(started)
    client = secrets_client(lab.state["secrets_port"])
    created = seed_secrets(client, secret_documents(plan.services(), secrets.SystemRandom()))
    admin = read_secret(client, ADMIN_SECRET)["password"]
    passwords = {svc: read_secret(client, secret_names(svc)["db"])["password"] for svc in plan.services()}
    reset = reseeded_roles(created, plan.services())  # an existing role keeps its password (a rotation's, say)
    psql(lab.host_dir(plan.db), roles_sql(admin, passwords, reset), hide=[admin, *passwords.values()])
    recipient = ensure_backup_store(client, lab.state["secrets_port"])
    if lab.state.get("backup_recipient") != recipient:
        lab.state["backup_recipient"] = recipient
        lab.save()
