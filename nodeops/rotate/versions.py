"""A secret's versions in its backend (Store; AWS Secrets Manager's: SecretVersions, describe, read, put, move
stages, through nodeops.edges.aws) and the steps every rotated secret shares (Target: createSecret, finishSecret,
the discard of its pending version); the system that checks a secret is a Target's subclass (database.py, api.py)."""

from __future__ import annotations

import abc
import secrets as pysecrets
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nodeops.edges import aws
from nodeops.errors import OperationFailed
from nodeops.passwords import UNRESERVED, generate_password
from nodeops.roles import RotationSpec
from nodeops.rotate.rules import (
    CURRENT,
    FENCE,
    PENDING,
    Stages,
    discard_calls,
    finish_calls,
    stages_of,
    value_of,
    with_value,
)
from nodeops.secrets import Secret

if TYPE_CHECKING:
    from nodeops.rotate.service import ServiceRotation


class Store(abc.ABC):
    """One secret's versions in its backend, as a rotation sees them: the bookkeeping half of a rotation. Each
    kind of backend that rotates has one (Secrets Manager: SecretVersions; Parameter Store: nodeops.rotate.ssm;
    a SOPS file: nodeops.rotate.sops). ``name``: the secret's name in its backend; ``CURRENT`` and ``PENDING``:
    how messages name its two stages. Errors: OperationFailed (exit 1), Unsafe (exit 4)."""

    CURRENT, PENDING = CURRENT, PENDING
    AFTER = "; the old one is AWSPREVIOUS"  # what finishSecret's message adds about the old version
    # the messages of createSecret (a new version; one an interrupted run left, with what is left of it) and
    # finishSecret, formatted with ``id`` (the version's first 8 characters) and ``s`` (the store)
    CREATED = "new version {id} of {s.name} staged {s.PENDING}"
    LEFT = "the pending version {id} an interrupted run left {what}"
    LEFT_DONE = "is current already: only its label is left"
    FINISHED = "{s.CURRENT} is version {id}{s.AFTER}"
    name: str

    def said(self, template: str, version: str, what: str = "") -> str:
        """``template`` (CREATED, LEFT or FINISHED) said of ``version``."""
        return template.format(id=version[:8], s=self, what=what)

    @abc.abstractmethod
    def stages(self) -> Stages:
        """Its current and pending versions (ids of this store's own)."""

    @abc.abstractmethod
    def value(self, version: str) -> str:
        """The rotated value at ``version``."""

    @abc.abstractmethod
    def create(self, value: str, stages: Stages) -> str:
        """createSecret: ``value`` staged pending, the current version still current; its id."""

    @abc.abstractmethod
    def finish(self, stages: Stages) -> None:
        """finishSecret: the pending version made current, then no longer pending (a crash between the two leaves
        a state whose ``Stages.state`` is ``finishing``: a rerun only tidies up)."""

    @abc.abstractmethod
    def discard(self, stages: Stages) -> None:
        """The undo of createSecret: the pending version no longer pending; the current one still current."""

    def recorded(self, version: str) -> str | None:
        """The version a Secret of ``version`` carries (a container's label; None: the backend keeps none)."""
        return version

    def promote(self, stages: Stages) -> None:  # noqa: B027 - a step most stores do not need
        """Before the pair is rolled onto the pending value: what a store whose version of it is known only once
        readers read it (a SOPS file: nodeops.rotate.sops) writes then, so that the nodes record the version the
        store holds once finished (recorded, asked after). Nothing by default: a pending version is one already."""


class SecretVersions(Store):
    """One secret's versions and stages in Secrets Manager; ``key``: the rotated field of its JSON document (None:
    the whole SecretString)."""

    def __init__(self, client: Any, name: str, where: str, key: str | None = None) -> None:
        self.client, self.name, self.where, self.key = client, name, where, key

    def _call(self, operation: str, **kwargs) -> dict:
        return aws.call(self.client, f"{self.where}: {operation} of secret {self.name!r} failed", operation, **kwargs)

    def stages(self) -> Stages:
        return stages_of(self.name, self._call("describe_secret", SecretId=self.name).get("VersionIdsToStages", {}))

    def read(self, version: str) -> str:
        response = self._call("get_secret_value", SecretId=self.name, VersionId=version)
        if "SecretString" not in response:
            raise OperationFailed(f"{self.where}: secret {self.name!r} holds binary data, not a string")
        return response["SecretString"]

    def value(self, version: str) -> str:
        return value_of(self.read(version), self.key, self.name)

    def create(self, value: str, stages: Stages, fence: bool = False) -> str:
        """A new version (the current document with the rotated key replaced) staged AWSPENDING only, and FENCE
        with it when ``fence`` (a chain fence's: Stages.fenced)."""
        text = with_value(self.read(stages.current), self.key, value, self.name)
        token = str(uuid.uuid4())  # the new version's id; idempotent on Secrets Manager's side
        self._call("put_secret_value", SecretId=self.name, ClientRequestToken=token, SecretString=text,
                   VersionStages=[PENDING, FENCE] if fence else [PENDING])  # fmt: skip
        return token

    def finish(self, stages: Stages) -> None:
        self.apply(finish_calls(self.name, stages))

    def put_current(self, value: str) -> bool:
        """A new version with the rotated value (key) replaced, staged AWSCURRENT at once (the old one AWSPREVIOUS):
        what an issued rotation writes into a secret it read (nodeops.rotate.issued). False, nothing written, when
        the current version holds ``value`` already (a rerun)."""
        stages = self.stages()
        if self.value(stages.current) == value:
            return False
        text = with_value(self.read(stages.current), self.key, value, self.name)
        self._call("put_secret_value", SecretId=self.name, ClientRequestToken=str(uuid.uuid4()), SecretString=text)
        return True

    def discard(self, stages: Stages) -> None:
        self.apply(discard_calls(self.name, stages))

    def apply(self, calls: Sequence[Mapping[str, str]]) -> None:
        for call in calls:
            self._call("update_secret_version_stage", **call)


