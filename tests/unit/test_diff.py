"""The dry run's diff (nodeops.diff): from what a node runs to what the inventory wants. Tables, on real renders of
the Chainlink role with sentinel secret values that must never come out."""

from __future__ import annotations

import dataclasses
import json
import types

import pytest

from nodeops.diff import Side, service_diff, short, summary
from nodeops.render import render
from nodeops.render.files import RenderedFile
from nodeops.secrets import Secret
from tests.conftest import override_config
from tests.unit.test_deploy_preflight import ENV

OLD_DIGEST = "sha256:" + "6bc87626beba" + "0" * 52
NEW_DIGEST = "sha256:" + "2f28f8bad9f7" + "1" * 52
SENTINELS = {  # every secret the role reads, each a value that must appear in no line and no field
    "db": "SentinelDbPw-0xZq7Zq7Zq7",
    "db_user": "sentinel_db_user",
    "keystore": "SentinelKeystore-0xQ8Q8Q8",
    "api_email": "sentinel@example.org",
    "api_password": "SentinelApiPw-0xW9W9W9W9",
}
ENV_SECRETS = [value for value in ENV.values() if len(value) >= 16]  # the conftest job's passwords
V1, V2 = "11111111-aaaa-4aaa-8aaa-000000000001", "22222222-bbbb-4bbb-8bbb-000000000002"


def secrets(keystore_version: str = V1, keystore: str = SENTINELS["keystore"]) -> dict[str, Secret]:
    found = {name: Secret(value, name, f"v-{name}") for name, value in SENTINELS.items()}
    found["keystore"] = Secret(keystore, "keystore", keystore_version)
    return found


def side(job, digest=OLD_DIGEST, image=None, variables=None, found=None) -> Side:
    """A side of the diff as deploy builds it: the service (with ``image``/``variables`` changed) rendered."""
    service = dataclasses.replace(job.service, image=image or job.service.image,
                                  variables={**job.service.variables, **(variables or {})})  # fmt: skip
    rendered = render(job.role, job.profile, service, found or secrets())
    return dataclasses.replace(job, service=service, rendered=rendered).side(digest)


def messages(job, new: Side, old: Side | None = None, db_version=None, unrestorable=None) -> list[str]:
    lines = summary(service_diff("cl", {"a": old or side(job), "b": old or side(job)}, new, db_version, unrestorable))
    text = json.dumps([(line.node, line.message, line.body, dict(line.data)) for line in lines], default=str)
    for value in SENTINELS.values():
        assert value not in text, f"a secret value is in the diff: {value}"
    return [line.message for line in lines]


IMAGE_210 = "smartcontract/chainlink:2.10.0"


@pytest.mark.parametrize(
    ("new", "db_version", "expected"),
    [
        ({}, None, ["no change"]),
        ({"image": "smartcontract/chainlink:2.11.0", "digest": NEW_DIGEST}, None,
         ["image 2.10.0 -> 2.11.0 (digest 6bc87626beba -> 2f28f8bad9f7)"]),
        ({"digest": NEW_DIGEST}, None, ["image 2.10.0 -> 2.10.0 (digest 6bc87626beba -> 2f28f8bad9f7)"]),
        ({"image": "smartcontract/chainlink:2.11.0", "digest": None}, None,
         ["image 2.10.0 -> 2.11.0 (digest 6bc87626beba -> resolved at deploy)"]),
        # the same image, its reference now pinned by digest: said, not "2.10.0 -> 2.10.0"
        ({"image": f"{IMAGE_210}@{OLD_DIGEST}"}, None,
         ["image 2.10.0 -> 2.10.0@6bc87626beba (digest 6bc87626beba -> 6bc87626beba)"]),
        ({"image": "registry.example/chainlink:2.10.0"}, None,
         [f"image {IMAGE_210} -> registry.example/chainlink:2.10.0 (digest 6bc87626beba -> 6bc87626beba)"]),
        ({"variables": {"LOG_LEVEL": "debug"}}, None,
         ["variable LOG_LEVEL: info -> debug", "file config.toml: changed (+1 -1)"]),
        ({"variables": {"EXTRA_NOTE": "x"}}, None, ["variable EXTRA_NOTE: added x"]),
        ({"variables": {"EXTRA_NOTE": ""}}, None, ["variable EXTRA_NOTE: added (empty)"]),  # no trailing space
        ({"found": secrets(keystore_version=V2, keystore="SentinelKeystore-0xR0R0R0")}, None,
         ["secret file secrets.toml: changed (content not shown)",
          f"secret keystore: version {V1[:8]} -> {V2[:8]}"]),  # one line: a and b run the same inputs
        ({"image": "smartcontract/chainlink:2.9.0", "digest": NEW_DIGEST}, "2.10.0",
         ["image 2.10.0 -> 2.9.0 (digest 6bc87626beba -> 2f28f8bad9f7)",
          "warning: image version 2.9.0 is older than 2.10.0, the version the database last ran: the node refuses to "
          "start on it; a deploy is refused (exit 4)"]),
        ({"image": "smartcontract/chainlink:2.11.0", "digest": NEW_DIGEST}, "2.10.0",
         ["image 2.10.0 -> 2.11.0 (digest 6bc87626beba -> 2f28f8bad9f7)"]),
    ],
    ids=["nothing", "image", "tag-moved", "digest-unknown", "tag-to-pinned", "repository", "variable+file",
         "variable-added", "variable-added-empty", "secret-version", "downgrade", "upgrade-no-warning"],
)  # fmt: skip
def test_diff_table(job, new, db_version, expected):
    assert job.service.image == IMAGE_210
    assert messages(job, side(job, **new), db_version=db_version) == expected


