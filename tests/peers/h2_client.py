"""An HTTP/2 client for tests/http_semantics.rs: httpx with h2, over TLS (ALPN).
Sends each request given as JSON ([{"method": ..., "path": ...}, ...]) on one
client, in order, and prints one JSON line per answer:
{"method", "path", "status", "http_version", "body", "headers"}.
"""

import argparse
import json
import ssl

import httpx


def main():
    p = argparse.ArgumentParser()
    p.add_argument("base", help="https://127.0.0.1:PORT")
    p.add_argument("--ca", required=True)
    p.add_argument("requests", help="JSON list of {method, path}")
    args = p.parse_args()
    ctx = ssl.create_default_context(cafile=args.ca)
    # trust_env=False: no proxy from the environment; everything is loopback.
    with httpx.Client(http2=True, verify=ctx, trust_env=False, timeout=10) as c:
        for r in json.loads(args.requests):
            resp = c.request(r["method"], args.base + r["path"])
            print(
                json.dumps(
                    {
                        "method": r["method"],
                        "path": r["path"],
                        "status": resp.status_code,
                        "http_version": resp.http_version,
                        "body": resp.content.decode("utf-8", "replace"),
                        "headers": dict(resp.headers),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
