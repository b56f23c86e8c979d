"""What an operation records: each verb's per-service result and the audit log's lines, declared once.

Every shape here is the one the audit log (``<state_dir>/<env>/audit.jsonl`` on the bastion) and the ``end``
JSON event hold; docs/audit.schema.json is generated from these types (``python -m nodeops.records``) and a unit
test fails when the file and the types differ. Writers build a record through its type and store
``record()`` (the stored JSON object, without the fields the writer did not set); readers (``fab rollback``,
``fab audit``) parse each stored line through ``entry()``, which refuses a line that does not match with one line
naming it (OperationFailed, exit 1). No record holds a secret value: variables are the inventory's non-secret
values, secrets appear by backend version id only.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

from nodeops.errors import OperationFailed

SCHEMA_ID = "https://nodeops.dev/schemas/audit.schema.json"


class Record(BaseModel):
    """A stored JSON object: frozen, no field beyond the declared ones."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def record(self) -> dict:
        """The JSON object as stored: by field alias, only the fields that were set."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# -- what runs on a pair (facts.now.now_record) -------------------------------------------------------------------
class NodeNow(Record):
    """One node as last observed; a node without a container (``empty``, ``unreachable``) has only its state.
    ``failing`` only when ``unhealthy``; the rest are its container's labels (deploy.input_labels)."""

    state: Literal["serves", "unhealthy", "waits", "stopped", "empty", "unreachable"]
    version: str | None = None
    image: str | None = None
    digest: str | None = Field(None, description="the image's registry digest (sha256:<64 hex>), null if unknown")
    config: str | None = Field(None, description="the container's config hash label")
    secret_versions: dict[str, str | None] | None = Field(None, description="backend version ids, never a value")
    failing: list[str] | None = None


class Now(Record):
    """What runs on a pair once a run's last step is over (facts.now.now_record)."""

    active: str | None = Field(description="the one active node, else null: under activation lease the one that "
                               "answers its health path (200 or 503), under keys the one holding the hot keys; null "
                               "under all")  # fmt: skip
    serving: list[str] | None = Field(None, description="activation all: every node that answers its health path "
                                      "with 200; absent under lease and keys")  # fmt: skip
    nodes: dict[str, NodeNow]


# -- each verb's per-service result -------------------------------------------------------------------------------
class NodeRan(Record):
    """What one node of a role that renders per node (its templates read the node) was started on: its own."""

    config: str = Field(description="its config hash (sha256 hex of its own rendered inputs)")
    files: dict[str, str] = Field(description="the text of each of its non-secret files (deploy.recorded_texts)")


class KeysGap(Record):
    """Activation keys: one gap of a deploy in which no node used the hot keys (nodeops.run.keys.keys_gap)."""

    node: str = Field(description="the node that holds the hot keys after it")
    how: Literal["restart in place", "handover", "hand back"] = Field(
        description="the holder restarted in place with its keys, or deploy --via-standby's handover to the standby "
        "or hand back to the holder (each a planned promotion: fence first)")  # fmt: skip
    seconds: float | None = Field(description="from the old holder's stop (the fence) to the holder serving and "
                                  "saying it uses the keys; null: not measured")  # fmt: skip
    chain_units: str | None = Field(None, description="the seconds in the chain's own unit, as the role's outage hook "
                                    "says it (\"11 slots\"); absent when the role has no such hook")  # fmt: skip


