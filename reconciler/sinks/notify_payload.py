"""What a notification says: the versioned JSON payload, Slack's message, the HMAC signature.

The payload (``version: 1``; a field is only ever added within a version)::

    {
      "version": 1,
      "event": "failed",                 # failed | recovered | definitionError | everyFailure
      "reminder": false,                 # a repeat of "failed": after repeatInterval, or
                                         # the first failure after a restart while failing;
                                         # of "recovered": the first success after a restart
                                         # that followed a recovery (it may not have got out)
      "summary": "ops/backup failed: exit code 1 (NonZeroExit)",
      "task": {"key": "ops/backup", "namespace": "ops", "name": "backup",
               "source": {"kind": "git", "location": "tasks/backup.yaml:1:1"}},
      "run": {"id": "ops.backup.20261127T010000Z", "attempt": 1, "trigger": "schedule",
              "status": "failed", "reason": "NonZeroExit", "message": null, "exitCode": 1,
              "scheduledAt": "...", "startedAt": "...", "finishedAt": "...", "durationMs": 5,
              "outputTail": "the last 2048 characters of the output",
              "url": "https://crontask.example/runs/ops.backup.20261127T010000Z"},
      "failingSince": "2026-11-27T01:00:05+00:00",   # failed, recovered, everyFailure
      "errors": ["tasks/x.yaml:6:21: spec.schedule: ..."], "moreErrors": 0,  # definitionError
      "sentAt": "2026-11-27T01:00:06+00:00"
    }

For ``definitionError``, ``task`` names the task when every error of the message names that
one (a broken definition that still says its key, a key defined twice; its ``location`` is
the first error's place, and the summary ends "in <key>"), and is null otherwise (errors of
several tasks, or one that names none); ``run`` is null. ``url`` is null without
``--external-url`` and a listening page.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any, Final

from reconciler.core.runs import RunRecord

VERSION: Final = 1
OUTPUT_TAIL: Final = 2048
SLACK_TAIL: Final = 600
SLACK_TEXT_MAX: Final = 3000
SIGNATURE_HEADER: Final = "X-Signature"


def summary(event: str, key: str | None, record: RunRecord | None, errors: int = 0) -> str:
    if event == "definitionError":
        where = f" in {key}" if key else ""
        return f"{errors} new definition error{'' if errors == 1 else 's'}{where}"
    assert record is not None
    if event == "recovered":
        return f"{key} recovered: run {record.id} succeeded"
    # A sentence: "timed out", not the field's "timedOut"; no colon before nothing.
    word = "timed out" if record.status.value == "timedOut" else record.status.value
    reason = f" ({record.reason})" if record.reason else ""
    if record.exit_code is not None:
        return f"{key} {word}: exit code {record.exit_code}{reason}"
    return f"{key} {word}{reason}"


def payload(
    event: str,
    *,
    key: str | None,
    source: tuple[str, str] | None,
    record: RunRecord | None,
    reminder: bool = False,
    failing_since: datetime | None = None,
    errors: list[str] | None = None,
    more_errors: int = 0,
    page_url: str | None = None,
    sent_at: datetime,
) -> dict[str, Any]:
    task = None
    if key is not None:
        namespace, _, name = key.partition("/")
        kind, location = source or ("unknown", "")
        task = {
            "key": key,
            "namespace": namespace,
            "name": name,
            "source": {"kind": kind, "location": location},
        }
    run = None
    if record is not None:
        run = {
            "id": record.id,
            "attempt": record.attempt,
            "trigger": record.trigger.value,
            "status": record.status.value,
            "reason": record.reason,
            "message": record.message,
            "exitCode": record.exit_code,
            "scheduledAt": _iso(record.scheduled_at),
            "startedAt": _iso(record.started_at),
            "finishedAt": _iso(record.finished_at),
            "durationMs": record.duration_ms,
            "outputTail": record.output[-OUTPUT_TAIL:],
            "url": f"{page_url.rstrip('/')}/runs/{record.id}" if page_url else None,
        }
    body: dict[str, Any] = {
        "version": VERSION,
        "event": event,
        "reminder": reminder,
        "summary": summary(event, key, record, len(errors or ()) + more_errors),
        "task": task,
        "run": run,
        "failingSince": _iso(failing_since),
        "sentAt": _iso(sent_at),
    }
    if errors is not None:
        body["errors"] = errors
        body["moreErrors"] = more_errors
    return body


def body_of(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: bytes, body: bytes) -> str:
    """``X-Signature``'s value, as Flux's notification-controller sends it for generic-hmac."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


_ICONS: Final = {
    "failed": ":red_circle:",
    "everyFailure": ":red_circle:",
    "recovered": ":large_green_circle:",
    "definitionError": ":warning:",
}


def slack(message: dict[str, Any]) -> dict[str, Any]:
    """An incoming-webhook message: one mrkdwn text (escaped as Slack asks), bounded."""
    lines = [f"{_ICONS.get(message['event'], '')} {_escape(message['summary'])}"]
    if message.get("reminder"):
        lines[0] += " (still failing)" if message["event"] != "recovered" else " (repeated)"
    run = message.get("run")
    if run is not None:
        link = run["id"] if not run["url"] else f"<{_link(run['url'])}|{run['id']}>"
        lines.append(f"run {link} · trigger {run['trigger']} · attempt {run['attempt']}")
        tail = run["outputTail"][-SLACK_TAIL:].strip()
        if tail and message["event"] != "recovered":
            lines.append("```" + _escape(tail).replace("```", "'''") + "```")
    for error in message.get("errors") or []:
        # mrkdwn has no escape for a backtick: one would end the code span early.
        spanned = _escape(error).replace("`", "'")
        lines.append(f"• `{spanned}`")
    if message.get("moreErrors"):
        lines.append(f"… and {message['moreErrors']} more")
    return {"text": _cut("\n".join(lines), SLACK_TEXT_MAX)}


def _cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: cut short, never inside an escape (``&amp;``
    would show as ``&am``), and a code block it cut into closed again (or the rest of the
    message would show as code)."""
    if len(text) <= limit:
        return text
    kept = text[: limit - 4]  # room for a closing ``` and the ellipsis
    amp = kept.rfind("&", len(kept) - 4)
    if amp != -1 and ";" not in kept[amp:]:
        kept = kept[:amp]
    if kept.count("```") % 2:
        kept += "```"
    return kept + "…"


def _link(url: str) -> str:
    """``url`` as the target of a mrkdwn link: escaped, and a ``|`` percent-encoded (Slack ends
    the target at the first ``|``, the rest becoming the link's text)."""
    return _escape(url).replace("|", "%7C")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None
