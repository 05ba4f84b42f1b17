"""Dashboards: the platform operators' health of the platform itself (pure), over Prometheus
(dashboards/prometheus scrapes each stage's endpoint, core/metrics.py): whether each stage is up
and alive, its work and backlog, the feed's lag, notifications, the API, processes and disks.

The stuck judgement is core.metrics.liveness (as ``shouwang health --stage`` and the alert rule
ShouwangStageStuck make it), with the settings' ``health_stuck_after_s``."""

from __future__ import annotations

from typing import Final

from dashboards.datasource import PROMETHEUS_REF
from dashboards.model import (
    Dashboard,
    Kind,
    Panel,
    Query,
    Row,
    Step,
    ValueMapping,
)

UID: Final = "sw-platform-health"
TAG: Final = "platform"
STAGE_JOBS: Final = 'job=~"shouwang-.*"'
RATE: Final = "$__rate_interval"
FEED_LAG_WARN_S: Final = 30.0  # the alert ShouwangFeedLag
OUTBOX_STALE_S: Final = 300.0  # the alert ShouwangOutboxStale (notify_voice_after_s)


def state_expr(stuck_after_s: float) -> str:
    """Each stage's state as a number, by core.metrics.liveness: 2 stuck (its loop has not
    turned for ``stuck_after_s``, or work is pending and nothing was finished for that long),
    1 running (work pending or done lately), 0 idle."""
    t = f"{stuck_after_s:g}"
    beat_age = "(time() - shouwang_stage_heartbeat_timestamp_seconds)"
    progress_age = "(time() - shouwang_stage_last_progress_timestamp_seconds)"
    pending = "(shouwang_stage_pending > bool 0)"
    return (
        f"clamp_max(2 * ({beat_age} > bool {t})"
        f" + 2 * {pending} * ({progress_age} > bool {t})"
        f" + (({pending} + ({progress_age} <= bool {t})) > bool 0), 2)"
    )


def p95(histogram: str, by: str = "") -> str:
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile(0.95, sum by ({labels}) (rate({histogram}_bucket[{RATE}])))"


def _ts(
    title: str,
    *queries: Query,
    unit: str | None = None,
    width: int = 8,
    description: str = "",
    thresholds: tuple[Step, ...] = (),
) -> Panel:
    return Panel(
        Kind.TIMESERIES,
        title,
        queries,
        width=width,
        height=8,
        unit=unit,
        description=description,
        thresholds=thresholds,
        show_thresholds=bool(thresholds),
        min=0,
    )


