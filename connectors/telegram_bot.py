"""Live Telegram pulls through the Bot API (``getUpdates``), for CoP groups the bot is a member of.

Config: a ``[[sources]]`` entry with ``type = "telegram_bot"`` (:class:`TelegramBotSettings`). The
bot (privacy mode off, so it sees every message) is added to each CoP group; ``chats`` says which
CoP (community id) each group is. Its one stream, ``updates``, long-polls ``getUpdates`` from the
cursor ``{"offset": last update_id + 1}``. Telegram drops an update once a later ``getUpdates``
sends an offset past it ("confirmed") and keeps unconfirmed updates for 24 hours only, so:

- an offset is sent only after the page that covers it is committed (the runner commits each
  page before it asks the generator for the next; a dry run reads one page only, see
  :attr:`connectors.live.LiveConnector.confirms_reads`), and a crash re-reads the page;
- a sync stops at the first poll that returns no update (a scheduled pull, not a bot loop);
- a backfill (``--since``) is refused: Telegram cannot send older updates again;
- ``lms-bridge doctor`` warns when the last successful pull is more than 24 hours old.

Activities are those of the Telegram Desktop export parser (:mod:`connectors.telegram`) for the
same messages, so an export of a period already pulled adds nothing:

- ``source`` ``telegram``; ``site`` = the chat's community id (an export imported with
  ``--community ID`` and no ``--site`` is recorded under that same id);
- ``native_id`` ``"{chat id}:{message id}"`` with the export's chat id: the Bot API gives a
  supergroup as ``-100<id>`` and a basic group as ``-<id>``, the export the bare ``<id>``;
- the actor is the pseudonym of ``telegram:user<from.id>``, as the export's ``from_id``;
- a message or an edited message (``edited_message``: the same key, ``extras["edited"]``) from a
  user is ``message_posted``, or ``message_replied`` with ``reply_to_message`` as the parent;
  messages sent as a channel or as the group (``sender_chat``) belong to no person;
- ``video_chat_ended`` with a duration is ``meeting_attended`` for its sender, as the export's
  ``group_call`` message with a duration; joins, leaves, a call's start and every other service
  message are counted as skipped, and so are messages of chats not in ``chats``.

Where ids cannot match an export (documented in docs/sources/telegram-bot.md): a basic group later migrated to a
supergroup has a new chat id (map both ids to one community); a call's end message may carry
another id than the export's call message if Telegram edits the start message instead.
No message text, name, username or phone number is kept: a length and the pseudonym only.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.base import Check, Retention, Stream
from connectors.http import RetryPolicy, TransientHTTPError, make_session
from connectors.live import LiveConnector, LiveContext, LivePage
from connectors.telegram import SOURCE
from lms_bridge.activity import REPLY_TO, Activity, Kind, ObjectRef
from lms_bridge.errors import ConfigError, FatalSourceError, LmsBridgeError, RetryableError
from lms_bridge.identifiers import telegram_identifier
from lms_bridge.redaction import redact, register_secret, sanitize_url

log = logging.getLogger(__name__)

TYPE = "telegram_bot"
#: The one stream (keys its cursor: never rename it).
STREAM = "updates"
#: Hours Telegram keeps a bot's unconfirmed updates.
RETENTION_HOURS = 24
#: Update kinds asked for: messages (service messages included) and their edits.
ALLOWED_UPDATES = ("message", "edited_message")
#: The Bot API writes a supergroup's or channel's id as -(10**12 + id).
_CHANNEL_SHIFT = 1_000_000_000_000
_COMMUNITY_ID = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
#: Unix time of 9999-12-31: a message ``date`` at or past it is malformed (datetime cannot hold it).
_LAST_DATE = 253_402_214_400

#: Message keys of media, as the export's ``_MEDIA_KEYS`` (photo, file, sticker, poll...).
_MEDIA_KEYS = (
    "photo",
    "document",
    "video",
    "audio",
    "voice",
    "video_note",
    "animation",
    "sticker",
    "poll",
    "contact",
    "location",
    "venue",
    "dice",
    "paid_media",
    "story",
)
#: Message keys that make a service message (Bot API ``Message``); none is participation.
_JOIN_LEAVE = ("new_chat_members", "left_chat_member")
_SERVICE_KEYS = _JOIN_LEAVE + (
    "new_chat_title",
    "new_chat_photo",
    "delete_chat_photo",
    "group_chat_created",
    "supergroup_chat_created",
    "channel_chat_created",
    "message_auto_delete_timer_changed",
    "migrate_to_chat_id",
    "migrate_from_chat_id",
    "pinned_message",
    "video_chat_scheduled",
    "video_chat_started",
    "video_chat_ended",
    "video_chat_participants_invited",
    "forum_topic_created",
    "forum_topic_edited",
    "forum_topic_closed",
    "forum_topic_reopened",
    "general_forum_topic_hidden",
    "general_forum_topic_unhidden",
    "write_access_allowed",
    "users_shared",
    "chat_shared",
    "boost_added",
    "chat_background_set",
    "giveaway_created",
    "giveaway_completed",
    "proximity_alert_triggered",
    "connected_website",
    "successful_payment",
    "refunded_payment",
)

# Skip reasons (the sync summary prints them as written).
UNMAPPED = "messages of chats not in chats"
JOIN_LEAVE = "joins and leaves"
SERVICE = "other service messages"
CALL_STARTED = "calls started (counted when they end)"
NOT_A_PERSON = "messages sent as a channel or group"
NOT_A_GROUP = "messages of private chats"
OTHER_UPDATE = "other updates"
MALFORMED = "malformed messages"


def export_chat_id(chat_id: int) -> int:
    """The id a Telegram Desktop export gives a chat the Bot API calls ``chat_id``.

    ``-1001000000001`` (supergroup, channel) and ``-1000000001`` (basic group) give ``1000000001``;
    an id already in the export's form is returned unchanged.
    """
    if chat_id <= -_CHANNEL_SHIFT:
        return -chat_id - _CHANNEL_SHIFT
    return -chat_id if chat_id < 0 else chat_id


class TelegramBotSettings(BaseModel):
    """One Telegram bot, from a ``[[sources]]`` entry with ``type = "telegram_bot"``.

    Attributes:
        id: the source id (keys the cursor: never rename it). Statement ids use the community ids.
        token_env: environment variable (or secrets-file key) holding the bot token from @BotFather.
        api_url: the Bot API server (a local ``telegram-bot-api`` server, or a fake in tests).
        chats: chat id -> community id (the CoP the group is). Ids as the Bot API gives them
            (``-100...``) or as an export does; stored in the export's form.
        timeout: seconds a poll waits for new updates (long polling) before it answers empty.
        limit: updates per page (1-100).
        request_timeout: seconds a request may take beyond ``timeout``.
        max_retries: retries of a transient failure (reset, timeout, 5xx, 429) per request.
        backoff_base: first wait in seconds between retries; doubles each time.
        max_retry_after: the longest 429 ``retry_after`` waited for; a longer one stops the sync.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    type: Literal["telegram_bot"] = "telegram_bot"
    token_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    api_url: str = Field(default="https://api.telegram.org", pattern=r"^https?://[^/?#]+(/[^?#]*)?$")
    chats: dict[int, str] = Field(min_length=1)
    timeout: int = Field(default=5, ge=0, le=50)
    limit: int = Field(default=100, ge=1, le=100)
    request_timeout: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    backoff_base: float = Field(default=1.0, ge=0)
    max_retry_after: float = Field(default=120.0, ge=0)

    @field_validator("api_url")
    @classmethod
    def _no_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("chats")
    @classmethod
    def _chats(cls, value: dict[int, str]) -> dict[int, str]:
        found: dict[int, str] = {}
        for chat_id, community in value.items():
            if not re.fullmatch(_COMMUNITY_ID, community):
                raise ValueError(f"{community!r} is not a community id (lowercase letters, digits, '-', '_', '.')")
            bare = export_chat_id(chat_id)
            if bare in found and found[bare] != community:
                raise ValueError(f"chat {chat_id} is listed twice (as -100{bare} and {bare})")
            found[bare] = community
        return found


