"""Issue 15: the activation model is chosen once from the role (nodeops.activation.model_of) and asked wherever the
models differ; no other module tests a role's ``activation`` by name. Read from the source: every module of the
engine (nodeops/, and tasks/) outside the model modules (nodeops/activation/). nodeops/role_file/ is the exception:
it checks role.yaml itself (a ``lease:`` section, a ``hot`` file, a ``read: lease`` file belongs to one model, as
written in the file), before any model is chosen and without importing one."""

from __future__ import annotations

import re
from pathlib import Path

from nodeops.activation import MODELS, Model
from nodeops.role_file import ACTIVATIONS, MAX_NODES

ROOT = Path(__file__).resolve().parents[2]
ENGINE = (ROOT / "nodeops", ROOT / "tasks")
MODEL_MODULES = (ROOT / "nodeops" / "activation", ROOT / "nodeops" / "role_file")
BY_NAME = re.compile(r"activation\s*(==|!=)|activation\s+(not\s+)?in\s*\(")


def by_name_outside_the_models() -> list[str]:
    found = []
    for top in ENGINE:
        for path in sorted(top.rglob("*.py")):
            if any(path.is_relative_to(m) for m in MODEL_MODULES):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if BY_NAME.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


def test_no_module_outside_the_models_tests_the_activation_by_name():
    assert by_name_outside_the_models() == []


def test_the_pattern_finds_what_it_is_for():
    assert [bool(BY_NAME.search(s)) for s in ('role.activation == "all"', 'activation != "keys"',
                                              'activation in ("all", "keys")', "model_of(role).has_standby")] == [
        True, True, True, False]  # fmt: skip


def test_every_model_role_yaml_accepts_has_one_object_and_a_size():
    assert tuple(MODELS) == ACTIVATIONS
    assert set(MAX_NODES) == set(MODELS)
    assert all(isinstance(m, Model) and m.name == name for name, m in MODELS.items())
