"""Issue 16: large public data files (a profile's ``data_files``: Cardano's genesis files, megabytes). Shipped in the
role's folder, uploaded with the node's files as their bytes are, covered by the config hash by their sha256, never
recorded as text (no container label, no audit line), a diff naming a change by hash; a recorded text too large for
a label refused at render time (exit 2) naming the file and the key. A role without data files renders, hashes and
labels as before (the Chainlink hashes below were computed on main before the key existed)."""

from __future__ import annotations

import hashlib
import json
from types import MappingProxyType

import pytest

from nodeops.diff import Side, changes, service_diff, summary
from nodeops.errors import EXIT_INVALID, InvalidInput
from nodeops.inventory import Node, Service
from nodeops.job import DATA_LABEL, TEXTS_LABEL, Job, input_labels, recorded_texts
from nodeops.render import RECORDED_MAX, render
from nodeops.role_file import RoleError
from nodeops.roles import load_role
from nodeops.run.report import Redactor
from nodeops.secrets import Secret
from tests.unit import test_render
from tests.unit.test_roles import GOOD

GENESIS = b'{"startTime": "{{ not a template }}",\n "blob": "' + b"x" * (3 * RECORDED_MAX) + b'"}\n'

ROLE = GOOD.replace(
    "    env_file: null\n", "    env_file: null\n    data_files:\n      genesis.json: genesis/net/genesis.json\n"
)


def make_role(root, text: str = ROLE, genesis: bytes = GENESIS, app: str = "a=1\n"):
    """Role ``thing`` in ``root`` with its genesis file at ``roles/thing/genesis/net/genesis.json``."""
    (root / "roles" / "thing" / "genesis" / "net").mkdir(parents=True, exist_ok=True)
    (root / "templates" / "thing").mkdir(parents=True, exist_ok=True)
    (root / "roles" / "thing" / "role.yaml").write_text(text)
    (root / "roles" / "thing" / "genesis" / "net" / "genesis.json").write_bytes(genesis)
    (root / "templates" / "thing" / "app.j2").write_text(app)
    (root / "templates" / "thing" / "pw.j2").write_text("{{ secrets.pw | line }}\n")
    return load_role("thing", [root / "roles"])


SERVICE = Service("svc", "thing", "reg/node:2", "docker", MappingProxyType({}), MappingProxyType({}),
                  (Node("a", "10.0.0.1", 22, "active", (), "svc"),))  # fmt: skip
SECRETS = {"pw": Secret("hunter2", "pw")}


def job_of(role) -> Job:
    return Job(SERVICE, role, "main", render(role, "main", SERVICE, SECRETS), Redactor(list(SECRETS.values())),
               SECRETS)  # fmt: skip


# ---------------------------------------------------------------- role.yaml


@pytest.mark.parametrize(("entry", "path", "problem"), [
    ("genesis.json: /etc/passwd", "data_files.genesis.json", "a path relative to the role's folder"),
    ("genesis.json: ../thing/genesis/net/genesis.json", "data_files.genesis.json",
     "a path relative to the role's folder"),
    ("genesis.json: genesis/net/missing.json", "data_files.genesis.json", "expected a file inside"),
    ("genesis.json: genesis/net", "data_files.genesis.json", "expected a file inside"),
    ("app.conf: genesis/net/genesis.json", "data_files.app.conf", "has this name already"),
    ("sub/g.json: genesis/net/genesis.json", "data_files", "a plain file name"),
    ("escape.json: link.json", "data_files.escape.json", "expected a file inside"),
])  # fmt: skip
def test_a_data_file_the_role_cannot_ship_is_refused_naming_its_path(tmp_path, entry, path, problem):
    (tmp_path / "outside.json").write_text("{}")
    (tmp_path / "roles" / "thing").mkdir(parents=True)
    (tmp_path / "roles" / "thing" / "link.json").symlink_to(tmp_path / "outside.json")  # out of the role's folder
    text = ROLE.replace("genesis.json: genesis/net/genesis.json", entry)
    with pytest.raises(RoleError) as err:
        make_role(tmp_path, text)
    assert err.value.exit_code == EXIT_INVALID
    assert f"profiles.main.{path}" in str(err.value) and problem in str(err.value)


def test_a_role_without_data_files_has_none(tmp_path):
    role = make_role(tmp_path, ROLE.replace("    data_files:\n      genesis.json: genesis/net/genesis.json\n", ""))
    assert dict(role.profile("main").data_files) == {}


# ---------------------------------------------------------------- render, hash, labels


def test_a_data_file_is_uploaded_as_its_bytes_hashed_and_never_recorded(tmp_path):
    job = job_of(make_role(tmp_path))
    genesis = job.rendered.files["genesis.json"]
    assert genesis.data == GENESIS and genesis.data_file and not genesis.secret  # no template: "{{" as shipped
    assert list(job.rendered.files) == ["app.conf", ".pw", "genesis.json"]  # what the upload writes
    assert recorded_texts(job) == {"app.conf": "a=1\n"}
    labels = input_labels(job)
    assert json.loads(labels[TEXTS_LABEL]) == {"app.conf": "a=1\n"}
    assert json.loads(labels[DATA_LABEL]) == {"genesis.json": hashlib.sha256(GENESIS).hexdigest()}
    assert all(len(v) < 1000 for v in labels.values())  # megabytes shipped, none of them in a label
    assert job.files_read("start") == ("app.conf", ".pw", "genesis.json")