def test_a_file_change_is_a_unified_diff_of_the_old_and_new_render(job):
    lines = summary(service_diff("cl", {"a": side(job)}, side(job, variables={"LOG_LEVEL": "debug"})))
    (file,) = [line for line in lines if line.data["diff"] == "file"]
    assert file.body[:2] == ("--- a/config.toml", "+++ b/config.toml") and file.body[2].startswith("@@ ")
    assert [b for b in file.body if b[:1] in "+-" and b[:3] not in ("---", "+++")] == [
        '-Level = "info"',
        '+Level = "debug"',
    ]
    assert file.data["unified_diff"] == list(file.body) and file.data["state"] == "changed"


def test_a_variable_removed_and_the_json_fields(job):
    old = side(job, variables={"EXTRA_NOTE": ["x", 1]})
    lines = summary(service_diff("cl", {"a": old}, side(job, image="smartcontract/chainlink:2.11.0")))
    by_kind = {line.data["diff"]: line for line in lines}
    assert by_kind["variable"].message == 'variable EXTRA_NOTE: removed (was ["x",1])'
    assert dict(by_kind["variable"].data) == {"diff": "variable", "nodes": ["a"], "name": "EXTRA_NOTE",
                                              "old": ["x", 1]}  # fmt: skip
    assert dict(by_kind["image"].data) == {
        "diff": "image", "nodes": ["a"], "old": IMAGE_210, "new": "smartcontract/chainlink:2.11.0",
        "old_digest": OLD_DIGEST, "new_digest": OLD_DIGEST,
    }  # fmt: skip


def test_nodes_that_run_different_inputs_get_their_own_lines(job):
    """One node already on the new image (a deploy that stopped half way): only the other one changes."""
    new = side(job, image="smartcontract/chainlink:2.11.0", digest=NEW_DIGEST)
    lines = summary(service_diff("cl", {"a": side(job), "b": new}, new))
    assert [(line.node, line.message) for line in lines] == [
        ("a", "image 2.10.0 -> 2.11.0 (digest 6bc87626beba -> 2f28f8bad9f7)"),
        ("b", "no change"),
    ]


def test_a_fresh_node_shows_every_file_as_added_and_secret_files_by_name_only(job):
    lines = summary(service_diff("cl", {"a": Side()}, side(job)))
    files = {line.data["name"]: line.message for line in lines if line.data["diff"] in ("file", "secret-file")}
    assert files["config.toml"].startswith("file config.toml: added (+")
    assert files["secrets.toml"] == "secret file secrets.toml: added (content not shown)"
    assert lines[0].message == "image none -> smartcontract/chainlink:2.10.0 (digest none -> 6bc87626beba)"
    assert not any(value in json.dumps([line.body for line in lines]) for value in SENTINELS.values())


