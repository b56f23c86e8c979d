"""Rendering: every escaping filter round-trips a hostile value through its format's own parser; a secret
never reaches output, messages or the config hash; errors name role, template file and line."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from types import MappingProxyType
from urllib.parse import quote, unquote, urlsplit

import pytest

from nodeops.errors import EXIT_INVALID, InvalidInput
from nodeops.inventory import Service
from nodeops.render import render, template_digests
from nodeops.roles import BUILTIN_ROLES, BUILTIN_TEMPLATES, load_role
from nodeops.secrets import Secret
from tests.conftest import simulator

SENTINEL = "s3nt%\\'\"$`#=&@:/? ∆ end "  # quote-, escape-, URL- and shell-special, spaces, unicode, trailing space

LAB_VARIABLES = {
    "DATABASE_HOST": "10.213.0.2", "DATABASE_PORT": 5432, "DATABASE_NAME": "cl1", "ETH_CHAIN_ID": 1337,
}  # fmt: skip


def service(image: str = "smartcontract/chainlink:2.10.0", **variables) -> Service:
    return Service(
        name="cl1", role="chainlink", image=image, runtime="docker",
        variables=MappingProxyType({**LAB_VARIABLES, **variables}), secrets=MappingProxyType({}), nodes=(),
    )  # fmt: skip


def secrets(value: str = SENTINEL, **overrides: str) -> dict[str, Secret]:
    values = {"db": value, "db_user": "cl1", "keystore": value, "api_email": "ops@cl1.example", "api_password": value}
    return {k: Secret(v, k) for k, v in {**values, **overrides}.items()}


def docker_env_file(data: bytes) -> dict[str, str]:
    """docker CLI's --env-file rules (docker/cli opts/envfile.go): lines split on \\n with one trailing \\r
    dropped, UTF-8 required, leading whitespace of the line stripped, '#' lines and blank lines skipped,
    split on the first '=', the value taken as is (no unquoting, no trimming)."""
    out = {}
    text = data.decode("utf-8")  # strict: docker refuses invalid UTF-8
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and key and " " not in key and "\t" not in key
        out[key] = value
    return out


def tmp_role(root: Path, templates: dict[str, str], secret: bool = True) -> Path:
    """A one-profile role 't' whose files are the given templates (``root/roles/t``, ``root/templates/t``); returns the
    roles folder."""
    folder = root / "roles" / "t"
    folder.mkdir(parents=True)
    (root / "templates" / "t").mkdir(parents=True)
    files = "\n".join(f"      {n}: {{template: {n}, secret: {str(secret).lower()}}}" for n in templates)
    (folder / "role.yaml").write_text(
        "user: 1\nport: 1\nhealth: /\nmount: /m\nprofiles:\n  p:\n    files:\n"
        f"{files}\n    command: [run]\ndefault_profile: p\n"
    )
    for name, body in templates.items():
        (root / "templates" / "t" / name).write_text(body)
    return root / "roles"


def render_one(tmp_path: Path, body: str, value: object, name: str = "f.txt") -> bytes:
    role = load_role("t", [tmp_role(tmp_path, {name: body})])
    if isinstance(value, Secret):
        got = render(role, "p", service(), {"s": Secret(value.reveal(), "s")})
    else:
        got = render(role, "p", service(X=value), {})
    return got.files[name].data


# ---------------------------------------------------------------- each filter, exact through its format's parser


def test_toml_filter_round_trips_through_tomllib(tmp_path):
    value = SENTINEL + "\t\x01\x7f\b\f\u2028𝄞"
    data = render_one(
        tmp_path, "k = {{ secrets.s | toml }}\nn = {{ 5 | toml }}\nb = {{ true | toml }}\n", Secret(value)
    )
    assert tomllib.loads(data.decode()) == {"k": value, "n": 5, "b": True}


def test_urlpart_filter_round_trips_through_a_url(tmp_path):
    body = "u = {{ ('postgresql://u:' ~ secrets.s | urlpart ~ '@h:5432/d?x=' ~ secrets.s | urlpart) | toml }}\n"
    url = tomllib.loads(render_one(tmp_path, body, Secret(SENTINEL)).decode())["u"]
    parts = urlsplit(url)
    assert (parts.hostname, parts.port, parts.path, parts.username) == ("h", 5432, "/d", "u")
    assert unquote(parts.password) == SENTINEL and unquote(parts.query.removeprefix("x=")) == SENTINEL


def test_dotenv_filter_round_trips_under_docker_rules(tmp_path):
    for value in (SENTINEL, '"quoted"', "'single'", "  lead", "a=b=c", "#not-a-comment", ""):
        data = render_one(tmp_path / str(abs(hash(value))), "# c\nKEY={{ secrets.s | dotenv }}\nB=1\n", Secret(value))
        assert docker_env_file(data) == {"KEY": value, "B": "1"}


def test_line_filter_writes_exact_bytes(tmp_path):
    data = render_one(tmp_path, "{{ secrets.s | line }}\n", Secret(SENTINEL))
    assert data == SENTINEL.encode() + b"\n"


def test_text_filter_writes_a_value_over_several_lines_exactly(tmp_path):
    """A key file that is one value: cardano-cli's text envelope is JSON over several lines (issue 16)."""
    value = '{\n    "type": "KesSigningKey_ed25519_kes_2^6",\n    "cborHex": "' + SENTINEL + '"\n}\n'
    assert render_one(tmp_path, "{{ secrets.s | text -}}\n", Secret(value)) == value.encode()


