"""How the emulated HTTP API writes a response: buffered bodies in one write, streamed bodies chunk by chunk."""

from __future__ import annotations

import http.client
import io
from collections.abc import Iterator

from ctxgate_local.http_api import LocalResponse, from_result, write_response

SERVER_HEADERS = {"server": "ctxgate-local", "date": "Sun, 22 Nov 2026 05:00:00 GMT"}


class RecordingWriter:
    """An unbuffered socket writer stand-in: each ``write`` would be one send."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)


class _ReadableSocket:
    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)

    def makefile(self, mode: str) -> io.BytesIO:
        return self._file


def parse(data: bytes) -> http.client.HTTPResponse:
    """Read ``data`` back with the standard library's HTTP client parser."""
    response = http.client.HTTPResponse(_ReadableSocket(data))  # type: ignore[arg-type]
    response.begin()
    return response


def test_a_buffered_lambda_result_is_sent_in_one_write():
    writer = RecordingWriter()
    result = {"statusCode": 201, "headers": {"Content-Type": "application/json"}, "body": '{"id": "s1"}'}
    write_response(writer, from_result(result), SERVER_HEADERS)
    assert len(writer.writes) == 1
    response = parse(writer.writes[0])
    assert response.status == 201 and response.getheader("content-type") == "application/json"
    assert response.getheader("content-length") == "12" and response.read() == b'{"id": "s1"}'


def test_framing_headers_of_a_lambda_result_are_replaced_by_the_servers_own():
    writer = RecordingWriter()
    result = {"statusCode": 200, "headers": {"Content-Length": "999", "Transfer-Encoding": "chunked"}, "body": "ok"}
    write_response(writer, from_result(result), SERVER_HEADERS)
    response = parse(writer.writes[0])
    assert response.getheader("content-length") == "2" and response.getheader("transfer-encoding") is None
    assert response.read() == b"ok"


def test_a_streamed_body_is_chunked_and_each_chunk_is_written_before_the_next_is_produced():
    writer = RecordingWriter()

    def events() -> Iterator[bytes]:
        yield b"data: 1\n\n"
        assert writer.writes[-1] == b"9\r\ndata: 1\n\n\r\n", "the first chunk left before the second exists"
        yield b""  # nothing to send yet: must not end the body early
        yield b"data: [DONE]\n\n"

    write_response(writer, LocalResponse(200, {"content-type": "text/event-stream"}, events()), SERVER_HEADERS)
    assert len(writer.writes) == 4  # head, two chunks, the terminating chunk
    response = parse(b"".join(writer.writes))
    assert response.getheader("transfer-encoding") == "chunked" and response.getheader("content-length") is None
    assert response.read() == b"data: 1\n\ndata: [DONE]\n\n"