EVM_CHAINS = [{"chain_id": 137, "nodes": [{"name": "poly-a", "ws_url": "wss://poly.example/ws"}]}]
SINGLE_CHAIN = {"ETH_CHAIN_ID", "ETH_URL", "ETH_HTTP_URL", "LINK_CONTRACT_ADDRESS"}


def variable_lines(job, new: Side, old: Side) -> dict[str, str]:
    return {m.split(":")[0].removeprefix("variable "): m for m in messages(job, new, old) if m.startswith("variable ")}


def test_with_evm_chains_a_fresh_node_lists_no_single_chain_variable_the_templates_do_not_read(job):
    """rv6 #6: with EVM_CHAINS set, a fresh node's diff listed `variable ETH_CHAIN_ID: added 1`, `ETH_URL: added
    (empty)`, `ETH_HTTP_URL: added (empty)`, `LINK_CONTRACT_ADDRESS: added (empty)`: changes that do nothing (the
    templates read none of them; non-empty URLs are refused). The role's other variables are still listed."""
    got = variable_lines(job, side(job, variables={"EVM_CHAINS": EVM_CHAINS}), Side())
    assert not SINGLE_CHAIN & set(got), got
    assert set(got) == {*job.role.defaults, *job.service.variables, "EVM_CHAINS"} - SINGLE_CHAIN
    assert got["EVM_CHAINS"].startswith('variable EVM_CHAINS: added [{"chain_id":137,')
    assert got["LOG_LEVEL"] == "variable LOG_LEVEL: added info"
    single = variable_lines(job, side(job), Side())  # the control: the single chain reads them
    assert single["ETH_CHAIN_ID"] == "variable ETH_CHAIN_ID: added 1" and SINGLE_CHAIN <= set(single)


def test_with_evm_chains_on_both_sides_a_chain_change_is_its_own_line_and_the_file(job):
    old = side(job, variables={"EVM_CHAINS": EVM_CHAINS})
    new = side(job, variables={"EVM_CHAINS": [{**EVM_CHAINS[0], "chain_id": 80002}]})
    got = messages(job, new, old)
    assert got[0].startswith('variable EVM_CHAINS: [{"chain_id":137,') and '-> [{"chain_id":80002,' in got[0]
    assert got[1:] == ["file config.toml: changed (+1 -1)", "secret file rpc.toml: changed (content not shown)"]


def test_an_unrestorable_node_is_a_warning_and_its_unknown_inputs_are_not_compared(job):
    old = dataclasses.replace(side(job), variables=None, files=None)
    lines = summary(service_diff("cl", {"a": old}, side(job), unrestorable={"a": "it records none"}))
    assert [line.message for line in lines] == ["no change", "warning: a: not restorable if the change fails: it "
                                                "records none"]  # fmt: skip


@pytest.mark.parametrize(
    ("digest", "shown"),
    [("sha256:" + "ab" * 32, "abababababab"), (None, "none"), ("2f28f8bad9f7b16e", "2f28f8bad9f7")],
)
def test_short_digests_are_12_hex(digest, shown):
    assert short(digest) == shown


# ---------------------------------------------------------------- the old side is the text the node read


def shown_diff(job, tmp_path, container) -> list[dict]:
    """ServiceDeploy.show_diff of today's preflight of ``tmp_path / "t.yaml"`` against ``container`` on node a, as
    the JSON events a CI job reads."""
    from nodeops.deploy import ServiceDeploy
    from nodeops.inventory import load_inventory
    from nodeops.job import prepare
    from nodeops.plan import NodeView, ServicePlan
    from nodeops.run.report import Reporter

    inventory = load_inventory(tmp_path / "t.yaml")
    today = prepare(inventory)[0]
    out: list[str] = []
    run = ServiceDeploy(today, types.SimpleNamespace(inventory=inventory), Reporter(True, out.append))
    run.show_diff({"a": NodeView(job.service.nodes[0], container, True)}, None, ServicePlan("cl", (), ""))
    return [json.loads(line) for line in out]


def started(job, **labels):
    from nodeops.job import input_labels
    from nodeops.plan import Container

    recorded = {"config": job.rendered.config_hash, **input_labels(job), **labels}
    return Container(name="nodeops-cl", running=True, status="running", image_id="sha256:1", image=job.service.image,
                     labels={f"io.nodeops.{k}": v for k, v in recorded.items() if v is not None})  # fmt: skip