def _site_url(settings: TelegramBotSettings) -> str | None:
    return None  # chat members are pseudonyms: no site-scoped actors


class TelegramBotReader:
    """Reads one bot's updates page by page (see the module docstring).

    Args:
        settings: the source's settings.
        token: the bot token (only ever put in the request path; never logged).
        pseudonymize: the deployment's pseudonymiser.
        session: the HTTP session.
        sleep: waits between retries (tests may pass a fake).
    """

    def __init__(
        self,
        settings: TelegramBotSettings,
        token: SecretStr,
        pseudonymize: Callable[[str], str],
        session: requests.Session,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._token = token
        self.pseudonymize = pseudonymize
        self.session = session
        self.sleep = sleep
        self.calls: Counter[str] = Counter()
        self._actors: dict[int, str] = {}

    @property
    def where(self) -> str:
        """The source as error sentences name it (never the token)."""
        return f"telegram bot source {self.settings.id} ({sanitize_url(self.settings.api_url)})"

    # -- requests --

    def _post(self, method: str, payload: dict[str, Any]) -> requests.Response:
        url = f"{self.settings.api_url}/bot{self._token.get_secret_value()}/{method}"
        timeout = (min(10.0, self.settings.request_timeout), self.settings.timeout + self.settings.request_timeout)
        return self.session.post(url, json=payload, timeout=timeout)

    def call(self, method: str, payload: dict[str, Any]) -> Any:
        """Call a Bot API method and return its ``result``, retrying what is transient.

        Raises:
            FatalSourceError: the Bot API refused the call (bad token, conflict, bad request).
            RetryableError: it kept failing (resets, timeouts, 5xx, 429) after the retries.
        """

        def attempt() -> Any:
            self.calls[method] += 1
            try:
                response = self._post(method, payload)
            except requests.Timeout:
                raise TransientHTTPError(f"the Bot API did not answer {method} in time") from None
            except requests.RequestException as exc:  # never str(exc): it holds the URL, so the token
                raise TransientHTTPError(f"{method} failed ({exc.__class__.__name__})") from None
            body = _json(response)
            if response.status_code == 200 and isinstance(body, dict) and body.get("ok") is True:
                return body.get("result")
            reason, wait = self._refusal(method, response.status_code, body)
            raise TransientHTTPError(reason, wait)

        def on_retry(reason: RetryableError, number: int, delay: float) -> None:
            log.warning(
                "%s: %s; retry %d of %d in %.1f s",
                self.where,
                reason,
                number,
                self.settings.max_retries,
                delay,
                extra={"site": self.settings.id},
            )

        def gave_up(reason: RetryableError, tries: int) -> RetryableError:
            return RetryableError(f"{self.where}: {reason}; gave up after {tries} attempts")

        def too_long(reason: RetryableError, wait: float) -> RetryableError:
            return RetryableError(
                f"{self.where}: the Bot API asks to wait {wait:g} s before the next {method} "
                f"(429 flood control), longer than max_retry_after "
                f"({self.settings.max_retry_after:g} s): the next sync will try again"
            )

        policy = RetryPolicy(
            attempts=self.settings.max_retries + 1,
            backoff_base=self.settings.backoff_base,
            max_retry_after=self.settings.max_retry_after,
            sleep=self.sleep,
        )
        return policy.run(attempt, on_retry=on_retry, gave_up=gave_up, too_long=too_long)

    def _refusal(self, method: str, status: int, body: Any) -> tuple[str, float | None]:
        """What an answer other than ``ok`` means: raises when it is final, else (reason, wait or None).

        A wait longer than ``max_retry_after`` gives up at once (:class:`connectors.http.RetryPolicy`).
        """
        error: dict[str, Any] = body if isinstance(body, dict) else {}
        description = redact(str(error.get("description") or "")).strip()[:200]
        code = error.get("error_code") if isinstance(error.get("error_code"), int) else status
        said = f"{code} {description}" if description else f"HTTP {status}"
        if code == 429 or status == 429:
            parameters: dict[str, Any] = error["parameters"] if isinstance(error.get("parameters"), dict) else {}
            retry_after = parameters.get("retry_after")
            wait = float(retry_after) if isinstance(retry_after, int | float) and retry_after >= 0 else None
            return f"the Bot API rate-limits {method} ({said})", wait
        if status >= 500 or (isinstance(code, int) and code >= 500):
            return f"the Bot API answered {method} with {said}", None
        env = self.settings.token_env
        if code == 401 or status == 401:
            raise FatalSourceError(
                f"{self.where}: the Bot API refused the bot token (401 Unauthorized): put the "
                f"token @BotFather gave in {env} (environment or secrets file)"
            )
        if code == 404 or status == 404:
            raise FatalSourceError(
                f"{self.where}: the Bot API answered {method} with 404 Not Found: the token in "
                f"{env} is malformed, or api_url is not a Bot API server"
            )
        if code == 409 or status == 409:
            hint = (
                "delete the bot's webhook (deleteWebhook) or give lms-bridge a bot of its own"
                if "webhook" in description.lower()
                else "another program polls this bot's updates: stop it or give lms-bridge a bot of its own"
            )
            raise FatalSourceError(f"{self.where}: the Bot API refused {method} ({said}): {hint}")
        raise FatalSourceError(f"{self.where}: the Bot API refused {method} ({said})")

    # -- pages --

    def read(self, stream: str, start: Any, since: datetime | None = None) -> Iterator[LivePage]:
        """Yield pages of updates after the cursor, until a poll returns none.

        Each request's ``offset`` confirms the updates before it to Telegram, which then drops
        them: the generator only sends the offset after a page once the runner has committed that
        page (it resumes the generator after the commit).

        Raises:
            ConfigError: a backfill was asked for, or the stream is unknown.
            FatalSourceError, RetryableError: see :meth:`call`.
        """
        if stream != STREAM:
            raise ConfigError(f"telegram bot source {self.settings.id} has no stream {stream!r} (only {STREAM})")
        if since is not None:
            raise ConfigError(
                f"telegram bot source {self.settings.id} cannot be backfilled: Telegram keeps a bot's "
                "updates for 24 hours and never sends them again; import a Telegram Desktop export "
                "of the period instead"
            )
        offset = start.get("offset") if isinstance(start, dict) else None
        while True:
            payload: dict[str, Any] = {
                "limit": self.settings.limit,
                "timeout": self.settings.timeout,
                "allowed_updates": list(ALLOWED_UPDATES),
            }
            if isinstance(offset, int):
                payload["offset"] = offset
            updates = self.call("getUpdates", payload)
            if not isinstance(updates, list):
                raise FatalSourceError(f"{self.where}: getUpdates answered a result that is not a list of updates")
            if not updates:
                return
            page = LivePage(read=len(updates))
            last = None
            for update in updates:
                update_id = update.get("update_id") if isinstance(update, dict) else None
                if isinstance(update_id, bool) or not isinstance(update_id, int):
                    raise FatalSourceError(f"{self.where}: getUpdates answered an update without an update_id")
                last = update_id if last is None else max(last, update_id)
                self._update(update, page)
            assert last is not None  # noqa: S101 - updates is not empty
            offset = last + 1
            page.position = {"offset": offset}
            yield page

    def _update(self, update: dict[str, Any], page: LivePage) -> None:
        message = update.get("message")
        edited = False
        if message is None and "edited_message" in update:
            message, edited = update["edited_message"], True
        if not isinstance(message, dict):
            page.skipped[OTHER_UPDATE] += 1
            return
        activity = self._message(message, edited, page)
        if activity is not None:
            page.activities.append(activity)

    def _actor(self, sender: Any) -> str | None:
        user_id = sender.get("id") if isinstance(sender, dict) else None
        if isinstance(user_id, bool) or not isinstance(user_id, int):
            return None
        cached = self._actors.get(user_id)
        if cached is None:
            identifier = telegram_identifier(user_id)
            if identifier is None:
                return None
            cached = self._actors[user_id] = self.pseudonymize(identifier)
        return cached

    def _message(self, message: dict[str, Any], edited: bool, page: LivePage) -> Activity | None:
        chat = message.get("chat")
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        message_id, date = message.get("message_id"), message.get("date")
        if (
            not isinstance(chat, dict)
            or isinstance(chat_id, bool)
            or not isinstance(chat_id, int)
            or not isinstance(message_id, int)
            or not isinstance(date, int)
            or isinstance(date, bool)
            or not 0 < date < _LAST_DATE
        ):
            page.skipped[MALFORMED] += 1
            return None
        if chat.get("type") not in ("group", "supergroup"):
            page.skipped[NOT_A_GROUP] += 1
            return None
        bare = export_chat_id(chat_id)
        community = self.settings.chats.get(bare)
        if community is None:
            page.skipped[UNMAPPED] += 1
            return None
        name = chat.get("title")
        title = name if isinstance(name, str) and name.strip() else None
        grouping = ObjectRef(type="community", native_id=community, title=title)
        native_id = f"{bare}:{message_id}"
        occurred_at = datetime.fromtimestamp(date, tz=UTC)
        service = [key for key in _SERVICE_KEYS if key in message]
        if service:
            return self._service(message, service[0], native_id, occurred_at, community, title, grouping, page)
        if "sender_chat" in message:
            page.skipped[NOT_A_PERSON] += 1
            return None
        actor = self._actor(message.get("from"))
        if actor is None:
            page.skipped[NOT_A_PERSON] += 1
            return None
        parent = None
        replied = message.get("reply_to_message")
        if isinstance(replied, dict) and isinstance(replied.get("message_id"), int):
            parent = ObjectRef(type="message", native_id=f"{bare}:{replied['message_id']}", title=title)
        text = message.get("text")
        if not isinstance(text, str):
            text = message.get("caption")
        extras: dict[str, object] = {
            "identifier_kind": "telegram",
            "text_length": len(text) if isinstance(text, str) else 0,
            "media": any(key in message for key in _MEDIA_KEYS),
            "edited": edited or "edit_date" in message,
        }
        if parent is not None:
            extras[REPLY_TO] = f"message:{parent.native_id}"  # the Bot API's own reply link
        return Activity(
            source=SOURCE,
            site=community,
            kind=Kind.MESSAGE_REPLIED if parent is not None else Kind.MESSAGE_POSTED,
            native_id=native_id,
            actor=actor,
            object=ObjectRef(type="message", native_id=native_id, title=title),
            occurred_at=occurred_at,
            parent=parent,
            grouping=grouping,
            extras=extras,
        )

    def _service(
        self,
        message: dict[str, Any],
        key: str,
        native_id: str,
        occurred_at: datetime,
        community: str,
        title: str | None,
        grouping: ObjectRef,
        page: LivePage,
    ) -> Activity | None:
        if key in _JOIN_LEAVE:
            page.skipped[JOIN_LEAVE] += 1
            return None
        if key == "video_chat_started":
            page.skipped[CALL_STARTED] += 1
            return None
        ended = message.get("video_chat_ended")
        duration = ended.get("duration") if key == "video_chat_ended" and isinstance(ended, dict) else None
        actor = self._actor(message.get("from")) if "sender_chat" not in message else None
        if isinstance(duration, bool) or not isinstance(duration, int) or duration <= 0 or actor is None:
            page.skipped[SERVICE] += 1
            return None
        return Activity(
            source=SOURCE,
            site=community,
            kind=Kind.MEETING_ATTENDED,
            native_id=native_id,
            actor=actor,
            object=ObjectRef(type="meeting", native_id=native_id, title=title),
            occurred_at=occurred_at,
            duration=None,
            grouping=grouping,
            extras={"identifier_kind": "telegram", "role": "initiator", "call_duration_seconds": duration},
        )


def _json(response: requests.Response) -> Any:
    try:
        data = response.json()
        # A lone surrogate escape ("\\ud83d") is JSON but no UTF-8 text: ids, pseudonyms and the database
        # would fail on it later, so the answer is treated as unreadable here.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except ValueError:  # a proxy's HTML error page (UnicodeEncodeError is a ValueError too)
        return None
    return data


@contextmanager
def open_reader(settings: TelegramBotSettings, context: LiveContext) -> Iterator[TelegramBotReader]:
    """Open a reader: the token and the pseudonym key are looked up first (ConfigError without them)."""
    token = context.secret(settings.token_env)
    register_secret(token.get_secret_value())
    pseudonymize = context.pseudonymizer()
    with make_session(1) as session:
        yield TelegramBotReader(settings, token, pseudonymize, session)


def check_source(settings: TelegramBotSettings, context: LiveContext) -> Check:
    """``getMe`` (the token), then ``getWebhookInfo``: a bot with a webhook cannot be polled with ``getUpdates``."""
    name = f"{TYPE} {settings.id}"
    token = context.secret(settings.token_env)
    register_secret(token.get_secret_value())
    # One retry at most: doctor should answer in seconds, not after a sync's backoff.
    quick = settings.model_copy(update={"max_retries": min(settings.max_retries, 1)})
    with make_session(1) as session:
        reader = TelegramBotReader(quick, token, lambda text: text, session)
        try:
            me = reader.call("getMe", {})
        except FatalSourceError as exc:
            return Check(
                name,
                False,
                str(exc),
                f"put the token @BotFather gave the bot in {settings.token_env}, and check api_url",
            )
        except RetryableError as exc:
            return Check(name, False, str(exc), f"check that api_url {sanitize_url(settings.api_url)} can be reached")
        try:
            webhook = reader.call("getWebhookInfo", {})
        except LmsBridgeError as exc:
            return Check(name, False, str(exc), f"check that api_url {sanitize_url(settings.api_url)} can be reached")
    bot = f"bot @{me.get('username')}" if isinstance(me, dict) else "the bot"
    if isinstance(webhook, dict) and webhook.get("url"):
        # The webhook's URL is not shown: it may carry a secret path.
        return Check(
            name,
            False,
            f"{bot} has a webhook set, so the Bot API refuses getUpdates",
            "delete the bot's webhook (deleteWebhook) or give lms-bridge a bot of its own",
        )
    return Check(name, True, f"{bot} answers getMe and has no webhook: getUpdates can poll it")


CONNECTOR = LiveConnector(
    type=TYPE,
    streams=(Stream(STREAM),),
    settings_model=TelegramBotSettings,
    opener=open_reader,
    link_source=SOURCE,
    site_url_of=_site_url,
    confirms_reads=True,
    checker=check_source,
    # Telegram keeps a bot's unconfirmed updates 24 hours: a longer gap between pulls loses messages.
    retention=Retention(
        hours=RETENTION_HOURS,
        label="telegram bot",
        lost=f"Telegram keeps a bot's updates for {RETENTION_HOURS} h only, so messages may be lost",
        recover="import a Telegram Desktop export of the gap to recover what was lost",
    ),
)

__all__ = ["CONNECTOR", "STREAM", "TYPE", "TelegramBotReader", "TelegramBotSettings", "export_chat_id"]
