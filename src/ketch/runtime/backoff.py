"""Restart backoff for crashed containers, in the manner of Kubernetes' CrashLoopBackOff:
doubling from `base` up to `cap`, reset after the container ran `reset_after` seconds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0
    failures: int = 0

    def next_delay(self, ran_for: float) -> float:
        """Seconds to wait before restarting a container that exited after `ran_for` s."""
        if ran_for >= self.reset_after:
            self.failures = 0
        self.failures += 1
        return min(self.cap, self.base * 2 ** (self.failures - 1))
