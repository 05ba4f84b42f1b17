"""Notify: what a notification says, in Chinese by default or English (pure).

What happened, where (community, building, device), severity, the deadline that matters next, and how to
acknowledge. Each channel renders a person's message in their language. A resident's complaint
says its entry, community, place, the deadline that matters next and its duty page (sign-in
needed); never who filed it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")

TITLES = {
    "zh": {
        "alarm_opened": "告警",
        "alarm_cleared": "告警解除",
        "alarm_raised": "告警升级",
        "reminder": "告警未确认提醒",
        "escalation": "告警超时未响应",
        "group": "条告警",
        "group_complaints": "条居民投诉报修",
        "group_mixed": "条告警与投诉",
        "platform_alarm_opened": "平台告警",
        "platform_alarm_cleared": "平台告警解除",
        "complaint_filed": "居民投诉报修",
        "complaint_escalation": "投诉超时未受理",
    },
    "en": {
        "alarm_opened": "Alarm",
        "alarm_cleared": "Alarm cleared",
        "alarm_raised": "Alarm escalated",
        "reminder": "Reminder, not acknowledged",
        "escalation": "Not acknowledged in time",
        "group": "alarms",
        "group_complaints": "resident complaints",
        "group_mixed": "alarms and complaints",
        "platform_alarm_opened": "Platform alarm",
        "platform_alarm_cleared": "Platform alarm cleared",
        "complaint_filed": "Resident complaint",
        "complaint_escalation": "Complaint not taken on in time",
    },
}
LABELS = {
    "zh": {
        "where": "位置",
        "device": "设备",
        "severity": "级别",
        "due": "时限",
        "ack": "确认",
        "since": "发生",
        "building": "楼栋",
        "subject": "对象",
        "cleared": "解除",
        "reason": "原因",
        "triggers": "触发次数",
        "community": "小区",
        "place": "地点",
        "filed": "提交",
        "page": "受理（需登录）",
    },
    "en": {
        "where": "Where",
        "device": "Device",
        "severity": "Severity",
        "due": "Due",
        "ack": "Acknowledge",
        "since": "Since",
        "building": "Building",
        "subject": "Subject",
        "cleared": "Cleared",
        "reason": "Reason",
        "triggers": "Triggers",
        "community": "Community",
        "place": "Place",
        "filed": "Filed",
        "page": "Take it on (sign in)",
    },
}
# The platform's own alarms (``platform_alarms.kind``).
PLATFORM_KINDS = {
    "zh": {
        "feed_silent": "数据中断",
        "mass_silence": "大量设备同时失联",
        "detector_quarantined": "检测器状态已隔离",
        "stage_restarted": "服务已重启",
        "model_drift": "学习模型误报率偏高",
        "gateway_dropped": "网关缓存已满，丢弃了数据",
        "gateway_clock": "网关时钟偏差过大",
    },
    "en": {
        "feed_silent": "No data reaching analytics",
        "mass_silence": "Many devices went silent at once",
        "detector_quarantined": "Detector state set aside",
        "stage_restarted": "Stage restarted",
        "model_drift": "Learned model's false alarms above target",
        "gateway_dropped": "Gateway buffer full: data dropped",
        "gateway_clock": "Gateway clock off",
    },
}
DUE_ORDER = ("response", "arrival", "resolution")
DUE_NAMES = {
    "zh": {"response": "响应", "arrival": "到场", "resolution": "处置完成"},
    "en": {"response": "respond", "arrival": "on site", "resolution": "resolve"},
}


def _local(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(TZ).strftime("%Y-%m-%d %H:%M")


def render(
    payload: dict[str, Any], language: str = "zh", ack_url: str | None = None
) -> tuple[str, str]:
    """(title, text) of a notification for one reader; a group lists its alarms one by one."""
    lang = language if language in TITLES else "zh"
    if payload.get("kind") == "group":
        items = payload.get("items", [])
        complaints = {str(p.get("kind", "")).startswith("complaint_") for p in items}
        key = {frozenset({True}): "group_complaints", frozenset({True, False}): "group_mixed"}
        what = TITLES[lang][key.get(frozenset(complaints), "group")]
        title = (
            f"[{payload.get('severity', '')}] {len(items)} {what}: {payload.get('community', '')}"
        )
        parts = [_render_one(p, lang, p.get("ack_url")) for p in items]
        return title, "\n\n".join(f"{t}\n{body}" for t, body in parts)
    if str(payload.get("kind", "")).startswith("platform_alarm_"):
        return _render_platform(payload, lang)
    return _render_one(payload, lang, ack_url or payload.get("ack_url"))


def _render_platform(payload: dict[str, Any], lang: str) -> tuple[str, str]:
    """A platform alarm's opening or clearing, for the platform operator."""
    lab = LABELS[lang]
    alarm = str(payload.get("alarm", ""))
    name = PLATFORM_KINDS[lang].get(alarm, alarm)
    title = (
        f"[{payload.get('severity', '')}] {TITLES[lang].get(payload.get('kind', ''), '')}: {name}"
    )
    lines = []
    if payload.get("subject"):
        lines.append(f"{lab['subject']}: {payload['subject']}")
    lines.append(f"{lab['severity']}: {payload.get('severity', '')}")
    if payload.get("opened_at"):
        lines.append(f"{lab['since']}: {_local(payload['opened_at'])}")
    if payload.get("kind") == "platform_alarm_cleared":
        if payload.get("cleared_at"):
            lines.append(f"{lab['cleared']}: {_local(payload['cleared_at'])}")
        if payload.get("cleared_reason"):
            lines.append(f"{lab['reason']}: {payload['cleared_reason']}")
    triggers = payload.get("triggers")
    if isinstance(triggers, int) and triggers > 1:
        lines.append(f"{lab['triggers']}: {triggers}")
    return title, "\n".join(lines)


