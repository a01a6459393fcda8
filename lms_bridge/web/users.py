"""HR users of the web page: scrypt password hashes in the state store, never the password.

A hash is ``scrypt$n$r$p$salt-hex$hash-hex`` (``hashlib.scrypt``, a random 16-byte
salt per user); checking one compares in constant time. ``authenticate`` spends the
same scrypt work on an unknown or disabled user, so timing does not tell which
usernames exist.

Sessions live in the store (``web_sessions``, issue 20): a login makes a random token that only the
signed cookie carries, the store keeps its SHA-256. Logout and ``users disable`` delete the rows, so a
cookie copied before either stops working; a session ends after ``[web] session_hours`` without a
request and, however busy, ``[web] session_max_hours`` after the login.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from lms_bridge.errors import InputError, LmsBridgeError
from lms_bridge.store.models import WebSession, WebUser, utcnow

#: scrypt cost: N=2^15, r=8, p=1 (32 MiB, about 0.1 s a check).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD_LENGTH = 10
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.@-]{1,63}$")
UNIT_PATTERN = re.compile(r"^[^,\s][^,]{0,63}$")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)


def hash_password(password: str) -> str:
    """Hash a password with scrypt and a fresh random salt.

    Args:
        password: the plain password.

    Returns:
        ``scrypt$n$r$p$salt-hex$hash-hex``.
    """
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash from :func:`hash_password` (constant-time compare).

    Args:
        password: the plain password given at login.
        stored: the stored hash.

    Returns:
        True when it matches; False for a wrong password or a malformed hash.
    """
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        actual = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


# A hash to spend the same work on when the user does not exist.
_DUMMY_HASH = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${'00' * 16}${'00' * 32}"


HR = "hr"
ORGANISER = "organiser"
#: Web roles: HR sees everything; a CoP organiser sees community aggregates only (small cells "< 5").
ROLES = (HR, ORGANISER)


@dataclass(frozen=True)
class UserInfo:
    """A web user as the web page and ``users list`` see it (no hash)."""

    username: str
    units: tuple[str, ...]
    active: bool
    created_at: datetime
    #: ``hr`` (every page) or ``organiser`` (a CoP organiser: the *Komunitas Belajar* page only, aggregates).
    role: str = "hr"

    @property
    def hr(self) -> bool:
        """Whether the user sees HR's pages (persons, exact small figures)."""
        return self.role == HR

    @property
    def all_units(self) -> bool:
        """Whether the user may see every unit."""
        return not self.units


def parse_units(text: str | None) -> tuple[str, ...]:
    """Unit codes from ``U1,U2`` (blank: every unit).

    Raises:
        InputError: when a code is empty or too long.
    """
    if not text or not text.strip():
        return ()
    codes = [code.strip() for code in text.split(",")]
    for code in codes:
        if not code or not UNIT_PATTERN.match(code):
            raise InputError(f"--units {text!r}: give unit codes separated by commas, e.g. U1,U2")
    return tuple(dict.fromkeys(codes))


def _info(user: WebUser) -> UserInfo:
    return UserInfo(
        username=user.username,
        units=parse_units(user.units),
        active=user.active,
        created_at=user.created_at,
        role=user.role or HR,
    )