class Deployed(Record):
    """deploy and rollback: a service brought to its target (ServiceDeploy.run); what fab rollback reads back.
    ``digest``, ``variables``, ``secret_versions``, ``files`` and ``nodes`` are missing from the records of older
    nodeops."""

    service: str
    changed: bool
    active: str | None = Field(None, description="the node that holds the lease (activation lease); null under all")
    serving: list[str] | None = Field(None, description="activation all: every node, each seen serving at the end")
    failing: list[str] | None = Field(None, description="the active's failing checks, tolerated as before the run")
    image: str = Field(description="the image reference as the inventory (or the rollback target) names it")
    digest: str | None = None
    config: str = Field(description="the config hash started (sha256 hex of the rendered inputs)")
    variables: dict[str, JsonValue] | None = Field(None, description="the inventory's non-secret variables")
    secret_versions: dict[str, str | None] | None = Field(None, description="backend version ids, never a value")
    files: dict[str, str] | None = Field(None, description="the text of each non-secret file (deploy.recorded_texts)")
    nodes: dict[str, NodeRan] | None = Field(None, description="a role that renders per node: each node's own config "
                                             "hash and files (``config`` and ``files``: the first node's); absent "
                                             "for a role that renders once")  # fmt: skip
    keys_gaps: list[KeysGap] | None = Field(None, description="activation keys: each gap in which no node used the "
                                            "hot keys, in order; absent when none")  # fmt: skip
    now: Now | None = None


class DryRun(Record):
    """deploy --dry-run and promote-standby --dry-run (printed in the end event only: a dry run writes no audit
    line): ``planned``, each step of the plan described."""

    service: str
    changed: bool
    planned: list[str]
    secrets_moved: list[str]


class AlreadyThere(Record):
    """rollback --to the version the pair already runs: nothing changed."""

    service: str
    changed: Literal[False]
    active: str | None = Field(description="the active that runs it; null under activation all (every node does)")
    already_at: str
    now: Now | None = None


class Promoted(Record):
    """promote-standby: ``outage_seconds`` null and ``outage_measured`` false when the service was not answering
    before a planned handover; an unplanned one (--force) has no ``outage_measured``. Activation keys moves the hot
    keys, not a lease: ``keys_gap_seconds`` is the time no node held them (``outage_seconds`` null, not measured),
    from the fence's start; null with ``keys_held_before`` false: no node held them when the promotion began (the
    gap began before it, its length unknown)."""

    service: str
    active: str
    outage_seconds: float | None
    outage_measured: bool | None = None
    keys_gap_seconds: float | None = None  # activation keys: the time no node held the hot keys (fence to serving)
    keys_held_before: bool | None = Field(None, description="activation keys: whether a node held the hot keys when "
                                          "the promotion began (false: keys_gap_seconds is null, the gap began "
                                          "before)")  # fmt: skip
    outage_chain_units: str | None = Field(None, description="activation keys: keys_gap_seconds in the chain's own "
                                           "unit, as the role's outage hook says it (\"14 slots\"); absent when the "
                                           "role has no such hook")  # fmt: skip
    now: Now | None = None


class Rotated(Record):
    """rotate-secrets: the secrets rotated; the roll's outage when a handover was measured."""

    service: str
    rotated: list[str]
    outage_seconds: float | None
    said: list[str] | None = Field(None, description="per rotated secret, \"<name>: <line>\": what its role says "
                                   "of the value now in force (how long it lasts; what to run when that is short); "
                                   "absent when no role says anything")  # fmt: skip
    now: Now | None = None


class BackedUp(Record):
    """backup: the backup written to S3 (bytes encrypted and dumped) and the ones retention deleted."""

    service: str
    backup: str
    object: str
    bytes: int
    plain_bytes: int
    seconds: float
    deleted: list[str]


class Restored(Record):
    """restore: the backup restored into ``database``, its key rows counted."""

    service: str
    backup: str
    database: str
    seconds: float
    key_rows: int


class Holder(Record):
    """Who runs what, from where (operation.holder_record): a lock's holder, each audit entry's identity."""

    run: str
    who: str
    from_: str = Field(alias="from")
    ci_run: str | None
    command: str
    started: str


class Released(Record):
    """lock.release: a stale lock removed, with the record of the run that held it ({} when the bastion's copy
    could not be read: commands.bastion.parse_locks)."""

    service: str
    released: Holder | Annotated[dict[str, JsonValue], Field(max_length=0)]


class Failed(Record):
    """A service that failed or was stopped (deploy.per_service): its one-line message; ``now`` when observed."""

    service: str
    error: str
    now: Now | None = None


