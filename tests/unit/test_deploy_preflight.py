"""fab deploy refuses bad input before it touches any host (exit 2).

The inventory's bastion is 127.0.0.1 port 9, where nothing listens: had the
task tried to connect first, it would fail with exit 1 instead.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from urllib.parse import quote

import pytest

from nodeops.errors import InvalidInput
from nodeops.inventory import load_inventory
from nodeops.job import prepare
from nodeops.render import render
from nodeops.roles import profile_name, role_for
from nodeops.secrets import Secret
from tests.conftest import fab

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAexdbHB36tcwydKJhbUhZib3vTlDloQOUKT1P7lVkKp"
ENV = {
    "NODEOPS_CL_DB_PASSWORD": "Aa1!aaaaaaaaaaaaaaaa",
    "NODEOPS_CL_DB_USERNAME": "cl",
    "NODEOPS_CL_WALLET_PASSWORD": "Bb2!bbbbbbbbbbbbbbbb",
    "NODEOPS_CL_API_USERNAME": "ops@example.com",
    "NODEOPS_CL_API_PASSWORD": "Cc3!cccccccccccccccc",
}


def inventory(role: str = "chainlink", wallet: str = "cl/wallet") -> str:
    return textwrap.dedent(f"""\
        environment: t
        bastion: {{host: 127.0.0.1, port: 9, user: root, host_key: "{KEY}"}}
        ssh: {{user: root, connect_timeout: 2}}
        secret_backends: {{ci: {{kind: env, prefix: NODEOPS_}}}}
        services:
          cl:
            role: {role}
            image: smartcontract/chainlink:2.10.0
            variables: {{DATABASE_HOST: 10.0.0.9, DATABASE_NAME: cl}}
            secrets:
              db: {{backend: ci, name: cl/db, key: password}}
              db_user: {{backend: ci, name: cl/db, key: username}}
              keystore: {{backend: ci, name: {wallet}, key: password}}
              api_email: {{backend: ci, name: cl/api, key: username}}
              api_password: {{backend: ci, name: cl/api, key: password}}
            nodes:
              - {{name: a, host: 10.0.0.1, preferred: active, host_key: "{KEY}"}}
              - {{name: b, host: 10.0.0.2, preferred: standby, host_key: "{KEY}"}}
        """)


def deploy(tmp_path: Path, text: str, monkeypatch, *args: str) -> tuple[int, str]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "t.yaml"
    path.write_text(text)
    res = fab("deploy", "--inventory", str(path), *args)
    return res.returncode, res.stdout + res.stderr


def test_good_input_gets_as_far_as_the_bastion(tmp_path, monkeypatch):
    code, out = deploy(tmp_path, inventory(), monkeypatch)
    assert code == 1 and "bastion (127.0.0.1:9): cannot connect" in out  # the control: preflight passed


@pytest.mark.parametrize(
    ("text", "override", "fragment"),
    [
        (inventory(role="besu"), None, "services.cl.role: unknown role 'besu'"),
        (inventory(wallet="cl/nope"), None, "services.cl.secrets.keystore"),
        (inventory(), "{{ vars.NO_SUCH_VARIABLE }}", "NO_SUCH_VARIABLE"),
        (
            inventory(),
            "[Password]\nKeystore = {{ secrets.keystore | toml }}",
            "line 2: toml: secret 'keystore' is written into config.toml, a file with secret: false",
        ),
    ],
    ids=["unknown-role", "missing-secret", "bad-template-variable", "secret-in-plain-file"],
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["deploy", "dry-run"])
def test_bad_input_fails_before_any_host(tmp_path, monkeypatch, text, override, fragment, dry_run):
    if override:  # an operator's override of one template, next to the inventory
        templates = tmp_path / "templates" / "chainlink" / "v2"
        templates.mkdir(parents=True)
        (templates / "config.toml.j2").write_text(override + "\n")
        (tmp_path / "roles" / "chainlink").mkdir(parents=True)
        (tmp_path / "roles" / "chainlink" / "role.yaml").write_text(
            (Path(__file__).parents[2] / "roles" / "chainlink" / "role.yaml").read_text())  # fmt: skip
    code, out = deploy(tmp_path, text, monkeypatch, *(["--dry-run"] if dry_run else []))
    assert code == 2, out
    assert fragment in out and "cannot connect" not in out and "Traceback" not in out
    assert out.count("\n") == 1
    assert not any(value in out for name, value in ENV.items() if name.endswith("PASSWORD"))


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("DATABASE_NAME: cl}", "DATABASE_NAME: cl, LOGLEVEL: debug}",
         "t.yaml: services.cl.variables.LOGLEVEL: role 'chainlink' has no variable LOGLEVEL (did you mean LOG_LEVEL?); "
         "its variables: DATABASE_HOST, "),
        ("services:\n", "defaults: {variables: {Log_Level: debug}}\nservices:\n",
         "t.yaml: defaults.variables.Log_Level: role 'chainlink' has no variable Log_Level (did you mean LOG_LEVEL?)"),
        ("DATABASE_NAME: cl}", "DATABASE_NAME: cl, LB_PORT: 6688}",
         "services.cl.variables.LB_PORT: role 'chainlink' has no variable LB_PORT; its variables: "),
    ],
    ids=["typo", "typo-in-defaults", "not-the-roles"],
)  # fmt: skip
@pytest.mark.parametrize("dry_run", [False, True], ids=["deploy", "dry-run"])
def test_a_variable_the_role_does_not_know_is_refused_before_any_host(tmp_path, monkeypatch, old, new, fragment,
                                                                      dry_run):  # fmt: skip
    """Review 14 #3: `LOGLEVEL: debug` was accepted and planned a rolling replace that changed nothing else."""
    text = inventory().replace(old, new, 1)
    assert text != inventory()
    code, out = deploy(tmp_path, text, monkeypatch, *(["--dry-run"] if dry_run else []))
    assert code == 2 and fragment in out and out.count("\n") == 1, out
    assert "cannot connect" not in out and "Traceback" not in out


