"""An OTLP/HTTP trace collector stand-in, for tests that export spans over real HTTP.

A ``ThreadingHTTPServer`` on 127.0.0.1 that accepts ``POST /v1/traces`` with
an ``ExportTraceServiceRequest`` (protobuf, optionally gzip) and keeps every
request, parsed with OpenTelemetry's own OTLP message types. Test modules
import it explicitly.
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class Collector:
    """An OTLP/HTTP trace receiver: POST /v1/traces with an ExportTraceServiceRequest."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                ok = self.path == "/v1/traces"
                if ok and self.headers["Content-Type"] == "application/x-protobuf":
                    message = ExportTraceServiceRequest()
                    message.ParseFromString(body)
                    received.append(message)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def spans(self) -> list[tuple[str, Any]]:
        """(service.name, span) for every span received."""
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                for scope_spans in resource_spans.scope_spans:
                    found += [(attributes["service.name"], s) for s in scope_spans.spans]
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
