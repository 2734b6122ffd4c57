"""`FakeGoogleOAuth`: a stand-in for Google's OAuth token endpoint (JWT bearer grant).

It answers ``POST /token`` with form fields ``grant_type=urn:ietf:params:oauth:grant-type:
jwt-bearer`` and ``assertion=<JWT>`` the way oauth2.googleapis.com does, after checking the
assertion for real: RS256 signature by the public key of a service account it issued
(`service_account()`), ``iss`` that account's email, ``aud`` this endpoint, a
``scope``, and ``exp`` in the future. Good assertions get ``{"access_token", "expires_in",
"token_type": "Bearer"}``; bad ones the ``invalid_grant`` 400 Google sends.

Knobs: ``expires_in`` [3599] seconds for new tokens. Observations: ``issued`` (every token
handed out, in order), ``refused`` (why each refused assertion was refused).
"""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from irisgate.testing.fake_reply import new_id
from irisgate.testing.fake_server import ServerThread
from irisgate.testing.lifecycle import StartStop

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FakeGoogleOAuth(StartStop):
    def __init__(self) -> None:
        self._server = ServerThread("FakeGoogleOAuth")
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self.base_url = ""
        self.expires_in = 3599
        self.issued: list[str] = []
        self.refused: list[str] = []

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def service_account(self, project_id: str = "test-project", name: str = "irisgate") -> str:
        """A new service account key file (JSON text) whose tokens this endpoint issues."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        email = f"{name}@{project_id}.iam.gserviceaccount.com"
        self._keys[email] = key.public_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        keyfile = {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": new_id("", 40),
            "private_key": pem,
            "client_email": email,
            "client_id": "1" + new_id("", 20),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
        }
        return orjson.dumps(keyfile).decode()

    def _check(self, form: dict[str, str]) -> str | None:
        if form.get("grant_type") != GRANT_TYPE:
            return "unsupported grant_type"
        parts = form.get("assertion", "").split(".")
        if len(parts) != 3:
            return "assertion is not a JWT"
        try:
            header: Any = orjson.loads(_unb64(parts[0]))
            claims: Any = orjson.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
        except (ValueError, orjson.JSONDecodeError):
            return "assertion is not a JWT"
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            return "assertion is not RS256"
        if not isinstance(claims, dict):
            return "assertion claims are not an object"
        public = self._keys.get(str(claims.get("iss")))
        if public is None:
            return "unknown issuer"
        try:
            signed = f"{parts[0]}.{parts[1]}".encode()
            public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "bad signature"
        if claims.get("aud") != self.token_uri:
            return "wrong audience"
        if not claims.get("scope"):
            return "no scope"
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp < time.time():
            return "expired assertion"
        return None

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        problem = self._check(form)
        if problem is not None:
            self.refused.append(problem)
            body = {"error": "invalid_grant", "error_description": f"Invalid JWT: {problem}"}
            return web.json_response(body, status=400)
        token = f"ya29.fake-{len(self.issued) + 1}-{new_id('', 16)}"
        self.issued.append(token)
        answer = {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        return web.json_response(answer)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/token", self._token)
        address = self._server.start(app, lambda r: web.TCPSite(r, host, port))
        self.base_url = f"http://{host}:{address[1]}"
        return self.base_url

    def stop(self) -> None:
        self._server.stop()
