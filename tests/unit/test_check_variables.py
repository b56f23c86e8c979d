"""A role's check variables (role.yaml ``check_variables``): the variables only its check and facts hooks read (the
Cardano role's KES_PERIODS_MIN and SLOT_LAG_MAX). An operator who tightens a threshold restarts nothing: such a
variable is out of the config hash, the rendered files and the container's labels and env file, so a deploy (a dry
run here, over the keys tables' played container engine: test_executor_keys) plans nothing, while check and status
give the hooks the new value. A role that lists one its templates read, or lists it out of shape, is refused when it
loads (exit 2, one line naming the role file and the key)."""

from __future__ import annotations

import dataclasses
import json
import shlex
import types
from types import MappingProxyType

import pytest

from nodeops.errors import EXIT_INVALID, InvalidInput
from nodeops.facts import role_facts
from nodeops.job import Job, changed_inputs, input_labels
from nodeops.render import render, render_nodes
from nodeops.roles import BUILTIN_ROLES, RoleError, load_role
from nodeops.secrets import Secret
from tests.unit.test_cardano_poolfacts import HOLDER
from tests.unit.test_cardano_role import SECRETS, job_of
from tests.unit.test_executor_keys import Engine, Keys
from tests.unit.test_files_per_node import fresh_deploy
from tests.unit.test_roles import GOOD, make_role, service


@pytest.fixture(scope="module")
def cardano():
    return load_role("cardano", [BUILTIN_ROLES])


def with_variables(job: Job, **variables) -> Job:
    """``job`` of a service whose own variables are ``job``'s with ``variables`` over them, rendered again."""
    service = dataclasses.replace(job.service, variables=MappingProxyType({**job.service.variables, **variables}))
    nodes = render_nodes(job.role, job.profile, service, SECRETS)
    return dataclasses.replace(job, service=service, rendered=nodes["relay-a"], nodes=nodes)


def test_the_cardano_roles_thresholds_are_its_check_variables(cardano):
    assert set(cardano.check_variables) == {"KES_PERIODS_MIN", "SLOT_LAG_MAX"}


def test_a_threshold_changes_no_config_hash_no_file_and_no_label_but_a_read_variable_does(cardano):
    job = job_of(cardano)
    tightened = with_variables(job, KES_PERIODS_MIN=20, SLOT_LAG_MAX=30)
    assert tightened.config_hashes() == job.config_hashes()
    for node, rendered in tightened.nodes.items():
        assert {n: f.data for n, f in rendered.files.items()} == {n: f.data for n, f in job.nodes[node].files.items()}
    assert input_labels(tightened) == input_labels(job)  # the labels record the service's own variables: not these
    assert changed_inputs(job, tightened) == []  # a failed change's fix forward names no threshold
    peers = with_variables(job, PUBLIC_PEERS=[{"address": "relays.example.org", "port": 3001}])
    assert peers.config_hashes()["relay-a"] != job.config_hashes()["relay-a"]  # a variable the templates read


def dry_run(job: Job, engine: Engine) -> tuple[dict, list[tuple[str, str]]]:
    """``fab deploy --dry-run`` of ``job`` over ``engine``: the real ServiceDeploy.run(dry_run=True) (its survey,
    plan and preview of each node's diff), each node already connected and its files' folder on tmpfs: (its
    record, what it said)."""
    run = Keys(job, engine)
    run.connect = lambda _node: None  # Keys' nodes are the engine's: nothing to connect
    source = BUILTIN_ROLES.parent / "inventory" / "x.yaml"  # the repository's project: the built-in roles
    run.fleet.inventory = types.SimpleNamespace(
        environment="prod", source=source, services={}, secret_backends={}
    )  # restore_job renders each node's old side
    run.report = types.SimpleNamespace(json=False)  # a person reads the diff (Keys.say keeps each line)
    engine.fails += [(n.name, r"^if \[ -d ", (0, "tmpfs\n", "")) for n in job.service.nodes]
    return run.run(True), run.said


def test_a_dry_run_after_a_threshold_changed_plans_nothing(cardano):
    job = job_of(cardano)
    engine, _ = fresh_deploy(job)
    record, said = dry_run(with_variables(job, KES_PERIODS_MIN=20, SLOT_LAG_MAX=30), engine)
    assert (record["changed"], record["planned"]) == (False, [])
    assert not [m for _n, m in said if "KES_PERIODS_MIN" in m or "SLOT_LAG_MAX" in m]  # no diff names them
    record, said = dry_run(with_variables(job, PUBLIC_PEERS=[{"address": "r.example.org", "port": 3001}]), engine)
    assert record["changed"] and record["planned"][0].startswith("replace relay-a")  # a variable the templates read
    assert [m for _n, m in said if "PUBLIC_PEERS" in m]


def test_a_node_started_with_a_threshold_set_records_it_nowhere(cardano):
    """Not in a label, an argument or a file written: its value, a sentinel, is in no line sent."""
    engine, _ = fresh_deploy(with_variables(job_of(cardano), KES_PERIODS_MIN=4093))
    for _node, command, stdin in engine.sent:
        assert "KES_PERIODS_MIN" not in command and "4093" not in command, command
        assert stdin is None or b"4093" not in stdin
    runs = [shlex.split(c) for _n, c, _ in engine.sent if c.startswith("docker run")]
    for argv in runs:
        labels = dict(argv[i + 1].split("=", 1) for i, w in enumerate(argv) if w == "--label")
        assert "KES_PERIODS_MIN" not in json.loads(labels["io.nodeops.variables"])


