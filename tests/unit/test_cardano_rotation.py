"""KES rotation and forced promotion planned before any host (roles/cardano/rotation.py): the next counter and
period or a refusal (exit 2) naming why; and the crash-safe protocol: a kill at each stage, then reruns as
``resume`` says, converge to one certificate in force and a stored counter that matches it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

import pytest

from nodeops.errors import EXIT_INVALID, EXIT_UNSAFE, Unsafe
from nodeops.roles import role_module

rotation = role_module("cardano", "rotation")
forging = role_module("cardano", "forging")
ocert = role_module("cardano", "ocert")
kes = role_module("cardano", "kes")
periods = role_module("cardano", "periods")
Stored, Pending, Observed = rotation.Stored, rotation.Pending, rotation.Observed

COLD = ocert.ColdKey(bytes(range(32)))
POOL = rotation.pool_id(COLD.verification_key)
OTHER = ocert.ColdKey(bytes(32))
MAINNET = periods.NETWORKS["mainnet"]
SLOT = 150_000_000  # KES period 1157


def test_the_pool_id_is_the_cold_keys_blake2b_224():
    assert len(POOL) == 28 and rotation.pool_id(OTHER.verification_key) != POOL


@pytest.mark.parametrize(
    ("on_chain", "stored", "counter"),
    [
        (4, 4, 5),  # the usual: the store and the chain agree
        (None, 0, 1),  # no block yet, the first certificate (0) in force
    ],
)
def test_a_rotation_issues_the_next_counter_at_the_slots_period(on_chain, stored, counter):
    issue = rotation.plan(MAINNET, SLOT, on_chain, Stored(stored), COLD.verification_key, POOL, "aws:pool/cold", "n")
    assert (issue.counter, issue.kes_period) == (counter, SLOT // 129600)


@pytest.mark.parametrize(
    ("tip", "later", "slot"),
    [
        (SLOT, 0, SLOT),  # the tip is the clock's slot
        (SLOT - 129600 * 3, 0, SLOT),  # a node three KES periods behind: the clock's slot still
        (SLOT + 129600, 0, None),  # a KES period ahead, to the slot: not more than one, allowed
        (SLOT + 129601, 0, "refused"),
        (SLOT, 36 * 3600, SLOT + 129600),  # 36 h later by the clock: the next KES period's first slot
    ],
)
def test_a_certificate_is_issued_for_the_slot_of_the_clock_byron_slots_included(tip, later, slot):
    now = MAINNET.time_of(SLOT) + timedelta(seconds=later)  # SLOT is past Byron's 4492800 20-second slots
    if slot == "refused":
        with pytest.raises(forging.IssueRefused, match=f"the node's tip is slot {tip}, ahead of this machine's "
                           f"clock's slot {SLOT} by more than a KES period \\(129600 slots\\)") as err:  # fmt: skip
            rotation.issue_slot(MAINNET, tip, now)
        assert err.value.exit_code == EXIT_INVALID
    else:
        assert rotation.issue_slot(MAINNET, tip, now) == (slot or SLOT)


@pytest.mark.parametrize(
    ("on_chain", "stored", "cold", "message"),
    [
        (5, 4, COLD, "^aws:pool/counter: reused: counter 5 is the chain's own"),
        (7, 4, COLD, "^aws:pool/counter: reused: counter 5 is below the chain's 7"),
        (4, 5, COLD, "^aws:pool/counter: a skip of more than one: counter 6 skips past the chain's 4 \\+ 1"),
        (None, 1, COLD, "^aws:pool/counter: a skip of more than one: counter 2 skips past the chain's 0"),
        (4, 4, OTHER, "aws:pool/cold: this cold key is not the pool's: its pool id is"),
    ],
)
def test_a_rotation_is_refused_before_any_host(on_chain, stored, cold, message):
    """Review rev16b finding 7: a counter refusal named the cold key's secret; the counter's is the one to fix."""
    with pytest.raises(forging.IssueRefused, match=message) as err:
        rotation.plan(MAINNET, SLOT, on_chain, Stored(stored), cold.verification_key, POOL, "aws:pool/cold",
                      "aws:pool/counter")  # fmt: skip
    assert err.value.exit_code == EXIT_INVALID


@pytest.mark.parametrize(
    ("on_chain", "stored", "pending", "counter", "refused"),
    [
        (4, 4, None, 5, ""),  # the lost producer holds 4, on chain: 5 fences it
        (5, 4, 5, 6, ""),  # a pending 5 (pushed to the lost producer) made a block: 6 fences both
        (4, 4, 5, None, "^counter: a skip of more than one: .*may hold counter 5, which has made no block yet"),
        (3, 4, None, None, "^counter: a skip of more than one: .*may hold counter 4"),
    ],
)
def test_a_forced_promotion_fences_every_certificate_the_lost_producer_may_hold(
    on_chain, stored, pending, counter, refused
):
    record = Pending(pending, 1150, "ab") if pending else None
    args = (MAINNET, SLOT, on_chain, Stored(stored), record, COLD.verification_key, POOL, "cold", "counter")
    if refused:
        with pytest.raises(forging.IssueRefused, match=refused):
            rotation.plan_forced(*args)
    else:
        assert rotation.plan_forced(*args) == rotation.Issue(counter, 1157)


def test_a_forced_promotion_with_the_wrong_cold_key_is_refused():
    with pytest.raises(forging.IssueRefused, match="not the pool's"):
        rotation.plan_forced(MAINNET, SLOT, 4, Stored(4), None, OTHER.verification_key, POOL, "cold", "counter")


@dataclass
class World:
    """The store, the holder and the chain as the protocol leaves them: the stored counter, AWSPENDING's certificate,
    AWSCURRENT's (``current``), the one the holder runs, the chain's counter; ``valid``: whether the pending
    certificate's KES window still holds the slot when the rerun comes."""

    stored: Stored
    pending: Pending | None = None
    current: str = "old"
    holder: str = "old"
    on_chain: int | None = None
    blocks: bool = False  # whether the holder makes a block once it forges
    valid: bool = True
    stale: bool = False  # whether the pending certificate starts before the clock's KES period (a late rerun)

    def seen(self):
        held = self.pending is not None and self.holder == self.pending.certificate_hash
        return Observed(self.stored, self.pending, self.on_chain, self.valid, self.stale, held)


