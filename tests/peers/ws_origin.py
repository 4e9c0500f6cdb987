"""A WebSocket origin for tests/websocket.rs: the `websockets` library's server.

- `GET /health` without an upgrade answers 200 `{"status": "healthy"}` (the
  gateway's probes).
- `/echo`: sends every message back as it came (text as text, binary as binary).
- `/origin-closes`: echoes, and on the text `bye` closes with 4001 `origin closes`.

Prints `{"port": N}` once listening, and one JSON line per finished connection:
`{"event": "closed", "path": ..., "code": ..., "reason": ..., "received": N,
"forwarded_for": ...}` (`code` is what the client sent in its close frame, or
what the origin sent when it closed first). Runs until stdin closes.
"""

import asyncio
import json
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response
from websockets.datastructures import Headers

MAX = 4 << 20


def health(connection, request):
    if request.path == "/health":
        body = b'{"status": "healthy"}'
        return Response(200, "OK", Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))]), body)
    return None


async def handler(ws):
    path = ws.request.path
    received = 0
    try:
        async for message in ws:
            received += 1
            if path == "/origin-closes" and message == "bye":
                await ws.close(4001, "origin closes")
                break
            await ws.send(message)
    except ConnectionClosed:
        pass
    await ws.wait_closed()
    proto = ws.protocol
    client_first = bool(proto.close_rcvd_then_sent)
    # The frame that started the closing handshake: the client's or ours.
    frame = proto.close_rcvd if client_first else (proto.close_sent or proto.close_rcvd)
    print(
        json.dumps(
            {
                "event": "closed",
                "path": path,
                "code": frame.code if frame else None,
                "reason": frame.reason if frame else None,
                "client_closed_first": client_first,
                "received": received,
                "forwarded_for": ws.request.headers.get("X-Forwarded-For"),
            }
        ),
        flush=True,
    )


async def main():
    async with serve(handler, "127.0.0.1", 0, process_request=health, max_size=MAX) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        # Until the test closes our stdin (or dies): no orphan servers.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
