"""The fake OpenID provider behaves like a real one where a relying party can tell: the
code flow with PKCE, client authentication, one-time codes, and an ID token whose RS256
signature checks out against the published JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fleetkit.testing.fake_oidc import FakeOidcProvider

REDIRECT = "http://127.0.0.1:8501/oauth2callback"


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def provider() -> Iterator[FakeOidcProvider]:
    with FakeOidcProvider(email="bob@example.test", name="Bob") as served:
        yield served


def authorize(provider: FakeOidcProvider, verifier: str, **extra: str) -> dict[str, str]:
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {"response_type": "code", "client_id": provider.client_id,
              "redirect_uri": REDIRECT, "scope": "openid email profile", "state": "st-1",
              "nonce": "n-1", "code_challenge": challenge.rstrip(b"=").decode(),
              "code_challenge_method": "S256", **extra}
    reply = httpx.get(f"{provider.url}/authorize", params=params)
    assert reply.status_code == 302
    location = urlsplit(reply.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return dict(parse_qsl(location.query))


def exchange(provider: FakeOidcProvider, code: str, verifier: str,
             secret: str | None = None) -> httpx.Response:
    return httpx.post(f"{provider.url}/token",
                      auth=(provider.client_id, secret or provider.client_secret),
                      data={"grant_type": "authorization_code", "code": code,
                            "redirect_uri": REDIRECT, "code_verifier": verifier})


def verify_id_token(provider: FakeOidcProvider, token: str) -> dict[str, Any]:
    keys = httpx.get(httpx.get(provider.metadata_url).json()["jwks_uri"]).json()["keys"]
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(b64decode(header_b64))
    (key,) = [k for k in keys if k["kid"] == header["kid"]]
    public = rsa.RSAPublicNumbers(int.from_bytes(b64decode(key["e"]), "big"),
                                  int.from_bytes(b64decode(key["n"]), "big")).public_key()
    public.verify(b64decode(signature_b64), f"{header_b64}.{payload_b64}".encode(),
                  padding.PKCS1v15(), hashes.SHA256())  # raises when forged
    assert header["alg"] == "RS256"
    return dict(json.loads(b64decode(payload_b64)))


def test_the_code_flow_yields_a_signed_id_token_for_the_user(
        provider: FakeOidcProvider) -> None:
    metadata = httpx.get(provider.metadata_url).json()
    assert metadata["issuer"] == provider.url
    assert "S256" in metadata["code_challenge_methods_supported"]
    verifier = secrets.token_urlsafe(48)

    answer = authorize(provider, verifier)
    assert answer["state"] == "st-1"
    token = exchange(provider, answer["code"], verifier)

    assert token.status_code == 200, token.text
    claims = verify_id_token(provider, token.json()["id_token"])
    assert claims["iss"] == provider.url
    assert claims["aud"] == provider.client_id
    assert claims["nonce"] == "n-1"
    assert claims["email"] == "bob@example.test"
    assert claims["exp"] > time.time() >= claims["iat"] - 5
    userinfo = httpx.get(f"{provider.url}/userinfo",
                         headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert userinfo.json()["email"] == "bob@example.test"
    assert provider.tokens_issued == 1


def test_a_forged_token_fails_the_signature_check(provider: FakeOidcProvider) -> None:
    verifier = secrets.token_urlsafe(48)
    token = exchange(provider, authorize(provider, verifier)["code"], verifier)
    header, payload, signature = token.json()["id_token"].split(".")
    forged = json.loads(b64decode(payload)) | {"email": "mallory@example.test"}
    forged_b64 = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()

    with pytest.raises(InvalidSignature):
        verify_id_token(provider, f"{header}.{forged_b64}.{signature}")


def test_what_a_real_provider_refuses_is_refused(provider: FakeOidcProvider) -> None:
    verifier = secrets.token_urlsafe(48)
    code = authorize(provider, verifier)["code"]

    assert exchange(provider, code, verifier, secret="wrong").json() == {
        "error": "invalid_client"}
    assert exchange(provider, code, "another-verifier").json()["error"] == "invalid_grant"
    code = authorize(provider, verifier)["code"]
    assert exchange(provider, code, verifier).status_code == 200
    assert exchange(provider, code, verifier).json() == {"error": "invalid_grant"}  # once
    assert authorize(provider, verifier, scope="email") == {"error": "invalid_scope",
                                                            "state": "st-1"}
    unknown = httpx.get(f"{provider.url}/authorize",
                        params={"client_id": "someone-else", "redirect_uri": REDIRECT})
    assert unknown.status_code == 400
    assert provider.token_refusals == ["invalid_client", "invalid_grant", "invalid_grant"]
    provider.redirect_uris.append("http://127.0.0.1:9/elsewhere")
    unregistered = httpx.get(f"{provider.url}/authorize",
                             params={"client_id": provider.client_id, "redirect_uri": REDIRECT})
    assert unregistered.status_code == 400
    assert httpx.get(f"{provider.url}/userinfo").status_code == 401