def new_certificate(counter, period):
    return rotation.certificate_hash(ocert.issue(COLD, kes.SignKey.generate().verification_key, counter, period))


def run(world, stages, counter, period, kill_after=None):
    """The protocol's stages, in order, as the engine runs them; stops (a kill) after ``kill_after`` stages."""
    for done, stage in enumerate(stages):
        if kill_after is not None and done == kill_after:
            return
        if stage == "pending":  # a new KES key and certificate, kept in AWSPENDING
            world.pending = Pending(counter, period, new_certificate(counter, period))
            world.valid, world.stale = True, False
        elif stage == "pushed":
            world.holder = world.pending.certificate_hash  # restarted onto it (or already running it)
        elif stage == "forging":
            assert world.holder == world.pending.certificate_hash, "the holder must run the pending certificate"
            world.on_chain = counter if world.blocks else world.on_chain
        elif stage == "stored":
            world.stored = Stored(counter)
        elif stage == "current":
            world.current, world.pending = world.pending.certificate_hash, None


@pytest.mark.parametrize("late", [False, True])
@pytest.mark.parametrize("blocks", [False, True])
@pytest.mark.parametrize("valid", [True, False])
@pytest.mark.parametrize(
    ("kill_after", "first_step"),
    [(0, "none"), (1, "push"), (2, "push"), (3, "push"), (4, "current"), (5, "none")],
)
def test_a_kill_at_each_stage_then_reruns_converge(kill_after, first_step, blocks, valid, late):
    """A kill after each stage, the pending certificate still valid at the rerun or not (its KES window passed),
    the rerun in the KES period of the kill or later (``late``): the reruns end with one certificate in force (the
    holder's, AWSCURRENT), the counter stored for it and nothing pending; a rerun re-issues only a certificate that
    can no longer forge, or one no node runs yet that would have lost the periods since the kill."""
    world = World(Stored(4, "old"), on_chain=4, blocks=blocks)
    issue = rotation.plan(MAINNET, SLOT, world.on_chain, world.stored, COLD.verification_key, POOL, "cold", "n")
    run(world, rotation.STAGES, issue.counter, issue.kes_period, kill_after)
    world.valid, world.stale = valid, late
    steps = []
    for _ in range(3):  # bounded: each rerun finishes what it resumes
        step = rotation.resume(world.seen())
        steps.append(step.action)
        if step.action == "none":
            break
        run(world, rotation.RUNS[step.action], step.counter, issue.kes_period)
    unpushed = kill_after == 1  # AWSPENDING written, no node restarted onto it, no block with it
    expected = "reissue" if first_step == "push" and (not valid or (late and unpushed)) else first_step
    assert steps[0] == expected and steps[-1] == "none"
    if kill_after == 0:  # nothing had happened: the rotation is planned afresh, as the first time
        issue_again = rotation.plan(MAINNET, SLOT, world.on_chain, world.stored, COLD.verification_key, POOL, "c", "n")
        assert issue_again == issue
        return
    assert world.pending is None and world.stored.counter == 5
    assert world.current == world.holder != "old"  # one certificate in force, current in the store