def add_user(engine: Engine, username: str, password: str, units: tuple[str, ...] = (), role: str = "hr") -> UserInfo:
    """Create a web user.

    Args:
        engine: the state store.
        username: lower-case letters, digits and ``_.@-`` (2 to 64 characters).
        password: at least :data:`MIN_PASSWORD_LENGTH` characters; only its hash is stored.
        units: unit codes the user may see (empty: every unit).
        role: ``hr`` or ``organiser`` (:data:`ROLES`).

    Returns:
        The new user.

    Raises:
        InputError: for a bad username or a short password.
        LmsBridgeError: when the username is taken.
    """
    if not USERNAME_PATTERN.match(username):
        raise InputError(
            f"username {username!r} must be 2-64 lower-case letters, digits or _.@- starting with a letter or digit"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if role not in ROLES:
        raise InputError(f"role {role!r} must be one of {', '.join(ROLES)}")
    with Session(engine) as session, session.begin():
        if session.scalar(select(WebUser.id).where(WebUser.username == username)) is not None:
            raise LmsBridgeError(f"web user {username} already exists")
        user = WebUser(
            username=username, password_hash=hash_password(password), units=",".join(units), active=True, role=role
        )
        session.add(user)
        session.flush()
        return _info(user)


def list_users(engine: Engine) -> list[UserInfo]:
    """Every web user, by username."""
    with Session(engine) as session:
        return [_info(user) for user in session.scalars(select(WebUser).order_by(WebUser.username))]


def disable_user(engine: Engine, username: str) -> bool:
    """Disable a user and revoke their sessions (every cookie of theirs stops working at once).

    Returns:
        False when the user was already disabled.

    Raises:
        LmsBridgeError: when there is no such user.
    """
    with Session(engine) as session, session.begin():
        user = session.scalar(select(WebUser).where(WebUser.username == username))
        if user is None:
            raise LmsBridgeError(f"no web user {username}")
        was_active = user.active
        user.active = False
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))
        return was_active


def authenticate(engine: Engine, username: str, password: str) -> UserInfo | None:
    """The active user whose password this is, or None.

    The same scrypt work is done for an unknown or disabled user as for a known one.
    """
    with Session(engine) as session:
        user = session.scalar(select(WebUser).where(WebUser.username == username))
        stored = user.password_hash if user is not None else _DUMMY_HASH
        ok = verify_password(password, stored)
        if user is None or not user.active or not ok:
            return None
        return _info(user)


#: How often a session's last request time is written (not on every click).
SEEN_EVERY = timedelta(minutes=1)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(engine: Engine, username: str, *, idle: timedelta, lifetime: timedelta) -> str | None:
    """Record a new login of an active user and return its token (for the signed cookie only).

    Sessions of every user that are past ``idle`` or ``lifetime`` are deleted on the way.
    None when there is no active user of that name (disabled since the password was checked).
    """
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with Session(engine) as session, session.begin():
        session.execute(
            delete(WebSession).where(or_(WebSession.seen_at < now - idle, WebSession.created_at < now - lifetime))
        )
        user_id = session.scalar(select(WebUser.id).where(WebUser.username == username, WebUser.active.is_(True)))
        if user_id is None:
            return None
        session.add(WebSession(token_hash=_token_hash(token), user_id=user_id, created_at=now, seen_at=now))
    return token


def session_user(engine: Engine, token: str, *, idle: timedelta, lifetime: timedelta) -> UserInfo | None:
    """The active user of a live session, or None (unknown, revoked, idle too long, too old, user disabled)."""
    now = utcnow()
    digest = _token_hash(token)
    # Every page asks: one Core query on a connection (the ORM session and its objects were ~a third of a
    # warm page's CPU once the page's body is kept, issue 23), writing only when something changes.
    with engine.begin() as connection:
        found = connection.execute(_SESSION_USER, {"digest": digest}).first()
        if found is None:
            return None
        if not found.active or found.seen_at < now - idle or found.created_at < now - lifetime:
            connection.execute(delete(WebSession).where(WebSession.token_hash == digest))
            return None
        if found.seen_at < now - SEEN_EVERY:
            connection.execute(update(WebSession).where(WebSession.token_hash == digest).values(seen_at=now))
        return UserInfo(
            username=found.username,
            units=parse_units(found.units),
            active=found.active,
            created_at=found.user_created_at,
            role=found.role or HR,
        )


_SESSION_USER = (
    select(
        WebSession.seen_at,
        WebSession.created_at,
        WebUser.username,
        WebUser.units,
        WebUser.active,
        WebUser.created_at.label("user_created_at"),
        WebUser.role,
    )
    .join(WebUser, WebUser.id == WebSession.user_id)
    .where(WebSession.token_hash == bindparam("digest"))
)


def end_session(engine: Engine, token: str) -> None:
    """Revoke one session (logout): its cookie, wherever it was copied, no longer logs anyone in."""
    with Session(engine) as session, session.begin():
        session.execute(delete(WebSession).where(WebSession.token_hash == _token_hash(token)))
