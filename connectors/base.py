"""What every connector shares: the live connector contract, read counters, the pseudonymiser type.

HTTP plumbing (session, retry policy, paging, time parsing) is in :mod:`connectors.http`.

Connectors import only the leaf modules of the core (``lms_bridge.activity``,
``lms_bridge.errors``, ``lms_bridge.redaction``) and this module.
"""

from __future__ import annotations

import builtins
import gc
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, SecretStr, ValidationError

from lms_bridge.activity import Activity
from lms_bridge.errors import ConfigError
from xapi.vocabulary import Vocabulary


@dataclass
class ReadStats:
    """What a file reader saw besides the activities it yielded: for the import summary.

    A reader fills it only after the whole file parsed: a malformed file leaves it untouched.

    Attributes:
        records: the file's own records read: chat messages (system lines included) or report rows.
        skipped: records that are not participation (system lines, deleted or service messages,
            waiting-room rows...).
        groups: for a file that holds several chats (a Telegram account export): chat id ->
            (chat name, records of that chat).
    """

    records: int = 0
    skipped: int = 0
    groups: dict[str, tuple[str | None, int]] = field(default_factory=dict)


#: Turns a normalised identifier (``phone:+62...``, ``telegram:user1``) into an opaque pseudonym.
Pseudonymizer = Callable[[str], str]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause CPython's cyclic garbage collector while one export is parsed, then restore it.

    A parse keeps every record it builds alive until the end, so each automatic
    collection walks all records built so far, and finds nothing to free: records
    hold no reference cycles. Measured on a 40,000-message export:
    0.87 s with collections, 0.59 s without (WhatsApp); 0.61 s and 0.37 s (Telegram).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- the connector contract ----------------------------------------------------------------------
#
# A live source (an LMS, a source LRS, a chat or meeting platform's API) is one :class:`Connector`,
# registered by its config ``type`` in :data:`connectors.CONNECTORS`. ``lms-bridge sync`` (one run
# loop, :func:`lms_bridge.ingest.runner.sync_source`) opens a :class:`Reader` for a source and runs
# each of its streams from the stream's stored position, committing every :class:`Page` in one
# transaction: its activities, its identity links and the position after it (the cursor rule).
# A page must therefore carry the position that covers exactly its activities (None: no move).


@dataclass(frozen=True)
class SourceVoid:
    """A voiding statement of the source: lms-bridge may hold a copy of its target.

    Attributes:
        statement_id: the voiding statement's id at the source.
        target: the id of the source statement it voids.
        copy_keys: natural keys a copy of the target would have (one per activity kind it may have been).
    """

    statement_id: str
    target: str
    copy_keys: tuple[str, ...]


@dataclass
class Page:
    """One page of a stream, committed in one transaction.

    Attributes:
        activities: the activities the page gave.
        accounts: source-local account id -> NIP (or None, or "" when the source has the field
            empty) for identity links; chat platforms give no NIP (the roster links them).
        position: the stream's cursor after this page (JSON-serialisable), or None to leave it.
        read: source records the page held (for progress and run counts).
        skipped: source records that became no activity, by reason.
        voids: the source's voiding statements on this page: the runner voids the copies it holds
            (before it commits the page, so the cursor never passes a void that is not queued).
    """

    activities: list[Activity] = field(default_factory=list)
    accounts: dict[str, str | None] = field(default_factory=dict)
    position: Any = None
    read: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    voids: list[SourceVoid] = field(default_factory=list)


class Reader(Protocol):
    """An open connection to a live source: reads its streams."""

    @property
    def calls(self) -> Mapping[str, int]:
        """API calls made so far, per endpoint or function name."""
        ...

    def read(self, stream: str, start: Any, since: datetime | None = None) -> Iterator[Page]:
        """Yield the stream's pages after ``start`` (the stored position, None the first time).

        ``since`` asks for a backfill window instead (the runner leaves the cursor alone);
        a source that cannot go back raises :class:`~lms_bridge.errors.ConfigError` saying so.
        Errors are the project's own (:class:`~lms_bridge.errors.LmsBridgeError` subclasses),
        naming the source.
        """
        ...