@pytest.mark.parametrize(("genesis", "app", "moves"), [
    (GENESIS, "a=1\n", False),  # the same bytes: the same hash
    (GENESIS + b" ", "a=1\n", True),  # one byte more of the data file
    (GENESIS.replace(b"x", b"y", 1), "a=1\n", True),  # one byte other
    (GENESIS, "a=2\n", True),  # a recorded file, as before
])  # fmt: skip
def test_the_config_hash_covers_a_data_file_by_its_bytes(tmp_path, genesis, app, moves):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    before = job_of(make_role(tmp_path / "x")).rendered.config_hash
    after = job_of(make_role(tmp_path / "y", genesis=genesis, app=app)).rendered.config_hash
    assert (after != before) is moves


CHAINLINK_HASHES = {  # render's config_hash of test_render's Chainlink service, computed on main (e219a07)
    "v2": "820478d918f12ff899101c058b844d2f1597c0de019a0bf7c3632bca73c05446",
    "v1": "75251b699cee99d1f04c03adbc15fddee18b8082254a5df55f00746becf533a9",
}


@pytest.mark.parametrize("profile", sorted(CHAINLINK_HASHES))
def test_chainlink_renders_hashes_and_labels_as_before(profile):
    role = load_role("chainlink")
    service, secrets = test_render.service(), test_render.secrets()
    rendered = render(role, profile, service, secrets)
    assert rendered.config_hash == CHAINLINK_HASHES[profile]
    assert not any(f.data_file for f in rendered.files.values())
    job = Job(service, role, profile, rendered, Redactor(list(secrets.values())), secrets)
    assert DATA_LABEL not in input_labels(job)  # its containers' labels: the keys they had


def test_a_recorded_text_too_large_for_a_label_is_refused_naming_the_file_and_the_key(tmp_path):
    role = make_role(tmp_path, app="{{ 'y' * " + str(RECORDED_MAX) + " }}\n")
    with pytest.raises(InvalidInput) as err:
        render(role, "main", SERVICE, SECRETS, file="inv.yaml")
    assert err.value.exit_code == EXIT_INVALID
    message = str(err.value)
    assert message.startswith("inv.yaml: services.svc: role thing: profile main: the text of its files takes")
    assert f"over the {RECORDED_MAX} a container label and an audit line carry; app.conf alone is" in message
    assert "data_files" in message and "\n" not in message


@pytest.mark.parametrize(("over", "refused"), [(0, False), (1, True)])
def test_the_limit_is_of_the_recorded_label_text_byte_for_byte(tmp_path, over, refused):
    overhead = len(json.dumps({"app.conf": "\n"}, separators=(",", ":")))  # {"app.conf":"\n"}: 17 bytes
    role = make_role(tmp_path, app="{{ 'y' * " + str(RECORDED_MAX - overhead + over) + " }}\n")
    if refused:
        with pytest.raises(InvalidInput, match=f"takes {RECORDED_MAX + 1} bytes recorded"):
            render(role, "main", SERVICE, SECRETS)
    else:
        job = job_of(role)
        assert len(input_labels(job)[TEXTS_LABEL].encode()) == RECORDED_MAX


# ---------------------------------------------------------------- diff


H1, H2 = "a" * 64, "b" * 64


@pytest.mark.parametrize(("old", "new", "shown"), [
    ({"g.json": H1}, {"g.json": H1}, []),
    ({"g.json": H1}, {"g.json": H2}, [f"data file g.json: changed (sha256 {H1[:12]} -> {H2[:12]})"]),
    ({}, {"g.json": H2}, [f"data file g.json: added (sha256 none -> {H2[:12]})"]),
    ({"g.json": H1}, {}, [f"data file g.json: removed (sha256 {H1[:12]} -> none)"]),
])  # fmt: skip
def test_a_diff_names_a_data_file_by_its_hash_never_its_text(old, new, shown):
    before, after = Side("reg/node:2", "sha256:1", data=old), Side("reg/node:2", "sha256:1", data=new)
    assert [c.kind for c in changes(before, after)] == ["data-file"] * len(shown)
    lines = summary(service_diff("svc", {"a": before}, after, None, {}, [], ()))
    messages = [line.message for line in lines if line.data["diff"] == "data-file"]
    assert messages == shown and all(not line.body for line in lines)


def test_a_jobs_new_side_has_its_data_files_by_hash_not_as_files(tmp_path):
    side = job_of(make_role(tmp_path)).side("sha256:1")
    assert side.files is not None and "genesis.json" not in side.files
    assert dict(side.data) == {"genesis.json": hashlib.sha256(GENESIS).hexdigest()}
