"""The API password's change (a rotation kind of the role's own): the role's hook (nodeops.role_protocols.ApiPassword)
logs in, changes and logs out through one node's HTTP API (NodeApi), on the active node."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from nodeops import role_protocols
from nodeops.edges import http
from nodeops.errors import OperationFailed
from nodeops.facts.view import unhealthy_note
from nodeops.inventory import Node
from nodeops.plan import the_active
from nodeops.rotate.versions import Target
from nodeops.secrets import Secret

if TYPE_CHECKING:
    from nodeops.rotate.service import ServiceRotation


class NodeApi:
    """One node's HTTP API for a role's hook (nodeops.role_protocols.NodeApi): through the bastion, JSON bodies,
    failures named by service and node and masked by the job's redactor."""

    def __init__(self, rotation: ServiceRotation, node: Node) -> None:
        self.rotation, self.node = rotation, node
        self.where = f"{rotation.job.service.name} {node.name}"

    def call(self, method: str, path: str, doc: Mapping[str, object] | None = None,
             cookie: str | None = None) -> http.Reply:  # fmt: skip
        headers = {"Content-Type": "application/json"} | ({"Cookie": cookie} if cookie else {})
        body = json.dumps(doc).encode() if doc is not None else None
        port = self.rotation.job.role.port
        fleet = self.rotation.fleet
        reply = fleet.request(self.node.host, port, method, path, body, headers, timeout=http.API_TIMEOUT,
                              service=self.node.service)  # fmt: skip
        if reply is None:
            raise OperationFailed(f"{self.where}: the API does not answer {path}")
        return reply

    def refused(self, what: str, reply: http.Reply, shown: int | None = None) -> OperationFailed:
        text = reply.body.decode(errors="replace")
        redact = self.rotation.job.redact
        detail = redact.clip(text) if shown is None else redact.clip(text, shown)
        return OperationFailed(f"{self.where}: {what} answered {reply.status}: {detail}")

    def failed(self, problem: str) -> OperationFailed:
        return OperationFailed(f"{self.where}: {problem}")


class ApiPassword(Target):
    """The node's API user (a rotation kind of the role's own): its password changed through the active node's
    API, in the role's dialect (its module's ``ROTATIONS`` hook for this kind, nodeops.role_protocols.ApiPassword)."""

    node: Node | None = None  # the active node, found once by set(); test() logs in there

    @property
    def hook(self) -> role_protocols.ApiPassword:
        return self.rotation.job.role.hooks.rotations[self.spec.kind]

    def active(self) -> Node:
        """The lease holder, as every command finds it (Observer.views, plan.the_active): an active that answers
        its health path unhealthy still serves its API, and its user lives in the database the pair shares."""
        deploy = self.rotation.deploy
        active = the_active(deploy.observer.views().values(), deploy.service.name,
                            "the API password is changed on the one active node")  # fmt: skip
        if note := unhealthy_note(active):
            deploy.say(active.node.name, f"{note}: its API still answers; the password is changed there",
                       failing=list(active.failing))  # fmt: skip
        return active.node

    def login(self, node: Node, password: Secret) -> str | None:
        """The session, or None when the node refuses the password."""
        return self.hook.login(NodeApi(self.rotation, node), self.user, password.reveal())

    def logout(self, node: Node, session: str) -> None:
        self.hook.logout(NodeApi(self.rotation, node), session)

    def change(self, node: Node, old: Secret, new: Secret) -> bool:
        """The hook's password change, logged in with ``old``; False when ``old`` does not log in."""
        session = self.login(node, old)
        if session is None:
            return False
        try:
            self.hook.set_password(NodeApi(self.rotation, node), session, old.reveal(), new.reveal())
        finally:
            self.logout(node, session)
        return True

    def set(self) -> None:
        node = self.node = self.active()
        if (session := self.login(node, self.pending)) is not None:
            self.logout(node, session)
            self.say("setSecret", f"the API on {node.name} takes the pending password already (an interrupted run)")
            return
        if not self.change(node, self.current, self.pending):
            raise OperationFailed(f"{self.rotation.job.service.name} {node.name}: neither the current nor the "
                                  f"pending password logs in as {self.account}: changed outside nodeops?")  # fmt: skip
        self.say("setSecret", f"{self.hook.change} on the active node {node.name}")

    def test(self) -> None:
        node = self.node
        session = self.login(node, self.pending)
        if session is None:
            raise OperationFailed(f"{self.rotation.job.service.name} {node.name}: the pending password does not "
                                  "log in")  # fmt: skip
        self.logout(node, session)
        if (old := self.login(node, self.current)) is not None:
            self.logout(node, old)
            raise OperationFailed(f"{self.rotation.job.service.name} {node.name}: the current password still logs in")
        self.say("testSecret", f"{node.name}: the pending password logs in, the current one is refused")

    def undo(self) -> str:
        if self.node is None:  # set() found no active node: nothing was changed
            return "the API password was not changed"
        # The user lives in the database, so any active node changes it; a roll may have handed over since set().
        node = self.active() if self.rotation.pair.touched else self.node
        if not self.change(node, self.pending, self.current):
            return "the API password was not changed"
        return "the API password is back on its current value"

    @property
    def changes(self) -> str | None:
        return None if self.node is None else f"the API password of {self.account}"