def build(stuck_after_s: float = 60.0) -> Dashboard:
    """``stuck_after_s``: the settings' ``health_stuck_after_s``."""
    up = Panel(
        Kind.STAT,
        "Stages up",
        (Query(f"up{{{STAGE_JOBS}}}", legend="{{job}} {{instance}}"),),
        width=12,
        height=5,
        description="Whether Prometheus could scrape each stage's metrics endpoint (the alert"
        " ShouwangStageDown after a minute down).",
        mappings=(ValueMapping("1", "up", "green"), ValueMapping("0", "down", "red")),
        thresholds=(Step(None, "red"), Step(1, "green")),
    )
    state = Panel(
        Kind.STAT,
        "Stage state",
        (Query(state_expr(stuck_after_s), legend="{{stage}} {{instance}}"),),
        width=12,
        height=5,
        description=f"As 'shouwang health --stage' judges it: stuck when the loop has not turned"
        f" for {stuck_after_s:g} s, or work is pending and nothing was finished for that long"
        " (the alert ShouwangStageStuck); running when work is pending or was done lately.",
        mappings=(
            ValueMapping("0", "idle", "blue"),
            ValueMapping("1", "running", "green"),
            ValueMapping("2", "stuck", "red"),
        ),
        thresholds=(Step(None, "blue"), Step(1, "green"), Step(2, "red")),
    )
    stuck_steps = (Step(None, "green"), Step(stuck_after_s, "red"))
    heartbeat = _ts(
        "Heartbeat age",
        Query("time() - shouwang_stage_heartbeat_timestamp_seconds", legend="{{stage}}"),
        unit="s",
        description="Seconds since each stage's main loop last turned.",
        thresholds=stuck_steps,
    )
    progress = _ts(
        "Progress",
        Query(f"sum by (stage) (rate(shouwang_stage_progress_total[{RATE}]))", legend="{{stage}}"),
        unit="ops",
        description="Work finished per second, in each stage's own unit: readings committed"
        " (ingest), readings analysed (analytics), deliveries attempted (notify), requests"
        " served (api).",
    )
    pending = _ts(
        "Pending",
        Query("sum by (stage) (shouwang_stage_pending)", legend="{{stage}}"),
        description="Work each stage knows is waiting: messages not yet committed (ingest),"
        " readings not yet analysed (analytics), due notifications (notify), requests in"
        " flight (api).",
    )
    readings = _ts(
        "Ingest: readings and messages",
        Query(f"sum(rate(shouwang_ingest_readings_total[{RATE}]))", legend="readings", ref_id="A"),
        Query(
            f"sum by (kind) (rate(shouwang_ingest_messages_total[{RATE}]))",
            legend="messages {{kind}}",
            ref_id="B",
        ),
        unit="ops",
    )
    flush = _ts(
        "Ingest: flush latency p95",
        Query(p95("shouwang_ingest_flush_seconds"), legend="p95"),
        unit="s",
        description="Time to decode, commit and acknowledge one flush of readings.",
    )
    rejects = _ts(
        "Ingest: rejects by reason",
        Query(
            f"sum by (reason) (rate(shouwang_ingest_rejects_total[{RATE}]))",
            legend="{{reason}}",
        ),
        unit="ops",
        description="Messages rejected (the alert ShouwangIngestRejects above 5 % of them);"
        " 'shouwang status' names the senders.",
    )
    broker = Panel(
        Kind.STAT,
        "Ingest: broker",
        (Query("shouwang_ingest_broker_connected", legend="{{instance}}"),),
        width=12,
        height=5,
        mappings=(
            ValueMapping("1", "connected", "green"),
            ValueMapping("0", "disconnected", "red"),
        ),
        thresholds=(Step(None, "red"), Step(1, "green")),
    )
    database = Panel(
        Kind.STAT,
        "Database size",
        (Query("max(shouwang_database_size_bytes)", legend="database"),),
        width=12,
        height=5,
        unit="bytes",
    )
    lag = _ts(
        "Analytics: feed lag",
        Query("max(shouwang_analytics_feed_lag_seconds)", legend="lag"),
        unit="s",
        width=8,
        description="The newest stored reading's time minus the newest analytics has"
        f" processed (the alert ShouwangFeedLag above {FEED_LAG_WARN_S:g} s).",
        thresholds=(Step(None, "green"), Step(FEED_LAG_WARN_S, "orange")),
    )
    tick = _ts(
        "Analytics: tick time p95",
        Query(p95("shouwang_analytics_tick_seconds"), legend="p95"),
        unit="s",
        description="Detector time per tick.",
    )
    open_alarms = _ts(
        "Analytics: open alarms by severity",
        Query("sum by (severity) (shouwang_analytics_open_alarms)", legend="{{severity}}"),
        description="Device alarms not yet cleared.",
    )
    outbox = _ts(
        "Notify: outbox backlog and oldest due",
        Query("sum(shouwang_notify_outbox_backlog)", legend="due", ref_id="A"),
        Query("max(shouwang_notify_outbox_oldest_seconds)", legend="oldest (s)", ref_id="B"),
        width=12,
        description="Notifications due and not yet delivered, and the age of the oldest (the"
        f" alert ShouwangOutboxStale above {OUTBOX_STALE_S:g} s).",
    )
    deliveries = _ts(
        "Notify: deliveries by outcome",
        Query(
            f"sum by (channel, outcome) (rate(shouwang_notify_deliveries_total[{RATE}]))",
            legend="{{channel}} {{outcome}}",
        ),
        unit="ops",
        width=12,
    )
    api_latency = _ts(
        "API: latency p95 by route",
        Query(p95("shouwang_api_request_seconds", "route"), legend="{{route}}"),
        unit="s",
    )
    api_errors = _ts(
        "API: requests and 5xx share",
        Query(f"sum(rate(shouwang_api_requests_total[{RATE}]))", legend="requests/s", ref_id="A"),
        Query(
            f'(sum(rate(shouwang_api_requests_total{{status=~"5.."}}[{RATE}])) or vector(0))'
            f" / sum(rate(shouwang_api_requests_total[{RATE}]))",
            legend="5xx share",
            ref_id="B",
        ),
        description="The alert ShouwangApiErrors fires above 5 % 5xx for 5 minutes.",
    )
    pool = _ts(
        "Database pool",
        Query("sum by (stage, state) (shouwang_db_pool_connections)", legend="{{stage}} {{state}}"),
        description="Connections of each stage's pool: its size, those available, and callers"
        " waiting for one.",
    )
    rss = _ts(
        "Memory (RSS) per stage",
        Query(f"process_resident_memory_bytes{{{STAGE_JOBS}}}", legend="{{job}} {{instance}}"),
        unit="bytes",
    )
    cpu = _ts(
        "CPU per stage",
        Query(
            f"rate(process_cpu_seconds_total{{{STAGE_JOBS}}}[{RATE}])",
            legend="{{job}} {{instance}}",
        ),
        unit="percentunit",
        description="CPU seconds per second (1 = one core).",
    )
    disk = _ts(
        "Disk free",
        Query(
            "min by (instance, path) (shouwang_disk_free_bytes / shouwang_disk_total_bytes)",
            legend="{{path}} ({{instance}})",
        ),
        unit="percentunit",
        description="The free share of the file systems holding the database, the broker's"
        " state and the stages' state (the alerts ShouwangDiskLow below 10 %,"
        " ShouwangDiskFillingUp when full within a day).",
        thresholds=(Step(None, "red"), Step(0.1, "orange"), Step(0.4, "green")),
    )
    return Dashboard(
        UID,
        "平台健康 Platform health",
        (
            Row("阶段 Stages"),
            up,
            state,
            heartbeat,
            progress,
            pending,
            Row("接入 Ingest"),
            readings,
            flush,
            rejects,
            broker,
            database,
            Row("分析与通知 Analytics and notify"),
            lag,
            tick,
            open_alarms,
            outbox,
            deliveries,
            Row("接口与资源 API and resources"),
            api_latency,
            api_errors,
            pool,
            rss,
            cpu,
            disk,
        ),
        description="The platform's own health from each stage's metrics (Prometheus): what the"
        " alert rules in dashboards/prometheus/alerts.yml watch.",
        tags=(TAG,),
        time_from="now-3h",
        refresh="30s",
        datasource=PROMETHEUS_REF,
    )
