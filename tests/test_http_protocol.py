"""`hub serve`'s HTTP protocol: an answer leaves in one write, and nothing else changes.

Served by a real uvicorn on a socket and read with a raw one, so what is checked is what a
sender sees: the bytes, their order, keep-alive, pipelining, streaming and close."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as StockProtocol

from hub.runtime.http_protocol import CoalescingTransport, HttpToolsProtocol
from tests.serving import uvicorn_thread

BODY = b'{"event_id":"evt_1","duplicate":false}'
released = threading.Event()  # the streaming route's second chunk waits for it


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first;", "more_body": True})
        # Sent only once the client has read the first chunk: held back, it never would be.
        await asyncio.get_running_loop().run_in_executor(None, released.wait, 10)
        await send({"type": "http.response.body", "body": b"second"})
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


class _Recorder:
    """The socket's transport as the protocol sees it, with every write recorded."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HubRecorded(HttpToolsProtocol):
    writes: ClassVar[list[bytes]] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Recorder(transport, self.writes))  # type: ignore[arg-type]


class StockRecorded(StockProtocol):
    writes: ClassVar[list[bytes]] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Recorder(transport, self.writes))  # type: ignore[arg-type]


@contextmanager
def connected(protocol: type[asyncio.Protocol] = HttpToolsProtocol) -> Iterator[socket.socket]:
    with (
        uvicorn_thread(app, http=protocol) as port,
        socket.create_connection(("127.0.0.1", port), 5) as conn,
    ):
        yield conn


def request(path: str = "/", *, close: bool = False) -> bytes:
    connection = b"connection: close\r\n" if close else b""
    return b"POST %s HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n%s\r\n{}" % (
        path.encode(),
        connection,
    )


def read_until(conn: socket.socket, data: bytes, count: int = 1) -> bytes:
    got = b""
    while got.count(data) < count:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed after {got!r}"
        got += chunk
    return got


@pytest.mark.parametrize(("protocol", "writes_per_answer"), [(HubRecorded, 1), (StockRecorded, 2)])
def test_an_answer_is_one_write(protocol: Any, writes_per_answer: int) -> None:
    """Stock uvicorn writes head and body apart (the case this protocol exists for)."""
    protocol.writes.clear()
    with connected(protocol) as conn:
        for _ in range(3):
            conn.sendall(request())
            answer = read_until(conn, BODY)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
            assert answer.endswith(b"\r\n\r\n" + BODY)
        assert len(protocol.writes) == 3 * writes_per_answer
        assert b"".join(protocol.writes).count(BODY) == 3


def test_pipelined_requests_are_answered_in_order() -> None:
    with connected() as c:
        c.sendall(request("/a") + request("/b") + request("/c", close=True))
        answers = b""
        while chunk := c.recv(65536):  # the server closes after the third
            answers += chunk
    assert answers.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert answers.endswith(BODY)
    assert answers.count(BODY) == 3


def test_connection_close_sends_the_answer_before_closing() -> None:
    with connected() as c:
        c.sendall(request(close=True))
        answer = b""
        while chunk := c.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in answer
    assert answer.endswith(BODY)


def test_a_stream_goes_out_as_it_is_sent() -> None:
    released.clear()
    with connected() as c:
        c.sendall(request("/stream"))
        first = read_until(c, b"first;")  # times out (5 s) if the chunk were held back
        released.set()
        rest = read_until(c, b"0\r\n\r\n")
    assert b"transfer-encoding: chunked" in first
    assert (first + rest).endswith(b"6\r\nsecond\r\n0\r\n\r\n")


def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    """curl sends `Expect: 100-continue` with larger bodies and waits for the interim answer
    (about a second) before sending the body: the interim answer must not be held back."""
    with connected() as c:
        c.sendall(
            b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n"
        )
        interim = read_until(c, b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.sendall(b"{}")
        answer = read_until(c, BODY)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")


class FakeTransport:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def coalescing() -> tuple[CoalescingTransport, FakeTransport]:
    fake = FakeTransport()
    return CoalescingTransport(fake, asyncio.get_running_loop()), fake  # type: ignore[arg-type]


def test_writes_of_one_turn_go_as_one() -> None:
    asyncio.run(_test_writes_of_one_turn_go_as_one())


async def _test_writes_of_one_turn_go_as_one() -> None:
    transport, fake = coalescing()
    transport.write(b"head;")
    transport.writelines([b"body", bytearray(b";more")])
    assert fake.calls == []
    assert transport.get_write_buffer_size() == 7 + len(b"head;body;more")
    await asyncio.sleep(0)
    assert fake.calls == [("write", b"head;body;more")]
    transport.write(b"next turn")
    await asyncio.sleep(0)
    assert fake.calls[1:] == [("write", b"next turn")]


def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    asyncio.run(_test_close_sends_what_is_held_first_and_abort_drops_it())


async def _test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    transport, fake = coalescing()
    transport.write(b"answer")
    transport.close()
    assert fake.calls == [("write", b"answer"), ("close", b"")]
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert len(fake.calls) == 2

    transport, fake = coalescing()
    transport.write(b"answer")
    transport.abort()
    await asyncio.sleep(0)
    assert fake.calls == [("abort", b"")]


def test_nothing_is_written_to_a_closing_transport() -> None:
    asyncio.run(_test_nothing_is_written_to_a_closing_transport())


async def _test_nothing_is_written_to_a_closing_transport() -> None:
    transport, fake = coalescing()
    transport.write(b"answer")
    fake.closing = True  # the peer went away within the turn
    await asyncio.sleep(0)
    assert fake.calls == []
    assert transport.get_extra_info("peername") == "info:peername"