@pytest.mark.parametrize(
    ("body", "value", "problem"),
    [
        ("{{ secrets.s | dotenv }}", "a\nb", "dotenv: secret 's' contains a newline, which docker's --env-file"),
        ("{{ secrets.s | dotenv }}", "a\rb", "dotenv: secret 's' contains a carriage return"),
        ("{{ secrets.s | dotenv }}", "a\0b", "dotenv: secret 's' contains a NUL character"),
        ("{{ secrets.s | line }}", "a\nb", "line: secret 's' contains a newline"),
        ("{{ secrets.s | line }}", "a\rb", "line: secret 's' contains a carriage return"),
        ("{{ secrets.s | raw }}", "abc", "raw: 's' is a secret; write it with toml, urlpart, dotenv or line"),
        ("{{ secrets.s | toml }}", "a\udcffb", "toml: secret 's' is not valid Unicode text"),
    ],
)
def test_filters_refuse_what_their_format_cannot_carry_naming_the_secret(tmp_path, body, value, problem):
    with pytest.raises(InvalidInput) as err:
        render_one(tmp_path, body + "\n", Secret(value + SENTINEL))
    message = str(err.value)
    assert err.value.exit_code == EXIT_INVALID and "\n" not in message
    assert message.startswith(f"role t: template {tmp_path}/templates/t/f.txt, line 1: ")
    assert problem in message and SENTINEL not in message and "s3nt" not in message


# ---------------------------------------------------------------- a secret never printed by accident


UNFILTERED = ("secret 's' is printed without an escaping filter; write it through one of toml, urlpart, dotenv or line "
              "(e.g. {{ secrets.NAME | toml }})")  # fmt: skip


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        ("{{ secrets.s }}", 1, UNFILTERED),
        ("x\n{{ secrets.s ~ 'x' }}", 2, UNFILTERED),
        ("{{ secrets.s | upper }}", 1, UNFILTERED),
        ("{{ secrets.s | string }}", 1, UNFILTERED),
        ("{{ '%s' % secrets.s }}", 1, UNFILTERED),
        ("{{ secrets }}", 1, UNFILTERED),
        ("{{ secrets.values() | join(',') }}", 1, UNFILTERED),
        ("{% set x = secrets.s %}{{ x }}", 1, UNFILTERED),
        # the sandbox refuses the way to the value itself, before anything is printed
        ("{{ secrets.s.reveal() }}", 1, "access to attribute 'reveal' of 'Secret' object is unsafe."),
        ("{{ secrets.s._value }}", 1, "access to attribute '_value' of 'Secret' object is unsafe."),
    ],
)
def test_a_secret_printed_without_a_filter_fails_clearly(tmp_path, body, line, problem):
    with pytest.raises(InvalidInput) as err:
        render_one(tmp_path, body + "\n", Secret(SENTINEL))
    assert str(err.value) == f"role t: template {tmp_path}/templates/t/f.txt, line {line}: {problem}"
    assert SENTINEL not in str(err.value) and "s3nt" not in str(err.value)
    assert err.value.__context__ is None  # the original error, and its frames holding values, are gone


@pytest.mark.parametrize(
    "body",
    [
        "k = {{ secrets.s | toml }}",
        "u = {{ ('wss://h/v3/' ~ secrets.s | urlpart) | toml }}",
        "K={{ secrets.s | dotenv }}",
        "{{ secrets.s | line }}",
        "{{ secrets.s | text }}",
        "{% set x = secrets.s | toml %}ok",  # not even printed: a plain file may not read a value at all
    ],
    ids=["toml", "urlpart", "dotenv", "line", "text", "set"],
)
def test_a_secret_in_a_file_marked_secret_false_is_refused(tmp_path, body):
    """Issue 13, item 5: such a file's bytes are in the config hash (a container label), so a guess of the
    secret could be confirmed offline. The same template in a secret: true file renders (the control)."""
    role = load_role("t", [tmp_role(tmp_path / "plain", {"f.txt": "a\n" + body + "\n"}, secret=False)])
    with pytest.raises(InvalidInput) as err:
        render(role, "p", service(), {"s": Secret(SENTINEL, "s")})
    message = str(err.value)
    assert err.value.exit_code == EXIT_INVALID and "\n" not in message and "s3nt" not in message
    assert message.startswith(f"role t: template {tmp_path}/plain/templates/t/f.txt, line 2: ")
    assert "secret 's' is written into f.txt, a file with secret: false" in message
    assert "write it in a file with secret: true instead" in message
    control = load_role("t", [tmp_role(tmp_path / "secret", {"f.txt": "a\n" + body + "\n"}, secret=True)])
    assert render(control, "p", service(), {"s": Secret(SENTINEL, "s")}).files["f.txt"].secret


def test_a_plain_file_may_still_write_plain_values_and_name_secrets(tmp_path):
    body = "k = {{ vars.X | toml }}\n{% if secrets.s is defined %}has = true{% endif %}\n"
    role = load_role("t", [tmp_role(tmp_path, {"f.txt": body}, secret=False)])
    got = render(role, "p", service(X="plain"), {"s": Secret(SENTINEL, "s")})
    assert got.files["f.txt"].data == b'k = "plain"\nhas = true\n'


