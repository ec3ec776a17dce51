"""Tessera's OAuth 2 endpoints driven by a client nobody here wrote: Authlib's OAuth2Session.

Discovery through RFC 8414 metadata, RFC 7662 introspection with a bearer token that holds
tessera introspect, and RFC 7009 revocation with no credential but the token itself.
Usage: oauth_client.py BASE_URL ADMIN_TOKEN. Exits non-zero on the first mismatch.
"""

import sys

import requests
from authlib.integrations.requests_client import OAuth2Session


class Bearer(requests.auth.AuthBase):
    def __init__(self, token):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def create(base, admin, name, permissions):
    answer = requests.post(
        f"{base}/v1/tokens",
        headers={"Authorization": f"Bearer {admin}"},
        json={"name": name, "expires": "7d", "permissions": permissions},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()["token"]


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")
    print(f"ok: {what}")


def main():
    base, admin = sys.argv[1], sys.argv[2]
    metadata = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
    check("issuer", metadata["issuer"], base)
    introspector = create(
        base, admin, "introspector", {"grants": [{"resource": "tessera", "role": "introspect"}]}
    )
    deployer = create(
        base,
        admin,
        "deployer",
        {"grants": [{"resource": "devtron-app", "role": "trigger", "project": "payments",
                     "environments": ["prod"], "apps": ["*"]}]},
    )

    # The client authenticates to revocation with nothing ("none"), as RFC 7009 allows a
    # public client to.
    client = OAuth2Session(client_id="authlib-test", revocation_endpoint_auth_method="none")
    introspect = metadata["introspection_endpoint"]
    answer = client.introspect_token(introspect, token=deployer, auth=Bearer(introspector))
    check("introspection status", answer.status_code, 200)
    body = answer.json()
    check("active", body["active"], True)
    check("username", body["username"], "deployer")
    check("token_type", body["token_type"], "tessera-api-token")
    check("scope", body["scope"], "devtron-app:trigger")

    answer = client.introspect_token(introspect, token=deployer, auth=Bearer(deployer))
    check("introspection without the role", answer.status_code, 403)

    answer = client.revoke_token(
        metadata["revocation_endpoint"], token=deployer, token_type_hint="access_token"
    )
    check("revocation status", answer.status_code, 200)
    again = client.revoke_token(metadata["revocation_endpoint"], token="v4.public.nonsense")
    check("revocation of garbage", (again.status_code, again.text), (200, answer.text))

    # The server's verifier hears of the revocation through the state feed, within moments.
    import time

    for _ in range(100):
        answer = client.introspect_token(introspect, token=deployer, auth=Bearer(introspector))
        if answer.json() == {"active": False}:
            break
        time.sleep(0.05)
    check("introspection after revocation", answer.json(), {"active": False})


if __name__ == "__main__":
    main()
