"""`FakeSmtp`: a real SMTP server (aiosmtpd) that requires STARTTLS and AUTH, and keeps
the messages it accepted.

    with FakeSmtp(certificate, username="irisgate", password="s3cret") as smtp:
        smtp.port                      # on 127.0.0.1
        smtp.wait_for(lambda: smtp.messages)
        message = smtp.messages[0]     # .mail_from, .rcpt_tos, .content, .login, .tls

`certificate` is an `irisgate.testing.tls.Certificate`; clients trust it through its
`cert.pem` (`SSL_CERT_FILE` for the standard library's default context). Needs the `test`
extra (aiosmtpd).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from typing import Any

from irisgate.testing.fake_server import WAIT_S, wait_until
from irisgate.testing.lifecycle import StartStop
from irisgate.testing.tls import Certificate


@dataclass(frozen=True, slots=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    login: str  # who authenticated
    tls: bool  # whether the session had switched to TLS

    @property
    def message(self) -> Message:
        return message_from_bytes(self.content)


class FakeSmtp(StartStop):
    def __init__(self, certificate: Certificate, *, username: str, password: str) -> None:
        self._certificate = certificate
        self._username = username
        self._password = password
        self._lock = threading.Lock()
        self.messages: list[Received] = []
        self.refused_logins = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None

    def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
        return wait_until(predicate, timeout)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self._username
            and auth_data.password.decode() == self._password
        )
        if not ok:
            with self._lock:
                self.refused_logins += 1
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        login = session.auth_data.login.decode() if session.auth_data else ""
        with self._lock:
            self.messages.append(
                Received(
                    envelope.mail_from,
                    tuple(envelope.rcpt_tos),
                    bytes(envelope.original_content or envelope.content),
                    login,
                    session.ssl is not None,
                )
            )
        return "250 Message accepted"

    def start(self) -> int:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="FakeSmtp", daemon=True
        )
        self._thread.start()
        ready.wait(60)
        if not self.port:
            raise RuntimeError("FakeSmtp failed to start")
        return self.port

    def _run(self, ready: threading.Event) -> None:
        from aiosmtpd.smtp import SMTP

        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        context = self._certificate.server_context()

        def factory() -> SMTP:
            return SMTP(
                self,
                hostname="fake-smtp.test",
                tls_context=context,
                require_starttls=True,
                authenticator=self._authenticate,
                auth_require_tls=True,
                auth_required=True,
            )

        self._server = loop.run_until_complete(loop.create_server(factory, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None