def test_a_template_override_is_a_real_diff_of_the_text_the_node_read(job, tmp_path):
    """The container started on the built-in template; the operator's roles/ now overrides it: the dry run shows
    the override's lines, old side from the container's record, not today's rendering of its inputs."""
    container = started(job)
    override_config(tmp_path, "SecureCookies = false", "SecureCookies = true")
    events = shown_diff(job, tmp_path, container)
    config = next(e for e in events if e.get("name") == "config.toml")
    assert config["diff"] == "file" and config["message"] == "file config.toml: changed (+1 -1)"
    assert {"-SecureCookies = false", "+SecureCookies = true"} <= set(config["unified_diff"])
    assert not any(e["diff"] == "warning" for e in events), events  # exact: no note
    assert not any(value in json.dumps(events) for value in ENV_SECRETS)


def test_a_changed_secret_template_is_a_change_the_diff_warns_of_without_its_content(job, tmp_path):
    """Issue 15: only secrets.toml.j2 changed (the operator's override). Its output is never compared in a label,
    so the old side's secret files are today's rendering; the hash moved, and a warning says why, naming no value."""
    from nodeops.roles import BUILTIN_TEMPLATES

    container = started(job)
    mine = tmp_path / "templates" / "chainlink" / "v2" / "secrets.toml.j2"
    mine.parent.mkdir(parents=True)
    mine.write_text((BUILTIN_TEMPLATES / "chainlink" / "v2" / "secrets.toml.j2").read_text() + "# mine\n")
    events = shown_diff(job, tmp_path, container)
    (note,) = [e["message"] for e in events if e["diff"] == "warning"]
    assert note == ("warning: a: the role's defaults, files, command, ports, volumes or secret files' templates "
                    "changed since nodeops-cl started: its files are compared as today's templates render its "
                    "inputs")  # fmt: skip
    assert not any(value in json.dumps(events) for value in ENV_SECRETS)


def test_a_container_of_an_older_nodeops_is_compared_on_todays_templates_with_the_note(job, tmp_path):
    container = started(job, files=None)  # started before containers recorded their files' text
    override_config(tmp_path, "SecureCookies = false", "SecureCookies = true")
    events = shown_diff(job, tmp_path, container)
    assert not any(e.get("name") == "config.toml" for e in events), events
    (note,) = [e["message"] for e in events if e["diff"] == "warning"]
    assert note == ("warning: a: the role's templates or defaults changed since nodeops-cl started, and it records no "
                    "text of its files (an older nodeops): its files are compared as today's templates render its "
                    "inputs")  # fmt: skip


HOT = RenderedFile("hot.key", b"not shown", True, hot=True)
CONF = RenderedFile("node.conf", b"x = 1\n", False)


@pytest.mark.parametrize(
    ("olds", "holders", "hot_for", "unchanged"),
    [
        ({"a": Side(), "b": Side()}, {"a"}, [["a"]], []),  # a fresh keys pair: the holder gets it, not the standby
        ({"a": Side(), "b": Side()}, {"b"}, [["b"]], []),
        # the holder keeps its hot file, the standby has none and gets none: no change for either
        ({"a": Side("img:2", "sha256:d", {}, {"node.conf": CONF, "hot.key": HOT}),
          "b": Side("img:2", "sha256:d", {}, {"node.conf": CONF})}, {"a"}, [], [["a"], ["b"]]),
    ],
    ids=["fresh-pair-a", "fresh-pair-b", "current-pair"],
)  # fmt: skip
def test_a_hot_file_is_listed_for_the_nodes_that_will_hold_the_keys_only(olds, holders, hot_for, unchanged):
    """Activation keys (issue 15): only the holder ever gets a hot file, so a dry run lists ``secret file hot.key``
    for the node(s) the plan gives the keys, never for the standby."""
    new = Side("img:2", "sha256:d", {}, {"node.conf": CONF, "hot.key": HOT})
    lines = summary(service_diff("svc", olds, new, holders=holders))
    assert [line.data["nodes"] for line in lines if line.message.startswith("secret file hot.key: added")] == hot_for
    assert [line.data["nodes"] for line in lines if line.message == "no change"] == unchanged
