"""The local cloud's API gateway: HTTP on 127.0.0.1 -> the real darkroom-api function.

Its routes are the API's OpenAPI document's (darkroom.api.routes), as the CDK construct
deploys them. Each request becomes an API Gateway HTTP API event (payload format 2.0, the
format the construct declares) and is handed to the function through Lambda's Invoke API on the
local moto server, the same path every other function of the local cloud runs by. Like
API Gateway, the gateway itself answers a request no route matches (404), a body over
10 MB (413) and a function that failed (500), each as {"message": ...}.

Paths under /console/ (no API route's) are the local console's, answered here without
the function: it exists only in the local cloud.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from darkroom.api.routes import resolve

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API's payload limit

# event -> (payload bytes, function failed?)
Invoker = Callable[[dict[str, Any]], tuple[bytes, bool]]
# request -> its answer, or None when the path is not the handler's
Handler = Callable[[Request], Response | None]


def lambda_invoker(lambda_client: Any, function_name: str) -> Invoker:
    def invoke(event: dict[str, Any]) -> tuple[bytes, bool]:
        response = lambda_client.invoke(
            FunctionName=function_name, Payload=json.dumps(event).encode()
        )
        return response["Payload"].read(), "FunctionError" in response

    return invoke


def _gateway_error(status: int, message: str) -> Response:
    return Response(
        json.dumps({"message": message}), status=status, content_type="application/json"
    )


class LocalApiGateway:
    def __init__(
        self,
        invoke: Invoker,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_id: str = "local",
        account_id: str = "123456789012",
        console: Handler | None = None,
    ) -> None:
        self._invoke = invoke
        self._console = console
        self._host = host
        self._port = port
        self.api_id = api_id
        self._account_id = account_id
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> LocalApiGateway:
        self._server = make_server(self._host, self._port, self._wsgi, threaded=True)
        self.url = f"http://{self._host}:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-api-gateway", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- one request ------------------------------------------------------------------
    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._handle(request, environ)
        return response(environ, start_response)

    def _handle(self, request: Request, environ: dict[str, Any]) -> Response:
        answered = self._console(request) if self._console is not None else None
        if answered is not None:
            return answered
        raw_uri = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.path)
        raw_path, _, raw_query = raw_uri.partition("?")
        match = resolve(request.method, raw_path)
        route, params = match.route, match.params
        if route is None:
            return _gateway_error(404, "Not Found")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _gateway_error(413, "Request Entity Too Large")
        body = request.get_data(cache=False)
        if len(body) > MAX_BODY_BYTES:
            return _gateway_error(413, "Request Entity Too Large")
        event = self._event(request, raw_path, raw_query, route.key, params, body)
        try:
            payload, failed = self._invoke(event)
        except Exception:
            return _gateway_error(500, "Internal Server Error")
        if failed:
            return _gateway_error(500, "Internal Server Error")
        return self._response(payload)

    def _event(
        self,
        request: Request,
        raw_path: str,
        raw_query: str,
        route_key: str,
        params: dict[str, str],
        body: bytes,
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            if key == "cookie":
                continue
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        host = request.host
        headers.setdefault("host", host)
        headers["x-forwarded-proto"] = "http"
        headers["x-forwarded-for"] = request.remote_addr or "127.0.0.1"
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        now = datetime.now(UTC)
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": {
                "accountId": self._account_id,
                "apiId": self.api_id,
                "domainName": host,
                "domainPrefix": host.split(".")[0],
                "http": {
                    "method": request.method,
                    "path": raw_path,
                    "protocol": str(request.environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "userAgent": request.headers.get("user-agent", ""),
                },
                "requestId": uuid.uuid4().hex,
                "routeKey": route_key,
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(time.time() * 1000),
            },
            "isBase64Encoded": False,
        }
        cookies = request.headers.getlist("cookie")
        if cookies:
            event["cookies"] = [c.strip() for line in cookies for c in line.split(";")]
        if query:
            event["queryStringParameters"] = query
        if params:
            event["pathParameters"] = params
        if body:
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
        return event

    @staticmethod
    def _response(payload: bytes) -> Response:
        try:
            result = json.loads(payload or b"null")
        except ValueError:
            return _gateway_error(500, "Internal Server Error")
        if not isinstance(result, dict) or "statusCode" not in result:
            # Payload 2.0: anything else is a 200 with the value as its JSON body.
            return Response(json.dumps(result), status=200, content_type="application/json")
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        response = Response(data, status=int(result["statusCode"]))
        response.headers.clear()
        for name, value in (result.get("headers") or {}).items():
            response.headers[name] = str(value)
        for cookie in result.get("cookies") or []:
            response.headers.add("Set-Cookie", cookie)
        if response.headers.get("content-type") is None and data:
            response.headers["Content-Type"] = "application/json"
        return response
