"""Sending one alert to one channel: a webhook (generic JSON), a Slack-compatible webhook
(`{"text": ...}`) or e-mail over SMTP.

Webhook targets are admin configuration (like hooks), so loopback and private addresses are
allowed; still, every send has a time limit, redirects are never followed (a 3xx is a
failure), at most `ANSWER_LIMIT` bytes of an answer are read, and errors never repeat the
URL, whose path or query often is the credential.

E-mail goes through the standard library's `smtplib` in a thread: alerts are rare, so a
thread per message costs nothing worth a dependency, and `smtplib` speaks STARTTLS, implicit
TLS and AUTH. The server's certificate is verified against the system's trust store
(`SSL_CERT_FILE` names another).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import aiohttp
import orjson

from irisgate import __version__
from irisgate.config.model import AlertChannel, SmtpServer

#: the most bytes of a webhook's answer read (for the error message)
ANSWER_LIMIT = 2048
#: a webhook's whole exchange must end within this many seconds
WEBHOOK_TIMEOUT = 10.0


class DeliveryFailed(Exception):
    """The channel did not take the alert; `str()` is safe to store and show."""


def payload(alert: dict[str, Any]) -> dict[str, Any]:
    """The generic webhook's JSON body."""
    raised = alert["raised_at"]
    return {
        "source": "irisgate",
        "version": __version__,
        "alert": {
            "id": alert["id"],
            "kind": alert["kind"],
            "subject": alert["subject"],
            "threshold": alert["threshold"] or None,
            "severity": alert["severity"],
            "message": alert["message"],
            "user": alert["login_name"] or None,
            "raised_at": _iso(raised),
        },
    }


def text_of(alert: dict[str, Any]) -> str:
    """The one-line text of Slack messages and e-mail subjects."""
    return f"[irisgate {alert['severity']}] {alert['message']}"


async def send(
    channel: AlertChannel,
    alert: dict[str, Any],
    *,
    http: aiohttp.ClientSession,
    smtp: SmtpServer | None,
) -> None:
    """Deliver `alert` through `channel`; raises DeliveryFailed saying why not."""
    if channel.type == "email":
        if smtp is None:
            raise DeliveryFailed("no alerts.smtp server is configured")
        await asyncio.to_thread(_mail, smtp, channel.to, alert)
        return
    url = channel.url.value if channel.url is not None else None
    if not url:
        raise DeliveryFailed(f"the channel's url ({_ref(channel)}) has no value")
    body = {"text": text_of(alert)} if channel.type == "slack" else payload(alert)
    await _post(http, url, body)


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
    try:
        async with http.post(
            url,
            data=orjson.dumps(body),
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"irisgate/{__version__}",
            },
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT),
        ) as answer:
            text = await answer.content.read(ANSWER_LIMIT)
            if 300 <= answer.status < 400:
                raise DeliveryFailed(
                    f"the webhook answered {answer.status} (redirects are not followed)"
                )
            if answer.status >= 400:
                excerpt = text.decode("utf-8", "replace").strip()[:200]
                raise DeliveryFailed(f"the webhook answered {answer.status}: {excerpt}")
    except aiohttp.ClientConnectorError as exc:
        where = f"{exc.host}:{exc.port}"
        raise DeliveryFailed(f"cannot connect to the webhook's host {where}") from None
    except TimeoutError:
        raise DeliveryFailed(f"the webhook did not answer within {WEBHOOK_TIMEOUT:g} s") from None
    except aiohttp.ClientError as exc:
        raise DeliveryFailed(f"the webhook call failed: {type(exc).__name__}") from None


def _mail(smtp: SmtpServer, to: tuple[str, ...], alert: dict[str, Any]) -> None:
    """In a thread: send one message (STARTTLS or TLS per `smtp.security`, AUTH when a
    username is set)."""
    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = ", ".join(to)
    message["Subject"] = text_of(alert)[:200]
    message.set_content(_mail_body(alert))
    context = ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if smtp.security == "tls":
            client = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=context)
            if smtp.username:
                client.login(smtp.username, smtp.password.value or "")
            client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryFailed(f"the SMTP server refused the login: {exc.smtp_code}") from None
    except smtplib.SMTPNotSupportedError:
        raise DeliveryFailed("the SMTP server does not offer STARTTLS") from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryFailed(f"the SMTP server answered {exc.smtp_code}") from None
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryFailed("the SMTP server refused every recipient") from None
    except ssl.SSLError as exc:
        raise DeliveryFailed(f"TLS with the SMTP server failed: {exc.reason}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(
            f"sending mail through {smtp.host}:{smtp.port} failed: {type(exc).__name__}"
        ) from None


def _mail_body(alert: dict[str, Any]) -> str:
    lines = [
        alert["message"],
        "",
        f"kind: {alert['kind']}",
        f"subject: {alert['subject']}",
        f"severity: {alert['severity']}",
        f"raised at: {_iso(alert['raised_at'])}",
    ]
    if alert["login_name"]:
        lines.append(f"user: {alert['login_name']}")
    return "\n".join(lines) + "\n"


def _ref(channel: AlertChannel) -> str:
    """What names the URL without showing it: the reference, or "the literal URL"."""
    if channel.url is None or channel.url.is_literal:
        return "the literal URL"
    return channel.url.ref


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
