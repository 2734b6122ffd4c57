"""The tee: the relayed answer's bytes kept for usage parsing and capture, in bounded memory.

The client gets every byte as it arrives (relay.py); the tee keeps a copy for after the
answer. Up to `limit` bytes (`--max-capture-body`) it keeps everything, and an answer that
fits is read exactly as before. Past it the tee keeps the first `limit` bytes (the *head*,
stored with a marker saying how much was cut) and a rolling *tail* of the last `TAIL` bytes,
where the upstreams put what accounting needs from a long answer: the final usage event of a
stream, the `usage` member at the end of a JSON body. What lies between is never held, so a
200 MiB answer costs about `limit + TAIL` bytes of memory, however it is framed.
"""

from __future__ import annotations

from collections import deque

#: bytes kept from the end of an answer larger than the limit
TAIL = 1 << 20


class Tee:
    __slots__ = ("_head", "_head_size", "_tail", "_tail_size", "limit", "size", "tail_limit")

    def __init__(self, limit: int, tail_limit: int = TAIL) -> None:
        self.limit = limit
        self.tail_limit = tail_limit
        self.size = 0  # every byte seen, kept or not
        self._head: list[bytes] = []
        self._head_size = 0
        self._tail: deque[bytes] = deque()
        self._tail_size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        room = self.limit - self._head_size
        if room > 0:
            if len(chunk) <= room:
                self._head.append(chunk)
                self._head_size += len(chunk)
                return
            self._head.append(chunk[:room])
            self._head_size = self.limit
            chunk = chunk[room:]
        if not self.tail_limit:  # a head only (connectors keep no tail)
            return
        tail = self._tail
        tail.append(chunk)
        self._tail_size += len(chunk)
        while len(tail) > 1 and self._tail_size - len(tail[0]) >= self.tail_limit:
            self._tail_size -= len(tail.popleft())
        if len(tail) == 1 and self._tail_size > 2 * self.tail_limit:  # one huge piece
            tail[0] = tail[0][-self.tail_limit :]
            self._tail_size = len(tail[0])

    @property
    def truncated(self) -> bool:
        """More bytes passed than the limit: only the head and the tail are kept."""
        return self.size > self.limit

    def head(self) -> bytes:
        """Everything, when not truncated; else the first `limit` bytes."""
        head = self._head
        return head[0] if len(head) == 1 else b"".join(head)

    def tail(self) -> bytes:
        """The last bytes (at most about `tail_limit`) of a truncated answer; b"" otherwise."""
        return b"".join(self._tail)

    def stored(self) -> bytes:
        """What capture keeps: the whole answer, or its head followed by `marker`."""
        head = self.head()
        return head + marker(self.size, self.limit) if self.truncated else head


def marker(size: int | None, kept: int) -> bytes:
    """Appended to a stored body that was cut: says so, and how much there was (None: not
    known, for a compressed answer that inflated past the limit)."""
    was = f"{size} bytes" if size is not None else "larger"
    return (
        f"\n[irisgate: truncated; the body was {was}, the first {kept} bytes are stored"
        " (--max-capture-body)]"
    ).encode()
