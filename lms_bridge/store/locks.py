"""Named locks in the state store, so two runs never sync one site at once.

Two backends, picked by the engine's dialect:

- PostgreSQL: a session-level ``pg_advisory_lock`` on a 64-bit hash of the name, held
  on a connection of its own for as long as the ``with`` block runs. A killed holder's
  connection closes and PostgreSQL releases the lock at once. The connection's
  ``application_name`` carries the owner, so a busy lock names who holds it.
- SQLite: a row of ``locks`` (name, owner ``host:pid:id``, expiry). A keeper thread
  pushes the expiry ``ttl`` ahead every ``ttl / 3`` seconds while the block runs; a killed
  holder stops refreshing, so its lock expires ``ttl`` seconds after the last refresh and
  the next run takes it over. A holder on this host whose pid no longer runs is taken
  over at once (so "kill it, run it again" works without waiting).

Either way a keeper thread checks every ``ttl / 3`` seconds that the lock is still
held; :attr:`LockHandle.lost` turns True when it is not (the PostgreSQL connection
dropped, or this process stalled past the expiry and another run took the row).
Losing a lock never loses data: every batch is its own transaction and statement
ids are deterministic. The lock only keeps two runs from doing the same work.

While a block holds a lock, :func:`current_owner` names it, so a run started inside
records its lock's owner (``runs.owner``); :func:`owner_alive` later tells whether that
lock is still held, which is how ``runs list`` tells a killed run from a live one.

Usage::

    with site_lock(engine, sync_lock_name("kemenpan"), wait=False, ttl=120) as held:
        sync_site(...)
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from lms_bridge.errors import LmsBridgeError
from lms_bridge.store.models import Lock, utcnow

log = logging.getLogger(__name__)

#: Seconds a SQLite lock row lives without a refresh (the keeper refreshes every third of it).
#: SQLite's busy timeout is 30 s, so a refresh that waits behind a long write still lands in time.
DEFAULT_TTL = 120.0
#: Seconds between two tries while waiting for a busy lock.
DEFAULT_POLL = 1.0
#: ``application_name`` prefix of PostgreSQL lock connections (pg_stat_activity shows it).
_PG_APP_PREFIX = "lms-bridge lock "
#: The owner string of the innermost lock held in this context (thread), if any.
_HELD: ContextVar[str | None] = ContextVar("lms_bridge_lock_owner", default=None)


class LockBusy(LmsBridgeError):
    """Raised when the lock is held by another run and the caller did not wait (or gave up waiting).

    Attributes:
        name: the lock's name.
        holder: the owner string of the run holding it (``host:pid:id``), or None when unknown.
        expires_at: when a SQLite lock expires unless refreshed (None on PostgreSQL).
    """

    def __init__(self, name: str, holder: str | None, expires_at: datetime | None = None) -> None:
        self.name = name
        self.holder = holder
        self.expires_at = expires_at
        who = f"another run ({holder})" if holder else "another run"
        until = f", expiring {expires_at:%Y-%m-%d %H:%M:%S} UTC unless refreshed" if expires_at else ""
        super().__init__(f"{name} is held by {who}{until}")


@dataclass
class LockHandle:
    """A held lock, as yielded by :func:`site_lock`.

    Attributes:
        name: the lock's name.
        owner: this holder's owner string (``host:pid:id``).
    """

    name: str
    owner: str
    _lost: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def lost(self) -> bool:
        """True once the keeper found the lock no longer held (see the module docstring)."""
        return self._lost.is_set()


def sync_lock_name(site_id: str) -> str:
    """The lock every run that pulls ``site_id`` takes (sync, backfill, serve)."""
    return f"sync:{site_id}"


def make_owner(key: str | None = None) -> str:
    """An owner string unique to this holder: ``host:pid:random``, or ``host:pid:key``.

    A ``key`` names the piece of work the holder does (a Celery task id): the runs it records
    then say which piece of work they were (:func:`lms_bridge.store.runs.completed_run`), so that
    work delivered a second time is recognised as done.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{key or uuid.uuid4().hex[:12]}"