def test_an_operator_template_printing_a_secret_into_config_toml_is_refused(tmp_path):
    mine = tmp_path / "roles"
    (tmp_path / "templates" / "chainlink" / "v2").mkdir(parents=True)
    override = tmp_path / "templates" / "chainlink" / "v2" / "config.toml.j2"
    override.write_text("# mine\nK = {{ secrets.keystore | toml }}\n")
    with pytest.raises(InvalidInput, match=r"config.toml.j2, line 2: toml: secret 'keystore' is written into "
                                           r"config.toml, a file with secret: false"):  # fmt: skip
        render(load_role("chainlink", [mine, BUILTIN_ROLES]), "v2", service(), secrets())


def test_undefined_variable_names_template_line_and_variable(tmp_path):
    with pytest.raises(InvalidInput) as err:
        render_one(tmp_path, "a\nb\nc = {{ vars.NOPE | toml }}\n", "x")
    assert str(err.value) == (
        f"role t: template {tmp_path}/templates/t/f.txt, line 3: vars.NOPE is undefined "
        "(set it in services.cl1.variables or the role's defaults)"
    )


def test_undefined_secret_names_it(tmp_path):
    with pytest.raises(InvalidInput, match=r"line 1: secrets.other is undefined \(add it to services.cl1.secrets\)"):
        render_one(tmp_path, "{{ secrets.other | toml }}\n", Secret("x"))


def test_syntax_error_names_template_and_line(tmp_path):
    with pytest.raises(InvalidInput, match=r"template .*/f.txt, line 2: Expected an expression"):
        render_one(tmp_path, "ok\n{{ vars.X }} }}{% if %}\n", "x")


def test_missing_secret_required_by_the_role_is_named():
    s = secrets()
    del s["keystore"]
    with pytest.raises(InvalidInput, match=r"services.cl1.secrets: role 'chainlink' needs 'keystore'"):
        render(load_role("chainlink"), "v2", service(), s)


# ---------------------------------------------------------------- the built-in chainlink role


def test_chainlink_v2_files_parse_back_to_the_exact_values():
    got = render(load_role("chainlink"), "v2", service(), secrets(), {"node": {"name": "cl1-a", "preferred": "active"}})
    assert got.command == (
        "node", "-config", "/chainlink/config.toml", "-config", "/chainlink/rpc.toml",
        "-secrets", "/chainlink/secrets.toml", "start", "-a", "/chainlink/.api",
    )  # fmt: skip
    assert got.env_file is None and set(got.files) == {"config.toml", "rpc.toml", "secrets.toml", ".api"}
    config = tomllib.loads(got.files["config.toml"].data.decode())
    assert config["Log"] == {"Level": "info"}
    assert config["WebServer"] == {"HTTPPort": 6688, "SecureCookies": False, "TLS": {"HTTPSPort": 0}}
    assert config["Database"] == {"Lock": {"Enabled": True, "LeaseDuration": "10s", "LeaseRefreshInterval": "1s"}}
    assert config["EVM"] == [{"ChainID": "1337"}]
    sec = tomllib.loads(got.files["secrets.toml"].data.decode())
    assert sec["Password"] == {"Keystore": SENTINEL}
    url = urlsplit(sec["Database"]["URL"])
    assert (url.scheme, url.hostname, url.port, url.path, url.query) == (
        "postgresql",
        "10.213.0.2",
        5432,
        "/cl1",
        "sslmode=prefer",
    )
    assert (unquote(url.username), unquote(url.password)) == ("cl1", SENTINEL)
    assert got.files[".api"].data == f"ops@cl1.example\n{SENTINEL}\n".encode()
    assert not got.files["config.toml"].secret and got.files["secrets.toml"].secret and got.files[".api"].secret


def test_chainlink_v2_with_an_eth_url_gets_a_node_entry():
    got = render(load_role("chainlink"), "v2", service(ETH_URL="wss://rpc.example/ws?k=a'b"), secrets())
    config = tomllib.loads(got.files["config.toml"].data.decode())
    assert config["EVM"] == [{"ChainID": "1337", "Nodes": [{"Name": "primary", "WSURL": "wss://rpc.example/ws?k=a'b"}]}]


def test_chainlink_v1_files_parse_back_under_docker_env_file_rules():
    link = "0x514910771AF9Ca656af840dff83E8264EcF986CA"
    got = render(load_role("chainlink"), "v1", service(LOG_LEVEL="debug", ETH_URL="ws://eth:8546",
                                                       LINK_CONTRACT_ADDRESS=link), secrets())  # fmt: skip
    assert got.command == ("local", "n", "-p", "/chainlink/.password", "-a", "/chainlink/.api")
    assert got.env_file == ".env" and set(got.files) == {".env", ".password", ".api"}
    env = docker_env_file(got.files[".env"].data)
    url = urlsplit(env.pop("DATABASE_URL"))
    assert (unquote(url.username), unquote(url.password), url.hostname, url.path) == (
        "cl1",
        SENTINEL,
        "10.213.0.2",
        "/cl1",
    )
    assert env == {
        "ROOT": "/home/chainlink/.chainlink", "LOG_LEVEL": "debug", "ETH_CHAIN_ID": "1337", "ETH_URL": "ws://eth:8546",
        "LINK_CONTRACT_ADDRESS": link, "CHAINLINK_PORT": "6688", "CHAINLINK_TLS_PORT": "0", "SECURE_COOKIES": "false",
        "ALLOW_ORIGINS": "*",
        "DATABASE_LOCKING_MODE": "lease", "LEASE_LOCK_DURATION": "10s", "LEASE_LOCK_REFRESH_INTERVAL": "1s",
    }  # fmt: skip
    assert got.files[".password"].data == SENTINEL.encode() + b"\n"  # exactly one trailing newline


