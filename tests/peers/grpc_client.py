"""A gRPC client for tests/grpc.rs: grpcio over TLS (HTTP/2, ALPN h2) to the
gateway. Runs the calls given as JSON on the command line, one after another on
one channel, and prints one JSON line per call:

  {"call": ..., "code": "OK", "details": ..., "messages": [...],
   "initial": {...}, "trailers": {...}, "elapsed": seconds}

Calls: {"method": "Echo"|"Count"|"Fail", "request": "text", "deadline": seconds}.
"""

import argparse
import json
import time

import grpc

SERVICE = "/meridian.test.Echo/"


def as_dict(md):
    return {k: v for k, v in (md or ())}


def run(channel, call):
    method = call["method"]
    request = call.get("request", "").encode()
    deadline = call.get("deadline", 10)
    started = time.monotonic()
    out = {"call": call, "messages": [], "initial": {}, "trailers": {}}
    try:
        if method == "Count":
            stub = channel.unary_stream(SERVICE + method)
            it = stub(request, timeout=deadline)
            for m in it:
                out["messages"].append(m.decode())
            out["initial"] = as_dict(it.initial_metadata())
            out["trailers"] = as_dict(it.trailing_metadata())
            out["code"] = it.code().name
            out["details"] = it.details()
        else:
            stub = channel.unary_unary(SERVICE + method)
            resp, c = stub.with_call(request, timeout=deadline)
            out["messages"].append(resp.decode())
            out["initial"] = as_dict(c.initial_metadata())
            out["trailers"] = as_dict(c.trailing_metadata())
            out["code"] = c.code().name
            out["details"] = c.details()
    except grpc.RpcError as e:
        out["code"] = e.code().name
        out["details"] = e.details()
        out["trailers"] = as_dict(e.trailing_metadata())
    out["elapsed"] = time.monotonic() - started
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True, help="host:port of the gateway")
    p.add_argument("--ca", help="CA certificate (PEM); absent = cleartext h2c")
    p.add_argument("--name", default="localhost", help="TLS name to expect")
    p.add_argument("calls", help="JSON list of calls")
    args = p.parse_args()
    # Never through an http_proxy from the environment: everything is loopback.
    options = [("grpc.enable_http_proxy", 0)]
    if args.ca:
        with open(args.ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(f.read())
        options.append(("grpc.ssl_target_name_override", args.name))
        channel = grpc.secure_channel(args.target, creds, options=options)
    else:
        channel = grpc.insecure_channel(args.target, options=options)
    with channel:
        for call in json.loads(args.calls):
            print(json.dumps(run(channel, call)), flush=True)


if __name__ == "__main__":
    main()