def _dead_local_owner(owner: str) -> bool:
    """Whether ``owner`` (``host:pid:id``) names a process of this host that no longer runs.

    Only a definite "no such process" (or a zombie) counts: a live pid, a pid of another
    user, another host or an unreadable owner all mean "maybe alive", so the lock waits for
    its expiry. A reused pid therefore only delays a takeover, never allows two holders.
    Caveat: two containers sharing one SQLite file, one host name and not one pid namespace
    would misread each other; give them distinct host names (Docker does by default).
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, someone else's
        return False
    try:  # a killed child its parent has not reaped yet is a zombie: dead for our purpose
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def current_owner() -> str | None:
    """The owner string of the innermost lock this thread holds (see :func:`holding`), or None."""
    return _HELD.get()


@contextmanager
def holding(owner: str) -> Iterator[None]:
    """Make ``owner`` the :func:`current_owner` for the ``with`` block (the block holds its lock)."""
    token = _HELD.set(owner)
    try:
        yield
    finally:
        _HELD.reset(token)


def pg_application_name(owner: str) -> str:
    """The ``application_name`` of a PostgreSQL lock connection of ``owner`` (63 characters at most)."""
    return (_PG_APP_PREFIX + owner)[:63]


def owner_alive(engine: Engine, owner: str) -> bool:
    """Whether a lock of ``owner`` may still be held (True when in doubt).

    PostgreSQL: a connection with the owner's ``application_name`` is open (a lock connection lives
    exactly as long as its locks). SQLite: a ``locks`` row of the owner has not expired and does not
    name a process of this host that is gone. So a SIGKILLed holder reads as gone at once on
    PostgreSQL and on its own host, and after the lock's expiry from another host.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            return (
                connection.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                    {"name": pg_application_name(owner)},
                )
                != 0
            )
        expires_at = connection.scalar(select(Lock.expires_at).where(Lock.owner == owner))
    return expires_at is not None and expires_at > utcnow() and not _dead_local_owner(owner)


def advisory_key(name: str) -> int:
    """The signed 64-bit PostgreSQL advisory lock key of ``name`` (stable across processes)."""
    digest = hashlib.sha256(f"lms-bridge:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _Backend:
    """One way of holding a lock: try once, check it is still held, release."""

    def try_acquire(self) -> tuple[bool, str | None, datetime | None]:
        """Try once; return (acquired, holder, expiry) where holder/expiry describe a busy lock."""
        raise NotImplementedError

    def still_held(self) -> bool:
        """Refresh (SQLite) or check (PostgreSQL) the lock; False when it was lost."""
        raise NotImplementedError

    def release(self) -> None:
        """Give the lock up (never raises: a lock that is already gone is released)."""
        raise NotImplementedError


class _RowLock(_Backend):
    """A ``locks`` row with an owner and an expiry (SQLite; works on PostgreSQL too)."""

    def __init__(self, engine: Engine, name: str, owner: str, ttl: float) -> None:
        self.engine, self.name, self.owner, self.ttl = engine, name, owner, ttl

    def try_acquire(self) -> tuple[bool, str | None, datetime | None]:
        now = utcnow()
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        statement = insert(Lock).values(name=self.name, owner=self.owner, expires_at=now + timedelta(seconds=self.ttl))
        # Take the row only when it is free or expired; one statement, so two racing
        # runs cannot both win (SQLite serialises writers).
        statement = statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"owner": statement.excluded.owner, "expires_at": statement.excluded.expires_at},
            where=Lock.expires_at < now,
        )
        with self.engine.begin() as connection:
            previous = connection.execute(select(Lock.owner, Lock.expires_at).where(Lock.name == self.name)).first()
            connection.execute(statement)
            row = connection.execute(select(Lock.owner, Lock.expires_at).where(Lock.name == self.name)).one()
        if row.owner != self.owner:
            if _dead_local_owner(row.owner):
                # The holder ran on this machine and is gone (killed): its lock need not wait
                # for the expiry. Delete exactly its row, then try again.
                with self.engine.begin() as connection:
                    gone = connection.execute(delete(Lock).where(Lock.name == self.name, Lock.owner == row.owner))
                if gone.rowcount:
                    log.warning("lock %s: took over the lock of %s, which is no longer running", self.name, row.owner)
                    return self.try_acquire()
            return False, row.owner, row.expires_at
        if previous is not None and previous.owner != self.owner:
            log.warning(
                "lock %s: took over the expired lock of %s (expired %s)",
                self.name,
                previous.owner,
                f"{previous.expires_at:%Y-%m-%d %H:%M:%S} UTC",
            )
        return True, None, None

    def still_held(self) -> bool:
        with self.engine.begin() as connection:
            result = connection.execute(
                update(Lock)
                .where(Lock.name == self.name, Lock.owner == self.owner)
                .values(expires_at=utcnow() + timedelta(seconds=self.ttl))
            )
        return (result.rowcount or 0) == 1

    def release(self) -> None:
        try:
            with self.engine.begin() as connection:
                connection.execute(delete(Lock).where(Lock.name == self.name, Lock.owner == self.owner))
        except SQLAlchemyError as exc:  # the row expires by itself
            log.warning(
                "lock %s: could not delete the lock row (%s); it expires in %.0f s",
                self.name,
                exc.__class__.__name__,
                self.ttl,
            )


