"""Generated passwords (nodeops.passwords) against a role's rules: the node's rules are its role.yaml's data
(``passwords:``, nodeops.role_file.PasswordRules), the engine keeps only its plain alphabet and no symbol first or
last; a bad ``passwords:`` section is exit 2 naming the path inside the role file."""

from __future__ import annotations

import random

import pytest

from nodeops.errors import EXIT_INVALID
from nodeops.passwords import PASSWORD_LENGTH, UNRESERVED, generate_password, password_problems
from nodeops.role_file import PasswordRules
from nodeops.roles import RoleError, load_role
from tests.unit.test_roles import GOOD, make_role

DEFAULT = PasswordRules()  # a role that says nothing of its node's passwords
ENGINE = PasswordRules(max_run=None, refuse_user=False)  # every rule of the node's own lifted: the engine's alone


def test_the_chainlink_roles_rules_are_its_nodes():
    """As the node's source says: 16-50 characters (the API password's limit), its older stricter rules (one of
    each class, no character three times in a row), never containing the API email."""
    assert load_role("chainlink").passwords == PasswordRules(16, 50, ("upper", "lower", "digit", "symbol"), 2, True)


@pytest.mark.parametrize(
    ("password", "users", "rules", "expected"),
    [
        ("abcdefgh", (), ENGINE, []),  # no class, no run, no user rule of the engine's own
        ("aaaaaaaaaaaa", (), ENGINE, []),
        ("opsuser-plus1", ("opsuser",), ENGINE, []),
        ("a" * 80, (), ENGINE, []),  # no upper bound
        ("abbcdefghij", ("opsuser",), DEFAULT, []),  # unsaid: the rules that cost a generated password nothing
        ("aaaaaaaaaaaa", (), DEFAULT, ["a character three times in a row"]),
        ("opsuser-plus1", ("opsuser",), DEFAULT, ["contains 'opsuser'"]),
        ("abc", (), ENGINE, ["length 3 not in 8.."]),
        ("abc def ghij", (), ENGINE, ["a character outside the alphabet (letters, digits, -_.~)"]),
        ("-abcdefghij", (), ENGINE, ["starts or ends with a symbol"]),
        ("abcdefghij", (), PasswordRules(classes=("upper", "digit")), ["no upper character", "no digit character"]),
        ("abbcdefghij", (), PasswordRules(max_run=1), ["a character twice in a row"]),
        ("abbbbcdefghij", (), PasswordRules(max_run=3), ["a character 4 times in a row"]),
        ("abbbcdefghij", (), PasswordRules(max_run=3), []),
        ("abcdefghij", (), PasswordRules(max_length=9), ["length 10 not in 8..9"]),
        ("aBc-OpsUser-1", ("opsuser", ""), PasswordRules(refuse_user=True), ["contains 'opsuser'"]),
    ],
)  # fmt: skip
def test_password_problems_per_rule(password, users, rules, expected):
    assert password_problems(password, *users, rules=rules, symbols=UNRESERVED) == expected


@pytest.mark.parametrize(
    ("rules", "length"),
    [(ENGINE, PASSWORD_LENGTH), (PasswordRules(max_length=20), 20), (PasswordRules(min_length=40), 40)],
)
def test_a_generated_password_takes_the_nearest_length_the_rules_allow(rules, length):
    password = generate_password(random.Random(7), "someone", rules=rules, symbols=UNRESERVED)
    assert len(password) == length and password_problems(password, "someone", rules=rules, symbols=UNRESERVED) == []


@pytest.mark.parametrize(
    ("section", "where", "problem"),
    [
        ("{min_length: 4}", "passwords.min_length", "expected an integer 8..1024, got 4"),
        ("{min_length: 20, max_length: 16}", "passwords.max_length", "expected at least min_length (20), got 16"),
        ("{classes: [upper, emoji]}", "passwords.classes[1]", "expected upper or lower or digit or symbol"),
        ("{classes: upper}", "passwords.classes", "expected a list of character classes"),
        ("{max_run: 0}", "passwords.max_run", "expected an integer 1..1024, got 0"),
        ("{refuse_user: yes please}", "passwords.refuse_user", "expected true or false"),
        ("{max_lenght: 9}", "passwords.max_lenght", "unknown key"),
        ("[16, 50]", "passwords", "expected a mapping"),
    ],
)  # fmt: skip
def test_a_bad_passwords_section_is_exit_2_naming_its_path(tmp_path, section, where, problem):
    roles = make_role(tmp_path, GOOD + f"passwords: {section}\n")
    with pytest.raises(RoleError) as err:
        load_role("thing", [roles])
    assert err.value.exit_code == EXIT_INVALID and "\n" not in str(err.value)
    assert err.value.where == where and problem in err.value.problem, str(err.value)


def test_a_role_without_the_section_gets_the_defaults_and_one_with_part_of_it_the_rest(tmp_path):
    assert load_role("thing", [make_role(tmp_path / "a")]).passwords == DEFAULT == PasswordRules(8, None, (), 2, True)
    partial = load_role("thing", [make_role(tmp_path / "b", GOOD + "passwords: {max_length: 40}\n")]).passwords
    assert partial == PasswordRules(max_length=40)


def test_a_role_lifts_the_default_rules_with_null_and_false(tmp_path):
    section = "passwords: {max_run: null, refuse_user: false}\n"
    assert load_role("thing", [make_role(tmp_path, GOOD + section)]).passwords == ENGINE
