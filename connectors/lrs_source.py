"""A source LRS: pull statements another LMS already emits, map them through the alias list.

Config: a ``[[sources]]`` entry with ``type = "lrs"`` (:class:`LRSSourceSettings`). The
reader GETs ``statements`` page by page through ``more`` links and maps each foreign
statement to an :class:`~lms_bridge.activity.Activity` whose natural key is
``lrs|<site>|<kind>|<foreign statement id>``, so re-reading a statement is harmless.

The cursor is the largest ``stored`` seen (``{"stored": "<UTC ISO time>"}``); every pull
re-reads ``overlap_seconds`` before it, because a statement may become visible in an
LRS after a later one was already readable. How the window is read depends on the LRS:

- ``mode = "since"`` (xAPI 1.0.3 conformant LRSs): ``since=<cursor - overlap>`` and
  ``ascending=true``; the LRS filters and orders by ``stored``, so each page's cursor is
  committed with its activities.
- ``mode = "scan"`` (Ralph 5.x, every backend: ``since`` compares ``timestamp``, not
  ``stored``, ``ascending`` reverses each cut page, docs/lrs.md §3): no ``since`` and no
  ``ascending``; every statement is read and those stored after ``cursor - overlap`` are
  kept. The order is not trusted, so the cursor moves only with the last page.
- ``mode = "auto"`` (default): ``since`` when the LRS answers ``about`` with its xAPI
  versions (the spec requires it), else ``scan`` (Ralph has no ``about``).

Verb and activity filters are never sent (Ralph's never match): everything is filtered here.
Skipped, and counted by reason: statements lms-bridge posted itself (its
``{base}/extensions/source`` context extension: no loops), voiding statements and the
statements they void (when the target comes in the same page or later in the same pull),
verb and object-type pairs with no activity kind, actors without an identifier.

A voiding statement may come after its target was mirrored (on an earlier page, or by
an earlier sync that the overlap re-reads or not): each page lists its voiding statements
(:attr:`Page.voids`) with the natural keys a copy of the target would have, and the
runner voids the copies it holds.

A connector knows no state store: the runner (:func:`lms_bridge.ingest.runner.sync_source`, through
:data:`CONNECTOR`) commits each :class:`Page` (activities, identity links, position) in one
transaction, after the voids of the copies its voiding statements name are queued.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.base import Check, Connector, Context, SourceVoid, Stream
from connectors.base import Page as ContractPage
from connectors.http import RetryPolicy, parse_iso_time
from lms_bridge.activity import Activity, Kind, ObjectRef
from lms_bridge.errors import ConfigError, FatalSourceError, LmsBridgeError, LRSAuthError, RetryableError
from lms_bridge.nip import parse_nip
from lms_bridge.redaction import sanitize_url
from xapi.lrs_client import LRSClient
from xapi.vocabulary import Vocabulary

log = logging.getLogger(__name__)

SOURCE = "lrs"
#: The one stream of a source LRS (keys its cursor: never rename it).
STREAM = "statements"
DEFAULT_IDENTITY_AUTHORITIES = ("https://siasn.bkn.go.id",)
#: Longest source-local actor id the state store keeps (``evidence.local_actor``).
MAX_LOCAL_ID = 128

#: Activity types other emitters use for things the vocabulary names (type IRI -> short type).
#: The vocabulary's own ``[activity_types]`` are always recognised too.
TYPE_ALIASES: Mapping[str, str] = {
    "http://adlnet.gov/expapi/activities/course": "course",
}

#: (canonical verb key, short object type) -> activity kind. Anything else is skipped.
KINDS: Mapping[tuple[str, str], Kind] = {
    ("completed", "course"): Kind.COURSE_COMPLETED,
    ("completed", "module"): Kind.MODULE_COMPLETED,
    ("viewed", "module"): Kind.MODULE_VIEWED,
    ("attended", "meeting"): Kind.MEETING_ATTENDED,
    ("attended", "coaching"): Kind.COACHING_ATTENDED,
    ("create", "discussion"): Kind.DISCUSSION_CREATED,
    ("posted", "discussion"): Kind.DISCUSSION_CREATED,
    ("create", "post"): Kind.POST_CREATED,
    ("posted", "post"): Kind.POST_CREATED,
    ("replied", "post"): Kind.REPLY_CREATED,
    ("replied", "discussion"): Kind.REPLY_CREATED,
    ("create", "message"): Kind.MESSAGE_POSTED,
    ("posted", "message"): Kind.MESSAGE_POSTED,
    ("replied", "message"): Kind.MESSAGE_REPLIED,
}

#: Object types whose ``definition.name`` may be a body written by a person: never copied.
_NO_TITLE_TYPES = frozenset({"post", "message"})
#: Language preference for titles (then the first tag in sorted order: deterministic).
_LANGUAGES = ("en-US", "en", "id-ID", "id")


class Skip(StrEnum):
    """Why a foreign statement became no activity."""

    OWN = "own"
    VOIDING = "voiding"
    VOIDED = "voided"
    UNSUPPORTED = "unsupported"
    ACTOR = "actor"
    MALFORMED = "malformed"


#: How each reason reads in a summary.
SKIP_LABELS: Mapping[Skip, str] = {
    Skip.OWN: "posted by lms-bridge",
    Skip.VOIDING: "voiding",
    Skip.VOIDED: "voided",
    Skip.UNSUPPORTED: "unsupported verb or object type",
    Skip.ACTOR: "actor without an identifier",
    Skip.MALFORMED: "malformed",
}


class LRSSourceSettings(BaseModel):
    """One source LRS, from a ``[[sources]]`` entry with ``type = "lrs"``.

    Attributes:
        id: the source id (statement ids and cursors: never rename it).
        url: the source LRS's xAPI endpoint (e.g. ``https://lrs.example.go.id/xAPI/``).
        username: Basic-auth user with read access to statements.
        password_env: environment variable (or secrets-file key) holding its password.
        identity_authorities: ``account.homePage`` values whose ``name`` is a NIP.
        page_size: statements asked for per page (``limit``; Ralph caps it at 100).
        overlap_seconds: how far before the cursor each pull starts again.
        mode: ``auto``, ``since`` (a conformant LRS filters ``since`` on ``stored``) or
            ``scan`` (read everything and filter here: Ralph).
        timeout: seconds per request.
        max_retries: retries of a transient failure (timeout, reset, 429, 5xx) per request.
        backoff_base: first wait in seconds between retries; doubles each time.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    type: Literal["lrs"] = "lrs"
    url: str = Field(pattern=r"^https?://")
    username: str = Field(min_length=1)
    password_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    identity_authorities: tuple[str, ...] = DEFAULT_IDENTITY_AUTHORITIES
    page_size: int = Field(default=500, ge=1, le=10_000)
    overlap_seconds: int = Field(default=300, ge=0)
    mode: Literal["auto", "since", "scan"] = "auto"
    timeout: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    backoff_base: float = Field(default=0.5, ge=0)

    @field_validator("url")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("identity_authorities")
    @classmethod
    def _authorities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for authority in value:
            if "://" not in authority or " " in authority:
                raise ValueError(f"{authority!r} is not an absolute IRI such as https://siasn.bkn.go.id")
        return tuple(authority.rstrip("/") for authority in value)

    @property
    def site_url(self) -> str:
        """``homePage`` of this source's site-scoped actors (the endpoint, no trailing slash)."""
        return self.url.rstrip("/")

    def client(self, password: SecretStr) -> LRSClient:
        """A client for the source LRS."""
        return LRSClient(self.url, self.username, password, timeout=self.timeout)


