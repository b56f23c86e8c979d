"""The lab's Cardano stake pool (``fab lab.up --pool``): the chain service on the chain host, the pool's keys in the
lab's Secrets Manager, the Cardano image in the lab's registry, and the pool's description in the lab's state.

What ``ensure`` makes, on every ``lab.up --pool`` (idempotent), in this order:

- **the pool's keys**, generated in memory with roles/cardano's modules and stored only in the lab's Secrets
  Manager (moto, lab.aws): the cold signing key (``pool/ColdKey``, key ``cold.skey``: a cardano-cli text envelope
  ``StakePoolSigningKey_ed25519``), the operational certificate's issue counter (``pool/IssueCounter``, key
  ``cold.counter``: ``NodeOperationalCertificateIssueCounter``, next number 0) and the VRF signing key
  (``pool/VrfKey``, key ``vrf.skey``: ``VrfSigningKey_PraosVRF``). A secret is created only if missing, so a rerun
  keeps the keys (a restarted moto starts empty: new keys, and the chain is restarted with the new pool). No key
  is written to a file, an argument or a log: only the cold *verification* key goes to the chain host's folder.
- **the Cardano image** (lab.image ``CARDANO``), pushed to the lab's registry and put in the shared image store.
- **the chain service** (lab/images/cardano-sim ``cardano-chain``, run from the repository with this Python, in
  the chain host's network namespace, listening on its private address, port ``CHAIN_PORT``): a lab daemon
  (``chain/chain``; lab.down stops it) with the lab's Shelley genesis (roles/cardano ``config.lab_genesis_file``,
  i.e. ``periods.lab_shelley_genesis``) starting when the chain starts, and the pool registered by its cold
  verification key (its pool id: Blake2b-224 of that key, roles/cardano ``rotation.pool_id``), so the chain elects
  it for its share of slots. A running chain with the same pool is kept, with its genesis.
- **the pool's description** in the lab's state (``state["pool"]``): see ``describe``.
- **the producer's first hot credentials**, by ``first_hot``, which Lab.up calls last, once the chain runs and
  the images are published (``pool/HotKeys``: ``kes.skey`` and ``node.cert`` in one secret, so that a KES key and
  its certificate are always written together), whenever the chain started anew (its counters start empty: a
  fresh pool) since they were last issued, or the secret is missing: a KES key made in memory and the certificate
  the cold key (read in memory) issues for it with the issue counter's next number and the chain's current KES
  period (``issue_hot``), the counter then moved on by one, as ``cardano-cli node issue-op-cert`` does. The lab's
  certificate lasts ``maxKESEvolutions`` periods (60 s) from its issue: KES rotation renews it.

The inventory gets the pool's service only once the role exists (``inventory_services``): the hand-over point to
the role's task.
"""

from __future__ import annotations

import json
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nacl.signing import SigningKey

from lab import image
from lab.aws import put_secret, read_secret, secrets_client, seed_secrets
from lab.daemons import Daemons, Started, listening
from lab.hosts import host_key
from lab.services import BACKEND
from lab.topology import CHAIN_PORT, POOL_SERVICE, LabPlan
from nodeops.roles import BUILTIN_ROLES, role_module

if TYPE_CHECKING:
    from lab.host import Lab

CHAIN = Path(__file__).resolve().parent / "images" / "cardano-sim" / "cardano-chain"
CHAIN_KEY = "chain/chain"  # the chain service's key among the lab's daemons
# The pool's secrets: what the inventory's secret references call them -> (secret name, key in its JSON document).
KEY_SECRETS = {
    "cold_key": (f"{POOL_SERVICE}/ColdKey", "cold.skey"),
    "counter": (f"{POOL_SERVICE}/IssueCounter", "cold.counter"),
    "vrf_key": (f"{POOL_SERVICE}/VrfKey", "vrf.skey"),
}
HOT_SECRET = f"{POOL_SERVICE}/HotKeys"  # the KES key and its certificate: written together, read together
HOT_SECRETS = {"kes_key": (HOT_SECRET, "kes.skey"), "op_cert": (HOT_SECRET, "node.cert")}
HOT_DUE = "pool_hot_due"  # in the lab's state: the chain started anew, its first hot credentials not issued
ROLE_SECRETS = ("kes_key", "op_cert", "vrf_key")  # roles/cardano/role.yaml's: what deploy reads (never the cold key)
ROTATION_READS = ("cold_key", "counter")  # role.yaml rotation.kes.reads: KES rotation alone reads them
envelope = role_module("cardano", "envelope")
config = role_module("cardano", "config")
hot = role_module("cardano", "hot")
kes = role_module("cardano", "kes")
ocert = role_module("cardano", "ocert")
periods = role_module("cardano", "periods")
rotation = role_module("cardano", "rotation")