RPC_KEY = "k3y" + SENTINEL.strip()  # an API key in a URL's path: percent-encoded below, as a provider's key never is
RPC_WS = "wss://eth-mainnet.example.net/v3/" + quote(RPC_KEY, safe="")
RPC_HTTP = "https://eth-mainnet.example.net/v3/" + quote(RPC_KEY, safe="")


def test_chainlink_v2_rpc_urls_as_secret_references_go_to_rpc_toml_never_config_toml():
    """Issue 13, item 5: an RPC URL that embeds an API key can be a secret reference. It reaches the node
    through rpc.toml (a secret file, a second -config), never config.toml, the hash or the file's repr."""
    s = secrets(eth_url=RPC_WS, eth_http_url=RPC_HTTP)
    got = render(load_role("chainlink"), "v2", service(), s)
    assert got.files["rpc.toml"].secret and not got.files["config.toml"].secret
    rpc = tomllib.loads(got.files["rpc.toml"].data.decode())
    assert rpc == {"EVM": [{"ChainID": "1337", "Nodes": [{"Name": "primary", "WSURL": RPC_WS, "HTTPURL": RPC_HTTP}]}]}
    config = tomllib.loads(got.files["config.toml"].data.decode())
    assert config["EVM"] == [{"ChainID": "1337"}]
    for form in (RPC_KEY, quote(RPC_KEY, safe=""), "k3y"):
        assert form.encode() not in got.files["config.toml"].data and form not in repr(got)
    # the hash: the URL's value never moves it (the file's name and flag are in it, not its bytes)
    other = secrets(eth_url=RPC_WS.replace("k3y", "0th"), eth_http_url=RPC_HTTP)
    assert render(load_role("chainlink"), "v2", service(), other).config_hash == got.config_hash
    # as plain variables (no key in them), the URLs stay in config.toml, and rpc.toml holds no chain
    plain = render(load_role("chainlink"), "v2", service(ETH_URL="wss://a.example/ws", ETH_HTTP_URL="https://a.example"),
                   secrets())  # fmt: skip
    assert tomllib.loads(plain.files["config.toml"].data.decode())["EVM"] == [
        {
            "ChainID": "1337",
            "Nodes": [{"Name": "primary", "WSURL": "wss://a.example/ws", "HTTPURL": "https://a.example"}],
        }
    ]
    assert tomllib.loads(plain.files["rpc.toml"].data.decode()) == {}
    assert plain.config_hash != got.config_hash


def test_chainlink_v1_rpc_url_secret_reference_goes_to_the_env_file():
    got = render(load_role("chainlink"), "v1", service(ETH_HTTP_URL="https://a.example"), secrets(eth_url=RPC_WS))
    env = docker_env_file(got.files[".env"].data)
    assert (env["ETH_URL"], env["ETH_HTTP_URL"]) == (RPC_WS, "https://a.example") and got.files[".env"].secret


def test_the_node_simulator_reads_the_rpc_urls_where_the_node_reads_them(tmp_path):
    """v2: the simulator merges config.toml and rpc.toml (by ChainID, nodes by Name) as the node merges its
    -config files; one URL a variable, the other a secret reference, make one node with both."""
    sim = simulator()
    value = SENTINEL.strip()  # the node refuses a password with surrounding whitespace
    got = render(load_role("chainlink"), "v2", service(ETH_HTTP_URL="https://a.example"),
                 secrets(value, eth_url=RPC_WS))  # fmt: skip
    for f in got.files.values():
        (tmp_path / f.name).write_bytes(f.data)
    cfg = sim.load_v2([str(tmp_path / "config.toml"), str(tmp_path / "rpc.toml")], [str(tmp_path / "secrets.toml")])
    assert cfg.evm_nodes == [("1337", "primary", RPC_WS, "https://a.example")] and cfg.evm_chain_ids == ["1337"]
    assert "k3y" not in cfg.config_sha256 and sim.evm_node_summary(cfg) == {"1337": ["primary ws http"]}
    v1 = render(load_role("chainlink"), "v1", service(), secrets(value, eth_url=RPC_WS))
    assert sim.load_v1(docker_env_file(v1.files[".env"].data)).evm_nodes == [("1337", "primary", RPC_WS, None)]


def test_ipv6_database_host_is_bracketed():
    got = render(load_role("chainlink"), "v2", service(DATABASE_HOST="fd00::2"), secrets())
    url = urlsplit(tomllib.loads(got.files["secrets.toml"].data.decode())["Database"]["URL"])
    assert (url.hostname, url.port) == ("fd00::2", 5432)