@pytest.mark.parametrize(
    ("start", "held", "on_chain", "valid", "action"),
    [
        (1157, False, 4, True, "push"),  # it starts at the clock's period 1157: it has lost nothing
        (1160, False, 4, True, "push"),  # or later (a clock a little behind the killed run's)
        (1150, False, 4, True, "reissue"),  # no node runs it; 7 periods lost since the kill: a new key, same counter
        (1150, False, None, True, "reissue"),  # the pool has made no block yet
        (1150, True, 4, True, "push"),  # a node runs it: completed (its periods left said by the role)
        (1150, False, 5, True, "push"),  # the chain took its counter: a node forged with it, never a second key
        (1100, True, 5, False, "reissue"),  # its KES window has passed: nothing forges with it any more
        (1100, False, 4, False, "reissue"),
    ],
    ids=["starts-now", "starts-later", "stale", "stale-no-block", "stale-run", "stale-taken", "expired-run",
         "expired"],
)  # fmt: skip
def test_a_pending_certificate_no_node_runs_is_issued_again_when_it_starts_before_the_clock(start, held, on_chain,
                                                                                           valid, action):  # fmt: skip
    """The clock is in KES period 1157 (rotation.issue_slot's slot, as a fresh rotation takes it): the pending
    certificate (counter 5, the chain's 4) is issued again with the same counter, never a second increment."""
    seen = Observed(Stored(4, "old"), Pending(5, start, "new"), on_chain, valid, start < 1157, held)
    step = rotation.resume(seen)
    assert (step.action, step.counter, rotation.keeps(seen)) == (action, 5, action == "push")
    if action == "reissue" and valid:
        assert "starts before the clock's KES period and no node runs it" in step.reason


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(pending=Pending(7, 1157, "n")), "pending rotation's counter 7 is not the stored 4 \\+ 1"),
        (dict(on_chain=6), "chain's counter 6 is past the pending 5"),
    ],
)
def test_records_this_protocol_cannot_leave_are_unsafe(change, message):
    seen = Observed(Stored(4, "old"), Pending(5, 1157, "new"), 4, True)
    with pytest.raises(Unsafe, match=message) as err:
        rotation.resume(replace(seen, **change))
    assert err.value.exit_code == EXIT_UNSAFE


def test_every_action_runs_stages_of_the_protocol_in_its_order():
    for stages in rotation.RUNS.values():
        assert list(stages) == [s for s in rotation.STAGES if s in stages]
