"""KES periods from genesis parameters (roles/cardano/periods.py): the networks' values as their genesis files give
them, slots and times across the Byron era, a certificate's window, the periods left and when it runs out, and the
lab's fast clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest

from nodeops.roles import role_module

periods = role_module("cardano", "periods")
MAINNET, PREPROD, PREVIEW = (periods.NETWORKS[n] for n in ("mainnet", "preprod", "preview"))


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


@pytest.mark.parametrize(
    ("network", "start", "slots_per_period", "evolutions", "shelley_slot", "shelley_start"),
    [
        ("mainnet", utc(2017, 9, 23, 21, 44, 51), 129600, 62, 4492800, utc(2020, 7, 29, 21, 44, 51)),
        ("preprod", utc(2022, 6, 1), 129600, 62, 86400, utc(2022, 6, 21)),
        ("preview", utc(2022, 10, 25), 129600, 62, 0, utc(2022, 10, 25)),
    ],
)
def test_the_networks_genesis_values(network, start, slots_per_period, evolutions, shelley_slot, shelley_start):
    genesis = periods.NETWORKS[network]
    assert (genesis.system_start, genesis.slot_length) == (start, 1)
    assert (genesis.slots_per_kes_period, genesis.max_kes_evolutions) == (slots_per_period, evolutions)
    assert (genesis.byron_slots, genesis.shelley_start) == (shelley_slot, shelley_start)
    assert genesis.time_of(shelley_slot) == shelley_start and genesis.slot_at(shelley_start) == shelley_slot


@pytest.mark.parametrize(
    ("genesis", "slot", "time"),
    [
        (MAINNET, 0, utc(2017, 9, 23, 21, 44, 51)),
        (MAINNET, 1, utc(2017, 9, 23, 21, 45, 11)),  # Byron: 20 s slots
        (MAINNET, 4492799, utc(2020, 7, 29, 21, 44, 31)),
        (MAINNET, 4492801, utc(2020, 7, 29, 21, 44, 52)),  # Shelley: 1 s slots
        (MAINNET, 4492800 + 86400, utc(2020, 7, 30, 21, 44, 51)),
        (PREPROD, 86399, utc(2022, 6, 20, 23, 59, 40)),
        (PREPROD, 86400 + 432000 * 272, utc(2022, 6, 21) + timedelta(days=5 * 272)),  # epoch 276 (4 Byron epochs)
        (PREVIEW, 86400 * 3, utc(2022, 10, 28)),  # preview's 1-day epochs from slot 0
    ],
)
def test_slots_and_times(genesis, slot, time):
    assert genesis.time_of(slot) == time
    assert genesis.slot_at(time) == slot
    assert genesis.slot_at(time + timedelta(milliseconds=999)) == slot  # within the slot


@pytest.mark.parametrize(("slot", "period"), [(0, 0), (129599, 0), (129600, 1), (4492800, 34), (170_000_000, 1311)])
def test_the_kes_period_of_a_slot_counts_from_slot_zero(slot, period):
    assert MAINNET.kes_period(slot) == period


@pytest.mark.parametrize(
    ("current", "valid", "remaining", "evolution"),
    [(999, False, 63, None), (1000, True, 62, 0), (1030, True, 32, 30), (1061, True, 1, 61), (1062, False, 0, None)],
)
def test_a_certificates_window(current, valid, remaining, evolution):
    window = MAINNET.window(current * 129600 + 5, start=1000)
    assert (window.current, window.start, window.end) == (current, 1000, 1062)
    assert (window.valid, window.remaining) == (valid, remaining)
    if evolution is None:
        with pytest.raises(ValueError, match=f"KES period {current} is outside the certificate's 1000..1061"):
            window.evolution  # noqa: B018 (a property that raises)
    else:
        assert window.evolution == evolution


def test_a_mainnet_certificate_runs_out_after_93_days():
    start_slot = 1000 * 129600
    window = MAINNET.window(start_slot, start=1000)
    assert window.expires_at == MAINNET.time_of(1062 * 129600)
    assert window.expires_at - MAINNET.time_of(start_slot) == timedelta(days=93)  # 62 x 36 h
    assert MAINNET.time_of(7 * 129600 + 4492800) - MAINNET.shelley_start == timedelta(hours=7 * 36)  # 7 periods: 10.5 d


def test_the_labs_fast_clock():
    lab = periods.Genesis.from_shelley_genesis(
        "lab", {"systemStart": "2026-12-01T08:00:00Z", "slotLength": 0.2, "slotsPerKESPeriod": 10,
                "maxKESEvolutions": 6})  # fmt: skip
    start = utc(2026, 12, 1, 8)
    assert lab.slot_length == Fraction(1, 5) and lab.byron_slots == 0
    assert lab.slot_at(start + timedelta(seconds=2.1)) == 10 and lab.kes_period(10) == 1
    assert lab.time_of(10) == start + timedelta(seconds=2)
    window = lab.window(lab.slot_at(start + timedelta(seconds=5)), start=1)  # slot 25, period 2
    assert (window.current, window.remaining, window.expires_at) == (2, 5, start + timedelta(seconds=14))


def test_a_published_devnet_genesis_with_tenth_of_a_second_slots():
    """blinklabs-io/dingo config/cardano/devnet/shelley-genesis.json (at 2031e4fd): slotLength 0.1,
    slotsPerKESPeriod 129600, maxKESEvolutions 60, systemStart 2022-07-07T09:33:35Z."""
    devnet = periods.Genesis.from_shelley_genesis(
        "devnet", {"systemStart": "2022-07-07T09:33:35Z", "slotLength": 0.1, "slotsPerKESPeriod": 129600,
                   "maxKESEvolutions": 60, "epochLength": 5})  # fmt: skip
    assert devnet.time_of(129600) == utc(2022, 7, 7, 9, 33, 35) + timedelta(seconds=12960)
    assert devnet.window(129600, start=0).end == 60


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"slotLength": 1, "slotsPerKESPeriod": 1, "maxKESEvolutions": 1}, "KeyError: 'systemStart'"),
        ({"systemStart": "yesterday", "slotLength": 1, "slotsPerKESPeriod": 1, "maxKESEvolutions": 1}, "ValueError"),
        ({"systemStart": "2022-01-01T00:00:00Z", "slotLength": 0, "slotsPerKESPeriod": 1, "maxKESEvolutions": 1},
         "must be positive"),
    ],
)  # fmt: skip
def test_a_bad_genesis_document_is_refused(doc, problem):
    with pytest.raises(ValueError, match=problem):
        periods.Genesis.from_shelley_genesis("x", doc)


def test_a_float_slot_length_is_the_decimal_written():
    lab = periods.Genesis("lab", utc(2026, 12, 1), 0.2, 10, 6)
    assert lab.slot_length == Fraction(1, 5) and lab.time_of(5 * 10**9) == utc(2026, 12, 1) + timedelta(seconds=10**9)


def test_times_need_a_zone_and_a_started_network():
    with pytest.raises(ValueError, match="time zone"):
        periods.Genesis("x", datetime(2022, 1, 1), Fraction(1), 10, 6)  # a naive time: the point of the test
    with pytest.raises(ValueError, match="before the system start"):
        PREVIEW.slot_at(utc(2022, 10, 24))
    east = timezone(timedelta(hours=2))
    assert PREVIEW.slot_at(datetime(2022, 10, 25, 2, 0, 1, tzinfo=east)) == 1  # any zone: the same instant


def test_the_lab_network_is_one_genesis_document():
    """periods.LAB_GENESIS, written as the Shelley genesis file the lab's chain service and node simulators read,
    reads back as the fast clock (0.2 s slots, 2 s KES periods, a certificate good for 60 s)."""
    doc = periods.lab_shelley_genesis(datetime(2026, 12, 1, 9, 0, 0, 700000, tzinfo=timezone(timedelta(hours=1))))
    assert doc["systemStart"] == "2026-12-01T08:00:00Z"  # UTC, whole seconds, as genesis files write it
    lab = periods.Genesis.from_shelley_genesis("lab", doc)
    assert (lab.slot_length, lab.slots_per_kes_period, lab.max_kes_evolutions) == (Fraction(1, 5), 10, 30)
    window = lab.window(0, start=0)
    assert window.expires_at - lab.system_start == timedelta(seconds=60)
    assert 0 < doc["activeSlotsCoeff"] <= 1 and doc["epochLength"] > 0