def test_the_node_simulator_reads_the_rendered_files_as_the_node_would(tmp_path):
    """The simulator's own loaders (Go URL rules, password file rules) get the exact secret back."""
    sim = simulator()
    value = SENTINEL.strip()  # the node refuses a password with surrounding whitespace (checked below)
    v2 = render(load_role("chainlink"), "v2", service(), secrets(value))
    for f in v2.files.values():
        (tmp_path / f.name).write_bytes(f.data)
    cfg = sim.load_v2([str(tmp_path / "config.toml")], [str(tmp_path / "secrets.toml")])
    assert (cfg.db_kwargs["password"], cfg.db_kwargs["user"], cfg.db_kwargs["dbname"]) == (value, "cl1", "cl1")
    assert cfg.keystore_password == value and cfg.evm_chain_ids == ["1337"] and cfg.http_port == 6688
    assert (cfg.lease_duration_ns, cfg.lease_refresh_ns) == (10 * 10**9, 10**9)
    assert sim.credentials_from_file(str(tmp_path / ".api")) == ("ops@cl1.example", value)
    v1 = render(load_role("chainlink"), "v1", service(), secrets(value))
    cfg1 = sim.load_v1(docker_env_file(v1.files[".env"].data))
    assert cfg1.db_kwargs["password"] == value and cfg1.locking_mode == "lease" and cfg1.http_port == 6688
    (tmp_path / ".password").write_bytes(v1.files[".password"].data)
    assert sim.password_from_file(str(tmp_path / ".password")) == value
    padded = render(load_role("chainlink"), "v1", service(), secrets(SENTINEL))  # ends in a space, written exactly
    (tmp_path / ".password").write_bytes(padded.files[".password"].data)
    with pytest.raises(ValueError, match="leading/trailing whitespace"):
        sim.password_from_file(str(tmp_path / ".password"))


# ---------------------------------------------------------------- operator overrides, repr, config hash


def test_an_operator_overrides_one_template_and_the_others_fall_back(tmp_path):
    mine = tmp_path / "roles"
    (tmp_path / "templates" / "chainlink" / "v2").mkdir(parents=True)
    (tmp_path / "templates" / "chainlink" / "v2" / "config.toml.j2").write_text(
        "# mine\n[Log]\nLevel = {{ vars.LOG_LEVEL | toml }}\n"
    )
    got = render(load_role("chainlink", [mine, BUILTIN_ROLES]), "v2", service(), secrets())
    assert got.files["config.toml"].data == b'# mine\n[Log]\nLevel = "info"\n'
    assert tomllib.loads(got.files["secrets.toml"].data.decode())["Password"]["Keystore"] == SENTINEL  # built-in
    builtin = render(load_role("chainlink"), "v2", service(), secrets())
    assert builtin.files[".api"].data == got.files[".api"].data and builtin.config_hash != got.config_hash


def test_repr_of_the_result_shows_no_secret_bytes():
    got = render(load_role("chainlink"), "v1", service(), secrets())
    text = repr(got) + str(got) + repr(dict(got.files))
    assert SENTINEL not in text and "s3nt" not in text and "s3nt" not in repr(got.files[".env"])
    assert repr(got.files[".password"]) == f"RenderedFile('.password', {len(SENTINEL.encode()) + 1} bytes, secret)"


@pytest.mark.parametrize("profile", ["v1", "v2"])
def test_config_hash_follows_config_and_image_but_never_a_secret_value(profile):
    role = load_role("chainlink")

    def digest(svc=None, sec=None):
        return render(role, profile, svc or service(), sec or secrets()).config_hash

    base = digest()
    assert len(base) == 64 and base == digest()
    assert digest(sec=secrets("another-password-value-xyz")) == base
    assert digest(sec=secrets(api_email="other@cl1.example", db_user="someone")) == base
    assert digest(service(image="smartcontract/chainlink:2.11.0")) != base
    assert digest(service(LOG_LEVEL="debug")) != base  # v1: the change is in a secret file, seen through vars
    assert digest(service(LEASE_DURATION="20s")) != base
    assert digest(service(PROFILE="v1" if profile == "v2" else "v2")) != base


def overridden(project: Path, template: str, edit) -> Path:
    """The roles folder of ``project``, whose ``templates/chainlink/<template>`` is the built-in one passed through
    ``edit`` (text -> text)."""
    mine = project / "templates" / "chainlink" / template
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text(edit((BUILTIN_TEMPLATES / "chainlink" / template).read_text()))
    return project / "roles"


@pytest.mark.parametrize(
    ("profile", "template", "edit", "moves"),
    [
        # the bug: a secret file's template changed (the operator's override), nothing else: the hash must move
        ("v2", "v2/secrets.toml.j2", lambda t: t + "# rotated by ops\n", True),
        ("v2", "api.j2", lambda t: "{#- mine -#}\n" + t, True),  # a comment only: still another template
        ("v2", "database_url.j2", lambda t: t + "\n", True),  # imported by secrets.toml.j2
        ("v2", "evm.j2", lambda t: "{#- mine -#}\n" + t, True),  # imported by rpc.toml.j2 (secret) too
        ("v1", "v1/env.j2", lambda t: t + "# mine\n", True),
        ("v1", "password.j2", lambda t: "{#- mine -#}\n" + t, True),
        # no change: the same bytes in the operator's folder, or a template this profile does not render
        ("v2", "v2/secrets.toml.j2", lambda t: t, False),
        ("v2", "v1/env.j2", lambda t: t + "# mine\n", False),
        ("v2", "password.j2", lambda t: t + "\n", False),
        ("v1", "v2/secrets.toml.j2", lambda t: t + "# mine\n", False),
        # a non-secret file is covered by its output: a template change that renders the same bytes is no change
        ("v2", "v2/config.toml.j2", lambda t: "{#- mine -#}\n" + t, False),
        ("v2", "v2/config.toml.j2", lambda t: "# mine\n" + t, True),
    ],
)  # fmt: skip
def test_a_changed_template_of_a_secret_file_moves_the_config_hash(tmp_path, profile, template, edit, moves):
    """Issue 15's bug: an override of secrets.toml.j2 moved no config hash, so deploy said "no change" and never
    shipped it. The hash covers the bytes of every template a secret file is rendered from; never its output."""
    base = render(load_role("chainlink"), profile, service(), secrets())
    role = load_role("chainlink", [overridden(tmp_path, template, edit), BUILTIN_ROLES])
    got = render(role, profile, service(), secrets())
    assert (got.config_hash != base.config_hash) is moves
    other = render(role, profile, service(), secrets("another-password-value-xyz"))
    assert other.config_hash == got.config_hash  # still never a secret value
    assert {n: f.data for n, f in other.files.items() if not f.secret} == {
        n: f.data for n, f in got.files.items() if not f.secret}  # fmt: skip