def key_documents(cold_seed: bytes, vrf_seed: bytes) -> dict[str, dict[str, str]]:
    """The pool's three secrets (secret name -> its JSON document, each a cardano-cli text envelope) for a cold key
    and a VRF key made from 32-byte seeds; the counter's next number is 0 (no certificate issued yet). The VRF
    signing key is libsodium's layout, seed then public key (roles/cardano/envelope.py); ValueError for a seed
    that is not 32 bytes."""
    cold = ocert.ColdKey(cold_seed)
    if len(vrf_seed) != 32:
        raise ValueError(f"a VRF seed has 32 bytes, not {len(vrf_seed)}")
    texts = {
        "cold_key": envelope.cold_signing_key_file(cold),
        "counter": envelope.issue_counter_file(ocert.IssueCounter(0, cold.verification_key)),
        "vrf_key": envelope.vrf_signing_key_file(vrf_seed + bytes(SigningKey(vrf_seed).verify_key)),
    }
    return {KEY_SECRETS[what][0]: {KEY_SECRETS[what][1]: text} for what, text in texts.items()}


def ensure_keys(client: Any) -> bytes:
    """Store the pool's keys in Secrets Manager unless there (``client``: lab.aws.secrets_client); returns the
    cold verification key of the cold key stored (32 bytes)."""
    seed_secrets(client, key_documents(secrets.token_bytes(32), secrets.token_bytes(32)))
    name, key = KEY_SECRETS["cold_key"]
    return envelope.read_cold_signing_key(read_secret(client, name)[key], f"secret {name}").verification_key


def issue_hot(cold_text: str, counter_text: str, vrf_text: str, kes_period: int) -> tuple[dict[str, str], str]:
    """The producer's hot credentials for a pool whose keys' secrets hold these texts: (the ``HOT_SECRET`` document,
    ``kes.skey`` and ``node.cert``; the counter's text moved on by one). The certificate carries the counter's next
    number and starts at ``kes_period``, for a KES key made here, in memory. Pure but for the KES key's seed."""
    cold = envelope.read_cold_signing_key(cold_text, KEY_SECRETS["cold_key"][0])
    counter = envelope.read_issue_counter(counter_text, KEY_SECRETS["counter"][0])
    vrf = envelope.read_vrf_signing_key(vrf_text, KEY_SECRETS["vrf_key"][0])
    made = hot.bundle(cold, vrf, kes.SignKey.generate(), counter.next, kes_period)
    document = {key: made.files[key].decode() for _, key in HOT_SECRETS.values()}
    return document, envelope.issue_counter_file(ocert.IssueCounter(counter.next + 1, counter.cold_vk))


def ensure_hot(client: Any, genesis: Path, fresh: bool) -> None:
    """Store the producer's first hot credentials (``issue_hot``) when the chain started anew (``fresh``) or none are
    stored; the counter's secret moved on first, so a run killed between the two never reuses a counter."""
    names = {s["Name"] for page in client.get_paginator("list_secrets").paginate() for s in page["SecretList"]}
    if not fresh and HOT_SECRET in names:
        return
    texts = {what: read_secret(client, name)[key] for what, (name, key) in KEY_SECRETS.items()}
    lab = periods.Genesis.from_shelley_genesis("lab", json.loads(genesis.read_text()))
    document, counter = issue_hot(texts["cold_key"], texts["counter"], texts["vrf_key"],
                                  lab.kes_period(lab.slot_at(datetime.now(UTC))))  # fmt: skip
    put_secret(client, KEY_SECRETS["counter"][0], {KEY_SECRETS["counter"][1]: counter})
    put_secret(client, HOT_SECRET, document)


def chain_argv(plan: LabPlan, python: str, genesis: Path, cold_vkey: Path) -> tuple[str, ...]:
    """The chain service's command line: ``cardano-chain`` in the chain host's network namespace, on its private
    address. Only paths: the cold verification key's file registers the pool."""
    return ("nsenter", f"--net=/run/netns/{plan.chain.netns}", "--", python, str(CHAIN), "--genesis", str(genesis),
            "--pool", str(cold_vkey), "--host", plan.chain.private_ip, "--port", str(CHAIN_PORT))  # fmt: skip


def ensure_chain(lab: Lab, daemons: Daemons, plan: LabPlan, cold_vk: bytes) -> Started | None:
    """Start the chain service unless it runs with this pool registered; a new start writes the genesis with the
    system start now (whole seconds)."""
    folder = lab.host_dir(plan.chain)
    folder.mkdir(parents=True, mode=0o700, exist_ok=True)
    vkey, genesis = folder / "cold.vkey", folder / "shelley-genesis.json"
    text = envelope.cold_verification_key_file(cold_vk)
    if daemons.running(CHAIN_KEY) and vkey.exists() and vkey.read_text() == text:
        return None
    daemons.stop([CHAIN_KEY])
    vkey.write_text(text)
    genesis.write_bytes(config.lab_genesis_file(datetime.now(UTC)))
    ready = listening(plan.chain.netns, f"{plan.chain.private_ip}:{CHAIN_PORT}")
    argv = chain_argv(plan, sys.executable, genesis, vkey)
    return daemons.start(CHAIN_KEY, argv, str(genesis), folder / "chain.log", ready)