@dataclass(frozen=True)
class Context:
    """What a connector may use of the deployment besides its source's own settings.

    It is called like the secret lookup it wraps (``context("ENV_NAME")``).

    Attributes:
        secret: the secret named by an environment variable (environment or 0600 secrets file).
        timezone: the deployment's time zone: local dates are read in it, as the export parsers do.
        pseudonymizer: builds the deployment's pseudonymiser (ConfigError without the key), so
            e-mails and chat ids become the same pseudonyms as in an imported export.
        resolve_path: a path from the config file, relative to that file's folder (key files).
        vocabulary: the deployment's xAPI vocabulary (a source LRS maps foreign statements with it).
        base_iri: the deployment's ``{base}`` (statements with its source extension are its own).
        request_slot: ``slots -> context manager`` holding one of ``slots`` request slots of the
            source shared by every worker (distributed syncs), or None in a single process; a
            connector that limits its requests in flight takes one around each request.
    """

    secret: Callable[[str], SecretStr]
    timezone: ZoneInfo
    pseudonymizer: Callable[[], Callable[[str], str]]
    resolve_path: Callable[[Path], Path] = field(default=lambda path: path)
    vocabulary: Vocabulary | None = None
    base_iri: str = ""
    request_slot: Callable[[int], AbstractContextManager[object]] | None = None

    def __call__(self, name: str) -> SecretStr:
        """The secret named ``name`` (see :attr:`secret`)."""
        return self.secret(name)


@dataclass(frozen=True)
class Stream:
    """A named stream of a connector; its name keys the cursors table (never rename one).

    Attributes:
        name: the stream's name.
        always: read on every sync of the source, even when other streams were asked for (the
            others need what it loads: Moodle's course catalogue).
        first: in a distributed sync, runs before the source's :attr:`side_by_side` streams
            (its identity links give their actors a NIP: Moodle's ``enrolled_users``).
        side_by_side: in a distributed sync, may run beside the source's other such streams.
    """

    name: str
    always: bool = False
    first: bool = False
    side_by_side: bool = False


@dataclass(frozen=True)
class Check:
    """What a connector's self-check found (``lms-bridge doctor``, ``sites test``).

    Attributes:
        name: what was checked (``moodle demo``).
        ok: whether it passed.
        detail: what was found, one sentence.
        fix: what to do about a failure.
    """

    name: str
    ok: bool
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Retention:
    """A source that keeps unread records for a limited time only: a longer gap between pulls loses them.

    Attributes:
        hours: how long the source keeps them.
        label: how ``doctor`` names such a source (``telegram bot``).
        lost: the sentence saying what a longer gap loses.
        recover: how to recover what was lost.
    """

    hours: int
    label: str
    lost: str
    recover: str


SettingsT = TypeVar("SettingsT", bound=BaseModel)


