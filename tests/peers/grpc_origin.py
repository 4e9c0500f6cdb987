"""A gRPC origin for tests/grpc.rs: grpcio's own server (C-core HTTP/2), no
generated code. Service `meridian.test.Echo`:

- `Echo` (unary): answers `echo:` + the request, with the trailing metadata
  `x-echo-trailer: done` and initial metadata echoing the request's
  `x-forwarded-for` (so the test sees what the gateway added).
- `Count` (server streaming): the request is a decimal N; answers `item-0` ..
  `item-(N-1)`, then trailing metadata `x-count: N`.
- `Fail` (unary): aborts with PERMISSION_DENIED, details `denied by origin`.

Serves cleartext HTTP/2 (h2c) or, with --cert/--key, HTTP/2 over TLS (ALPN h2).
Prints `{"port": N}` once listening, then runs until killed (stdin closing also
stops it, so a crashed test does not leave it behind).
"""

import argparse
import json
import sys
import threading
from concurrent import futures

import grpc

SERVICE = "meridian.test.Echo"


def metadata(context):
    return {k: v for k, v in context.invocation_metadata()}


def echo(request, context):
    xff = metadata(context).get("x-forwarded-for", "")
    context.send_initial_metadata((("x-seen-forwarded-for", xff),))
    context.set_trailing_metadata((("x-echo-trailer", "done"),))
    return b"echo:" + request


def count(request, context):
    n = int(request.decode())
    for i in range(n):
        yield f"item-{i}".encode()
    context.set_trailing_metadata((("x-count", str(n)),))


def fail(request, context):
    context.abort(grpc.StatusCode.PERMISSION_DENIED, "denied by origin")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert")
    p.add_argument("--key")
    args = p.parse_args()
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, handlers),)
    )
    if args.cert:
        with open(args.cert, "rb") as c, open(args.key, "rb") as k:
            creds = grpc.ssl_server_credentials(((k.read(), c.read()),))
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"port": port}), flush=True)
    # Stop when the test closes our stdin (or dies): no orphan servers.
    threading.Thread(target=lambda: (sys.stdin.read(), server.stop(0)), daemon=True).start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
