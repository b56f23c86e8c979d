"""What the lab's Cardano chain service (cardano-chain) and node simulator (cardano-node) share: the pool code of
roles/cardano (imported from the repository, or from the copy the image build puts beside this file), the lab
network's clock from its Shelley genesis file, leader election, the block header on the wire, cardano-node's log
line and a small JSON/text HTTP server.

Leader election is a stand-in for Praos's VRF (no VRF is computed): pool ``p`` leads slot ``s`` when the first 8
bytes of ``Blake2b-256("lab-leader" | s as 8 bytes big-endian | p's id)``, read as a fraction of 2^64, are below the
genesis's ``activeSlotsCoeff``. Deterministic, so a node and the chain agree on it without talking.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cbor2

_HERE = Path(__file__).resolve().parent
for _lib in (_HERE.parents[2], _HERE):  # the repository (lab/images/cardano-sim/..), or the image's copy
    if (_lib / "roles" / "cardano" / "kes.py").is_file():
        sys.path[:0] = [str(_lib / "roles"), str(_lib)]
        break

from cardano import envelope, forging, kes, ocert, periods  # noqa: E402  (found on the path just set)

__all__ = ["envelope", "forging", "kes", "ocert", "periods"]


def read_genesis(path: str | Path) -> tuple[periods.Genesis, dict[str, Any]]:
    """The network's clock (periods.Genesis) and the genesis document of the Shelley genesis file at ``path``;
    ValueError naming the file."""
    try:
        doc = json.loads(Path(path).read_text())
        return periods.Genesis.from_shelley_genesis("lab", doc), doc
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None


def pool_id(cold_vk: bytes) -> str:
    """A pool's id: the Blake2b-224 hash of its cold verification key, in hex (cardano-cli's ``stake-pool id``)."""
    return hashlib.blake2b(cold_vk, digest_size=28).hexdigest()


def leads(slot: int, pool: str, active_slots_coeff: float) -> bool:
    """Whether pool ``pool`` (its id, hex) leads ``slot`` (see the module's docstring)."""
    digest = kes.blake2b_256(b"lab-leader" + slot.to_bytes(8, "big") + bytes.fromhex(pool))
    return int.from_bytes(digest[:8], "big") < active_slots_coeff * 2**64


def current_slot(genesis: periods.Genesis) -> int:
    """The slot the wall clock is in (0 before the system start)."""
    now = datetime.now(UTC)
    return genesis.slot_at(now) if now >= genesis.system_start else 0


def header_body(block_no: int, slot: int, prev_hash: str, issuer_vk: bytes, vrf_vk: bytes, certificate: bytes) -> bytes:
    """The bytes a block's KES signature covers: the CBOR list of its block number, slot, previous hash (hex; empty
    for the first block), the issuer's cold verification key, the VRF verification key and the operational
    certificate (its CBOR)."""
    return cbor2.dumps([block_no, slot, prev_hash, issuer_vk, vrf_vk, certificate])


def block_hash(body: bytes, signature: bytes) -> str:
    """A block's hash: Blake2b-256 of its header body and signature, in hex."""
    return kes.blake2b_256(body + signature).hex()


def log(namespace: str, severity: str, message: str) -> None:
    """One line on stdout as cardano-node's ``Stdout HumanFormatUncoloured`` writes it:
    ``[host:cardano.node.<namespace>:<severity>:<thread>] [<UTC time>] <message>``."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-4]
    thread = threading.get_ident() % 1000
    print(f"[{socket.gethostname()}:cardano.node.{namespace}:{severity}:{thread}] [{when} UTC] {message}", flush=True)


Route = Callable[[dict[str, Any] | None], tuple[int, Any]]


def serve(host: str, port: int, routes: dict[tuple[str, str], Route]) -> ThreadingHTTPServer:
    """An HTTP server on ``host:port``, in a daemon thread, answering ``routes``: ``(method, path) -> handler``; a
    handler gets the request's JSON body (None for a GET) and returns a status and a body (JSON unless a str)."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            route = routes.get((method, self.path.split("?", 1)[0]))
            if route is None:
                return self._send(404, {"error": f"no {method} {self.path}"})
            body = None
            if method == "POST":
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
                except ValueError:
                    return self._send(400, {"error": "the body is not JSON"})
            self._send(*route(body))

        def _send(self, status: int, body: Any) -> None:
            text, kind = (body, "text/plain; version=0.0.4") if isinstance(body, str) else (
                json.dumps(body), "application/json")  # fmt: skip
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

        def log_message(self, *args: Any) -> None:  # requests are not logged, as the real node's metrics server
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
