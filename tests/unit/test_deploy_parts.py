"""Deploy's pure parts: the redactor (every form a secret takes) and the outage probe's arithmetic."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest

from nodeops.deploy import OutageProbe, Redactor
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


@pytest.mark.parametrize(
    ("pattern", "outage"),
    [
        ([True] * 10, 0.0),
        ([True, True, False, False, False, True, True], 0.4),  # last good (t=0.1) to first good (t=0.5)
        ([True, False, True, False, False, True], 0.3),  # the longest of two gaps
        ([False, False, True], 0.2),  # no good sample before: counted from the first failed one
        ([False, True, True, False, False, False, True], 0.4),  # then the longer gap after a good sample
        ([True, False, False], 0.0),  # never answered again: no gap measured (the handover failed instead)
    ],
)
def test_outage_is_last_good_to_first_good(pattern, outage):
    probe = OutageProbe(lambda: True)
    probe.samples = [(i / 10, ok) for i, ok in enumerate(pattern)]
    assert probe.outage == pytest.approx(outage)


def test_failures_before_the_first_good_sample_count_from_the_first_failure():
    """Issue 13: the active already down at the first sample read 0.00 s for a real 0.8 s gap."""
    probe = OutageProbe(lambda: True)
    probe.samples = [(0, False), (0.1, False), (0.8, True)]
    assert probe.outage == pytest.approx(0.8)


def test_entering_waits_for_the_first_sample():
    """The measure starts before the block stops anything: a sample is taken before the block runs."""
    with OutageProbe(lambda: time.sleep(0.3) or True) as probe:
        assert probe.samples and probe.samples[0][1] is True


@pytest.mark.parametrize(
    ("text", "limit", "tail", "expected"),
    [
        ("x" * 295 + "Secret-Value-1", 300, False, "x" * 295 + "*****"),  # straddles the cut: masked whole
        ("Secret-Value-1" + "y" * 295, 300, True, "*****" + "y" * 295),
        ("a\n  b\tSecret-Value-1\n", 300, False, "a b *****"),  # one line
        ("z" * 400, 10, False, "z" * 10),
    ],
)
def test_clip_masks_before_it_cuts(text, limit, tail, expected):
    assert Redactor([Secret("Secret-Value-1", "db")]).clip(text, limit, tail) == expected
