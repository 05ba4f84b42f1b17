"""Analytics: runs the list's rule detectors over each device's stream (pure).

Samples and device events go in with their (data) time; ``Observation``s come out: for each
list entry of the device's class, whether its filing condition holds now. The alarm lifecycle
turns observations into alarms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from analytics.conditions import Check, DeviceView, Held, Offline, compile_filing
from lifecycle.alarms import Observation
from responsibility.model import Entry


@dataclass(frozen=True, slots=True)
class Rule:
    """One list entry's rule checks (the learned detectors feed observations on their own)."""

    code: str
    checks: tuple[Check, ...]


def compile_rules(entries: Iterable[Entry]) -> dict[str, list[Rule]]:
    """Device class -> rules, from responsibility-list entries (each filing condition's
    ``detector`` and parameters)."""
    out: dict[str, list[Rule]] = {}
    for e in entries:
        checks = []
        for f in e.filing:
            check = compile_filing(f.detector, f.model_dump())
            if check is not None:
                checks.append(check)
        if checks:
            out.setdefault(str(e.device_class), []).append(Rule(e.code, tuple(checks)))
    return out


@dataclass(slots=True)
class Engine:
    rules: dict[str, list[Rule]]
    views: dict[int, DeviceView] = field(default_factory=dict)
    held: dict[tuple[int, str, int], Held] = field(default_factory=dict)

    def add_device(self, view: DeviceView) -> None:
        self.views[view.device_id] = view

    def forget(self, device_id: int) -> None:
        """Drop everything known of a device: its view and its held conditions."""
        self.views.pop(device_id, None)
        for key in [k for k in self.held if k[0] == device_id]:
            del self.held[key]

    def offline_silence(self, view: DeviceView) -> float | None:
        """The shortest silence after which one of the rules of ``view``'s class judges the
        device offline (its ``for_seconds`` included); None when no rule of the class does."""
        out: float | None = None
        for rule in self.rules.get(view.device_class, ()):
            for check in rule.checks:
                if isinstance(check, Offline):
                    s = check.silence(view) + check.for_seconds
                    out = s if out is None else min(out, s)
        return out

    def on_sample(self, device_id: int, t: float, values: Mapping[str, float]) -> list[Observation]:
        view = self.views.get(device_id)
        if view is None or not view.update(t, values):
            return []  # unknown, or late: out-of-order samples do not move the state back
        return self._evaluate(view, t, values)

    def on_event(self, device_id: int, t: float, code: str, active: bool) -> list[Observation]:
        view = self.views.get(device_id)
        if view is None:
            return []
        if active:
            view.active_codes[code] = min(t, view.active_codes.get(code, t))
        else:
            view.active_codes.pop(code, None)
        return self._evaluate(view, t, None, only_kind="event_code")

    def on_tick(self, now: float) -> list[Observation]:
        """Conditions that arise from silence (offline)."""
        out = []
        for view in self.views.values():
            out.extend(self._evaluate(view, now, None, only_kind="offline"))
        return out

    def tick_device(self, device_id: int, now: float) -> list[Observation]:
        """``on_tick`` for one device (none when unknown)."""
        view = self.views.get(device_id)
        return [] if view is None else self._evaluate(view, now, None, only_kind="offline")

    def _evaluate(
        self,
        view: DeviceView,
        t: float,
        sample: Mapping[str, float] | None,
        only_kind: str | None = None,
    ) -> list[Observation]:
        out = []
        for rule in self.rules.get(view.device_class, ()):
            verdict: bool | None = None
            fired = ""
            for i, check in enumerate(rule.checks):
                if only_kind is not None and check.kind != only_kind:
                    continue
                raw = check(view, t, sample)
                if raw is None:
                    continue
                key = (view.device_id, rule.code, i)
                held = self.held.get(key)
                if held is None:
                    held = self.held[key] = Held()
                holds = held.step(raw, t, check.for_seconds)
                if holds is None:
                    continue  # a look back that says nothing of now (an event after samples)
                if holds:
                    verdict, fired = True, check.kind
                elif verdict is None:
                    verdict = False
            if verdict is None:
                continue
            if (
                not verdict
                and only_kind is not None
                and self._other_checks_hold(view, rule, only_kind)
            ):
                continue  # e.g. an event cleared while the state pattern still holds
            out.append(Observation(view.device_id, rule.code, t, verdict, fired))
        return out

    def _other_checks_hold(self, view: DeviceView, rule: Rule, kind: str) -> bool:
        return any(
            (h := self.held.get((view.device_id, rule.code, i))) is not None and h.since is not None
            for i, c in enumerate(rule.checks)
            if c.kind != kind
        )