def describe(lab: Lab, plan: LabPlan, images: list[str], cold_vk: bytes) -> dict[str, Any]:
    """The pool as the lab's state records it: ``service``, ``chain`` (the chain service's URL), ``system_start``
    (the genesis's), ``genesis`` (the genesis file on the operator's side), ``pool_id`` (hex), ``images`` (the
    Cardano image's references), ``nodes`` (``name``, ``host``, ``kind``, ``preferred`` for the producers,
    ``host_key``) and ``secrets`` (secret references: no value)."""
    genesis = lab.host_dir(plan.chain) / "shelley-genesis.json"
    nodes = [
        {"name": h.name, "host": h.private_ip, "kind": h.node_kind,
         **({"preferred": h.preferred} if h.preferred else {}), "host_key": host_key(lab, h)}
        for h in plan.pool
    ]  # fmt: skip
    return {
        "service": POOL_SERVICE,
        "chain": plan.chain_address,
        "system_start": json.loads(genesis.read_text())["systemStart"],
        "genesis": str(genesis),
        "pool_id": rotation.pool_id(cold_vk).hex(),
        "images": images,
        "nodes": nodes,
        "secrets": {
            what: {"backend": BACKEND, "name": name, "key": key}
            for what, (name, key) in {**KEY_SECRETS, **HOT_SECRETS}.items()
        },
    }


def ensure(lab: Lab, daemons: Daemons, plan: LabPlan, cache: Path, docker: tuple[str, ...],
           podman: tuple[str, ...]) -> None:  # fmt: skip
    """Make the pool's part of the lab agree with ``plan`` (called by Lab.up once moto and the registry run): the
    keys, the Cardano image, then the chain, and the pool's description; the first hot credentials are first_hot's,
    called last. Without a pool, only forget its description (its hosts and chain went with their namespaces; its
    secrets stay until lab.down, as a removed service's). ``docker``/``podman``: argv prefixes running them in a
    lab node."""
    if plan.chain is None:
        if [lab.state.pop(key, None) for key in ("pool", HOT_DUE)] != [None, None]:
            lab.save()
        return
    client = secrets_client(lab.state["secrets_port"])
    cold_vk = ensure_keys(client)
    images = image.publish(cache, plan.registry_address, docker, image.CARDANO)
    image.fill_shared_store(cache, images, podman)
    started = ensure_chain(lab, daemons, plan, cold_vk)
    Daemons.wait([started] if started else [])
    lab.state["pool"] = describe(lab, plan, images, cold_vk)
    if started is not None:  # due until first_hot issues them, through a lab.up stopped in between
        lab.state[HOT_DUE] = True
    lab.save()


def first_hot(lab: Lab, plan: LabPlan) -> None:
    """The producer's first hot credentials (ensure_hot), fresh when the chain started anew since they were last
    issued (``HOT_DUE``: a lab.up stopped in between leaves them due). Lab.up calls it last, just before it returns:
    the lab's certificate lasts 60 s from the KES period it is issued in (maxKESEvolutions, 30 periods of 2 s), so
    a deploy right after lab.up has the whole window. Without a pool, nothing."""
    if plan.chain is None:
        return
    client = secrets_client(lab.state["secrets_port"])
    ensure_hot(client, lab.host_dir(plan.chain) / "shelley-genesis.json", fresh=bool(lab.state.get(HOT_DUE)))
    lab.state.pop(HOT_DUE, None)
    lab.save()


def inventory_services(description: dict[str, Any] | None, roles: Path = BUILTIN_ROLES) -> dict[str, Any]:
    """The inventory's pool service from the lab's pool ``description`` (``describe``), ``{}`` without a pool or
    while ``roles/cardano/role.yaml`` does not exist in ``roles``. The service, in the role's shape: ``role:
    cardano``, the first Cardano image, the nodes with their ``kind`` (a producer its ``preferred``), the profile
    ``lab`` with its chain's ``SYSTEM_START`` and the chain service's URL (``CARDANO_SIM_CHAIN``), and the references
    of the role's secrets (``ROLE_SECRETS``: the hot credentials) and of those only KES rotation reads
    (``ROTATION_READS``: the cold key and the issue counter, which a deploy never fetches: role.yaml
    ``rotation.kes.reads``)."""
    if not description or not (roles / "cardano" / "role.yaml").is_file():
        return {}
    return {
        description["service"]: {
            "role": "cardano",
            "image": description["images"][0],
            "nodes": description["nodes"],
            "variables": {
                "PROFILE": "lab",
                "SYSTEM_START": description["system_start"],
                "CARDANO_SIM_CHAIN": description["chain"],
            },
            "secrets": {what: description["secrets"][what] for what in (*ROLE_SECRETS, *ROTATION_READS)},
        }
    }