def test_the_prod_example_gives_its_role_every_secret_and_renders():
    """The shipped example is deployable as written, up to the secret values themselves."""
    inv = load_inventory(Path(__file__).parents[2] / "inventory" / "prod.example.yaml")
    service = inv.services["chainlink"]
    role = role_for(inv, service)
    assert set(role.secrets) <= set(service.secrets)
    fake = {name: Secret(f"Example-{name}-Passw0rd!x", name) for name in service.secrets}
    rendered = render(role, profile_name(role, service), service, fake)
    assert b"sslmode=verify-full" in rendered.files["secrets.toml"].data
    # its RPC URLs are secret references (issue 13): in rpc.toml, a secret file, and nowhere plain
    assert b'WSURL = "Example-eth_url-' in rendered.files["rpc.toml"].data and rendered.files["rpc.toml"].secret
    assert b"Nodes" not in rendered.files["config.toml"].data and "ETH_URL" not in service.variables
    # every variable it sets is one the role uses: its LINK token contract reaches the chain's [[EVM]] table
    assert set(service.variables) <= role.known_variables
    assert b'LinkContractAddress = "0x514910771AF9Ca656af840dff83E8264EcF986CA"' in rendered.files["config.toml"].data


def test_only_a_rotation_reads_the_admin_credentials(tmp_path, monkeypatch):
    """A CI job that deploys needs no database admin credential: deploy never asks the backend for one."""
    last = "      api_password: {backend: ci, name: cl/api, key: password}\n"
    text = inventory().replace(last, last + "      db_admin_user: {backend: ci, name: cl/admin, key: username}\n"
                                          "      db_admin: {backend: ci, name: cl/admin, key: password}\n")  # fmt: skip
    assert "db_admin:" in text
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "t.yaml"
    path.write_text(text)
    inv = load_inventory(path)
    [job] = prepare(inv)  # NODEOPS_CL_ADMIN_* are not set, and not needed
    assert "db_admin" not in job.secrets and "db_admin_user" not in job.secrets
    with pytest.raises(InvalidInput, match="NODEOPS_CL_ADMIN"):
        prepare(inv, admin=True)
    monkeypatch.setenv("NODEOPS_CL_ADMIN_USERNAME", "nodeops_admin")
    monkeypatch.setenv("NODEOPS_CL_ADMIN_PASSWORD", "Dd4!dddddddddddddddd")
    [job] = prepare(inv, admin=True)
    assert job.secrets["db_admin"].reveal() == "Dd4!dddddddddddddddd"


