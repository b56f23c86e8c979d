"""The wheel: built from this source, installed (not editable) into a fresh venv, it gives a `nodeops`
command that works in an operator's folder outside the source tree, with the built-in roles inside it.

About 20 s: the build and the install take their dependencies from the machine's package index (pip's
own configuration); nothing here needs root. The same venv against a real lab (hostkeys, deploy, status,
logs): tests/e2e/test_wheel.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SECRETS = {
    "NODEOPS_CHAINLINK_DBSECRET_USERNAME": "cl",
    "NODEOPS_CHAINLINK_DBSECRET_PASSWORD": "Aa1-aaaaaaaaaaaaaaaa",
    "NODEOPS_CHAINLINK_WALLETSECRET_PASSWORD": "Bb2-bbbbbbbbbbbbbbbb",
    "NODEOPS_CHAINLINK_APISECRET_USERNAME": "ops@example.com",
    "NODEOPS_CHAINLINK_APISECRET_PASSWORD": "Cc3-cccccccccccccccc",
    "NODEOPS_CHAINLINK_RPCSECRET_WS": "wss://eth.example.net/v3/Dd4key",
    "NODEOPS_CHAINLINK_RPCSECRET_HTTP": "https://eth.example.net/v3/Dd4key",
}
# .coverage*: the run's coverage data (pyproject's [tool.coverage]), written and combined while this copies
NOT_SOURCE = shutil.ignore_patterns(
    ".venv", ".git", "build", "__pycache__", "*.egg-info", ".pytest_cache", "lab*.yaml", "results", ".coverage*"
)


def sh(*argv, cwd: Path | None = None, timeout: float = 120, env: dict[str, str] | None = None,
       stdin: int = subprocess.DEVNULL) -> subprocess.CompletedProcess:  # fmt: skip
    """``argv`` outside this venv (none of its variables), with SECRETS and ``env`` in the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | SECRETS | (env or {})
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=stdin)  # fmt: skip


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv with the wheel of this source installed (dependencies pinned by constraints.txt)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)  # setuptools builds in the tree: not in ours
    built = sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", source)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp / "dist").glob("nodeops-*.whl")
    venv = tmp / "venv"
    assert sh(sys.executable, "-m", "venv", "--without-pip", venv).returncode == 0
    installed = sh(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-compile",
                   "-c", ROOT / "constraints.txt", wheel, timeout=300)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    return venv


def test_the_wheel_carries_engine_tasks_and_roles_but_not_the_lab(venv):
    res = sh(venv / "bin" / "python", "-c", "import nodeops, nodeops.tasks, nodeops.roles as r; "
             "print(nodeops.__file__); print(r.BUILTIN_ROLES); h = r.load_role('chainlink').hooks; "
             "print(h.source, *h.rotations)", cwd=venv)  # fmt: skip
    engine, roles, module, kind = res.stdout.split()
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert engine == str(site / "nodeops" / "__init__.py")  # the installed copy, not the source
    assert Path(roles) == site / "nodeops" / "builtin" / "roles" and (Path(roles) / "chainlink" / "role.yaml").is_file()
    assert (Path(roles) / "chainlink" / "monitoring.yaml").is_file()  # fab monitoring.render's panels and rules
    assert (module, kind) == (f"{roles}/chainlink/role.py", "chainlink-api-password")  # its module loads from the wheel
    templates = site / "nodeops" / "builtin" / "templates" / "chainlink"
    assert {p.relative_to(templates).as_posix() for p in templates.rglob("*.j2")} == {
        "api.j2", "database_url.j2", "evm.j2", "password.j2", "v1/env.j2", "v2/config.toml.j2", "v2/rpc.toml.j2",
        "v2/secrets.toml.j2"}  # fmt: skip
    assert not (site / "tasks").exists() and not (site / "lab").exists()


