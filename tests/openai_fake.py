"""A reusable fake OpenAI-compatible chat server for offline tests (real HTTP on 127.0.0.1, ephemeral port).

It stands in where a real server cannot produce a behaviour on demand (429 and 500 storms, Retry-After, slow
replies, proxy error pages); `tests/llm_server.py` runs the real llama-cpp-python server for everything else.

Usage:
    def responder(request_json, hit_index):          # -> Reply or (status, body, headers, delay_s)
        return ok('{"medical": true, ...}')
    with FakeOpenAIServer(responder) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="...")
        ...
        assert server.hits == 1 and server.authorization_headers() == {"Bearer ..."}

`ScriptedResponder` scripts replies per marker string found in the last message (the n-th request for a
marker gets the n-th reply, the last reply repeats). The server counts hits, records each request's path,
headers and JSON body, measures the most requests in flight at once, and turns responder exceptions into
500 replies listed in `responder_errors`. Delays wake up early when the server shuts down.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | list[Any] | str | bytes | None = None  # dict/list -> JSON, str -> text/plain
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


Responder = Callable[[dict[str, Any], int], "Reply | tuple[Any, ...]"]


def completion(
    content: str | None,
    *,
    model: str = "fake-model",
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """The JSON body of a chat completion with one choice."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "logprobs": None,
                "message": {"role": "assistant", "content": content},
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def ok(content: str | None, delay_s: float = 0.0, **usage: Any) -> Reply:
    return Reply(200, completion(content, **usage), delay_s=delay_s)


def fail(
    status: int, message: str = "fake failure", headers: dict[str, str] | None = None, delay_s: float = 0.0
) -> Reply:
    """An error reply in the OpenAI error format."""
    return Reply(
        status, {"error": {"message": message, "type": "fake_error", "code": status}}, dict(headers or {}), delay_s
    )


def as_reply(value: Reply | tuple[Any, ...]) -> Reply:
    """Accept a Reply or a tuple (status, body[, headers[, delay_s]])."""
    return value if isinstance(value, Reply) else Reply(*value)


def last_message_text(request_json: dict[str, Any]) -> str:
    messages = request_json.get("messages") or [{}]
    content = messages[-1].get("content") or ""
    return content if isinstance(content, str) else json.dumps(content)


class ScriptedResponder:
    """Replies chosen by the first script marker that occurs in the last message; `hits` counts per marker."""

    def __init__(self, script: Mapping[str, Sequence[Reply | tuple[Any, ...]]], default: Reply | None = None) -> None:
        if any(not replies for replies in script.values()):
            raise ValueError("every marker needs at least one reply")
        self.script = {marker: [as_reply(r) for r in replies] for marker, replies in script.items()}
        self.default = default
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, request_json: dict[str, Any], hit_index: int) -> Reply:
        text = last_message_text(request_json)
        marker = next((m for m in self.script if m in text), None)
        if marker is None:
            if self.default is None:
                raise LookupError(f"no script marker in request: {text[:200]!r}")
            return self.default
        with self._lock:
            self.hits[marker] += 1
            n = self.hits[marker]
        replies = self.script[marker]
        return replies[min(n, len(replies)) - 1]


@dataclass
class RecordedRequest:
    hit_index: int
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any
    received_at: float  # time.monotonic() when the request arrived


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many clients connecting at once must not be refused


class FakeOpenAIServer:
    """Fake endpoint: POST .../chat/completions goes to the responder, GET .../models lists one model."""

    def __init__(self, responder: Responder | None = None, models: Sequence[str] | None = None) -> None:
        self.responder = responder or (lambda request, hit: ok("fake reply"))
        # None: serve any name, like llama-cpp-python (it echoes the requested model); GET /models is then 404,
        # so clients check the reply's model. A list: GET /models lists exactly these.
        self.models = list(models) if models is not None else None
        self.requests: list[RecordedRequest] = []
        self.responder_errors: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-openai", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def hits(self) -> int:
        """POST requests received (GET requests are recorded but not counted)."""
        with self._lock:
            return sum(r.method == "POST" for r in self.requests)

    def authorization_headers(self) -> set[str]:
        """Distinct Authorization headers of the POST requests ('' where one had none)."""
        with self._lock:
            return {r.headers.get("authorization", "") for r in self.requests if r.method == "POST"}

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()  # wake delayed handlers first
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(self, method: str, path: str, headers: Mapping[str, str], body: Any) -> int:
        with self._lock:
            index = sum(r.method == "POST" for r in self.requests) if method == "POST" else -1
            self.requests.append(
                RecordedRequest(index, method, path, {k.lower(): v for k, v in headers.items()}, body, time.monotonic())
            )
            return index

    def _answer(self, body: Any, hit_index: int) -> Reply:
        try:
            return as_reply(self.responder(body, hit_index))
        except Exception:  # noqa: BLE001 - report to the test instead of killing the handler thread
            self.responder_errors.append(traceback.format_exc())
            return fail(500, "responder raised")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _send(self, reply: Reply) -> None:
                body = reply.body
                ctype = "application/json"
                if isinstance(body, dict | list):
                    data = json.dumps(body).encode()
                elif isinstance(body, str):
                    data, ctype = body.encode(), "text/plain; charset=utf-8"
                else:
                    data, ctype = body or b"", "application/octet-stream"
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": ctype, **reply.headers, "Content-Length": str(len(data))}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout); nothing to tell it

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                server._record("GET", self.path, self.headers, None)
                if self.path.rstrip("/").endswith("/models") and server.models is not None:
                    self._send(
                        Reply(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})
                    )
                else:
                    self._send(fail(404, f"no route {self.path}"))

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"null")
                except json.JSONDecodeError:
                    body = raw.decode(errors="replace")
                hit = server._record("POST", self.path, self.headers, body)
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = (
                        server._answer(body, hit)
                        if isinstance(body, dict)
                        else fail(400, "request body is not a JSON object")
                    )
                    if (
                        isinstance(reply.body, dict)
                        and reply.body.get("model") == "fake-model"
                        and isinstance(body, dict)
                        and body.get("model")
                    ):
                        reply = Reply(
                            reply.status, {**reply.body, "model": body["model"]}, reply.headers, reply.delay_s
                        )  # echo the requested name, as llama-cpp-python does
                    if reply.delay_s:
                        server._stopping.wait(reply.delay_s)
                    self._send(reply)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        return Handler