@pytest.mark.parametrize("dry_run", [False, True], ids=["deploy", "dry-run"])
def test_a_root_dir_under_the_read_only_mount_is_refused_before_any_host(tmp_path, monkeypatch, dry_run):
    """Issue 13: `ROOT_DIR: /chainlink` made the new standby fail after taking the lease, then the old active."""
    text = inventory().replace("DATABASE_NAME: cl}", "DATABASE_NAME: cl, ROOT_DIR: /chainlink/root}")
    assert "ROOT_DIR" in text
    code, out = deploy(tmp_path, text, monkeypatch, *(["--dry-run"] if dry_run else []))
    assert code == 2 and out.count("\n") == 1 and "cannot connect" not in out, out
    assert f"{tmp_path / 't.yaml'}: services.cl.variables.ROOT_DIR: '/chainlink/root' is at or under" in out
    assert "remove it to use the role's default '/home/chainlink/.chainlink'" in out


RPC = "wss://eth-mainnet.example.net/v3/Rk7rpcSentinelKey0123456789"


def test_an_rpc_url_secret_reference_is_masked_and_never_in_what_deploy_records(tmp_path, monkeypatch):
    """The URL reaches rpc.toml only: not the config hash's inputs, not deploy's audit record (`variables`),
    and the redactor masks it (and its URL-encoded and JSON forms) in every message deploy shows or logs."""
    from nodeops.deploy import ServiceDeploy
    from nodeops.run.report import Reporter

    last = "      api_password: {backend: ci, name: cl/api, key: password}\n"
    text = inventory().replace(last, last + "      eth_url: {backend: ci, name: cl/rpc}\n")
    for name, value in {**ENV, "NODEOPS_CL_RPC": RPC}.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "t.yaml"
    path.write_text(text)
    [job] = prepare(load_inventory(path))
    assert RPC.encode() in job.rendered.files["rpc.toml"].data and job.rendered.files["rpc.toml"].secret
    assert not any(RPC.encode() in f.data for f in job.rendered.files.values() if not f.secret)
    ran = ServiceDeploy(job, None, Reporter.silent()).ran()  # what the audit log's end entry records
    assert "Rk7rpc" not in repr(ran) and "eth_url" not in ran["variables"]
    assert ran["secret_versions"]["eth_url"] is None  # named, by its version (the env backend keeps none)
    line = f"dial {RPC}: refused; {quote(RPC, safe='')}; {json.dumps(RPC)}"
    assert "Rk7rpc" not in job.redact(line) and job.redact.leaks(RPC)


# ---------------------------------------------------------------- a render error names the file and the service


def _prepared(tmp_path, monkeypatch, text: str, **env: str):
    for name, value in {**ENV, **env}.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return path, lambda: prepare(load_inventory(path))