class _AdvisoryLock(_Backend):
    """A session-level PostgreSQL advisory lock on a connection of its own."""

    def __init__(self, engine: Engine, name: str, owner: str) -> None:
        self.engine, self.name, self.owner = engine, name, owner
        self.key = advisory_key(name)
        self.connection: Connection | None = None
        # The keeper thread and release() share the connection: never at once.
        self._mutex = threading.Lock()

    def _holder(self, connection: Connection) -> str | None:
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        row = connection.execute(
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.classid::bigint = :hi AND l.objid::bigint = :lo AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF},
        ).first()
        if row is None or not row[0]:
            return None
        return str(row[0]).removeprefix(_PG_APP_PREFIX)

    def try_acquire(self) -> tuple[bool, str | None, datetime | None]:
        connection = self.engine.connect()
        try:
            connection.execute(
                text("SELECT set_config('application_name', :name, false)"), {"name": pg_application_name(self.owner)}
            )
            got = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}))
            holder = None if got else self._holder(connection)
            # The lock is session-level: end the transaction so the connection is not left
            # "idle in transaction" (that would hold back vacuum and meet idle timeouts).
            connection.commit()
        except BaseException:
            connection.close()
            raise
        if got:
            self.connection = connection
            return True, None, None
        self._reset(connection)
        return False, holder, None

    def _reset(self, connection: Connection) -> None:
        try:
            connection.execute(text("RESET application_name"))
            connection.commit()
        except SQLAlchemyError:
            connection.invalidate()
        finally:
            connection.close()

    def still_held(self) -> bool:
        with self._mutex:
            if self.connection is None:
                return False
            try:
                held = self.connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' "
                        "AND granted AND objsubid = 1 AND classid::bigint = :hi AND objid::bigint = :lo"
                    ),
                    {"hi": (self.key & 0xFFFFFFFFFFFFFFFF) >> 32, "lo": self.key & 0xFFFFFFFF},
                )
                self.connection.commit()
            except SQLAlchemyError:
                return False
            return bool(held)

    def release(self) -> None:
        with self._mutex:
            connection, self.connection = self.connection, None
            if connection is None:
                return
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                connection.commit()
            except SQLAlchemyError as exc:
                # A dropped connection released the lock with its session.
                log.warning(
                    "lock %s: unlock failed (%s); the lock went with its connection", self.name, exc.__class__.__name__
                )
                connection.invalidate()
                connection.close()
                return
            self._reset(connection)


def _backend(engine: Engine, name: str, owner: str, ttl: float) -> _Backend:
    if engine.dialect.name == "postgresql":
        return _AdvisoryLock(engine, name, owner)
    return _RowLock(engine, name, owner, ttl)


def _keep(backend: _Backend, handle: LockHandle, interval: float, stop: threading.Event) -> None:
    """Refresh or check the lock every ``interval`` seconds until ``stop``; flag a lost lock."""
    while not stop.wait(interval):
        try:
            held = backend.still_held()
        except SQLAlchemyError as exc:
            # A busy or briefly unreachable store: try again next time (the expiry has slack).
            log.warning("lock %s: refresh failed (%s); retrying", handle.name, exc.__class__.__name__)
            continue
        if not held:
            handle._lost.set()
            log.error("lock %s: lost (another run may be doing the same work now; data stays consistent)", handle.name)
            return


@contextmanager
def site_lock(
    engine: Engine,
    name: str,
    *,
    wait: bool,
    ttl: float = DEFAULT_TTL,
    timeout: float | None = None,
    poll: float = DEFAULT_POLL,
    owner: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[LockHandle]:
    """Hold the lock ``name`` for the ``with`` block.

    Args:
        engine: the state store (PostgreSQL: advisory lock; SQLite: lock row).
        name: what is locked, e.g. :func:`sync_lock_name` of a site.
        wait: wait for a busy lock instead of raising :class:`LockBusy` at once.
        ttl: seconds a SQLite lock outlives its last refresh (so a killed run's lock
            expires that long after it died); the keeper checks every ``ttl / 3`` seconds.
        timeout: with ``wait``, give up after this many seconds (None: wait for ever).
        poll: seconds between tries while waiting.
        owner: this holder's owner string (default: :func:`make_owner`).
        sleep: the wait function (tests pass a fast one).

    Yields:
        The held lock; check :attr:`LockHandle.lost` between units of work to stop early.

    Raises:
        LockBusy: the lock is held by another run (and ``wait`` is False or ``timeout`` passed).
    """
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    me = owner or make_owner()
    backend = _backend(engine, name, me, ttl)
    deadline = None if timeout is None else time.monotonic() + timeout
    announced = False
    while True:
        acquired, holder, expires_at = backend.try_acquire()
        if acquired:
            break
        if not wait or (deadline is not None and time.monotonic() >= deadline):
            raise LockBusy(name, holder, expires_at)
        if not announced:
            log.info("lock %s is held by %s: waiting", name, holder or "another run")
            announced = True
        sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))
    handle = LockHandle(name=name, owner=me)
    stop = threading.Event()
    keeper = threading.Thread(target=_keep, args=(backend, handle, ttl / 3, stop), name=f"lock-{name}", daemon=True)
    keeper.start()
    log.debug("lock %s: held by %s", name, me)
    try:
        with holding(me):
            yield handle
    finally:
        stop.set()
        keeper.join()
        backend.release()
        log.debug("lock %s: released by %s", name, me)


