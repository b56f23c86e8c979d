"""fab deploy --dry-run as a diff, on a lab of its own (one deployed pair): what changes, pulling nothing,
recording nothing; and deploy prints the same summary before acting."""

from __future__ import annotations

import json
import subprocess

import pytest

from lab.aws import read_secret, secrets_client
from tests.conftest import FAB, ROOT, fab, override_config
from tests.e2e.conftest import inventory_variant, own_lab
from tests.e2e.probe import events, status

pytestmark = pytest.mark.lab

NAME, CIDR = "dif", "10.243.0.0/16"
SENTINEL = "DiffSentinel-Zq9%'\"$`#=&@:/? x"  # the new API password: in no line of any output
SERVICE = "cl1"


@pytest.fixture(scope="module")
def dif(root):
    with own_lab(NAME, CIDR, nodes=2, deployed=True) as lab:
        yield lab


def upgrade(doc: dict) -> None:
    """2.10.0 -> 2.11.0 (an image no node holds yet) and one variable."""
    svc = doc["services"][SERVICE]
    svc["image"] = svc["image"].replace(":2.10.0", ":2.11.0")
    svc["variables"]["LOG_LEVEL"] = "debug"


def run_variant(lab, edit, *args: str, tty: bool = False) -> subprocess.CompletedProcess:
    path = inventory_variant(lab.inventory_file, lab.inventory_file.with_name(f"{NAME}-diff.yaml"), edit)
    try:
        if not tty:
            return fab("deploy", "--inventory", str(path), *args)
        line = " ".join([str(FAB), "deploy", "--inventory", str(path), *args])
        return subprocess.run(["script", "--quiet", "--return", "--command", line, "/dev/null"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        path.unlink()


def node_images(lab) -> set[str]:
    """The image names the nodes' own stores hold: what a pull adds (`docker image ls` lists the lab's shared
    read-only store too, which holds every version: lab.image.shared_store)."""
    listings = (lab.dir / "hosts").glob("*/containers/storage/overlay-images/images.json")
    return {name for listing in listings for image in json.loads(listing.read_text()) for name in image["names"]}


def labels() -> dict[str, str]:
    res = fab("exec", "--env", NAME, "--json", "--command",
              f"docker inspect --format '{{{{json .Config.Labels}}}}' nodeops-{SERVICE}")  # fmt: skip
    return {e["node"]: e["stdout"] for e in events(res) if e["event"] == "host"}


def last_audit_entry() -> dict:
    res = fab("audit", "--env", NAME, "--json", "--steps", "--lines", "1")
    assert res.returncode == 0, res.stderr
    return events(res)[-1]


def diff_fields(res) -> list[dict]:
    """The diff's events (those with a ``diff`` field), without the run's clock."""
    return [{k: v for k, v in e.items() if k != "t"} for e in events(res) if e.get("diff")]


def move_api_password(lab) -> str:
    """A new AWSCURRENT version of the API secret, whose password is the sentinel; returns its version id."""
    client = secrets_client(lab.load_state()["secrets_port"])
    doc = {**read_secret(client, f"{SERVICE}/ApiSecret"), "password": SENTINEL}
    return client.put_secret_value(SecretId=f"{SERVICE}/ApiSecret", SecretString=json.dumps(doc))["VersionId"]


def test_a_dry_run_is_a_diff_that_pulls_nothing_and_records_nothing(dif):
    before, audited = labels(), last_audit_entry()
    assert {json.loads(text)["io.nodeops.version"] for text in before.values()} == {"2.10.0"}
    assert not any(image.endswith(":2.11.0") for image in node_images(dif))  # so the check below can fail
    version = move_api_password(dif)

    res = run_variant(dif, upgrade, "--dry-run", "--json")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    # It touched nothing: no image pulled, no container changed, nothing in the audit log.
    assert not any(image.endswith(":2.11.0") for image in node_images(dif)), "the dry run pulled the image"
    assert labels() == before
    assert last_audit_entry() == audited, "the dry run is in the audit log"
    assert SENTINEL not in out and "DiffSentinel" not in out
    diff = {(e["diff"], e.get("name")): e for e in diff_fields(res)}
    image = diff[("image", None)]
    old_digest = json.loads(before["cl1-a"])["io.nodeops.digest"]
    assert image["old_digest"] == old_digest and image["new_digest"].startswith("sha256:")
    assert image["new_digest"] != old_digest and image["old"].endswith(":2.10.0") and image["new"].endswith(":2.11.0")
    assert image["message"] == f"image 2.10.0 -> 2.11.0 (digest {old_digest[7:19]} -> {image['new_digest'][7:19]})"
    assert diff[("variable", "LOG_LEVEL")]["message"] == "variable LOG_LEVEL: info -> debug"
    config = diff[("file", "config.toml")]
    assert {'-Level = "info"', '+Level = "debug"'} <= set(config["unified_diff"]), config
    assert diff[("secret-file", ".api")]["message"] == "secret file .api: changed (content not shown)"
    moved = [e for e in diff_fields(res) if e["diff"] == "secret"]  # both keys of the one secret, one line each
    both = [f"{SERVICE}-a", f"{SERVICE}-b"]  # they run the same inputs: they share the line
    assert sorted((e["name"], e["nodes"]) for e in moved) == [("api_email", both), ("api_password", both)]
    assert all(e["new_version"] == version and e["secret_version_moved"] is True for e in moved)
    assert events(res)[-1]["message"] == "dry run: 1 service(s), 1 would change; nothing was changed"
    end = next(e for e in events(res) if e.get("event") == "end")
    assert end["dry_run"] is True and end["result"] == "ok"

    # A person at a terminal reads the same lines and the file's diff itself.
    human = run_variant(dif, upgrade, "--dry-run", tty=True)
    assert human.returncode == 0, human.stdout + human.stderr
    assert '-Level = "info"' in human.stdout and "variable LOG_LEVEL: info -> debug" in human.stdout
    assert SENTINEL not in human.stdout and "DiffSentinel" not in human.stdout


def test_deploy_prints_the_same_summary_before_acting(dif):
    dry = run_variant(dif, upgrade, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    res = run_variant(dif, upgrade, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    messages = [e.get("message", "") for e in events(res)]
    first_change = next(i for i, m in enumerate(messages) if m.startswith("replace "))
    shown = [{k: v for k, v in e.items() if k != "t"} for e in events(res)[:first_change] if e.get("diff")]
    assert shown == diff_fields(dry)  # the very lines, the digest the dry run read included
    pulled = next(e["digest"] for e in events(res) if e.get("message", "").startswith("pulled "))
    assert next(e for e in shown if e["diff"] == "image")["new_digest"] == pulled

    again = run_variant(dif, upgrade, "--dry-run", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [e["message"] for e in diff_fields(again)] == ["no change"]


def test_a_downgrade_is_a_warning_in_the_diff_and_refused(dif):
    """After 2.11.0 ran, the database records it: back to 2.10.0 is shown, warned about, and refused (exit 4)."""
    before = labels()
    res = run_variant(dif, lambda d: d["services"][SERVICE]["variables"].update(LOG_LEVEL="debug"),
                      "--dry-run", "--json")  # fmt: skip
    assert res.returncode == 4, res.stdout + res.stderr
    diff = diff_fields(res)
    assert diff[0]["message"].startswith("image 2.11.0 -> 2.10.0 (digest ")
    warning = [e["message"] for e in diff if e["diff"] == "warning"]
    assert warning == ["warning: image version 2.10.0 is older than 2.11.0, the version the database last ran: the "
                       "node refuses to start on it; a deploy is refused (exit 4)"]  # fmt: skip
    assert labels() == before


def test_a_template_override_is_a_unified_diff_of_the_text_the_nodes_read(dif, tmp_path):
    """Issue 14 review: an override of config.toml in the operator's roles/ (a project of its own in tmp_path) is
    shown as the unified diff of the text each container records against the override's; no secret is in the
    output nor in any label `docker inspect` shows (the nodes run the sentinel API password by now)."""
    before: dict[str, str] = {}
    for _ in range(3):  # bounded: an exec through the bastion that lost a node is read again
        if len(before := labels()) == 2:
            break
    assert set(before) == {f"{SERVICE}-a", f"{SERVICE}-b"}, before
    assert all(SENTINEL not in text and "DiffSentinel" not in text for text in before.values())
    assert all("io.nodeops.files" in json.loads(text) for text in before.values())  # so the line above can fail
    path = inventory_variant(dif.inventory_file, tmp_path / "inventory.yaml", upgrade)  # what the pair runs
    override_config(tmp_path, "SecureCookies = false", "SecureCookies = true")
    res = fab("deploy", "--inventory", str(path), "--dry-run", "--json")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert SENTINEL not in out and "DiffSentinel" not in out
    diff = diff_fields(res)
    assert [e["message"] for e in diff] == ["file config.toml: changed (+1 -1)"], diff
    assert {"-SecureCookies = false", "+SecureCookies = true"} <= set(diff[0]["unified_diff"])
    assert labels() == before


def engine_images() -> dict[str, str]:
    """Each node's container's image reference as the engine reports it (Config.Image)."""
    res = fab("exec", "--env", NAME, "--json", "--command",
              f"docker inspect --format '{{{{.Config.Image}}}}' nodeops-{SERVICE}")  # fmt: skip
    return {e["node"]: e["stdout"].strip() for e in events(res) if e["event"] == "host"}


def test_a_deploy_pinned_by_digest_reads_back_as_pinned(dif):
    """Issue 14 review: podman (the lab's engine, behind the real docker CLI) reports a container started from
    ``repo:2.11.0@sha256:...`` as ``repo@sha256:...``; the next dry run of the same inventory said
    ``image latest -> 2.11.0`` and that the templates had changed. What nodeops recorded is read back instead.
    (After the tests above the pair runs 2.11.0; alone, 2.10.0: either is pinned, and the other is the tag change.)"""
    ran = json.loads(labels()[f"{SERVICE}-a"])
    version, digest = ran["io.nodeops.version"], ran["io.nodeops.digest"]  # as the last deploy pulled it
    assert digest.startswith("sha256:")
    other = "2.10.0" if version == "2.11.0" else "2.11.0"

    def image(tag: str, pin: str = ""):
        def edit(doc: dict) -> None:
            svc = doc["services"][SERVICE]
            svc["image"] = svc["image"].replace(":2.10.0", f":{tag}") + pin
            svc["variables"]["LOG_LEVEL"] = "debug"

        return edit

    pinned = image(version, f"@{digest}")
    res = run_variant(dif, pinned, "--json")  # a real change: the reference is in the config hash
    assert res.returncode == 0, res.stdout + res.stderr
    print("the engine reports", engine_images())  # podman: the reference without its tag

    again = run_variant(dif, pinned, "--dry-run", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [e["message"] for e in diff_fields(again)] == ["no change"]
    reference = next(json.loads(t)["io.nodeops.image"] for t in labels().values())
    assert reference.endswith(f":{version}@{digest}")
    nodes = status(NAME)[SERVICE]["nodes"]
    assert {(n["image"], n["version"]) for n in nodes} == {(reference, version)}

    # A real tag change from it is said as one (a downgrade is also warned about and refused, exit 4).
    move = run_variant(dif, image(other), "--dry-run", "--json")
    assert move.returncode == (4 if other == "2.10.0" else 0), move.stdout + move.stderr
    change = next(e for e in diff_fields(move) if e["diff"] == "image")
    assert change["old"] == reference and change["old_digest"] == digest
    assert change["message"].startswith(f"image {version} -> {other} (digest {digest[7:19]} -> ")
    assert not any("templates or defaults changed" in e["message"] for e in diff_fields(move))