class Connector(Generic[SettingsT]):
    """What ``lms-bridge sync`` (and ``cursors``, ``doctor``, ``sites``, distributed workers) know of a source.

    Subclasses set the class attributes and implement :meth:`open`; the other methods have
    defaults for a source with nothing more to say.

    Attributes:
        type: the ``type`` of its ``[[sources]]`` entries (e.g. ``telegram_bot``).
        label: how sentences name one source of the type (``Moodle site``).
        streams: its streams, in the order a sync runs them.
        settings_model: the pydantic model validating a ``[[sources]]`` entry (``extra="forbid"``,
            with ``id`` and ``type`` fields).
        link_source: the identity ``source`` name of the accounts in :attr:`Page.accounts`.
        confirms_reads: reading past a page confirms it at the source, which then drops it
            (Telegram's ``getUpdates`` offset): a dry run, which stores nothing, reads one page only.
        skip_labels: how each skip reason of :attr:`Page.skipped` reads in a summary; None when the
            source never skips a record (its runs then record no ``skipped`` counts).
        voids: whether its pages may carry :attr:`Page.voids` (its runs then count ``voided``).
        retention: how long the source keeps what was not pulled yet, when that is limited.
    """

    type: str
    label: str
    streams: tuple[Stream, ...]
    settings_model: builtins.type[SettingsT]
    link_source: str
    confirms_reads: bool = False
    skip_labels: Mapping[str, str] | None = MappingProxyType({})
    voids: bool = False
    retention: Retention | None = None

    @property
    def stream_names(self) -> tuple[str, ...]:
        """The stream names, in run order."""
        return tuple(stream.name for stream in self.streams)

    def settings(self, entry: Mapping[str, Any]) -> SettingsT:
        """Validate a ``[[sources]]`` entry (its keys as a dict) with :attr:`settings_model`.

        Raises:
            ConfigError: naming the source and the key that is wrong.
        """
        try:
            return self.settings_model.model_validate(dict(entry))
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(part) for part in error["loc"]) or "entry"
            message = "unknown key (check the spelling)" if error["type"] == "extra_forbidden" else error["msg"]
            raise ConfigError(f"source {entry.get('id')}: {key}: {message}") from None

    def site_url(self, settings: SettingsT) -> str | None:
        """The ``homePage`` of the source's site-scoped actors (None: its actors are pseudonyms)."""
        return None

    def open(self, settings: SettingsT, context: Context) -> AbstractContextManager[Reader]:
        """A reader for one source, opened by the ``with`` that enters it.

        What can fail before anything is read and needs no run record (a missing secret) may
        raise here, when called; what fails on entering is recorded as the run's failure.
        """
        raise NotImplementedError

    def check(self, entry: Mapping[str, Any], context: Context) -> Check | None:
        """Call the source once and say whether it works for lms-bridge (``doctor``, ``sites test``).

        ``entry`` is the ``[[sources]]`` entry as a dict, not validated yet: a bad entry is a
        failed check. None: the source has no self-check.
        """
        return None

    def describe_position(self, position: Any) -> str | None:
        """A short human form of a position of this source, or None when it is not one of its own."""
        return None

    def reset_position(self, site: str, stream: str, before: Any, to: datetime) -> tuple[Any, bool]:
        """The position ``stream`` would hold had it synced up to ``to`` (``lms-bridge cursors reset``).

        Returns:
            The position to store, and whether it moves the cursor forward (skips activity).

        Raises:
            ConfigError: an unknown stream, or a cursor that is not a date.
        """
        if stream not in self.stream_names:
            raise ConfigError(self.unknown_stream(site, stream))
        raise ConfigError(
            f"source {site} is of type {self.type}: its cursor is not a date and the "
            "platform keeps no history to re-read, so it cannot be reset"
        )

    def unknown_stream(self, site: str, stream: str) -> str:
        """The sentence refusing a stream the source does not have."""
        return f"unknown stream {stream!r} of {self.type} source {site} (streams: {', '.join(self.stream_names)})"

    def request_slots(self, entry: Mapping[str, Any]) -> int | None:
        """Requests a source keeps in flight, each holding a shared slot (:attr:`Context.request_slot`), or None."""
        return None

    def to_run(self, asked: Sequence[str] | None) -> list[str]:
        """The streams a sync of ``asked`` (None or empty: all) reads, in run order (:attr:`Stream.always` too)."""
        return [stream.name for stream in self.streams if not asked or stream.name in asked or stream.always]

    def distributed_plan(self, asked: Sequence[str] | None) -> tuple[list[str], list[str]]:
        """The tasks of a distributed sync: streams that run one after the other, then those that run side by side.

        A source with no :attr:`Stream.side_by_side` stream runs its streams in order, one at a
        time, as a plain sync runs them. Otherwise a :attr:`Stream.first` stream goes first and
        the side-by-side ones then run together; every task reads the :attr:`Stream.always`
        streams itself, so those get a task of their own only when they are all that was asked for.
        """
        wanted = list(asked or self.stream_names)
        if not any(stream.side_by_side for stream in self.streams):
            return wanted, []
        tail = [stream.name for stream in self.streams if stream.side_by_side and stream.name in wanted]
        firsts = [stream.name for stream in self.streams if stream.first and stream.name in wanted]
        if firsts:
            head = firsts[0]
        elif not tail:
            head = next(name for name in self.stream_names if name in wanted)
        else:
            # The first task writes the catalogue cursors, so the ones after it only update them.
            head, tail = tail[0], tail[1:]
        return [head], tail
