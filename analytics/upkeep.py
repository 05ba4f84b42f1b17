"""Analytics: the class models' upkeep, scheduled retraining and the drift alarm (I/O shell).

Runs beside detection, never in its way (the service gives it a thread and a database connection
of its own): each class model in use is retrained when due (``analytics.retraining.due``) on
the last ``retrain_days`` of its devices' data, every alarm of those devices and the model's own
anomalies (``Learned.anomaly_spans``) left out, padded; the new version is saved and made active
(``analytics.models.save``: the old one stays for a rollback) and detection picks it up when it
next polls for models. A window with too little normal data is logged and skipped; so is any
other failure of one class, and the next check tries again. Each multivariate entry's false
alarms are judged against its target (``analytics.retraining.Drift``): drift is one platform
alarm ``model_drift`` per entry, cleared once the rate is back within bounds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from analytics.learned import Learned
from analytics.models import active_trained_at, alarm_spans, false_alarms, save, train_from_history
from analytics.retraining import MIN_TRAIN_ROWS, Drift, Span, due, padded
from core.db import Conn
from core.errors import ConfigError
from core.outlasting_db import Database
from core.severity import Severity
from lifecycle.maintenance_windows import maintenance_spans
from lifecycle.platform import PlatformKind, clear_alarm, open_alarms, raise_alarm

log = logging.getLogger("shouwang.analytics")
DRIFT_EVERY_S = 600.0  # drift is judged at most this often (analytics' clock)
RETRY_S = 3600.0  # a class whose retraining was skipped is tried again after this long


@dataclass(frozen=True, slots=True)
class UpkeepConfig:
    """The analytics_retrain_* and analytics_drift_* settings (core.settings)."""

    retrain_every_s: float = 24 * 3600.0  # 0: never retrain
    retrain_days: float = 14.0
    drift_days: float = 7.0
    drift_factor: float = 3.0
    drift_min_alarms: int = 3


@dataclass(slots=True)
class Upkeep:
    cfg: UpkeepConfig
    retrained: list[str] = field(default_factory=list)  # versions saved, oldest first
    skipped: list[str] = field(default_factory=list)  # classes whose retraining was skipped
    drifting: set[str] | None = None  # entry codes with a model_drift alarm open (None: unread)
    _judged_at: float = float("-inf")
    _retry_at: dict[str, float] = field(default_factory=dict)  # class -> not before (skipped)

    def run(self, db: Database, learned: Learned, now: float) -> None:
        """One pass at ``now`` (analytics' clock): retrain what is due, judge drift when due."""
        for cls in sorted(learned.classes_with_models()):
            if now < self._retry_at.get(cls, float("-inf")):
                continue
            try:
                self.retrain(db, learned, cls, now)
            except ConfigError as e:  # too little normal data: try again later
                self._skip(cls, now)
                log.warning("%s: model not retrained (tried again in %.0f s): %s", cls, RETRY_S, e)
            except Exception as e:  # one class's failure is not the others'
                self._skip(cls, now)
                log.error("%s: retraining failed (%s: %s)", cls, type(e).__name__, e, exc_info=e)
        if now - self._judged_at >= DRIFT_EVERY_S:
            self._judged_at = now
            self.judge_drift(db, learned, now)

    def _skip(self, cls: str, now: float) -> None:
        self.skipped.append(cls)
        self._retry_at[cls] = now + RETRY_S

    def retrain(self, db: Database, learned: Learned, cls: str, now: float) -> str | None:
        """Retrain ``cls`` if its active model is due; the new version, or None."""
        trained_at = db.read(lambda c: active_trained_at(c, cls))
        if not due(trained_at, now, self.cfg.retrain_every_s):
            return None
        model = learned.models.get(cls)
        until = datetime.fromtimestamp(now, UTC)
        since = until - timedelta(days=self.cfg.retrain_days)
        own = learned.anomaly_spans(cls, now)

        def train(c: Conn) -> str:
            # Not normal operation: alarm episodes, and maintenance windows (a drill, a repair).
            serviced = [Span(*w) for w in maintenance_spans(c, cls, since, until)]
            spans = padded([*alarm_spans(c, cls, since, until), *serviced, *own])
            fresh = train_from_history(
                c,
                cls,
                since,
                until,
                features=None if model is None else model.features,
                quantile=0.999 if model is None else model.quantile,
                trained_at=until,
                exclude=spans,
                min_rows=MIN_TRAIN_ROWS,
            )
            save(c, fresh)
            log.info(
                "%s: retrained on %d rows (%d stretches left out): model %s active, the"
                " previous one kept for rollback",
                cls,
                fresh.n_train,
                len(spans),
                fresh.version,
            )
            return fresh.version

        version = db.write(train)
        self.retrained.append(version)
        return version

    def judge_drift(self, db: Database, learned: Learned, now: float) -> list[Drift]:
        """Each multivariate entry's false alarms over the last ``drift_days``; a model_drift
        alarm raised for those drifting, cleared for those back within bounds."""
        if self.drifting is None:
            kinds = (PlatformKind.MODEL_DRIFT,)
            self.drifting = {a.subject for a in db.read(lambda c: open_alarms(c, kinds))}
        until = datetime.fromtimestamp(now, UTC)
        since = until - timedelta(days=self.cfg.drift_days)
        judged: list[Drift] = []
        for cls, rules in sorted(learned.rules.items()):
            for rule in rules:
                if rule.detector != "multivariate":
                    continue
                count, device_days = db.read(_counter(cls, rule.code, since, until))
                drift = Drift(
                    rule.code,
                    count,
                    device_days,
                    rule.target_false_per_device_day,
                    self.cfg.drift_factor,
                )
                judged.append(drift)
                self._report(db, cls, drift, learned, until)
        return judged

    def _report(self, db: Database, cls: str, drift: Drift, learned: Learned, at: datetime) -> None:
        assert self.drifting is not None
        if drift.drifting(self.cfg.drift_min_alarms) and drift.code not in self.drifting:
            model = learned.models.get(cls)
            log.error(
                "%s: %d false alarms in %.1f device-days (%.3g a device-day) against a target"
                " of %.3g: platform alarm model_drift",
                drift.code,
                drift.false_alarms,
                drift.device_days,
                drift.rate,
                drift.target,
            )
            detail = {
                "device_class": cls,
                "model": None if model is None else model.version,
                "false_alarms": drift.false_alarms,
                "device_days": round(drift.device_days, 2),
                "rate": round(drift.rate, 4),
                "target": drift.target,
                "days": self.cfg.drift_days,
            }
            db.write(
                lambda c: raise_alarm(
                    c,
                    PlatformKind.MODEL_DRIFT,
                    drift.code,
                    severity=Severity.P3,
                    at=at,
                    detail=detail,
                )
            )
            self.drifting.add(drift.code)
        elif not drift.drifting(self.cfg.drift_min_alarms) and drift.code in self.drifting:
            db.write(
                lambda c: clear_alarm(
                    c, PlatformKind.MODEL_DRIFT, drift.code, reason="within_target", at=at
                )
            )
            self.drifting.discard(drift.code)


def _counter(
    cls: str, code: str, since: datetime, until: datetime
) -> Callable[[Conn], tuple[int, float]]:
    return lambda c: false_alarms(c, cls, code, since, until)