def test_a_render_error_names_the_file_and_an_unmasked_service_named_like_its_database_user(tmp_path, monkeypatch):
    """review14 #5: the service name was masked (`services.***.variables...`) because the database user (a secret)
    is spelled the same, and the file was not named. The password still never shows."""
    text = (
        inventory()
        .replace("  cl:\n", "  chainlink-prod:\n")
        .replace("variables: {", "variables: {EVM_CHAINS: [{chain_id: 1, nodes: [{name: x}]}], ")
    )
    path, run = _prepared(tmp_path, monkeypatch, text, NODEOPS_CL_DB_USERNAME="chainlink-prod")
    with pytest.raises(InvalidInput) as err:
        run()
    message = str(err.value)
    assert message.startswith(f"{path}: services.chainlink-prod: role chainlink: template ")
    assert message.endswith(": services.chainlink-prod.variables.EVM_CHAINS[0].nodes[0]: no URL (set ws_url or "
                            "ws_url_secret, and/or http_url or http_url_secret)")  # fmt: skip
    assert "*" not in message and ENV["NODEOPS_CL_DB_PASSWORD"] not in message


def test_a_runs_lines_keep_a_service_named_like_its_database_user_and_mask_the_password(tmp_path, monkeypatch):
    """Review of issue 18: on a lab with 10 or more pairs, deploy's lines showed `*****-a` for the node cl10-a and
    `*****` for its database name: the database user (a secret) is spelled like the service, and the run's redactor,
    unlike a render error's (review14 #5 above), masked every form of it. A value that is part of a public name is
    left as it is; the other values, and a name with more around it, are masked as before."""
    text = inventory().replace("  cl:\n", "  chainlink-prod:\n")
    _, run = _prepared(tmp_path, monkeypatch, text, NODEOPS_CL_DB_USERNAME="chainlink-prod")
    [job] = run()
    names = f"started nodeops-chainlink-prod on {job.service.nodes[0].name}; database chainlink-prod"
    assert job.redact(names) == names and not job.redact.leaks(names)
    password = ENV["NODEOPS_CL_DB_PASSWORD"]
    rotating = job.redact.with_secrets([Secret("Zz9!zzzzzzzzzzzzzzzz")])  # a rotation's wider redactor
    for redact in (job.redact, rotating):
        assert redact(f"{names}; {password}") == f"{names}; *****"
    assert rotating("new Zz9!zzzzzzzzzzzzzzzz") == "new *****"


FIX_CHAIN_ID = "set the chain's EIP-155 ID, a positive whole number (1: Ethereum mainnet, 137: Polygon)"


@pytest.mark.parametrize(("chain_id", "shown"), [('"abc"', "'abc'"), ("-5", "-5")])
@pytest.mark.parametrize("dry_run", [False, True], ids=["deploy", "dry-run"])
def test_a_bad_evm_chain_id_is_refused_before_any_host(tmp_path, monkeypatch, chain_id, shown, dry_run):
    """rv6 #1: `chain_id: "abc"` was rendered (`ChainID = "abc"`) and a dry run exited 0."""
    chains = (f"EVM_CHAINS: [{{chain_id: 1, nodes: [{{name: a, ws_url: wss://a}}]}}, "
              f"{{chain_id: {chain_id}, nodes: [{{name: b, ws_url: wss://b}}]}}], ")  # fmt: skip
    code, out = deploy(tmp_path, inventory().replace("variables: {", "variables: {" + chains), monkeypatch,
                       *(["--dry-run"] if dry_run else []))  # fmt: skip
    assert code == 2, out
    assert out.count("\n") == 1 and "Traceback" not in out and "cannot connect" not in out
    assert out.startswith(f"nodeops: {tmp_path / 't.yaml'}: services.cl: role chainlink: template "), out
    assert out.rstrip().endswith(f": services.cl.variables.EVM_CHAINS[1].chain_id: {shown} is not a chain ID; "
                                 + FIX_CHAIN_ID), out  # fmt: skip


def test_a_missing_required_secret_names_the_file(tmp_path, monkeypatch):
    text = "\n".join(line for line in inventory().splitlines() if "keystore:" not in line) + "\n"
    path, run = _prepared(tmp_path, monkeypatch, text)
    with pytest.raises(InvalidInput) as err:
        run()
    assert str(err.value) == f"{path}: services.cl.secrets: role 'chainlink' needs 'keystore'; add a reference for each"