def test_template_digests_follow_imports_and_stand_for_every_template_on_a_computed_name(tmp_path):
    """The control for the table above: what a secret file's digests cover, read from the files."""
    sha = lambda text: hashlib.sha256(text.encode()).hexdigest()  # noqa: E731
    roles = tmp_role(
        tmp_path,
        {
            "f.txt": '{% include "inc.j2" %}{% if 0 %}{% include "absent.j2" %}{% endif %}\n',
            "inc.j2": "{% import 'deep.j2' as d %}x\n",
            "deep.j2": "y\n",
            "lone.j2": "z\n",
        },
    )
    role = load_role("t", [roles])
    assert template_digests(role, "f.txt") == (("deep.j2", sha("y\n")), ("f.txt", sha(
        '{% include "inc.j2" %}{% if 0 %}{% include "absent.j2" %}{% endif %}\n')),
        ("inc.j2", sha("{% import 'deep.j2' as d %}x\n")))  # fmt: skip
    roles = tmp_role(tmp_path / "computed", {"f.txt": "{% include vars.WHICH %}\n", "lone.j2": "z\n"})
    assert [n for n, _ in template_digests(load_role("t", [roles]), "f.txt")] == ["f.txt", "lone.j2"]


# ---------------------------------------------------------------- several chains (EVM_CHAINS), list variables

CHAINS = [
    {"chain_id": 1, "nodes": [{"name": "eth-a", "ws_url_secret": "rpc_eth_a", "http_url_secret": "rpc_eth_a_http"},
                              {"name": "eth-b", "ws_url": "wss://b.example/ws", "http_url": "https://b.example"}]},
    {"chain_id": 137, "nodes": [{"name": "poly-a", "ws_url_secret": "rpc_poly_a"},
                                {"name": "poly-b", "ws_url": "wss://pb.example/ws", "http_url_secret": "rpc_poly_b"}]},
]  # fmt: skip
CHAIN_SECRETS = {
    "rpc_eth_a": "wss://a.example/v3/k3y-eth-ws", "rpc_eth_a_http": "https://a.example/v3/k3y-eth-http",
    "rpc_poly_a": "wss://pa.example/k3y-poly-ws", "rpc_poly_b": "https://pb.example/k3y-poly-http",
}  # fmt: skip


def test_two_chains_with_two_rpc_nodes_each_secret_urls_only_in_rpc_toml(tmp_path):
    got = render(load_role("chainlink"), "v2", service(EVM_CHAINS=CHAINS), secrets(SENTINEL.strip(), **CHAIN_SECRETS))
    config = tomllib.loads(got.files["config.toml"].data.decode())
    rpc = tomllib.loads(got.files["rpc.toml"].data.decode())
    assert config["EVM"] == [
        {"ChainID": "1", "Nodes": [{"Name": "eth-b", "WSURL": "wss://b.example/ws", "HTTPURL": "https://b.example"}]},
        {"ChainID": "137", "Nodes": [{"Name": "poly-b", "WSURL": "wss://pb.example/ws"}]},
    ]
    assert rpc["EVM"] == [
        {"ChainID": "1", "Nodes": [{"Name": "eth-a", "WSURL": CHAIN_SECRETS["rpc_eth_a"],
                                    "HTTPURL": CHAIN_SECRETS["rpc_eth_a_http"]}]},
        {"ChainID": "137", "Nodes": [{"Name": "poly-a", "WSURL": CHAIN_SECRETS["rpc_poly_a"]},
                                     {"Name": "poly-b", "HTTPURL": CHAIN_SECRETS["rpc_poly_b"]}]},
    ]  # fmt: skip
    assert got.files["rpc.toml"].secret and not got.files["config.toml"].secret
    assert b"k3y" not in got.files["config.toml"].data and "k3y" not in got.config_hash
    assert set(got.secret_versions) >= set(CHAIN_SECRETS)  # a moved version is a change a plan sees
    sim = simulator()  # the node merges the two config files: both chains, two nodes each, every URL where it was
    for f in got.files.values():
        (tmp_path / f.name).write_bytes(f.data)
    cfg = sim.load_v2([str(tmp_path / "config.toml"), str(tmp_path / "rpc.toml")], [str(tmp_path / "secrets.toml")])
    summary = {"1": ["eth-b ws http", "eth-a ws http"], "137": ["poly-b ws http", "poly-a ws"]}  # config.toml's first
    assert sim.evm_node_summary(cfg) == summary
    assert cfg.evm_chain_ids == ["1", "137"]


