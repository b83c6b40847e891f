"""uvicorn's httptools protocol with one write per answer instead of two.

uvicorn writes a response's status line and headers when the app sends
`http.response.start`, and the body when it sends `http.response.body`: two `send` calls
on the socket for every webhook answered. On loopback or a LAN each one runs the kernel's
TCP path (and, on loopback, the receiver's too) in the API's own time, and the second one
wakes the client again for the rest of the same answer. Here a connection's writes made
within one turn of the event loop go to the socket as one: the ASGI app sends its start
and its body without yielding in between, so a whole answer leaves in one segment.
Streaming answers (several bodies across turns) still go out turn by turn.

A string for uvicorn's `http=` setting (`hub serve` and `uvicorn --http
hub.runtime.http_protocol:HttpToolsProtocol`)."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base

IMPORT_PATH = "hub.runtime.http_protocol:HttpToolsProtocol"


class CoalescingTransport:
    """A transport whose writes wait for the end of the loop's current turn, then go as one.

    Everything but writing is the real transport's: closing sends what is held first,
    aborting drops it (the connection is being torn down)."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._held: list[bytes] | None = None
        self._loop = loop

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is None:
            self._held = [bytes(data)]
            self._loop.call_soon(self._flush)
        else:
            self._held.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        held = sum(len(b) for b in self._held) if self._held else 0
        return held + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        # Reading, flow control, extra info, set_protocol: the real transport's own.
        return getattr(self._transport, name)


class HttpToolsProtocol(_Base):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing = CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)  # type: ignore[arg-type]