Result = Deployed | DryRun | AlreadyThere | Promoted | Rotated | BackedUp | Restored | Released | Failed
RESULTS = {kind.__name__ for kind in Result.__args__}


# -- the audit log's lines --------------------------------------------------------------------------------------
class Identity(Record):
    time: str = Field(description="UTC, ISO 8601 (2026-11-30T10:00:00Z)")
    run: str = Field(pattern="^[0-9a-f]{16}$")
    who: str
    env: str
    op: str = Field(description="the command: deploy, promote-standby, rollback, rotate-secrets, backup, restore, "
                    "lock.release")  # fmt: skip


class Details(Record):
    """What a command adds to its start and end entries (Operation's ``details``)."""

    to: str | None = Field(None, description="rollback --to")
    force: bool | None = Field(None, description="promote-standby --force")
    secret: str | None = Field(None, description="rotate-secrets --secret")
    backup: str | None = Field(None, description="restore --from, resolved")
    into: str | None = Field(None, description="restore --into")
    replace_live: bool | None = Field(None, description="restore --replace-live")


class Start(Identity, Details):
    """An operation's start."""

    event: Literal["start"]
    services: list[str]
    from_: str = Field(alias="from")
    ci_run: str | None
    command: str
    started: str


class Step(Identity):
    """One step as the run reported it (the printed event without ``t``); a step may carry more fields."""

    model_config = ConfigDict(extra="allow")

    event: Literal["step"]
    service: str = Field(description="the service, or empty for the whole run")
    node: str = Field(description="the node, or empty for the whole service")
    message: str = Field(description="one line for a person; redacted, never a secret")


class End(Identity, Details):
    """An operation's end: also the run's last JSON line (with ``dry_run`` for a dry run, which writes no entry)."""

    event: Literal["end"]
    result: Literal["ok", "failed", "declined", "stopped"]
    exit_code: int
    error: str | None
    seconds: float = Field(ge=0)
    services: list[str]
    results: list[Result]
    dry_run: Literal[True] | None = None


Entry = Annotated[Start | Step | End, Field(discriminator="event")]
ENTRY: TypeAdapter[Start | Step | End] = TypeAdapter(Entry)


def entry(line: Any, where: str = "the audit log") -> Start | Step | End:
    """``line`` (a stored JSON object, parsed) as its type. A line that does not match raises OperationFailed
    (exit 1) in one line naming the entry (``where``, its event, run, operation and time) and the first mismatch."""
    try:
        return ENTRY.validate_python(line)
    except ValidationError as exc:
        first = exc.errors()[0]
        kinds = [p for p in first["loc"][1:] if p in RESULTS]  # the union's member tried first, not a key
        path = "/".join(str(p) for p in first["loc"][1:] if p not in RESULTS) + (f" as {kinds[0]}" if kinds else "")
        known = line if isinstance(line, dict) else {}
        name = " ".join(f"{k} {known[k]}" for k in ("event", "run", "op", "time") if isinstance(known.get(k), str))
        raise OperationFailed(
            f"{where}: the entry {name or str(line)[:80]} is not one this nodeops can read "
            f"({path or 'the line'}: {first['msg']}); see docs/audit.schema.json"
        ) from None


def end_entry(fields: dict) -> dict:
    """An end entry built through its type (End), as stored: results' errors (NodeopsError) are their messages."""
    return End.model_validate(json.loads(json.dumps(fields, default=str))).record()


def audit_schema() -> dict:
    """docs/audit.schema.json: one audit log line (JSON Schema 2020-12), generated from the types above."""
    schema = ENTRY.json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "A line of the audit log (<state_dir>/<env>/audit.jsonl on the bastion; fab audit --json)",
        "description": "One JSON object per line: an operation's start, its steps, its end with each service's "
        "result. Generated from nodeops/records.py (python -m nodeops.records > docs/audit.schema.json).",
        **schema,
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(audit_schema(), indent=2) + "\n")