@pytest.mark.parametrize(
    ("chains", "extra", "problem"),
    [
        ("x", {}, "EVM_CHAINS: expected a non-empty list of chains"),
        ([], {}, "EVM_CHAINS: expected a non-empty list of chains"),
        ([{"chain_id": 1}], {}, "EVM_CHAINS[0]: expected {chain_id: ID, nodes:"),
        ([{"chain_id": 1, "nodes": [{"ws_url": "wss://a"}]}], {}, "EVM_CHAINS[0].nodes[0]: expected {name,"),
        ([{"chain_id": 1, "nodes": [{"name": "a"}]}], {}, "EVM_CHAINS[0].nodes[0]: no URL"),
        ([{"chain_id": 1, "nodes": [{"name": "a", "wsurl": "x"}]}], {}, "EVM_CHAINS[0].nodes[0].wsurl: unknown key"),
        ([{"chain_id": 1, "nodes": [{"name": "a", "ws_url": "wss://a", "ws_url_secret": "s"}]}], {}, "not both"),
        ([{"chain_id": 1, "nodes": [{"name": "a", "ws_url": "wss://a"}]},
          {"chain_id": 1, "nodes": [{"name": "b", "ws_url": "wss://b"}]}], {},
         "EVM_CHAINS[1].chain_id: chain 1 appears twice"),
        ([{"chain_id": 1, "nodes": [{"name": "a", "ws_url": "wss://a"}]},
          {"chain_id": 2, "nodes": [{"name": "a", "ws_url": "wss://b"}]}], {},
         "EVM_CHAINS[1].nodes[0].name: node name a appears twice"),
        ([{"chain_id": 1, "nodes": [{"name": "a", "ws_url": "wss://a"}]}], {"ETH_URL": "wss://x"},
         "either EVM_CHAINS or ETH_URL"),
        ([{"chain_id": 1, "nodes": [{"name": "a", "ws_url": "wss://a"}]}], {"LINK_CONTRACT_ADDRESS": "0xab"},
         "EVM_CHAINS: LINK_CONTRACT_ADDRESS is the single chain's (ETH_CHAIN_ID) and not used with EVM_CHAINS"),
        ([{"chain_id": 1, "nodes": [{"name": "a", "ws_url_secret": "nope"}]}], {}, "secrets.nope is undefined"),
        *(([{"chain_id": bad, "nodes": [{"name": "a", "ws_url": "wss://a"}]}], {},
           f"EVM_CHAINS[0].chain_id: {shown} is not a chain ID; set the chain's EIP-155 ID, a positive whole number "
           "(1: Ethereum mainnet, 137: Polygon)")
          for bad, shown in [("abc", "'abc'"), (-5, "-5"), (0, "0"), ("0", "'0'"), ("01", "'01'"), ("", "''"),
                             (" 1", "' 1'"), ("１", "'１'"), ("1e3", "'1e3'"), (1.0, "1.0"), (True, "True"),
                             (None, "None"), ([1], "[1]")]),
    ],
)  # fmt: skip
def test_a_bad_evm_chains_is_one_line_naming_the_variable_path(chains, extra, problem):
    with pytest.raises(InvalidInput) as info:
        render(load_role("chainlink"), "v2", service(EVM_CHAINS=chains, **extra), secrets(**CHAIN_SECRETS))
    assert problem in str(info.value), str(info.value)
    assert "k3y" not in str(info.value)


@pytest.mark.parametrize("chain_id", [1, 137, "137", 2**80, str(2**80)])
def test_a_chain_id_is_a_positive_whole_number_or_its_decimal_text(chain_id):
    """Chainlink reads ChainID as a big integer's decimal text (``[[EVM]] ChainID = '137'``): YAML's 137 and '137'
    are the same chain, and an ID beyond 64 bits is kept exactly."""
    chains = [{"chain_id": chain_id, "nodes": [{"name": "a", "ws_url": "wss://a"}]}]
    got = render(load_role("chainlink"), "v2", service(EVM_CHAINS=chains), secrets())
    assert tomllib.loads(got.files["config.toml"].data.decode())["EVM"][0]["ChainID"] == str(chain_id)


@pytest.mark.parametrize("profile", ["v1", "v2"])
@pytest.mark.parametrize(("bad", "shown"), [("abc", "'abc'"), (-5, "-5"), (0, "0"), (1.5, "1.5"), (False, "False")])
def test_a_bad_single_chain_eth_chain_id_is_refused_naming_the_variable(profile, bad, shown):
    with pytest.raises(InvalidInput) as info:
        render(load_role("chainlink"), profile, service(ETH_CHAIN_ID=bad), secrets())
    assert str(info.value).endswith(
        f"services.cl1.variables.ETH_CHAIN_ID: {shown} is not a chain ID; set the "
        "chain's EIP-155 ID, a positive whole number (1: Ethereum mainnet, 137: Polygon)"
    )


def test_v1_refuses_several_chains():
    with pytest.raises(InvalidInput, match="EVM_CHAINS: several chains need profile v2"):
        render(load_role("chainlink"), "v1", service(EVM_CHAINS=CHAINS), secrets(**CHAIN_SECRETS))


