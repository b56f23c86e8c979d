"""Rotation's pure parts: a secret's stage bookkeeping (Secrets Manager's AWSCURRENT/AWSPENDING, as the calls that
finish or discard a rotation), the secret documents (the rotated key inside a JSON SecretString), which rotations
``--secret`` selects and what they need from the inventory, and the roll's plan. No edge is touched here
(tests/unit/test_rotate.py)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nodeops import program
from nodeops.errors import InvalidInput, InventoryError, OperationFailed, Unsafe
from nodeops.facts.view import NodeView
from nodeops.inventory import Inventory, Service
from nodeops.plan import Desired, ServicePlan, plan_service, the_active
from nodeops.roles import RotationSpec, role_for

CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"
# a Secrets Manager staging label of our own beside AWSPENDING: the pending version was staged by a chain fence
# (promote-standby --force, nodeops.promote_forced), which only that verb completes; put with it in one call
FENCE = "nodeops-fence"


# ---------------------------------------------------------------- pure: stages, documents, selection, plan


def forced_command(environment: str, service: str) -> str:
    """The one command that completes (or, failing, undoes) what a forced promotion left under way on ``service``:
    its pending version is refused by a rotation (nodeops.rotate.issued.refuse_fenced). Pure."""
    return f"{program()} promote-standby --env {environment} --service {service} --force"


@dataclass(frozen=True)
class Stages:
    """A secret's versions by stage, as Secrets Manager reports them (version ids); ``fenced``: the pending version
    carries the FENCE label (a forced promotion staged it)."""

    current: str
    pending: str | None = None
    fenced: bool = False

    @property
    def state(self) -> str:
        """fresh: no rotation under way; interrupted: a pending version not yet current (continue with it);
        finishing: AWSCURRENT already moved onto the pending version, only its AWSPENDING label is left."""
        if self.pending is None:
            return "fresh"
        return "finishing" if self.pending == self.current else "interrupted"


def stages_of(name: str, version_stages: Mapping[str, Sequence[str]]) -> Stages:
    """``describe_secret``'s VersionIdsToStages -> Stages; anything but one AWSCURRENT and at most one
    AWSPENDING is refused (Secrets Manager guarantees both; a store that breaks it is not to be guessed at)."""
    current = [v for v, stages in version_stages.items() if CURRENT in stages]
    pending = [v for v, stages in version_stages.items() if PENDING in stages]
    if len(current) != 1 or len(pending) > 1:
        raise Unsafe(f"secret {name!r} has {len(current)} version(s) staged {CURRENT} and {len(pending)} staged "
                     f"{PENDING}; expected one and at most one: fix its stages by hand first")  # fmt: skip
    return Stages(current[0], pending[0] if pending else None, bool(pending) and FENCE in version_stages[pending[0]])


def finish_calls(name: str, stages: Stages) -> list[dict[str, str]]:
    """finishSecret as ``update_secret_version_stage`` calls: AWSCURRENT moved onto the pending version
    (Secrets Manager then stages the old one AWSPREVIOUS), then AWSPENDING removed. In that order: a crash
    between the two leaves a finished rotation that a rerun only tidies up."""
    if stages.pending is None:
        raise ValueError("nothing pending to finish")
    calls = []
    if stages.state == "interrupted":
        calls.append({"SecretId": name, "VersionStage": CURRENT, "MoveToVersionId": stages.pending,
                      "RemoveFromVersionId": stages.current})  # fmt: skip
    calls.append({"SecretId": name, "VersionStage": PENDING, "RemoveFromVersionId": stages.pending})
    return calls


def discard_calls(name: str, stages: Stages) -> list[dict[str, str]]:
    """Undo of createSecret: the pending version loses AWSPENDING (AWSCURRENT never moved)."""
    if stages.state != "interrupted":
        return []
    return [{"SecretId": name, "VersionStage": PENDING, "RemoveFromVersionId": stages.pending}]


def value_of(text: str, key: str | None, name: str) -> str:
    """The rotated value in a SecretString: the string itself, or its JSON object's ``key``."""
    if key is None:
        return text
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get(key), str):
        raise OperationFailed(f"secret {name!r}: a version is not a JSON object with a string {key!r}")
    return doc[key]


def with_value(text: str, key: str | None, value: str, name: str) -> str:
    """``text`` (the current SecretString) with the rotated value replaced; every other key kept as it is."""
    if key is None:
        return value
    value_of(text, key, name)  # a document of the expected shape
    return json.dumps({**json.loads(text), key: value})


def select(specs: Mapping[str, RotationSpec], which: str | None, where: str) -> list[RotationSpec]:
    """The rotations ``--secret`` asks for, in the role's order; a refused or unknown one is exit 2."""
    names = ", ".join([*specs, "all"])
    if not which:
        raise InvalidInput(f"--secret is required: one of {names}")
    if which == "all":
        rotatable = [s for s in specs.values() if s.kind != "refused"]
        if not rotatable:
            raise InvalidInput(f"--secret all: {where} declares no rotatable secret (rotation: in its role.yaml)")
        return rotatable
    spec = specs.get(which)
    if spec is None:
        raise InvalidInput(f"--secret {which}: {where} has no such rotatable secret (known: {names})")
    if spec.kind == "refused":
        raise InvalidInput(f"--secret {which}: {spec.reason}")
    return [spec]