# --- parsing -----------------------------------------------------------------------------------

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<W>\d+(?:[.,]\d+)?)W)?(?:(?P<D>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<H>\d+(?:[.,]\d+)?)H)?(?:(?P<M>\d+(?:[.,]\d+)?)M)?(?:(?P<S>\d+(?:[.,]\d+)?)S)?)?$"
)
_SECONDS = {"W": 604_800, "D": 86_400, "H": 3_600, "M": 60, "S": 1}
_MAX_SECONDS = timedelta.max.total_seconds()


def parse_time(value: Any) -> datetime | None:
    """An xAPI timestamp as an aware UTC datetime; None when absent, malformed or without a zone."""
    return parse_iso_time(value.strip() if isinstance(value, str) else value, naive_is_utc=False)


def format_time(moment: datetime) -> str:
    """The one form of a cursor time and a ``since`` parameter: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_duration(value: Any) -> timedelta | None:
    """An ISO 8601 duration (``PT1H30M``, ``PT90S``, ``P1DT2H``) to whole seconds; None when not one.

    Years and months have no fixed length, so a duration with them is None.
    """
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value.strip())
    if match is None:
        return None
    seconds = sum(float(part.replace(",", ".")) * _SECONDS[unit] for unit, part in match.groupdict().items() if part)
    if not seconds < _MAX_SECONDS:  # also inf: more than a timedelta holds is no duration anyone spent
        return None
    return timedelta(seconds=int(seconds))


def _language_text(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    for tag in (*_LANGUAGES, *sorted(value)):
        text = value.get(tag)
        if isinstance(text, str) and text.strip():
            return " ".join(text.split())
    return None


def _utf8(statement: dict[str, Any]) -> bool:
    """Whether the statement is UTF-8 text (JSON allows a lone surrogate escape, UTF-8 does not).

    Its id, hashes and the database cannot hold a lone surrogate, so such a statement is malformed.
    """
    try:
        json.dumps(statement, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError):
        return False
    return True


def _local_id(text: str) -> str:
    return text if len(text) <= MAX_LOCAL_ID else "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()  # noqa: S324


# --- mapping -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForeignActor:
    """The person of a foreign statement.

    Attributes:
        local_id: the source-local id: ``<homePage>|<name>`` for an account,
            ``mbox_sha1sum:<hex>`` for an e-mail (hashed, never stored), ``openid:<uri>``;
            ``sha1:<hex>`` of that when it is longer than 128 characters.
        nip: the NIP when the account's homePage is an identity authority and its name a valid NIP.
    """

    local_id: str
    nip: str | None = None


class StatementMapper:
    """Maps foreign statements to activities of one source (pure: no I/O).

    Args:
        site: the configured source id.
        vocabulary: verbs, aliases and activity types (``mappings/vocabulary.toml``).
        base_iri: the deployment's ``{base}``: statements with its source extension are ours.
        identity_authorities: homePages whose account names are NIPs.
    """

    def __init__(
        self,
        site: str,
        vocabulary: Vocabulary,
        base_iri: str,
        identity_authorities: tuple[str, ...] = DEFAULT_IDENTITY_AUTHORITIES,
    ) -> None:
        self.site = site
        self.own_extension = f"{base_iri.rstrip('/')}/extensions/source"
        self.authorities = frozenset(a.rstrip("/") for a in identity_authorities)
        self.verbs: dict[str, str] = {verb.id: key for key, verb in vocabulary.verbs.items()}
        self.verbs.update(vocabulary.aliases)
        self.voided_verb = vocabulary.verbs["voided"].id if "voided" in vocabulary.verbs else None
        self.types: dict[str, str] = {iri: key for key, iri in vocabulary.activity_types.items()}
        self.types.update(TYPE_ALIASES)

    def voided_target(self, statement: Any) -> str | None:
        """The id a voiding statement voids, or None when ``statement`` is not one."""
        if not isinstance(statement, dict):
            return None
        verb, obj = statement.get("verb"), statement.get("object")
        if not isinstance(verb, dict) or verb.get("id") != self.voided_verb or not isinstance(obj, dict):
            return None
        target = obj.get("id")
        return target if obj.get("objectType") == "StatementRef" and isinstance(target, str) else None

    def copy_keys(self, foreign_id: str) -> tuple[str, ...]:
        """The natural keys lms-bridge's copy of the foreign statement ``foreign_id`` may have.

        One per activity kind: the voided statement itself is not at hand (an earlier sync
        read it), so every kind it could have mapped to is a candidate. Guard: this is
        :attr:`~lms_bridge.activity.Activity.natural_key` of what :meth:`map` returns (a test checks).
        """
        return tuple(f"{SOURCE}|{self.site}|{kind.value}|{foreign_id}" for kind in dict.fromkeys(KINDS.values()))

    def is_own(self, statement: dict[str, Any]) -> bool:
        """Whether lms-bridge built this statement (its source extension is in the context)."""
        context = statement.get("context")
        extensions = context.get("extensions") if isinstance(context, dict) else None
        return isinstance(extensions, dict) and self.own_extension in extensions

    def actor(self, actor: Any) -> ForeignActor | None:
        """The source-local person of an xAPI actor; None for a group or an agent without an identifier."""
        if not isinstance(actor, dict) or actor.get("objectType") == "Group":
            return None
        account = actor.get("account")
        if isinstance(account, dict):
            home = str(account.get("homePage") or "").strip().rstrip("/")
            name = str(account.get("name") or "").strip()
            if not home or not name:
                return None
            if home in self.authorities:
                nip = parse_nip(name)
                if nip is not None:
                    return ForeignActor(_local_id(f"{home}|{nip.value}"), nip.value)
            return ForeignActor(_local_id(f"{home}|{name}"))
        mbox = actor.get("mbox")
        if isinstance(mbox, str) and mbox.strip():
            # The SHA-1 of the mailto IRI is xAPI's own mbox_sha1sum: the address is never kept.
            digest = hashlib.sha1(mbox.strip().encode("utf-8")).hexdigest()  # noqa: S324
            return ForeignActor(f"mbox_sha1sum:{digest}")
        given = actor.get("mbox_sha1sum")
        if isinstance(given, str) and re.fullmatch(r"[0-9a-fA-F]{40}", given.strip()):
            return ForeignActor(f"mbox_sha1sum:{given.strip().lower()}")
        openid = actor.get("openid")
        if isinstance(openid, str) and openid.strip():
            return ForeignActor(_local_id(f"openid:{openid.strip()}"))
        return None

    def _ref(self, activity: Any, fallback_type: str | None = None) -> ObjectRef | None:
        if not isinstance(activity, dict) or not isinstance(activity.get("id"), str):
            return None
        definition: dict[str, Any] = activity["definition"] if isinstance(activity.get("definition"), dict) else {}
        short = self.types.get(str(definition.get("type"))) or fallback_type
        if short is None:
            return None
        title = None if short in _NO_TITLE_TYPES else _language_text(definition.get("name"))
        return ObjectRef(short, activity["id"], title, activity["id"])

    def _context_refs(self, statement: dict[str, Any], key: str) -> list[ObjectRef]:
        context = statement.get("context")
        activities = context.get("contextActivities") if isinstance(context, dict) else None
        found = activities.get(key) if isinstance(activities, dict) else None
        if isinstance(found, dict):
            found = [found]
        refs = [self._ref(item, "activity") for item in found] if isinstance(found, list) else []
        return [ref for ref in refs if ref is not None]

    def map(self, statement: Any) -> Activity | Skip:
        """Map one foreign statement to an activity, or say why it maps to none."""
        if not isinstance(statement, dict) or not isinstance(statement.get("id"), str) or not _utf8(statement):
            return Skip.MALFORMED
        if self.is_own(statement):
            return Skip.OWN
        if self.voided_target(statement) is not None:
            return Skip.VOIDING
        verb = statement.get("verb")
        verb_key = self.verbs.get(str(verb.get("id"))) if isinstance(verb, dict) else None
        obj = statement.get("object")
        if not isinstance(obj, dict) or obj.get("objectType", "Activity") != "Activity":
            return Skip.UNSUPPORTED
        ref = self._ref(obj)
        kind = KINDS.get((verb_key, ref.type)) if verb_key and ref else None
        if kind is None or ref is None:
            return Skip.UNSUPPORTED
        person = self.actor(statement.get("actor"))
        if person is None:
            return Skip.ACTOR
        occurred_at = parse_time(statement.get("timestamp")) or parse_time(statement.get("stored"))
        if occurred_at is None:
            return Skip.MALFORMED
        result: dict[str, Any] = statement["result"] if isinstance(statement.get("result"), dict) else {}
        extras: dict[str, Any] = {}
        if person.nip is not None:
            extras["nip"] = person.nip
        if kind in (Kind.COURSE_COMPLETED, Kind.MODULE_COMPLETED) and isinstance(result.get("success"), bool):
            extras["success"] = result["success"]
        parents = self._context_refs(statement, "parent")
        groupings = self._context_refs(statement, "grouping")
        course = ref if ref.type == "course" else next((r for r in (*parents, *groupings) if r.type == "course"), None)
        if course is not None:
            # Program JP tables key courses by shortname: the course's name, else its id.
            extras["course_shortname"] = course.title or course.native_id
        return Activity(
            source=SOURCE,
            site=self.site,
            kind=kind,
            native_id=statement["id"],
            actor=person.local_id,
            object=ref,
            occurred_at=occurred_at,
            duration=parse_duration(result.get("duration")),
            parent=parents[0] if parents else None,
            grouping=next((r for r in groupings if r.type == "community"), None),
            extras=extras,
        )


# --- reading -----------------------------------------------------------------------------------


@dataclass
class Page:
    """What one page of the source gives the runner, committed in one transaction.

    Attributes:
        activities: the activities mapped from the page (one per natural key).
        accounts: the page's actors: source-local id -> NIP (or None).
        position: the cursor after this page, or None to leave it where it is.
        statements: statements the page held (inside the window or not).
        skipped: statements of the window that became no activity, by reason.
        keys: natural keys of ``activities`` (a statement twice in one page is kept once).
        voids: the window's voiding statements on this page. Their targets are never mapped
            from here on in this pull, but an earlier page or sync may have mirrored them.
    """

    activities: list[Activity] = field(default_factory=list)
    accounts: dict[str, str | None] = field(default_factory=dict)
    position: dict[str, str] | None = None
    statements: int = 0
    skipped: Counter[Skip] = field(default_factory=Counter)
    keys: set[str] = field(default_factory=set, repr=False)
    voids: list[SourceVoid] = field(default_factory=list)


class LRSSourceReader:
    """Reads a source LRS page by page from a cursor.

    Args:
        settings: the source's settings.
        client: an open client for the source LRS.
        mapper: maps statements to activities.
        sleep: waits between retries (tests pass a fake).
    """

    def __init__(
        self,
        settings: LRSSourceSettings,
        client: LRSClient,
        mapper: StatementMapper,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.client = client
        self.mapper = mapper
        self.sleep = sleep
        self.calls: Counter[str] = Counter()
        self.mode: str | None = None

    # -- requests, with retries and one sentence per failure --

    def _where(self) -> str:
        return f"source LRS {self.settings.id} ({sanitize_url(self.settings.url)})"

    def _reason(self, exc: Exception) -> tuple[str, bool]:
        """The client's message without its own "the LRS at URL" subject, and whether it had one."""
        prefix = f"the LRS at {sanitize_url(self.settings.url)} "
        text = str(exc)
        return (text.removeprefix(prefix), True) if text.startswith(prefix) else (text, False)

    def _call(self, name: str, request: Callable[[], Any]) -> Any:
        attempts = self.settings.max_retries + 1

        def attempt() -> Any:
            self.calls[name] += 1
            return request()

        def on_retry(exc: RetryableError, number: int, delay: float) -> None:
            log.warning(
                "%s %s; retry %d of %d in %.1f s",
                self._where(),
                self._reason(exc)[0],
                number,
                self.settings.max_retries,
                delay,
                extra={"site": self.settings.id},
            )

        def gave_up(exc: RetryableError, tries: int) -> RetryableError:
            return RetryableError(f"{self._where()} {self._reason(exc)[0]}; gave up after {tries} attempts")

        policy = RetryPolicy(attempts=attempts, backoff_base=self.settings.backoff_base, sleep=self.sleep)
        try:
            return policy.run(attempt, on_retry=on_retry, gave_up=gave_up)
        except LRSAuthError as exc:
            status = re.search(r"HTTP \d+", str(exc))
            raise FatalSourceError(
                f"{self._where()} refused the credentials ({status.group(0) if status else 'HTTP 401'}): "
                f"check its username and the secret {self.settings.password_env}"
            ) from None
        except RetryableError:
            raise
        except LmsBridgeError as exc:
            reason, had_subject = self._reason(exc)
            raise FatalSourceError(f"{self._where()}{' ' if had_subject else ': '}{reason}") from None

    def resolve_mode(self) -> str:
        """``since`` or ``scan``: as configured, or (``auto``) by asking the LRS's ``about``."""
        if self.mode is None:
            if self.settings.mode != "auto":
                self.mode = self.settings.mode
            else:
                about = self._call("GET about", self.client.about)
                self.mode = "since" if about else "scan"
                log.info(
                    "%s: %s",
                    self._where(),
                    f"xAPI {', '.join(map(str, about['version']))}: reading from the cursor with since"
                    if about
                    else "no xAPI about resource (Ralph?): reading every statement, "
                    "keeping those stored after the cursor",
                    extra={"site": self.settings.id},
                )
        return self.mode

    # -- pages --

    def read(self, start: Any, since: datetime | None = None) -> Iterator[Page]:
        """Yield the pages stored after ``start`` (a position) minus the overlap, or after ``since``.

        Args:
            start: the stream's stored position (``{"stored": ...}``) or None before the first pull.
            since: a backfill's lower bound on ``stored`` (the caller does not move the cursor then).

        Raises:
            FatalSourceError: the source refused the credentials or answered something unreadable.
            RetryableError: the source kept failing (timeouts, 5xx) after the retries.
        """
        mode = self.resolve_mode()
        cursor = parse_time(start.get("stored")) if isinstance(start, dict) else None
        overlap = timedelta(seconds=self.settings.overlap_seconds)
        lower = since if since is not None else (cursor - overlap if cursor is not None else None)
        params: dict[str, Any] = {"limit": self.settings.page_size}
        if mode == "since":
            params["ascending"] = "true"
            if lower is not None:
                params["since"] = format_time(lower)
        highest = cursor  # the largest stored seen: the position never moves back
        committed: datetime | None = None  # the position a page before this one carried
        ordered = mode == "since"  # only then may a page that is not the last move the cursor
        voided: set[str] = set()
        more: str | None = None
        seen_more: set[str] = set()
        while True:
            result = self._call("GET statements", partial(self.client.get_statements_page, more, params))
            statements = [s for s in result.get("statements") or [] if isinstance(s, dict)]
            page = Page(statements=len(result.get("statements") or []))
            voided.update(t for t in map(self.mapper.voided_target, statements) if t is not None)
            for statement in statements:
                stored = parse_time(statement.get("stored"))
                if stored is not None:
                    if lower is not None and stored <= lower:
                        continue  # before the window (a scan reads everything)
                    if ordered and committed is not None and stored < committed - overlap:
                        ordered = False
                        log.warning(
                            "%s does not return statements in stored order: the cursor moves only at the "
                            "end of this pull",
                            self._where(),
                            extra={"site": self.settings.id},
                        )
                    highest = stored if highest is None else max(highest, stored)
                self._map(statement, page, voided)
            more = result.get("more") if isinstance(result.get("more"), str) else None
            last = not statements or not more or more in seen_more
            if (ordered or last) and highest is not None:
                page.position = {"stored": format_time(highest)}
                committed = highest
            yield page
            if last or more is None:
                return
            seen_more.add(more)

    def _map(self, statement: dict[str, Any], page: Page, voided: set[str]) -> None:
        """Map one statement of the window into ``page`` (or count why not)."""
        sid = statement.get("id")
        if isinstance(sid, str) and sid in voided:
            page.skipped[Skip.VOIDED] += 1
            return
        mapped = self.mapper.map(statement)
        if isinstance(mapped, Skip):
            page.skipped[mapped] += 1
            target = self.mapper.voided_target(statement)
            if mapped is Skip.VOIDING and target is not None:
                page.voids.append(SourceVoid(str(sid), target, self.mapper.copy_keys(target)))
            return
        if mapped.natural_key in page.keys:
            return  # the same statement twice in one page: one outbox row, one evidence row
        page.keys.add(mapped.natural_key)
        page.activities.append(mapped)
        page.accounts.setdefault(mapped.actor, mapped.extras.get("nip"))


