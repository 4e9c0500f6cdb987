"""A WebSocket client for tests/websocket.rs: the `websockets` library's client.
Runs one scenario against URL (ws:// or wss://) and prints one JSON line per step.

- `echo`: a text and a binary message and a 1 MiB binary message, each echoed
  back unchanged (`{"step": ..., "ok": bool, ...}`), then the client closes with
  1000 `client done` (`{"step": "close", "code": ..., "reason": ...}`).
- `origin_closes`: sends `bye` and waits for the origin's close frame
  (`{"step": "closed_by_origin", "code": ..., "reason": ...}`).
Connecting itself prints `{"step": "open", "status": 101, "headers": {...}}`.
"""

import argparse
import asyncio
import hashlib
import json
import os
import ssl

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

MAX = 4 << 20


def emit(**kw):
    print(json.dumps(kw), flush=True)


async def roundtrip(ws, step, message):
    await ws.send(message)
    back = await asyncio.wait_for(ws.recv(), 10)
    emit(
        step=step,
        ok=back == message,
        kind=type(back).__name__,
        size=len(back),
        sha256=hashlib.sha256(back if isinstance(back, bytes) else back.encode()).hexdigest(),
    )


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("scenario", choices=["echo", "origin_closes"])
    p.add_argument("--ca")
    p.add_argument("--name", default="localhost")
    args = p.parse_args()
    extra = {}
    if args.ca:
        ctx = ssl.create_default_context(cafile=args.ca)
        extra = {"ssl": ctx, "server_hostname": args.name}
    async with connect(args.url, max_size=MAX, open_timeout=10, close_timeout=5, proxy=None, **extra) as ws:
        r = ws.response
        emit(step="open", status=r.status_code, headers={k.lower(): v for k, v in r.headers.raw_items()})
        if args.scenario == "echo":
            await roundtrip(ws, "text", "héllo, origin")
            await roundtrip(ws, "binary", bytes(range(256)))
            await roundtrip(ws, "large", os.urandom(1 << 20))
            await ws.close(1000, "client done")
            emit(step="close", code=ws.close_code, reason=ws.close_reason)
        else:
            await ws.send("bye")
            try:
                extra_msg = await asyncio.wait_for(ws.recv(), 10)
                emit(step="unexpected_message", message=str(extra_msg))
            except ConnectionClosed as e:
                frame = e.rcvd
                emit(
                    step="closed_by_origin",
                    code=frame.code if frame else None,
                    reason=frame.reason if frame else None,
                )


if __name__ == "__main__":
    asyncio.run(main())
