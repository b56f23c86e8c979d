"""The redactor masks every form a secret takes in text shown to people: raw, URL-encoded, JSON-escaped."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from nodeops.deploy import Redactor
from nodeops.secrets import Secret

VALUE = 'Pa55 w%rd/"x"?'


@pytest.mark.parametrize(
    "text",
    [
        f"error: password authentication failed for {VALUE}",
        f"postgresql://u:{quote(VALUE, safe='')}@db:5432/x",
        '{"Env": ["DATABASE_URL=Pa55 w%rd/\\"x\\"?"]}',
    ],
    ids=["raw", "url-encoded", "json-escaped"],
)
def test_every_form_is_masked_and_detected(text):
    redact = Redactor([Secret(VALUE, "db")])
    assert redact.leaks(text)
    masked = redact(text)
    assert "*****" in masked and not redact.leaks(masked)
    assert "Pa55" not in masked


def test_text_without_secrets_is_left_alone():
    redact = Redactor([Secret(VALUE, "db"), Secret("cl1", "db_user")])
    text = "nodeops-cl1 started (config 1a2b)"
    assert redact(text) == text and not redact.leaks(text)  # values under 4 characters are not hunted
