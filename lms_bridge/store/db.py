"""Opening the state store and migrating it (Alembic), on SQLite or PostgreSQL."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from lms_bridge.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# An arbitrary constant: the PostgreSQL advisory lock that serialises migrations.
_MIGRATION_LOCK_ID = 7_447_201


def normalise_url(url: str, base_dir: Path | None = None) -> URL:
    """Parse a state-store URL: pick the psycopg driver, anchor relative SQLite paths.

    Raises:
        ConfigError: when the URL is not one lms-bridge can use.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError("the state database URL ([state] url) is not a valid URL") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not Path(database).is_absolute() and base_dir is not None:
            parsed = parsed.set(database=str(base_dir / database))
    elif parsed.get_backend_name() != "postgresql":
        raise ConfigError(f"state database {parsed.get_backend_name()!r} is not supported: use sqlite or postgresql")
    return parsed


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets a flush read while a sync writes; FULL makes a commit survive power loss,
    # which is what "a cursor advances only with what it covers durably stored" needs.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _private_sqlite_file(path: Path) -> None:
    """Make the SQLite file owner-only (0600, a new folder 0700) before SQLite opens it.

    SQLite creates its ``-wal`` and ``-shm`` files with the database file's mode, so they follow. An
    existing file (or companion) that others can read is narrowed to 0600: it holds personal data.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        pass
    except OSError:
        return  # unwritable folder: SQLite says so in its own words when it opens the file
    else:
        os.close(fd)
        return
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            info = name.stat()
            if info.st_mode & 0o077 and info.st_uid == os.getuid() and stat.S_ISREG(info.st_mode):
                name.chmod(0o600)
        except OSError:
            continue


def make_engine(url: str, base_dir: Path | None = None, *, pool_size: int | None = None) -> Engine:
    """Create the engine for ``url`` (without migrating it).

    ``pool_size`` sizes a PostgreSQL connection pool (default SQLAlchemy's 5, plus 10 overflow).

    Raises:
        ConfigError: when the driver is missing or the URL is unusable.
    """
    parsed = normalise_url(url, base_dir)
    try:
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                _private_sqlite_file(Path(database))
            # hide_parameters: a database error's text must not carry statement bodies (NIPs) into logs.
            engine = create_engine(parsed, connect_args={"timeout": 30}, hide_parameters=True)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            sizing = {} if pool_size is None else {"pool_size": pool_size}
            engine = create_engine(parsed, pool_pre_ping=True, hide_parameters=True, **sizing)
    except NoSuchModuleError as exc:
        raise ConfigError("PostgreSQL support is not installed: pip install 'lms-bridge[postgres]'") from exc
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the database driver is missing ({exc.name}): pip install 'lms-bridge[postgres]'") from exc
    return engine


def describe(engine: Engine) -> str:
    """The engine's URL with the password hidden, for messages."""
    return engine.url.render_as_string(hide_password=True)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration this code knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise ConfigError(f"no migrations found in {MIGRATIONS_DIR}: the installation is broken")
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration level of the database (None when it was never migrated).

    Raises:
        ConfigError: when the database cannot be reached.
    """
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise ConfigError(f"state database {describe(engine)} cannot be opened: {exc.__class__.__name__}") from exc


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate the database to the newest revision; a no-op when it is there already.

    Safe to run from several processes at once: PostgreSQL serialises them with an
    advisory lock, SQLite with its write lock.

    Returns:
        The revision before and after.

    Raises:
        ConfigError: when the database cannot be reached or migrated.
    """
    before = current_revision(engine)
    head = head_revision()
    if before == head:
        return before, head
    config = _alembic_config()
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            elif connection.dialect.name == "sqlite":
                # Python's sqlite3 opens no transaction before DDL, so each CREATE TABLE would commit
                # on its own: a run killed mid-migration left half a schema that no later run could
                # migrate. An explicit BEGIN makes the whole migration one transaction (SQLite's DDL is
                # transactional) and takes the write lock first, which serialises concurrent upgrades.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise ConfigError(f"state database {describe(engine)} could not be migrated: {exc.__class__.__name__}") from exc
    return before, head


def open_engine(url: str, base_dir: Path | None = None, *, pool_size: int | None = None) -> Engine:
    """Create the engine and bring the schema up to date (what every command does first)."""
    engine = make_engine(url, base_dir, pool_size=pool_size)
    upgrade(engine)
    return engine
