"""A fake OpenID Connect provider on loopback: discovery, authorize, token, JWKS, userinfo.

    with FakeOidcProvider(email="alice@example.test") as provider:
        # point .streamlit/secrets.toml [auth] at provider.metadata_url, provider.client_id,
        # provider.client_secret; a browser that follows "Log in" comes back logged in.

It does what a relying party can check: the authorization-code flow with PKCE (S256), the
client authenticated at the token endpoint (HTTP Basic or form), one-time codes bound to
the redirect URI, and an RS256-signed ID token with iss, aud, sub, exp, iat, nonce, email
and name, whose key is published at jwks_uri. The user consents at once: there is no login
form, because what is under test is the relying party. An unknown client, a wrong secret,
a reused code or a wrong verifier gets the OAuth error a real provider sends.

Tests only: it never talks to a real identity provider, and nothing else should talk to it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fleetkit.testing.loopback import LoopbackHandler, ServedInThread

DEFAULT_CLIENT_ID = "fleet-dashboard"
TOKEN_LIFETIME_S = 3600


@dataclass(frozen=True, slots=True)
class _Grant:
    redirect_uri: str
    nonce: str | None
    challenge: str | None
    scope: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class FakeOidcProvider(ServedInThread):
    """One client (`client_id`, `client_secret`) and one user (`email`, `name`)."""

    def __init__(self, *, email: str = "alice@example.test", name: str = "Alice",
                 client_id: str = DEFAULT_CLIENT_ID, client_secret: str | None = None,
                 redirect_uris: tuple[str, ...] = (), host: str = "127.0.0.1",
                 port: int = 0) -> None:
        super().__init__(_Handler, "fake-oidc", host, port)
        self.email = email
        self.name = name
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        # The client's registered redirect URIs: a real provider sends codes nowhere else.
        # Empty: any loopback URI (a test that learns its port later registers it then).
        self.redirect_uris = list(redirect_uris)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = secrets.token_hex(8)
        self._lock = threading.Lock()
        self._grants: dict[str, _Grant] = {}
        self._tokens: set[str] = set()
        self.tokens_issued = 0
        self.token_refusals: list[str] = []  # the OAuth error of each refused token request
        self.pkce_logins = 0  # authorizations that came with an S256 code challenge

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    # --- the documents ----------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "email", "email_verified", "name"],
        }

    def jwks(self) -> dict[str, Any]:
        public = self._key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self._kid,
                          "n": _uint(public.n), "e": _uint(public.e)}]}

    def claims(self) -> dict[str, Any]:
        return {"sub": f"user-{hashlib.sha256(self.email.encode()).hexdigest()[:12]}",
                "email": self.email, "email_verified": True, "name": self.name}

    def _id_token(self, nonce: str | None) -> str:
        now = int(time.time())
        payload = {**self.claims(), "iss": self.issuer, "aud": self.client_id, "iat": now,
                   "exp": now + TOKEN_LIFETIME_S, "auth_time": now}
        if nonce is not None:
            payload["nonce"] = nonce
        header = {"alg": "RS256", "typ": "JWT", "kid": self._kid}
        signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode())
                                 for part in (header, payload))
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(),
                                   hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    # --- the flow ----------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str] | str]:
        """(302, redirect query) on consent, or (400, reason) for a request that no real
        provider would redirect back (unknown client, no redirect URI)."""
        if query.get("client_id") != self.client_id:
            return 400, "unknown client_id"
        redirect_uri = query.get("redirect_uri", "")
        if urlsplit(redirect_uri).hostname not in ("127.0.0.1", "localhost"):
            return 400, "redirect_uri must be on loopback"
        if self.redirect_uris and redirect_uri not in self.redirect_uris:
            return 400, "redirect_uri is not registered for this client"
        state = query.get("state")
        if query.get("response_type") != "code":
            return 302, {"error": "unsupported_response_type", **_state(state)}
        if "openid" not in query.get("scope", "").split():
            return 302, {"error": "invalid_scope", **_state(state)}
        challenge = query.get("code_challenge")
        if challenge is not None and query.get("code_challenge_method") != "S256":
            return 302, {"error": "invalid_request", **_state(state)}
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._grants[code] = _Grant(redirect_uri, query.get("nonce"), challenge,
                                        query["scope"])
            if challenge is not None:
                self.pkce_logins += 1
        return 302, {"code": code, **_state(state)}

    def token(self, form: dict[str, str],
              basic: tuple[str, str] | None) -> tuple[int, dict[str, Any]]:
        status, answer = self._token(form, basic)
        if status != 200:
            with self._lock:
                self.token_refusals.append(str(answer["error"]))
        return status, answer

    def _token(self, form: dict[str, str],
               basic: tuple[str, str] | None) -> tuple[int, dict[str, Any]]:
        client_id, client_secret = basic or (form.get("client_id", ""),
                                             form.get("client_secret", ""))
        if client_id != self.client_id or not secrets.compare_digest(client_secret,
                                                                     self.client_secret):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)  # a code works once
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "")
            if _b64url(hashlib.sha256(verifier.encode("ascii")).digest()) != grant.challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE failed"}
        access = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(access)
            self.tokens_issued += 1
        return 200, {"access_token": access, "token_type": "Bearer",
                     "expires_in": TOKEN_LIFETIME_S, "scope": grant.scope,
                     "id_token": self._id_token(grant.nonce)}

    def userinfo(self, bearer: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            known = bearer is not None and bearer in self._tokens
        return (200, self.claims()) if known else (401, {"error": "invalid_token"})


def _state(state: str | None) -> dict[str, str]:
    return {} if state is None else {"state": state}


class _Handler(LoopbackHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a test's output is not the place for an access log."""

    def _serve(self) -> None:
        provider: FakeOidcProvider = self.server.owner
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        if url.path == "/.well-known/openid-configuration":
            self._json(200, provider.metadata())
        elif url.path == "/jwks":
            self._json(200, provider.jwks())
        elif url.path == "/authorize":
            status, answer = provider.authorize(query)
            if isinstance(answer, str):
                self.send_body(status, "text/plain", answer.encode())
            else:
                location = f"{query['redirect_uri']}?{urlencode(answer)}"
                self.send_body(302, "text/plain", b"", {"Location": location})
        elif url.path == "/token" and self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            self._json(*provider.token(form, self._basic()))
        elif url.path == "/userinfo":
            header = self.headers.get("Authorization", "")
            self._json(*provider.userinfo(header[7:] if header.startswith("Bearer ") else None))
        else:
            self._json(404, {"error": "not_found"})

    def _basic(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return unquote(user), unquote(password)  # RFC 6749 2.3.1: form-encoded first

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self.send_body(status, "application/json", json.dumps(body).encode(),
                       {"Cache-Control": "no-store"})
