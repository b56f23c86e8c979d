"""Review rev16c F9: after a rotation killed inside the holder's replace, ``fab check``'s ``rotation`` line
prescribed ``fab rotate-secrets ... completes it``, which exits 3 while the dead run's stale lock is held; status
showed that lock, check did not. check_rotation now says the lock beside the command: a stale one with the
``lock.release`` that must come first, a live one as a run under way."""

from __future__ import annotations

import pytest

from nodeops.check import check_rotation

ROTATION = {"interrupted": ["kes"], "finish": "fab rotate-secrets --env lab --service pool --secret kes"}
RELEASE = "fab lock.release --env lab --service pool --force"
HOLDER = {"who": "root", "from": "vm", "command": "fab rotate-secrets --env lab --service pool --secret kes"}


@pytest.mark.parametrize(("lock", "said"), [
    (None, "kes interrupted: fab rotate-secrets --env lab --service pool --secret kes completes it"),
    ({"state": "stale", "bastion_pid": 41, "holder": HOLDER},
     "kes interrupted: fab rotate-secrets --env lab --service pool --secret kes completes it, once the lock the "
     "dead run left is released (it refuses, exit 3, until then): first fab lock.release --env lab --service pool "
     "--force"),
    ({"state": "held", "bastion_pid": 41, "holder": HOLDER},
     "kes interrupted: fab rotate-secrets --env lab --service pool --secret kes completes it, once the run holding "
     "the lock now ends (alive, bastion pid 41: `fab rotate-secrets --env lab --service pool --secret kes`)"),
])  # fmt: skip
def test_the_rotation_line_says_the_lock_its_command_would_meet(lock, said):
    assert check_rotation(ROTATION, lock, RELEASE) == ("fail", said)


def test_no_rotation_no_line_and_an_unreadable_one_says_so_whatever_the_lock():
    assert check_rotation(None, {"state": "stale", "bastion_pid": 1, "holder": {}}, RELEASE) is None
    stale = {"state": "stale", "bastion_pid": 1, "holder": {}}
    assert check_rotation({"error": "backend down"}, stale, RELEASE) == ("fail", "unreadable: backend down")