def _render_complaint(payload: dict[str, Any], lang: str) -> tuple[str, str]:
    """A resident's complaint (or its escalation), for the firm: entry, community, place, the
    next deadline and the duty page to take it on."""
    lab = LABELS[lang]
    name = payload.get("name", {}).get(lang) or payload.get("code", "")
    title = (
        f"[{payload.get('severity', '')}] {TITLES[lang].get(payload.get('kind', ''), '')}: {name}"
    )
    community = (payload.get("community_name_en") if lang == "en" else None) or payload.get(
        "community_name"
    )
    lines = [f"{lab['community']}: {community or payload.get('community', '')}"]
    if payload.get("location"):
        lines.append(f"{lab['place']}: {payload['location']}")
    lines.append(f"{lab['severity']}: {payload.get('severity', '')}")
    if payload.get("opened_at"):
        lines.append(f"{lab['filed']}: {_local(payload['opened_at'])}")
    deadlines = payload.get("deadlines") or {}
    for kind in DUE_ORDER:
        if deadlines.get(kind):
            lines.append(f"{lab['due']} ({DUE_NAMES[lang][kind]}): {_local(deadlines[kind])}")
            break
    if payload.get("page_url"):
        lines.append(f"{lab['page']}: {payload['page_url']}")
    return title, "\n".join(lines)


def _render_one(payload: dict[str, Any], lang: str, ack_url: str | None) -> tuple[str, str]:
    if str(payload.get("kind", "")).startswith("complaint_"):
        return _render_complaint(payload, lang)
    lab = LABELS[lang]
    name = payload.get("name", {}).get(lang) or payload.get("code", "")
    title = (
        f"[{payload.get('severity', '')}] {TITLES[lang].get(payload.get('kind', ''), '')}: {name}"
    )
    where = payload.get("community_name") or payload.get("community", "")
    lines = [f"{lab['where']}: {where}"]
    if payload.get("building"):
        lines.append(f"{lab['building']}: {payload['building']}")
    lines += [
        f"{lab['device']}: {payload.get('device', '')}",
        f"{lab['severity']}: {payload.get('severity', '')}",
    ]
    if payload.get("opened_at"):
        lines.append(f"{lab['since']}: {_local(payload['opened_at'])}")
    deadlines = payload.get("deadlines") or {}
    for kind in DUE_ORDER:
        if deadlines.get(kind):
            lines.append(f"{lab['due']} ({DUE_NAMES[lang][kind]}): {_local(deadlines[kind])}")
            break
    if ack_url and payload.get("kind") != "alarm_cleared":
        lines.append(f"{lab['ack']}: {ack_url}")
    return title, "\n".join(lines)
