"""How often a live loop analyses: never faster than asked, never more than its share of a core."""

from __future__ import annotations


class RateController:
    """Spacing of analyses: at most max_fps, and at most cpu_share of a core (EMA of step cost).

    Every face of an analysed frame is measured, so the per-face rate is the analysed frame rate:
    with many faces a step costs more and the rate falls, leaving the rest of the core to capture,
    database writes and the dashboard.
    """

    def __init__(self, max_fps: float, cpu_share: float):
        self.min_period = 1.0 / max_fps if max_fps > 0 else 0.0
        self.cpu_share = min(1.0, max(0.05, cpu_share))
        self.cost_s = 0.0

    def observe(self, step_s: float) -> None:
        self.cost_s = step_s if not self.cost_s else 0.8 * self.cost_s + 0.2 * step_s

    @property
    def period_s(self) -> float:
        # A step that costs c leaves a core's (1 - share) free if the next starts c/share later.
        return max(self.min_period, self.cost_s / self.cpu_share)
