"""The outage probe: how long a handover leaves the service unanswered, sampled while it runs."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable


class OutageProbe:
    """Starts a check every 100 ms while a handover runs, each in a thread of its own, so that a check waiting out
    its timeout (0.5 s through a load balancer) delays neither the next sample nor the one that ends the gap; at
    most ``parallel`` run at once (a tick with none free is skipped). A sample is (when it began, time.monotonic();
    whether the check passed). The outage is the longest run of failed samples, from the last good one before it
    (or, when none came before, its first failed sample) to the first good one after. Entering waits for the first
    sample, so that the measure starts before whatever the block does (stopping the active); leaving waits for the
    samples in flight."""

    def __init__(self, check: Callable[[], bool], interval: float = 0.1, limit: float = 600, parallel: int = 6) -> None:
        self.check, self.interval, self.limit = check, interval, limit
        self.samples: list[tuple[float, bool]] = []  # ordered by when each began
        self.stop = threading.Event()
        self.free = threading.BoundedSemaphore(parallel)
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        t = time.monotonic()
        try:
            ok = self.check()
        except Exception:  # noqa: BLE001 (a probe that dies would measure nothing: any failure is a bad sample)
            ok = False
        finally:
            self.free.release()
        with self.lock:
            bisect.insort(self.samples, (t, ok))

    def _loop(self) -> None:
        deadline = time.monotonic() + self.limit  # bounded, whatever happens to the caller
        started: list[threading.Thread] = []
        while not self.stop.is_set() and time.monotonic() < deadline:
            t = time.monotonic()
            if self.free.acquire(blocking=False):
                started = [s for s in started if s.is_alive()]
                started.append(threading.Thread(target=self._sample, daemon=True))
                started[-1].start()
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - t)))
        for sample in started:  # the samples in flight belong to the measure (each bounded by the check's timeout)
            sample.join(timeout=5)

    def __enter__(self) -> OutageProbe:
        self.thread.start()
        deadline = time.monotonic() + 5  # one sample takes at most the check's own timeout
        while not self.samples and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def answered_since(self, t: float, limit: float = 5.0) -> bool:
        """Wait up to ``limit`` seconds for a good sample begun at or after ``t`` (time.monotonic()): the one that
        ends the gap. A fixed pause is not enough: a sample begun during the gap may still be waiting for its own
        timeout (0.5 s for the load balancer) when the service answers again, and a probe stopped before the sample
        after it would leave the gap unclosed, so not counted (issue 13: "outage 0.00s" where a 50 ms sampler saw
        0.4 s). False when none came: the service stopped answering again, or the probe ended."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and self.thread.is_alive():
            with self.lock:
                if any(ok for _, ok in self.samples[bisect.bisect_left(self.samples, (t,)) :]):
                    return True
            time.sleep(self.interval / 4)
        return False

    @property
    def outage(self) -> float:
        """Seconds from the last good sample (else the first failed one) to the first good sample after, across
        the longest run of failures; 0 if none failed (failures never followed by a good sample: not counted)."""
        worst, since, failing = 0.0, None, False
        for t, ok in self.samples:
            if ok:
                if failing:
                    worst = max(worst, t - since)
                since, failing = t, False
            else:
                since, failing = t if since is None else since, True
        return worst

    def measured(self, was_serving: bool) -> float | None:
        """The outage, when there is one to measure: the service answered at the first sample (taken before the
        block stopped anything), or the active answered 200 then (a failed first sample is then counted as the
        gap's start, as ``outage`` does). None when neither: the service was not answering before (an active
        answering 503), so no gap began with the handover and 0 would claim an outage that was not measured."""
        answered = bool(self.samples) and self.samples[0][1]
        return self.outage if answered or was_serving else None

    @property
    def answering_after(self) -> float | None:
        """Seconds from the first sample to the first good one; None when none was good."""
        good = [t for t, ok in self.samples if ok]
        return good[0] - self.samples[0][0] if good else None
