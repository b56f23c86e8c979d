"""Activation models: how a role says which of a service's nodes is active (role.yaml ``activation``;
docs/roles.md#activation), one object per model, chosen once from the role (model_of) and asked wherever the models
differ; the engine knows these models and nothing of any chain.

- ``lease`` (lease.LeaseModel): every node runs; the one holding the role's lease answers its health path, the others
  wait silently; a change rolls the standby first and hands over once, a planned promotion is one handover.
- ``keys`` (keys.KeysModel): every node runs and answers its health path; only the active holds the role's hot files,
  seen as the ``io.nodeops.hot=true`` label; a change never moves them, a planned promotion is fence-first.
- ``all`` (all_nodes.AllModel): every node serves (relays); no standby, no lease, no handover; a change replaces one
  node at a time, never every node down.

What a model answers (base.Model): its change and promotion planners (pure: (service, node views) -> steps), its
runner, what serves after a failed change, its end check, and the read-only words: a node's role and the service's
state (status), who is active (check, verify, the audit's ``now``), what runs now (rollback), and whether
rotate-secrets applies. A role with node kinds (role.yaml ``kinds:``) is planned kind by kind, each under its own
model (groups.Groups). A fourth model is one module with a Model subclass and one entry in MODELS (and its name in
nodeops.role_file.ACTIVATIONS and MAX_NODES, which role.yaml is checked against).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from nodeops.activation.all_nodes import AllModel
from nodeops.activation.base import FENCES, Model
from nodeops.activation.groups import Groups
from nodeops.activation.keys import KeysModel
from nodeops.activation.lease import LeaseModel
from nodeops.role_file import Role, default_activation, kind_activations

MODELS: Mapping[str, Model] = MappingProxyType({m.name: m for m in (LeaseModel(), KeysModel(), AllModel())})
# the model a kind of a role with kinds is under, by its activation: MODELS', but a keys kind's fresh start brings its
# standby up before its holder (KeysModel's ``fresh``: why); a role without kinds keeps MODELS' (active first)
KIND_MODELS: Mapping[str, Model] = MappingProxyType({**MODELS, "keys": KeysModel(fresh="standby")})

__all__ = ["FENCES", "KIND_MODELS", "MODELS", "Model", "as_model", "model_of"]


def model_of(role: Role) -> Model:
    """The model ``role`` declares (its ``activation``, else role_file.default_activation's: keys when a file is
    hot, else lease); a role with kinds (``kinds:``): Groups, each kind under its own model of KIND_MODELS, in the
    role's order."""
    if role.activation is None and role.kinds:
        return Groups({kind: KIND_MODELS[activation] for kind, activation in kind_activations(role.kinds).items()})
    return MODELS[role.activation or default_activation(role)]


def as_model(activation: str | Model) -> Model:
    """``activation``'s model: a name of MODELS, or a model itself (a role with kinds has no one name: model_of's
    Groups). KeyError for an unknown name (role.yaml's are checked when it is read)."""
    return activation if isinstance(activation, Model) else MODELS[activation]
