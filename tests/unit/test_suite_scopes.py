"""The suite's scheduling (tests/conftest.py): which modules one process runs whole (``scope_of``), the refusal of a
shared lab's user left out of its list, and the order pytest_collection_modifyitems gives the lab scopes and the pool
lab's modules."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import POOL_LAB_MODULES, pytest_collection_modifyitems, scope_of


@dataclass
class Item:
    """What pytest_collection_modifyitems reads of a collected test: its node id, fixtures and whether it is a lab
    test."""

    nodeid: str
    fixturenames: tuple[str, ...] = ()
    lab: bool = True

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name == "lab" and self.lab else None


@pytest.mark.parametrize(
    ("nodeid", "scope"),
    [
        ("tests/e2e/test_engine.py::test_x", "the session lab"),
        ("tests/e2e/test_pool_deploy.py::test_x", "the pool lab"),
        ("tests/e2e/test_pool_kes.py::test_x[a]", "the pool lab"),
        ("tests/e2e/test_pool_facts.py::test_x", "the pool lab"),
        ("tests/e2e/test_pool_promote.py::test_x", "the pool lab"),
        ("tests/e2e/test_pool_force.py::test_x", "the pool lab"),
        ("tests/e2e/test_lab_pool.py::test_x", "tests/e2e/test_lab_pool.py"),  # a lab of its own
        ("tests/unit/test_plan.py::test_x", "tests/unit/test_plan.py"),
    ],
)
def test_scope_of(nodeid, scope):
    assert scope_of(nodeid) == scope


def test_the_pool_lab_modules_run_in_their_listed_order_and_the_rest_stay_put():
    deploy, facts, kes, promote, force = POOL_LAB_MODULES
    collected = [Item(f"{kes}::a"), Item(f"{force}::a"), Item(f"{kes}::b"), Item("tests/e2e/test_x.py::a"),
                 Item(f"{promote}::a"), Item(f"{facts}::a"), Item(f"{deploy}::a"), Item(f"{facts}::b"),
                 Item("tests/unit/test_plan.py::a", lab=False)]  # fmt: skip
    items = list(collected)
    pytest_collection_modifyitems(items)
    assert [i.nodeid for i in items] == [f"{deploy}::a", f"{facts}::a", f"{facts}::b", f"{kes}::a", f"{kes}::b",
                                         f"{promote}::a", f"{force}::a", "tests/e2e/test_x.py::a",
                                         "tests/unit/test_plan.py::a"]  # fmt: skip


def test_the_pool_lab_starts_with_the_module_that_deploys_and_ends_with_the_one_that_loses_a_producer():
    """test_pool_deploy deploys from nothing; test_pool_force leaves a lost producer no module after it could use
    (POOL_LAB_MODULES's comment)."""
    assert (POOL_LAB_MODULES[0], POOL_LAB_MODULES[-1]) == (
        "tests/e2e/test_pool_deploy.py",
        "tests/e2e/test_pool_force.py",
    )


@pytest.mark.parametrize(
    ("module", "fixture", "listed"),
    [("tests/e2e/test_new.py", "pools", "POOL_LAB_MODULES"), ("tests/e2e/test_new.py", "lab", "SESSION_LAB_MODULES")],
)
def test_a_shared_labs_user_left_out_of_its_list_is_refused(module, fixture, listed):
    with pytest.raises(pytest.UsageError, match=f"add it to {listed} in tests/conftest.py"):
        pytest_collection_modifyitems([Item(f"{module}::a", ("root", fixture))])
