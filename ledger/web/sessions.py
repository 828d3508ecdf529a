"""Web sessions and CSRF tokens: signed cookies over sessions kept on the server.

A session cookie holds the user name, the session's random id (256 bits, the `nonce`) and its
expiry, signed with HMAC-SHA256 under the web secret; every request checks the signature and the
expiry, then asks the service whether that session is still open on the server (the store keeps
the SHA-256 of each id: signing out, `users revoke` and `users rotate` end sessions there at
once) and its user active. A form's CSRF token is the HMAC of the session's id (or, before
sign-in, of a nonce in a short-lived cookie of its own), so a page of another site can neither
read it nor forge it, it reveals nothing of the id, and it changes with every sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson

SESSION_COOKIE = "rl_session"
#: The nonce of the sign-in form's CSRF token, before there is a session.
LOGIN_COOKIE = "rl_login"
#: The sign-in form is good for this long.
LOGIN_MAX_AGE_S = 3600
#: Longest cookie value read; anything longer is not ours.
COOKIE_CHARS_MAX = 1024


@dataclass(frozen=True)
class Session:
    """A signed-in web session: whose, its random id (`nonce`: the key of the session on the
    server and the CSRF token's seed) and when it ends."""

    user: str
    nonce: str
    expires: int  # Unix seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and checks the web app's cookies and CSRF tokens with one secret."""

    def __init__(self, secret: str, max_age_s: int) -> None:
        assert secret, "the web secret is never empty (WebSettings makes one)"
        self._key = hashlib.sha256(b"rebate-ledger web:" + secret.encode()).digest()
        self.max_age_s = max_age_s

    def _mac(self, purpose: str, text: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}:{text}".encode(), hashlib.sha256).digest())

    def new_session(self, user: str, now: float | None = None) -> tuple[Session, str]:
        """A fresh session for `user` and its cookie value."""
        now = time.time() if now is None else now
        session = Session(user, secrets.token_urlsafe(32), int(now) + self.max_age_s)
        payload = _b64(orjson.dumps({"u": session.user, "n": session.nonce,
                                     "e": session.expires}))
        return session, f"{payload}.{self._mac('session', payload)}"

    def session(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a cookie value, or None when it is missing, forged or expired."""
        if not cookie or len(cookie) > COOKIE_CHARS_MAX or "." not in cookie:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        try:
            value = orjson.loads(_unb64(payload))
            session = Session(str(value["u"]), str(value["n"]), int(value["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        now = time.time() if now is None else now
        return session if session.expires > now else None

    def csrf(self, nonce: str) -> str:
        """The CSRF token of the forms of a session (or of a sign-in form) with this nonce."""
        return self._mac("csrf", nonce)

    def csrf_ok(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token or len(token) > COOKIE_CHARS_MAX:
            return False
        return hmac.compare_digest(token, self.csrf(nonce))

    def new_login_nonce(self) -> tuple[str, str]:
        """A nonce for a sign-in form and its signed cookie value."""
        nonce = secrets.token_urlsafe(18)
        expires = int(time.time()) + LOGIN_MAX_AGE_S
        payload = f"{nonce}~{expires}"
        return nonce, f"{payload}.{self._mac('login', payload)}"

    def login_nonce(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > COOKIE_CHARS_MAX or "." not in cookie:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac("login", payload)):
            return None
        nonce, _, expires = payload.partition("~")
        if not expires.isdigit() or int(expires) <= time.time():
            return None
        return nonce