# --- the connector -------------------------------------------------------------------------------


class LRSPages:
    """A :class:`LRSSourceReader` as the contract's reader (:class:`connectors.base.Reader`)."""

    def __init__(self, reader: LRSSourceReader) -> None:
        self.reader = reader

    @property
    def calls(self) -> Counter[str]:
        """Requests made so far, per request."""
        return self.reader.calls

    def read(self, stream: str, start: Any, since: datetime | None = None) -> Iterator[ContractPage]:
        """The pages of the one stream (:meth:`LRSSourceReader.read`), as contract pages."""
        if stream != STREAM:
            raise ConfigError(f"a source LRS has one stream, {STREAM}, not {stream!r}")
        for page in self.reader.read(start, since=since):
            yield ContractPage(
                activities=page.activities,
                accounts=page.accounts,
                position=page.position,
                read=page.statements,
                skipped=Counter({reason.value: count for reason, count in page.skipped.items()}),
                voids=page.voids,
            )


@contextmanager
def _open(settings: LRSSourceSettings, password: SecretStr, context: Context) -> Iterator[LRSPages]:
    if context.vocabulary is None:
        raise ConfigError(f"source LRS {settings.id}: no xAPI vocabulary to map its statements with")
    mapper = StatementMapper(settings.id, context.vocabulary, context.base_iri, settings.identity_authorities)
    with settings.client(password) as client:
        yield LRSPages(LRSSourceReader(settings, client, mapper))