# --- distributed syncs: the site lock shared, one site-stream exclusive ------------------------


def stream_lock_name(site_id: str, stream: str) -> str:
    """The lock a distributed task holds exclusive for its site-stream."""
    return f"{sync_lock_name(site_id)}:{stream}"


class LockLost(LmsBridgeError):
    """A distributed task's lock connection no longer holds its locks: the task stops after its batch."""


@dataclass
class StreamLockHandle:
    """The locks of :func:`stream_lock`, held on one connection.

    Attributes:
        owner: this holder's owner string (``host:pid:id``, also the connection's ``application_name``).
        name: the site-stream lock's name.
    """

    owner: str
    name: str
    _connection: Connection
    _keys: tuple[int, int]

    def held(self) -> bool:
        """Whether the lock connection still holds both locks (one query on it; False once it dropped)."""
        unsigned = [key & 0xFFFFFFFFFFFFFFFF for key in self._keys]
        try:
            count = self._connection.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' "
                    "AND granted AND objsubid = 1 AND ((classid::bigint = :hi1 AND objid::bigint = :lo1) "
                    "OR (classid::bigint = :hi2 AND objid::bigint = :lo2))"
                ),
                {
                    "hi1": unsigned[0] >> 32,
                    "lo1": unsigned[0] & 0xFFFFFFFF,
                    "hi2": unsigned[1] >> 32,
                    "lo2": unsigned[1] & 0xFFFFFFFF,
                },
            )
            self._connection.commit()
        except SQLAlchemyError:
            return False
        return count == 2

    def check(self, *_args: object) -> None:
        """A progress callback (called after each committed batch) that stops a task whose lock was lost.

        Raises:
            LockLost: the lock connection dropped (another worker may be pulling this stream now).
        """
        if not self.held():
            raise LockLost(
                f"lock {self.name} was lost (its database connection dropped): stopping after the "
                "last committed batch so two tasks do not pull one stream"
            )


@contextmanager
def stream_lock(engine: Engine, site_id: str, stream: str, *, key: str | None = None) -> Iterator[StreamLockHandle]:
    """Hold the site's sync lock shared and its site-stream lock exclusive for the ``with`` block.

    Both are session-level advisory locks on one connection of their own: a killed worker's
    connection closes and PostgreSQL releases them at once. ``key`` goes into the owner
    string (:func:`make_owner`).

    Yields:
        The held locks (their owner, and :meth:`StreamLockHandle.check` for between batches).

    Raises:
        LockBusy: another run holds the site (a plain sync, backfill or serve) or this site-stream.
    """
    owner = make_owner(key)
    site_key = advisory_key(sync_lock_name(site_id))
    stream_key = advisory_key(stream_lock_name(site_id, stream))
    connection = engine.connect()
    try:
        connection.execute(
            text("SELECT set_config('application_name', :name, false)"), {"name": pg_application_name(owner)}
        )
        if not connection.scalar(text("SELECT pg_try_advisory_lock_shared(:key)"), {"key": site_key}):
            connection.commit()
            raise LockBusy(sync_lock_name(site_id), None)
        if not connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": stream_key}):
            connection.execute(text("SELECT pg_advisory_unlock_shared(:key)"), {"key": site_key})
            connection.commit()
            raise LockBusy(stream_lock_name(site_id, stream), None)
        connection.commit()  # session-level locks: do not sit "idle in transaction"
    except BaseException:
        connection.invalidate()  # drops the session, and any lock it took, for sure
        connection.close()
        raise
    try:
        with holding(owner):  # a run started inside records this owner (lms_bridge.store.runs)
            yield StreamLockHandle(owner, stream_lock_name(site_id, stream), connection, (site_key, stream_key))
    finally:
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": stream_key})
            connection.execute(text("SELECT pg_advisory_unlock_shared(:key)"), {"key": site_key})
            connection.execute(text("RESET application_name"))
            connection.commit()
        except SQLAlchemyError:
            connection.invalidate()  # the locks went with the session
        connection.close()
