#!/usr/bin/env python3
"""How long a never-seen valid token needs to get through /v1/auth: retry it on one
keep-alive connection, 10 ms apart, until 200 or the deadline. Prints the milliseconds to the
first 200 (or `none`), the attempts, and the statuses seen.

    newcomer.py HOST:PORT TOKEN_FILE SOURCE DEADLINE_S
"""
import http.client
import sys
import time


def main():
    address, token_file, source, deadline = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    with open(token_file, encoding="ascii") as f:
        token = f.read().strip()
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": source}
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=deadline)
    started = time.monotonic()
    seen = {}
    attempts = 0
    passed = None
    while time.monotonic() - started < deadline:
        attempts += 1
        try:
            connection.request("GET", "/v1/auth", headers=headers)
            response = connection.getresponse()
            response.read()
            status = str(response.status)
        except (OSError, http.client.HTTPException) as e:
            status = type(e).__name__
            connection.close()
            connection = http.client.HTTPConnection(host, int(port), timeout=deadline)
        seen[status] = seen.get(status, 0) + 1
        if status == "200":
            passed = (time.monotonic() - started) * 1000
            break
        time.sleep(0.01)
    statuses = ",".join(f"{k}x{v}" for k, v in sorted(seen.items()))
    print(f"{'none' if passed is None else f'{passed:.1f}'}\t{attempts}\t{statuses}")


if __name__ == "__main__":
    main()