def needs_admin(inventory: Inventory, names: Sequence[str] | None, which: str | None) -> bool:
    """Whether ``--secret`` selects a database password, or a rotation that ``reads`` secrets, for any of the
    services (all when ``names`` is empty): only those need the secrets no other command reads (the admin role's,
    an issued value's inputs: RoleSpec.admin_secrets), which are resolved only then (an API rotation never reads
    them). A refused or unknown selection is exit 2 here, before any secret is read."""
    services = [inventory.services[n] for n in names] if names else list(inventory.services.values())
    for service in services:
        role = role_for(inventory, service)
        if any(spec.kind == "postgres-password" or spec.reads
               for spec in select(role.rotation, which, f"role {role.name!r}")):  # fmt: skip
            return True
    return False


ROTATES = ("aws-secretsmanager", "aws-ssm", "sops")  # the kinds of secret backend rotate-secrets writes


def refused_backend(kind: str, backend: str, name: str) -> str | None:
    """Why a secret of backend ``backend`` (of ``kind``) named ``name`` cannot be rotated (one line saying what the
    operator does instead), or None."""
    if kind in ROTATES:
        if kind == "aws-ssm" and ":" in name:
            return (f"parameter {name!r} is pinned to a version: rotation writes a new version, which the pin would "
                    "never read; remove the ':N' to rotate it")  # fmt: skip
        return None
    if kind == "aws-kms":
        return (f"backend {backend!r} (kind aws-kms) is a ciphertext file in the repository, which rotation does not "
                "write: encrypt the new value yourself (aws kms encrypt --key-id KEY --plaintext fileb:///dev/stdin "
                f"--output text --query CiphertextBlob > {name}), change it in its system, commit, then {program()} "
                "deploy; or keep it in a backend that rotates (aws-secretsmanager, aws-ssm, sops)")  # fmt: skip
    return (
        f"backend {backend!r} (kind {kind}) keeps no versions to rotate: keep it in aws-secretsmanager, aws-ssm "
        f"or sops, or change it in its own store and {program()} deploy"
    )


def check_service(inventory: Inventory, service: Service, specs: Sequence[RotationSpec]) -> None:
    """What a rotation needs from the inventory, before any connection (exit 2 otherwise)."""
    file, at = str(inventory.source), f"services.{service.name}"
    names: dict[tuple[str, str, str | None], str] = {}
    for spec in specs:
        ref = service.secrets[spec.secret]
        backend = inventory.secret_backends[ref.backend]
        if (refused := refused_backend(backend.kind, backend.name, ref.name)) is not None:
            raise InventoryError(file, f"{at}.secrets.{spec.secret}", refused)
        held = (ref.backend, ref.name, ref.key if backend.kind == "sops" else None)  # a sops file: one value per key
        if held in names:
            raise InventoryError(file, f"{at}.secrets.{spec.secret}", f"secret {ref.name!r} also holds "
                                 f"{names[held]}: rotate them one at a time (--secret)")  # fmt: skip
        names[held] = spec.secret
        if unread := [s for s in spec.reads if s not in service.secrets]:
            raise InventoryError(file, f"{at}.secrets", f"rotating {spec.name} reads {' and '.join(unread)}: add "
                                 "their references (read by this rotation only, never by deploy)")  # fmt: skip
        for name in (spec.secret, *spec.reads) if spec.reads else ():
            if (kind := inventory.secret_backends[service.secrets[name].backend].kind) != "aws-secretsmanager":
                raise InventoryError(file, f"{at}.secrets.{name}", f"rotating {spec.name} writes whole documents and "
                                     f"their versions in aws-secretsmanager, not {kind}: keep it there")  # fmt: skip
        if spec.kind == "postgres-password":
            missing = [s for s in (spec.admin_user, spec.admin_password) if s not in service.secrets]
            if missing:
                raise InventoryError(file, f"{at}.secrets", f"rotating {spec.name} needs {' and '.join(missing)}: "
                                     "references to an admin role that may ALTER ROLE (user, password)")  # fmt: skip
            if len(service.nodes) != 2:
                raise InvalidInput(f"{service.name}: has one node: rolling it onto a new database password would "
                                   "take the service down; add a standby first")  # fmt: skip


def rotation_plan(service: Service, states: Mapping[str, NodeView], desired: Desired) -> ServicePlan:
    """The forced rolling replace that puts both nodes on the new secret: standby first, one planned
    handover, then the old active. Refused (exit 4) unless exactly one node holds the lease (plan.the_active:
    healthy or not, an unhealthy active is rolled from like a healthy one) and it runs the inventory's image
    and configuration (fab deploy first: a rotation changes the secret, nothing else).
    The other node is replaced whatever its state (an interrupted run may have left it half-replaced)."""
    name = service.name
    if len(service.nodes) != 2:
        raise Unsafe(f"{name}: has {len(service.nodes)} node(s); a rotation rolls a pair")
    active = the_active(states.values(), name, "a rotation rolls a pair with one active")
    if not desired.matches(active.container, active.node.name):
        c = active.container
        raise Unsafe(f"{name}: the active {active.node.name} runs {c.version} / config "
                     f"{str(c.label('config'))[:12]}, not the inventory's {desired.image} / "
                     f"{desired.config_hash[:12]}; {program()} deploy first: a rotation changes the secret "
                     "only")  # fmt: skip
    plan = plan_service(service, states, desired, force=True)
    return dataclasses.replace(plan, reason="forced rolling replace: the nodes read the secret only when they start")
