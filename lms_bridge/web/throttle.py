"""The login throttle of the web page: per client address and per (address, name), in the state store.

Two counters limit password guessing (issue 20): :data:`PAIR_LIMIT` attempts per client address and
typed name, and :data:`ADDRESS_LIMIT` attempts per client address over all names (spraying), in a
fixed window of :data:`WINDOW`. There is no counter per name alone: a guesser elsewhere cannot lock
the real user out, who still logs in from their own address. An IPv6 client counts by its /64 (one
host can use a whole /64). A successful login gives its attempt back and clears its pair's count.

Every attempt is reserved before the password is checked, by one conditional UPDATE per counter in
one transaction (PostgreSQL re-checks the condition on the row it waited for; SQLite writes one at a
time), so concurrent guesses never get past the limit, and the counts hold across processes.
"""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, case, delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite

from lms_bridge.store.models import WebLoginThrottle, utcnow

#: Attempts allowed per (client address, name) and per client address in one window.
PAIR_LIMIT, ADDRESS_LIMIT = 10, 50
WINDOW = timedelta(minutes=15)


def client_key(address: str | None) -> str:
    """The address a client is counted by: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by its /64."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return address or "-"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def _key(scope: str, address: str, name: str = "") -> str:
    return hashlib.sha256(f"{scope}\0{address}\0{name}".encode()).hexdigest()


def _keys(address: str, name: str) -> list[tuple[str, int]]:
    client = client_key(address)
    return [(_key("pair", client, name), PAIR_LIMIT), (_key("address", client), ADDRESS_LIMIT)]


def _take(connection: Connection, key: str, limit: int, now: datetime) -> bool:
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    connection.execute(
        insert(WebLoginThrottle)
        .values(key=key, window_start=now, attempts=0)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    expired = WebLoginThrottle.window_start <= now - WINDOW
    result = connection.execute(
        update(WebLoginThrottle)
        .where(WebLoginThrottle.key == key, or_(expired, WebLoginThrottle.attempts < limit))
        .values(
            attempts=case((expired, 1), else_=WebLoginThrottle.attempts + 1),
            window_start=case((expired, now), else_=WebLoginThrottle.window_start),
        )
    )
    return result.rowcount == 1


def reserve(engine: Engine, address: str | None, name: str) -> bool:
    """Count one login attempt; False (nothing counted) when the address or the pair is at its limit."""
    now = utcnow()
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(delete(WebLoginThrottle).where(WebLoginThrottle.window_start <= now - WINDOW))
        for key, limit in _keys(address or "", name):
            if not _take(connection, key, limit, now):
                transaction.rollback()
                return False
        transaction.commit()
    return True


def succeeded(engine: Engine, address: str | None, name: str) -> None:
    """A login succeeded: clear its pair's count and give the address its attempt back."""
    (pair, _), (client, _) = _keys(address or "", name)
    with engine.begin() as connection:
        connection.execute(delete(WebLoginThrottle).where(WebLoginThrottle.key == pair))
        connection.execute(
            update(WebLoginThrottle)
            .where(WebLoginThrottle.key == client, WebLoginThrottle.attempts > 0)
            .values(attempts=WebLoginThrottle.attempts - 1)
        )