class LRSSourceConnector(Connector[LRSSourceSettings]):
    """A source LRS (``type = "lrs"``): one stream, ``statements``; its cursor is the largest ``stored`` seen."""

    type = SOURCE
    label = "source LRS"
    streams = (Stream(STREAM),)
    settings_model = LRSSourceSettings
    link_source = SOURCE
    skip_labels = MappingProxyType({reason.value: label for reason, label in SKIP_LABELS.items()})
    voids = True

    def site_url(self, settings: LRSSourceSettings) -> str | None:
        """The endpoint, no trailing slash (:attr:`LRSSourceSettings.site_url`)."""
        return settings.site_url

    def open(self, settings: LRSSourceSettings, context: Context) -> AbstractContextManager[LRSPages]:
        """A reader; the password is looked up now (a ConfigError before any run is recorded)."""
        return _open(settings, context.secret(settings.password_env), context)

    def check(self, entry: Mapping[str, Any], context: Context) -> Check:
        """``about`` (the read mode), then one authenticated ``GET statements?limit=1`` as the sync reads."""
        name = f"{SOURCE} {entry.get('id')}"
        try:
            settings = self.settings(entry)
            password = context.secret(settings.password_env)
        except ConfigError as exc:
            return Check(name, False, str(exc), "set it as the sentence says, or fix the [[sources]] entry")
        # One retry at most: doctor should answer in seconds, not after a sync's backoff.
        quick = settings.model_copy(update={"max_retries": min(settings.max_retries, 1)})
        with quick.client(password) as client:
            # The check maps nothing: an empty vocabulary will do.
            nothing = Vocabulary(version=0, verbs={}, activity_types={}, kinds={}, platforms={}, aliases={})
            reader = LRSSourceReader(quick, client, StatementMapper(settings.id, nothing, "", ()))
            try:
                mode = reader.resolve_mode()
                page = reader._call("GET statements", lambda: client.get_statements_page(params={"limit": 1}))
            except FatalSourceError as exc:
                fix = (
                    f"check username and the password in {settings.password_env}: the user must be allowed "
                    "to read statements"
                    if "refused the credentials" in str(exc)
                    else "check url: it must be the source LRS's xAPI endpoint"
                )
                return Check(name, False, str(exc), fix)
            except RetryableError as exc:
                return Check(name, False, str(exc), f"check that {sanitize_url(settings.url)} is up and reachable")
        held = "holds statements" if page.get("statements") else "holds no statement yet"
        return Check(name, True, f"{settings.username} may read statements; the LRS {held}; reading mode {mode}")

    def describe_position(self, position: Any) -> str | None:
        """``stored after <time>``."""
        if isinstance(position, dict) and isinstance(position.get("stored"), str):
            return f"stored after {position['stored']}"
        return None

    def reset_position(self, site: str, stream: str, before: Any, to: datetime) -> tuple[Any, bool]:
        """The cursor at ``to``: the next pull reads what was stored after it (minus the overlap)."""
        if stream != STREAM:
            raise ConfigError(f"a source LRS has one stream, {STREAM}, not {stream!r}")
        current = parse_time(before.get("stored")) if isinstance(before, dict) else None
        return {"stored": format_time(to.astimezone(UTC))}, current is not None and current < to


CONNECTOR = LRSSourceConnector()