# ---------------------------------------------------------------- the systems that check a secret


class Target(abc.ABC):
    """One secret under rotation: its versions, its current and pending values, and its system."""

    rolls = False  # whether the nodes read it only when they start, so that the pair must be rolled onto it
    whole = False  # whether its store reads and writes the secret's whole document, not one key (issued.py)
    fences = False  # whether it is a chain fence's (promote_forced.py): its pending version says so (Stages.fenced)
    said = ""  # a public line on the value in force, for the run's result (an issued value's role says one)

    def __init__(self, rotation: ServiceRotation, spec: RotationSpec, versions: Store) -> None:
        self.rotation, self.spec, self.versions = rotation, spec, versions
        job = rotation.job
        self.current = job.secrets[spec.secret]  # AWSCURRENT as read by the preflight
        self.user = job.secrets[spec.user].reveal() if spec.user else ""  # an issued value has no user
        self.account = f"<{spec.user}>"  # how messages name the user: its value is a secret too
        self.pending: Secret | None = None
        self.stages = versions.stages()

    @property
    def name(self) -> str:
        return self.spec.name

    def say(self, step: str, message: str, **data) -> None:
        self.rotation.deploy.say("", f"{step} {self.name}: {message}", step=step, secret=self.name, **data)

    def create(self) -> None:
        """createSecret, or the pending version an interrupted run left (no new version then)."""
        st, store = self.stages, self.versions
        if store.value(st.current) != self.current.reveal():
            raise OperationFailed(f"secret {store.name!r} changed since this run read it; run again")
        if st.state != "fresh":
            self.pending = Secret(store.value(st.pending), self.spec.secret, store.recorded(st.pending))
            what = store.LEFT_DONE if st.state == "finishing" else "reused"
            self.say("createSecret", store.said(store.LEFT, st.pending, what), version=st.pending)
            return
        rules = self.rotation.job.role.passwords  # the node's (role.yaml passwords:)
        value = generate_password(pysecrets.SystemRandom(), self.user, rules=rules, symbols=UNRESERVED)
        version = store.create(value, st)
        self.pending = Secret(value, self.spec.secret, store.recorded(version))
        self.stages = Stages(st.current, version)
        self.say("createSecret", store.said(store.CREATED, version), version=version)

    def masked(self) -> list[Secret]:
        """The new values the run's redactor masks once created (the pending value)."""
        return [] if self.pending is None else [self.pending]

    def promote(self) -> None:
        """Before the roll: the store's promote (Store.promote)."""
        self.versions.promote(self.stages)

    def recorded(self) -> Secret:
        """The pending value with the version its store records for it now, asked once every target was promoted
        (several keys of one SOPS file share the file's version, which each promote moves)."""
        assert self.pending is not None  # create() set it
        return Secret(self.pending.reveal(), self.spec.secret, self.versions.recorded(self.stages.pending))

    def finish(self) -> None:
        store = self.versions
        store.finish(self.stages)
        self.say("finishSecret", store.said(store.FINISHED, self.stages.pending), version=self.stages.pending)

    def discard(self) -> None:
        self.versions.discard(self.stages)

    @abc.abstractmethod
    def set(self) -> None:
        """setSecret: the system that checks the secret takes the pending value (repeatable)."""

    @abc.abstractmethod
    def test(self) -> None:
        """testSecret: a real login with the pending value."""

    @abc.abstractmethod
    def undo(self) -> str:
        """The system back on the current value; says what was done."""

    @property
    @abc.abstractmethod
    def changes(self) -> str | None:
        """What setSecret may have changed, once it ran (None: it changed nothing), for the undo's message."""
