"""Whether a producer's hot credentials can make blocks the chain takes, as the chain checks a block's header; and
the refusal of a new certificate before any host is touched.

Upstream: IntersectMBO/ouroboros-consensus, Ouroboros.Consensus.Protocol.Praos, ``doValidateKESSignature`` (from
Babbage on; before it, cardano-ledger's libs/cardano-protocol-tpraos/src/Cardano/Protocol/TPraos/Rules/OCert.hs,
``ocertTransition``, the same checks without the counter's upper bound). A header carries the
pool's cold verification key, the operational certificate and a KES signature made at evolution ``kp - c0``; it is
refused, in this order, for ``KESBeforeStartOCERT`` (``kp < c0``), ``KESAfterEndOCERT`` (``kp >= c0 +
maxKESEvolutions``), ``InvalidSignatureOCERT`` (the certificate is not the cold key's), ``InvalidKesSignatureOCERT``
(the KES signature is not the certificate's hot key's at that evolution), ``CounterTooSmallOCERT`` and
``CounterOverIncrementedOCERT`` (the counter against the chain's, ``m <= n <= m + 1``). A node with credentials that
fail these forges blocks nobody takes: the lab's node simulator refuses to forge with them and logs the reason.
``refusals`` checks a producer's signing key (what it would sign with); ``header_refusals`` checks a received
header's KES signature (what the lab's chain service does with every block it is sent).
"""

from __future__ import annotations

from dataclasses import dataclass

from nodeops.errors import InvalidInput

from . import kes
from .kes import SignKey
from .ocert import Certificate, ColdKey, chain_counter, check_counter
from .periods import KesWindow


@dataclass(frozen=True)
class Refusal:
    """Why the chain would refuse a block: the ledger's name for it (``KESAfterEndOCERT``) and a sentence."""

    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def refusals(certificate: Certificate, kes_key: SignKey, pool_cold_vk: bytes, window: KesWindow,
             on_chain: int | None) -> list[Refusal]:  # fmt: skip
    """What the chain would refuse a block for, made at ``window.current`` with ``kes_key`` (at the period it was
    read at: 0 for a key file, counted from the certificate's start) under ``certificate``, for the pool whose cold
    verification key is ``pool_cold_vk`` and whose highest counter on chain is ``on_chain`` (None: no block yet);
    empty when it would take it. Pure."""
    found = _window(window) + _signed_by(certificate, pool_cold_vk)
    if kes_key.verification_key != certificate.kes_vk:
        found.append(Refusal("InvalidKesSignatureOCERT", "the KES key is not the one the certificate names"))
    elif window.valid and window.evolution < kes_key.period:  # forgotten: forward security
        found.append(Refusal("InvalidKesSignatureOCERT", f"the KES key is at evolution {kes_key.period}, past the "
                             f"{window.evolution} the period needs"))  # fmt: skip
    return found + _counter(certificate, on_chain)


def header_refusals(certificate: Certificate, signed: bytes, kes_signature: bytes, pool_cold_vk: bytes,
                    window: KesWindow, on_chain: int | None) -> list[Refusal]:  # fmt: skip
    """What the chain refuses a received block's header for: as ``refusals``, but with the header's KES signature
    (``kes_signature`` of the ``signed`` header body bytes) checked against the certificate's KES verification key
    at evolution ``window.current - window.start`` (kes.verify), where ``refusals`` checks a signing key. Pure."""
    found = _window(window) + _signed_by(certificate, pool_cold_vk)
    if window.valid and not kes.verify(certificate.kes_vk, window.evolution, signed, kes_signature):
        found.append(Refusal("InvalidKesSignatureOCERT", f"the KES signature is not the certificate's KES key's at "
                             f"evolution {window.evolution}"))  # fmt: skip
    return found + _counter(certificate, on_chain)


def _window(window: KesWindow) -> list[Refusal]:
    if window.current < window.start:
        return [Refusal("KESBeforeStartOCERT", f"KES period {window.current} is before the certificate's "
                        f"start {window.start}")]  # fmt: skip
    if window.current >= window.end:
        return [Refusal("KESAfterEndOCERT", f"KES period {window.current} is past the certificate's last, "
                        f"{window.end - 1} (its start {window.start} + maxKESEvolutions - 1)")]  # fmt: skip
    return []


def _signed_by(certificate: Certificate, pool_cold_vk: bytes) -> list[Refusal]:
    if certificate.verify(pool_cold_vk):
        return []
    return [Refusal("InvalidSignatureOCERT", "the certificate is not signed by the pool's cold key")]


def _counter(certificate: Certificate, on_chain: int | None) -> list[Refusal]:
    held = chain_counter(on_chain)
    if certificate.counter < held:
        return [Refusal("CounterTooSmallOCERT", f"counter {certificate.counter} is below the chain's {held}")]
    if certificate.counter > held + 1:
        return [Refusal("CounterOverIncrementedOCERT", f"counter {certificate.counter} is more than one past "
                        f"the chain's {held}")]  # fmt: skip
    return []


class IssueRefused(InvalidInput):
    """A new certificate nodeops will not issue (exit 2, before any host): ``<where>: <why>``."""


def check_issue(cold: ColdKey, pool_cold_vk: bytes, counter: int, on_chain: int | None, where: str) -> None:
    """IssueRefused, naming ``where`` (the cold key's secret reference), unless ``cold`` is the pool's cold key
    (its verification key is ``pool_cold_vk``) and ``counter`` supersedes the certificate in force
    (ocert.check_counter: the chain's plus one). Pure."""
    if cold.verification_key != pool_cold_vk:
        raise IssueRefused(f"{where}: this cold key is not the pool's (its verification key is "
                           f"{cold.verification_key.hex()}, the pool's {pool_cold_vk.hex()})")  # fmt: skip
    try:
        check_counter(counter, on_chain)
    except ValueError as err:
        raise IssueRefused(f"{where}: {err}") from None
