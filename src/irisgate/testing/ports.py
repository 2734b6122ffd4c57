"""Loopback ports for test servers, without the race of "find a free port, close it, bind later".

A port found by binding port 0 and closing the socket is free only until someone else takes
it: on a busy machine the kernel soon hands the same number out again, most often as the
local end of an outgoing connection, and the server that meant to bind it fails with
"Address already in use". Two ways around it:

- Let the server bind port 0 itself and say which port it got (irisgate's `--port-file`,
  aiohttp's and uvicorn's bound sockets). Prefer this.
- Where a port must be known before the server starts, or stay the same across a restart,
  *reserve* it: `reserve_port()` keeps a socket bound to it (with SO_REUSEADDR, never
  listening) for as long as the test process lives. While it is held the kernel gives that
  port to no other socket (neither to port-0 binds nor to outgoing connections), a
  connection to it is refused until a server listens there, and a server that sets
  SO_REUSEADDR on its listening socket (uvicorn, aiohttp, werkzeug and `http.server` do)
  can bind it, again and again.
"""

from __future__ import annotations

import socket
import threading

_held: list[Reservation] = []
_lock = threading.Lock()


class Reservation:
    """Holds `port` on `host` (0: one the system picks) until `release()`. Raises OSError
    when a socket that does not share the port holds it, or a server listens on it."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.host = host
        self.port: int = sock.getsockname()[1]

    def release(self) -> None:
        self._sock.close()


def reserve_port(port: int = 0, host: str = "127.0.0.1") -> int:
    """Reserve `port` on `host` (0: one the system picks) for the rest of the process; returns
    it. Raises OSError as `Reservation` does."""
    reservation = Reservation(port, host)
    with _lock:
        _held.append(reservation)
    return reservation.port