@pytest.mark.parametrize("filt", ["dotenv", "raw", "line", "text", "urlpart"])
@pytest.mark.parametrize("value", [[1, 2], {"a": 1}])
def test_a_list_never_silently_reaches_a_one_value_filter(tmp_path, filt, value):
    with pytest.raises(InvalidInput, match=f"{filt}: a (list|mapping) cannot be written as one value"):
        render_one(tmp_path, "A={{ vars.X | " + filt + " }}\n", value)


def test_toml_writes_lists_and_mappings_as_inline_arrays_and_tables(tmp_path):
    value = {"names": ["a", 'b"c'], "n": 1, "on": True, "odd key": 1.5, "nested": {"x": []}}
    out = render_one(tmp_path, "V = {{ vars.X | toml }}\n", value)
    assert tomllib.loads(out.decode()) == {"V": value}


def test_the_config_hash_covers_list_variables_deterministically():
    role, s = load_role("chainlink"), secrets(**CHAIN_SECRETS)
    one = render(role, "v2", service(EVM_CHAINS=CHAINS), s).config_hash
    reordered = [{"nodes": c["nodes"], "chain_id": c["chain_id"]} for c in CHAINS]  # same value, keys in other order
    as_tuples = tuple(CHAINS)
    assert render(role, "v2", service(EVM_CHAINS=reordered), s).config_hash == one
    assert render(role, "v2", service(EVM_CHAINS=as_tuples), s).config_hash == one
    changed = [CHAINS[0], {**CHAINS[1], "chain_id": 138}]
    assert render(role, "v2", service(EVM_CHAINS=changed), s).config_hash != one


def test_a_variable_the_templates_do_not_read_moves_no_config_hash():
    """rv6 #6: with EVM_CHAINS set, another ETH_CHAIN_ID renders the same files; it moved the config hash, so a deploy
    replaced both nodes for it while its diff (which leaves such a variable out) said nothing changed."""
    role, s = load_role("chainlink"), secrets(**CHAIN_SECRETS)
    with_chains = {render(role, "v2", service(EVM_CHAINS=CHAINS, ETH_CHAIN_ID=i), s).config_hash for i in (1, 5)}
    assert len(with_chains) == 1
    single = {render(role, "v2", service(ETH_CHAIN_ID=i), s).config_hash for i in (1, 5)}  # the control: it is read
    assert len(single) == 2


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ("[[EVM]]\nChainID = '1'\n", "EVM.2.ChainID: invalid value (1): duplicate - must be unique"),
        ("[[EVM]]\nChainID = '5'\n[[EVM.Nodes]]\nName = 'eth-a'\nWSURL = 'ws://x'\n",
         "EVM.2.Nodes.0.Name: invalid value (eth-a): duplicate - must be unique"),
    ],
)  # fmt: skip
def test_the_node_simulator_refuses_a_chain_or_node_twice_as_upstream(tmp_path, extra, error):
    sim = simulator()
    got = render(load_role("chainlink"), "v2", service(EVM_CHAINS=CHAINS), secrets(SENTINEL.strip(), **CHAIN_SECRETS))
    for f in got.files.values():
        (tmp_path / f.name).write_bytes(f.data)
    files, secret = [str(tmp_path / "config.toml"), str(tmp_path / "rpc.toml")], [str(tmp_path / "secrets.toml")]
    sim.load_v2(files, secret)  # the control: as rendered, it loads
    (tmp_path / "config.toml").write_bytes(got.files["config.toml"].data + b"\n" + extra.encode())
    with pytest.raises(sim.CLIError, match=re.escape(error)):
        sim.load_v2(files, secret)


@pytest.mark.parametrize(
    ("body", "value"),
    [
        ("{{ vars.X | string | toml }}", [1337]),  # the chainlink role's ChainID line
        ("{{ vars.X | string }}", {"a": 1}),
        ("{{ vars.X }}", [1337]),
        ("{{ vars.X }}", {"a": 1}),
    ],
    ids=["string-toml-list", "string-mapping", "bare-list", "bare-mapping"],
)
def test_a_list_or_mapping_is_never_written_as_its_python_text(tmp_path, body, value):
    """review14 #4: `ETH_CHAIN_ID: [1337]` became `ChainID = "[1337]"`, exit 0."""
    with pytest.raises(InvalidInput) as err:
        render_one(tmp_path, body + "\n", value)
    assert "cannot be written as one value" in str(err.value) and "1337" not in str(err.value)


@pytest.mark.parametrize(("activation", "enabled"), [("lease", True), ("all", False)])
def test_the_database_lock_is_on_only_when_the_pair_shares_the_lease(activation, enabled):
    """Chainlink's `[Database.Lock] Enabled` (docs/CONFIG.md: "Enabled enables the database lock", default true):
    a lease pair takes it; under activation all every node serves at once, so none takes it. The lease role's bytes
    (and config hash) are what they were."""
    import dataclasses  # noqa: PLC0415

    role = dataclasses.replace(load_role("chainlink"), activation=activation)
    config = tomllib.loads(render(role, "v2", service(), secrets()).files["config.toml"].data.decode())
    assert config["Database"]["Lock"]["Enabled"] is enabled
    assert config["Database"]["Lock"]["LeaseDuration"]  # still rendered: the node validates it either way
