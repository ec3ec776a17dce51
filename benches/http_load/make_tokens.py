#!/usr/bin/env python3
"""Create COUNT distinct tokens through a running `tessera serve`, for the HTTP load benchmark.

    python3 make_tokens.py --url http://127.0.0.1:8080 --admin-token-file admin.txt \
        --count 10000 --out tokens.txt [--workers 8] [--prefix load]

Each token is a `POST /v1/tokens` with the super-admin token: name PREFIX-N, 30 days, super-admin.
The tokens go to OUT, one a line, in the order of N. Standard library only; each worker keeps
one HTTP/1.1 connection open.
"""

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--admin-token-file", required=True)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--prefix", default="load")
    args = parser.parse_args()

    url = urllib.parse.urlsplit(args.url)
    with open(args.admin_token_file, encoding="ascii") as f:
        admin = f.read().strip()
    tokens: list = [None] * args.count
    errors: list = []
    next_index = iter(range(args.count))
    lock = threading.Lock()

    def work() -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        while True:
            with lock:
                if errors:
                    return
                n = next(next_index, None)
            if n is None:
                return
            body = json.dumps(
                {
                    "name": f"{args.prefix}-{n}",
                    "expires": "30d",
                    "permissions": {"super_admin": True},
                }
            )
            for attempt in range(3):
                try:
                    conn.request(
                        "POST",
                        "/v1/tokens",
                        body=body,
                        headers={
                            "Authorization": f"Bearer {admin}",
                            "Content-Type": "application/json",
                        },
                    )
                    response = conn.getresponse()
                    text = response.read()
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
                    if attempt == 2:
                        raise
            if response.status != 201:
                with lock:
                    errors.append(f"{args.prefix}-{n}: HTTP {response.status}: {text[:300]!r}")
                return
            tokens[n] = json.loads(text)["token"]

    start = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print("make_tokens: " + errors[0], file=sys.stderr)
        return 1
    if any(t is None for t in tokens) or len(set(tokens)) != args.count:
        print("make_tokens: some tokens are missing or repeated", file=sys.stderr)
        return 1
    with open(args.out, "w", encoding="ascii") as f:
        f.write("\n".join(tokens) + "\n")
    took = time.monotonic() - start
    print(f"made {args.count} tokens in {took:.1f} s ({args.count / took:.0f}/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
