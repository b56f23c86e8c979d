"""A secret's versions in AWS Secrets Manager (SecretVersions: describe, read, put, move stages, through
nodeops.edges.aws) and the steps every rotated secret shares (Target: createSecret, finishSecret, the discard of
its pending version); the system that checks a secret is a Target's subclass (database.py, api.py)."""

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
from nodeops.rotate.rules import CURRENT, PENDING, Stages, discard_calls, finish_calls, stages_of, value_of, with_value
from nodeops.secrets import Secret

if TYPE_CHECKING:
    from nodeops.rotate.service import ServiceRotation


class SecretVersions:
    """One secret's versions and stages in Secrets Manager: the bookkeeping half of a rotation."""

    def __init__(self, client: Any, name: str, where: str) -> None:
        self.client, self.name, self.where = client, name, where

    def _call(self, operation: str, **kwargs) -> dict:
        return aws.call(self.client, f"{self.where}: {operation} of secret {self.name!r} failed", operation, **kwargs)

    def stages(self) -> Stages:
        return stages_of(self.name, self._call("describe_secret", SecretId=self.name).get("VersionIdsToStages", {}))

    def read(self, version: str) -> str:
        response = self._call("get_secret_value", SecretId=self.name, VersionId=version)
        if "SecretString" not in response:
            raise OperationFailed(f"{self.where}: secret {self.name!r} holds binary data, not a string")
        return response["SecretString"]

    def create(self, text: str) -> str:
        """createSecret: a new version staged AWSPENDING only (AWSCURRENT does not move); its id."""
        token = str(uuid.uuid4())  # the new version's id; idempotent on Secrets Manager's side
        self._call("put_secret_value", SecretId=self.name, ClientRequestToken=token, SecretString=text,
                   VersionStages=[PENDING])  # fmt: skip
        return token

    def apply(self, calls: Sequence[Mapping[str, str]]) -> None:
        for call in calls:
            self._call("update_secret_version_stage", **call)


# ---------------------------------------------------------------- the systems that check a secret


class Target(abc.ABC):
    """One secret under rotation: its versions, its current and pending values, and its system."""

    rolls = False  # whether the nodes read it only when they start, so that the pair must be rolled onto it

    def __init__(self, rotation: ServiceRotation, spec: RotationSpec, versions: SecretVersions) -> None:
        self.rotation, self.spec, self.versions = rotation, spec, versions
        job = rotation.job
        self.key = job.service.secrets[spec.secret].key
        self.current = job.secrets[spec.secret]  # AWSCURRENT as read by the preflight
        self.user = job.secrets[spec.user].reveal()
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
        st, name = self.stages, self.versions.name
        current_text = self.versions.read(st.current)
        if value_of(current_text, self.key, name) != self.current.reveal():
            raise OperationFailed(f"secret {name!r} changed since this run read it; run again")
        if st.state != "fresh":
            self.pending = Secret(
                value_of(self.versions.read(st.pending), self.key, name), self.spec.secret, st.pending
            )
            what = "is current already: only its label is left" if st.state == "finishing" else "reused"
            self.say("createSecret", f"the pending version {st.pending[:8]} an interrupted run left {what}",
                     version=st.pending)  # fmt: skip
            return
        rules = self.rotation.job.role.passwords  # the node's (role.yaml passwords:)
        value = generate_password(pysecrets.SystemRandom(), self.user, rules=rules, symbols=UNRESERVED)
        version = self.versions.create(with_value(current_text, self.key, value, name))
        self.pending, self.stages = Secret(value, self.spec.secret, version), Stages(st.current, version)
        self.say("createSecret", f"new version {version[:8]} of {name} staged {PENDING}", version=version)

    def finish(self) -> None:
        self.versions.apply(finish_calls(self.versions.name, self.stages))
        self.say("finishSecret", f"{CURRENT} is version {self.stages.pending[:8]}; the old one is AWSPREVIOUS",
                 version=self.stages.pending)  # fmt: skip

    def discard(self) -> None:
        self.versions.apply(discard_calls(self.versions.name, self.stages))

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