def test_the_wheel_carries_the_cardano_roles_modules_and_they_import_each_other(venv):
    """roles/cardano's modules, installed as nodeops/builtin/roles/cardano, import as one package (ocert and envelope
    import kes relatively) with the wheel's dependencies (PyNaCl, cbor2): a key signs and a certificate verifies."""
    code = (
        "from nodeops.roles import role_module as m; kes, env = m('cardano', 'kes'), m('cardano', 'envelope'); "
        "key = kes.SignKey.generate(bytes(32)).evolve_to(40); ok = kes.verify(key.verification_key, 40, b'h', "
        "key.sign(b'h')); cold = m('cardano', 'ocert').ColdKey(bytes(32)); "
        "cert = m('cardano', 'ocert').issue(cold, key.verification_key, 1, 2); "
        "back = env.read_certificate(env.certificate_file(cert), 'node.cert'); "
        "print(kes.__file__, env.__name__.split('.')[-1], ok, back.verify(cold.verification_key))"
    )
    res = sh(venv / "bin" / "python", "-c", code, cwd=venv)
    assert res.returncode == 0, res.stderr
    module, name, signed, verified = res.stdout.split()
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert module == str(site / "nodeops" / "builtin" / "roles" / "cardano" / "kes.py")  # the wheel's copy
    assert (name, signed, verified) == ("envelope", "True", "True")


def test_nodeops_in_an_operators_folder(venv, tmp_path):
    nodeops = venv / "bin" / "nodeops"
    project = tmp_path / "ops"
    project.mkdir()
    res = sh(nodeops, "init", cwd=project)
    assert res.returncode == 0 and "wrote inventory/prod.yaml" in res.stdout, res.stderr
    listed = sh(nodeops, "--list", cwd=project)
    assert listed.returncode == 0 and "deploy " in listed.stdout and "init " in listed.stdout

    # the generated inventory, pointed at a bastion where nothing listens, with a key of our own
    inventory = project / "inventory" / "prod.yaml"
    text = inventory.read_text().replace("host: 203.0.113.24 ", "host: 127.0.0.1\n  port: 9 ")
    assert sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", project / "id").returncode == 0
    inventory.write_text(text.replace("~/.ssh/nodeops-prod.pem", "../id"))

    # the project's templates/ comes first: an override that names no variable the service has stops the run
    override = project / "templates" / "chainlink" / "v2" / "config.toml.j2"
    override.parent.mkdir(parents=True)
    override.write_text("{{ vars.NOT_IN_THE_INVENTORY }}\n")
    (project / "sub").mkdir()
    res = sh(nodeops, "deploy", "--env", "prod", "--dry-run", cwd=project / "sub")
    assert res.returncode == 2 and "NOT_IN_THE_INVENTORY" in res.stderr, res.stderr
    override.unlink()  # the built-in template again: everything loads, and the run goes as far as the bastion
    res = sh(nodeops, "deploy", "--env", "prod", "--dry-run", cwd=project / "sub")
    assert res.returncode == 1 and "bastion (127.0.0.1:9): cannot connect" in res.stderr, res.stderr

    inventory.write_text(inventory.read_text().replace("role: chainlink ", "role: chainlnk "))
    res = sh(nodeops, "deploy", "--env", "prod", "--dry-run", cwd=project)
    site_roles = next((venv / "lib").glob("python3*/site-packages")) / "nodeops" / "builtin" / "roles"
    assert res.returncode == 2 and (f"unknown role 'chainlnk': no chainlnk/role.yaml in {project}/roles, {site_roles} "
                                    "(roles found: cardano, chainlink)") in res.stderr, res.stderr  # fmt: skip

    res = sh(nodeops, "lab.up", "--name", "pkg", cwd=project)
    assert res.returncode == 2 and "the lab is a development feature" in res.stderr
    res = sh(nodeops, "-i", "x", "status", "--env", "prod", cwd=project)
    assert res.returncode == 2 and "-i/--identity is not a nodeops option" in res.stderr