@pytest.mark.parametrize(("threshold", "ok"), [(None, True), (9, True), (10, False), (20, False)])
def test_check_judges_the_holders_kes_at_the_threshold_the_service_sets(cardano, threshold, ok):
    """HOLDER has 10 KES periods left: the role's default (7) passes, the service's 10 or 20 fails."""
    job = job_of(cardano)
    if threshold is not None:
        job = with_variables(job, KES_PERIODS_MIN=threshold)
    findings = role_facts.fact_findings(job, *role_facts.node_facts(job, {"bp-a": HOLDER}), "prod")
    ((_node, _check, (verdict, detail)),) = [f for f in findings if f[1] == "kes"]
    assert verdict == ("pass" if ok else "fail")
    if not ok:  # the command in full, runnable as it is (the rotation check's way)
        assert detail.endswith(f": run fab rotate-secrets --env prod --service {job.service.name} --secret kes")


# ---------------------------------------------------------------- the key in role.yaml

PW = {"pw": Secret("s3cret-pw", "pw")}
CHECKED = GOOD.replace("{A: x, N: 1}", "{A: x, N: 1, MIN: 3}").replace(
    "secrets: [pw]", "secrets: [pw]\ncheck_variables: [MIN]"
)


def test_a_check_variable_is_kept_from_the_templates_and_the_hash(tmp_path):
    role = load_role("thing", [make_role(tmp_path, CHECKED)])
    assert role.check_variables == ("MIN",)
    assert role.read_variables({"MIN": 9, "A": "y"}) == {"A": "y", "N": 1}
    assert render(role, "main", service(MIN=9), PW).config_hash == render(role, "main", service(), PW).config_hash


def test_a_template_reading_a_check_variable_by_a_computed_name_fails_to_render(tmp_path):
    """What the load cannot see (a name made at render) is not given: the template fails, naming the variable."""
    templates = {"app.j2": "a={{ vars['M' ~ 'IN'] | raw }}\n", "pw.j2": "{{ secrets.pw | line }}\n"}
    role = load_role("thing", [make_role(tmp_path, CHECKED, templates=templates)])
    with pytest.raises(InvalidInput, match=r"vars\.MIN is one of the role's check_variables, which no template"):
        render(role, "main", service(), PW)


@pytest.mark.parametrize(
    ("change", "templates", "where", "problem"),
    [
        (("[MIN]", "MIN"), None, "check_variables", "expected a list of variable names, got 'MIN'"),
        (("[MIN]", "[min-x]"), None, "check_variables[0]", "expected a variable name"),
        (("[MIN]", "[MAX]"), None, "check_variables[0]", "expected a variable the role declares (defaults or "
                                                          "variables), got 'MAX'"),
        (("[MIN]", "[MIN, MIN]"), None, "check_variables[1]", "MIN is listed already"),
        (("[MIN]", "[A]"), None, "check_variables[0]", "templates/thing/app.j2 (profiles.main.files.app.conf)"),
        (("[MIN]", "[MIN]"), {"app.j2": "{% include 'part.j2' %}", "part.j2": "{{ vars['MIN'] }}"},
         "check_variables[0]", "templates/thing/part.j2 (profiles.main.files.app.conf)"),
        (("[MIN]", "[MIN]"), {"app.j2": "{{ vars.get('MIN') }}"}, "check_variables[0]", "MIN is read by template"),
        (("[MIN]", "[MIN]"), {"app.j2": "{% if 'MIN' in vars %}x{% endif %}"}, "check_variables[0]", "MIN is read by"),
        (("[MIN]", "[MIN]"), {"app.j2": "{% if %}"}, "profiles.main.files.app.conf.template",
         "template app.j2 does not parse: line 1: "),
        (("[MIN]", "[MIN]\nsecret_variables: {MIN: tok}"), None, "check_variables[0]",
         "MIN is named by secret_variables"),
        (("[MIN]", "[MIN]\nunused_with: {A: [MIN]}"), None, "check_variables[0]", "MIN is named by unused_with"),
    ],
    ids=["not-a-list", "not-a-name", "undeclared", "twice", "read", "read-by-an-include", "read-by-get",
         "read-by-in", "unparsable", "secret-variable", "unused-with"],
)  # fmt: skip
def test_a_misshapen_or_read_check_variable_is_refused_when_the_role_loads(tmp_path, change, templates, where,
                                                                         problem):  # fmt: skip
    old, new = change
    base = {"app.j2": "a={{ vars.A | raw }}\n", "pw.j2": "{{ secrets.pw | line }}\n"}
    root = make_role(tmp_path, CHECKED.replace(f"check_variables: {old}", f"check_variables: {new}"),
                     templates={**base, **(templates or {})})  # fmt: skip
    with pytest.raises(RoleError) as err:
        load_role("thing", [root])
    assert err.value.exit_code == EXIT_INVALID
    assert (err.value.file, err.value.where) == (str(root / "thing" / "role.yaml"), where)
    assert problem in err.value.problem and "\n" not in str(err.value)
