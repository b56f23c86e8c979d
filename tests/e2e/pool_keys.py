"""What the lab tests of a pool share (tests/e2e/test_lab_pool.py, test_pool_deploy.py): the pool's keys as the lab's
Secrets Manager holds them, the byte strings by which each key is searched for, the search itself, and a GET from
inside the lab's private network."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from lab.aws import read_secret, secrets_client
from lab.host import Lab
from lab.pool import HOT_SECRETS, KEY_SECRETS
from nodeops.roles import role_module

envelope = role_module("cardano", "envelope")


def state(lab: Lab) -> dict:
    return json.loads(lab.state_file.read_text())


def pool_keys(lab: Lab) -> dict[str, str]:
    """Each key's cardano-cli envelope text (cold_key, counter, vrf_key, kes_key, op_cert), read from the lab's
    Secrets Manager."""
    client = secrets_client(state(lab)["secrets_port"])
    return {what: read_secret(client, name)[key] for what, (name, key) in {**KEY_SECRETS, **HOT_SECRETS}.items()}


def sentinels(keys: Mapping[str, str]) -> dict[str, bytes]:
    """Each key's payload (raw bytes and hex) and its whole envelope text: none may be found outside moto."""
    found = {}
    for what, text in keys.items():
        cbor_hex = json.loads(text)["cborHex"]
        found |= {f"{what} envelope": text.encode(), f"{what} cborHex": cbor_hex.encode(),
                  f"{what} bytes": bytes.fromhex(cbor_hex)[2:]}  # fmt: skip
    cold = envelope.read_cold_signing_key(keys["cold_key"], "cold")
    return found | {"cold seed hex": cold.seed.hex().encode(), "cold seed": cold.seed}


def leaks(places: Iterable[Path | tuple[str, bytes]], found: Mapping[str, bytes]) -> list[tuple[str, str]]:
    """(where, what) for each of ``found``'s byte strings found in ``places``: files, or (a name, bytes) such as a
    command's output or a container's argv."""
    out = []
    for place in places:
        where, data = (str(place), place.read_bytes()) if isinstance(place, Path) else place
        out += [(where, what) for what, value in found.items() if value in data]
    return out


def get_inside(netns: str, url: str):
    """GET ``url``'s JSON (or text, when it is none) from inside the lab host ``netns``'s network (the operator has
    no route to a private address). curl, not a Python interpreter: the pool tests poll the chain many times a
    second, and a python3 started per poll cost about 80 ms of CPU each on the loaded 2-core machine (curl: 8)."""
    argv = ["nsenter", f"--net=/run/netns/{netns}", "--", "curl", "-sS", "--fail", "--max-time", "2", url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return proc.stdout
