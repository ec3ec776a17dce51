#!/usr/bin/env python3
"""Write COUNT distinct forgeries of a token, one a line: its payload, footer and key id kept,
its signature changed, so every one is well formed and needs a full signature check to refuse.

    forge.py TOKEN_FILE COUNT > forged.txt
"""
import base64
import sys


def b64decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    token_file, count = sys.argv[1], int(sys.argv[2])
    with open(token_file, encoding="ascii") as f:
        token = f.read().strip()
    version, purpose, body, *footer = token.split(".")
    if (version, purpose) != ("v4", "public"):
        sys.exit(f"{token_file}: not a v4.public token")
    body = bytearray(b64decode(body))
    signature_at = len(body) - 64
    tail = "." + footer[0] if footer else ""
    out = []
    for k in range(1, count + 1):
        forged = bytearray(body)
        for i, byte in enumerate(k.to_bytes(4, "little")):
            forged[signature_at + i] ^= byte
        out.append(f"v4.public.{b64encode(bytes(forged))}{tail}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
