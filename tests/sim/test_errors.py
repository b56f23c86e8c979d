# ruff: noqa: UP031
"""Wrong or missing inputs: the simulator exits non-zero with the real node's message, and leaks no secret."""

import pytest

from .support import db_url

KEYSTORE = "Keystore-Pass-0123456789"


def _v2(sims, db, **kw):
    return sims.write_v2("n", db, **kw)


def _mutate_api_one_line(f):
    f["api"].write_text("admin@example.com")


def _mutate_api_three_lines(f):
    f["api"].write_text("admin@example.com\nApi-Password-0123456789\nextra\n")


def _mutate_api_short_password(f):
    f["api"].write_text("admin@example.com\nshort\n")


def _password_file(content):
    def mutate(f):
        (f["dir"] / ".password").write_text(content)
        f["extra_args"] = ["-p", str(f["dir"] / ".password")]

    return mutate


def _missing(key):
    def mutate(f):
        f[key].unlink()

    return mutate


def _missing_password_file(f):
    f["extra_args"] = ["-p", str(f["dir"] / "nope" / ".password")]


# (id, write_v2 kwargs, mutate, expected message fragment)
CASES = [
    ("api-one-line", {}, _mutate_api_one_line, "malformed API credentials file does not have at least two lines at"),
    ("api-three-lines", {}, _mutate_api_three_lines, "malformed API credentials file"),
    (
        "api-password-too-short",
        {},
        _mutate_api_short_password,
        "failed to instantiate new user: password insufficiently complex",
    ),
    ("api-missing", {}, _missing("api"), "error creating api initializer: open "),
    (
        "password-empty",
        {},
        _password_file("\n"),
        "error reading password from file: detected empty password in password file",
    ),
    (
        "password-space-padded",
        {},
        _password_file(" " + KEYSTORE + " \n"),
        "error reading password from file: leading/trailing whitespace detected in password",
    ),
    ("password-missing", {}, _missing_password_file, "error reading password from file: open "),
    ("config-missing", {}, _missing("config"), "failed to read config file: "),
    ("secrets-missing", {}, _missing("secrets"), "failed to read secrets file: "),
    (
        "refresh-over-half-lease",
        {"lease": "3s", "refresh": "2s"},
        None,
        "Database.Lock.LeaseRefreshInterval: invalid value (2s): must be less than or equal to half of "
        "LeaseDuration (3s)",
    ),
    (
        "db-url-wrong-scheme",
        {"url": "mysql://u:Long-Password-0123456789@127.0.0.1:5432/db"},
        None,
        'invalid database URL scheme "mysql"',
    ),
    ("db-url-no-host", {"url": "postgresql:///chainlink"}, None, "database URL must have a host"),
    (
        "db-url-bad-escape",
        {"url": "postgresql://u:Long-Pass%zzword-0123456789@127.0.0.1:5432/db"},
        None,
        "invalid URL escape",
    ),
    ("db-url-bad-port", {"url": "postgresql://u:Long-Password-0123456789@127.0.0.1:54x2/db"}, None, "invalid port"),
    (
        "db-url-simple-password",
        {"url": "postgresql://u:short@127.0.0.1:5432/db"},
        None,
        "missing or insufficiently complex password",
    ),
    ("keystore-missing", {"keystore": ""}, None, "Password.Keystore: empty: must be provided and non-empty"),
    (
        "keystore-too-simple-on-empty-keyring",
        {"keystore": "tooshort"},
        None,
        "error authenticating keystore: \nExpected password complexity:",
    ),
]


@pytest.mark.parametrize("kw,mutate,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_with_message(db, sims, kw, mutate, expected):
    f = _v2(sims, db, **kw)
    if mutate:
        mutate(f)
    args = sims.v2_args(f) + f.get("extra_args", [])
    code, sp = sims.run_to_exit(args, name="n", port=f["port"])
    err = sp.stderr()
    assert code != 0, sp.output()
    assert expected in err, err
    # never print secret values
    for secret in (db["password"], KEYSTORE, "Api-Password-0123456789", "Long-Password-0123456789"):
        assert secret not in sp.output()
    assert not sp.listening()


def test_v1_bad_database_url(sims):
    code, sp = sims.run_to_exit(
        ["local", "n", "-p", "/nonexistent/.password", "-a", "/nonexistent/.api"],
        name="v1",
        env={"DATABASE_URL": "postgres//nohost"},
    )
    assert code == 1
    assert "Error running app: invalid DATABASE_URL" in sp.stderr()


def test_v1_password_file_missing_real_message(db, sims):
    code, sp = sims.run_to_exit(
        ["local", "n", "-p", "/chainlink/.password", "-a", "/chainlink/.api"],
        name="v1",
        env={"DATABASE_URL": db_url(db), "DATABASE_LOCKING_MODE": "lease"},
    )
    assert code == 1
    assert sp.stderr().strip() == (
        "error reading password from file: open /chainlink/.password: no such file or directory"
    )


def test_v1_refresh_over_half_lease(db, sims):
    code, sp = sims.run_to_exit(
        ["local", "n", "-p", "/x", "-a", "/y"],
        name="v1",
        env={"DATABASE_URL": db_url(db), "LEASE_LOCK_DURATION": "10s", "LEASE_LOCK_REFRESH_INTERVAL": "6s"},
    )
    assert code == 1
    assert (
        "LEASE_LOCK_REFRESH_INTERVAL must be less than or equal to half of LEASE_LOCK_DURATION "
        "(got LEASE_LOCK_REFRESH_INTERVAL=6s, LEASE_LOCK_DURATION=10s)"
    ) in sp.stderr()


def test_wrong_keystore_password_on_second_boot(db, sims):
    import signal

    f = sims.write_v2("n", db)
    sp = sims.start(sims.v2_args(f), name="first", port=f["port"])
    sp.wait_serving()
    sp.signal(signal.SIGTERM)
    assert sp.wait(10) == 0
    f2 = sims.write_v2("n2", db, port=f["port"], keystore="A-Different-Keystore-Pass-42")
    code, sp2 = sims.run_to_exit(sims.v2_args(f2), name="second", port=f["port"])
    assert code == 1
    assert (
        "error authenticating keystore: unable to decrypt encrypted key ring: could not decrypt key with given password"
    ) in sp2.stderr()
    assert "A-Different-Keystore-Pass-42" not in sp2.output()
    # the right password still boots (after the lease the failed boot left behind expires)
    sp3 = sims.start(sims.v2_args(f), name="third", port=f["port"])
    sp3.wait_serving()
