"""One observation of the alert rules: raise this alert, or clear it (the condition ended)."""

from __future__ import annotations

from dataclasses import dataclass

#: the longest message kept (it names a bucket, provider or error text)
MESSAGE_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Signal:
    """`active`: the condition holds (raise, unless raised and not cleared since); else it
    ended (clear, so that the next time it holds raises again). `login_name`: the user the
    alert concerns ("" for the gateway's own alerts, which only admins see)."""

    kind: str
    subject: str
    threshold: str = ""
    active: bool = True
    severity: str = "warning"
    message: str = ""
    login_name: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.subject, self.threshold)

    def cleared(self) -> Signal:
        return Signal(self.kind, self.subject, self.threshold, active=False)


def bounded(text: str) -> str:
    """`text` cut to MESSAGE_LIMIT characters."""
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
