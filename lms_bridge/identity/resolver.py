"""Turning a source-local actor into an xAPI actor (docs/xapi.md, "Actors").

- A person with a valid NIP: ``account`` with the identity authority and the NIP.
- A chat member: ``account`` under ``{base}/pseudonym/<source>`` with the pseudonym
  the parser made (the raw number never leaves the parser).
- Anyone else (a Moodle user without a NIP): a site-scoped ``account``, homePage =
  the site's URL, name = the source-local id; reported as unresolved. A local id over
  :data:`MAX_ACCOUNT_NAME` characters (a source LRS's ``<homePage>|<name>`` or
  ``mbox_sha1sum:<hex>``) is named by ``sha1:<hex>`` of it instead: short and stable.

Forgotten people (``lms-bridge forget``) are remembered only by tombstones: keyed
digests (:func:`forgotten_digest`) of their NIP and of each source account and chat
pseudonym they had. :class:`Tombstones` answers "is this NIP / account forgotten?"
without the store holding any of them in clear; the ingest drops their activity,
the roster import, ``ledger sync`` and ``jp compute`` skip them.

A sync reads the tombstones when it starts, so a ``forget`` that commits while it runs
must still reach it: every batch transaction first passes :meth:`Tombstones.guard`, which
orders it against ``forget`` (:func:`tombstone_barrier`) and fails it when the tombstones
changed since they were read; the pipeline then reads them again and screens the batch anew.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.activity import Activity
from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError
from lms_bridge.identity.pseudonym import Pseudonymizer, pseudonymizer_from_settings
from lms_bridge.nip import parse_nip
from lms_bridge.store.locks import advisory_key
from lms_bridge.store.models import ForgottenPerson
from lms_bridge.store.people import add_tombstones, forgotten_digests

#: ``IdentityLink.source`` of roster links from a chat pseudonym to a person.
PSEUDONYM_LINK_SOURCE = "pseudonym"

#: ``IdentityLink.source`` of display-name links (``people link-names``): ``site_id`` is the community,
#: ``local_id`` the pseudonym the chat parser gives that sender's normalised display name.
NAME_LINK_SOURCE = "name"

#: ``Activity.grouping.type`` (and ``Evidence.community`` prefix) of a Community of Practice.
COMMUNITY_GROUPING = "community"

#: Sources whose actors are pseudonyms made by the parser (an LMS report row without a
#: valid NIP is identified by its pseudonymised e-mail; a row with one carries ``extras["nip"]``).
PSEUDONYMOUS_SOURCES = frozenset({"whatsapp", "telegram", "zoom", "meet", "teams", "lms_csv", "google_classroom"})


#: Longest account name sent to the LRS. xAPI sets no limit, but ADL's reference LRS stores
#: names in a 50-character column and answers 500 to a longer one (issue 24).
MAX_ACCOUNT_NAME = 50


def site_account_name(local_id: str) -> str:
    """The account name of a site-scoped actor: the source-local id, or ``sha1:<40 hex>`` of a long one.

    The hash keeps the name stable (the same person gets the same name on every run) and distinct
    for distinct local ids; 45 characters. Statement ids do not depend on it (docs/xapi.md).
    """
    if len(local_id) <= MAX_ACCOUNT_NAME:
        return local_id
    return "sha1:" + hashlib.sha1(local_id.encode("utf-8")).hexdigest()  # noqa: S324 - a name, not a secret


def account(home_page: str, name: str) -> dict[str, Any]:
    """An xAPI Agent identified by an account (no name, no mbox: privacy)."""
    return {"objectType": "Agent", "account": {"homePage": home_page, "name": name}}


def actor_for(activity: Activity, *, authority: str, base_iri: str, site_url: str | None) -> dict[str, Any]:
    """Return the xAPI actor for an activity's person.

    Args:
        activity: the activity (``extras["nip"]`` carries a NIP when the source has one).
        authority: ``homePage`` for NIP accounts.
        base_iri: the deployment's ``{base}``.
        site_url: the site's own URL (homePage of site-scoped accounts).
    """
    nip = parse_nip(activity.extras.get("nip"))
    if nip is not None:
        return account(authority, nip.value)
    if activity.source in PSEUDONYMOUS_SOURCES:
        return account(f"{base_iri}/pseudonym/{activity.source}", activity.actor)
    home_page = site_url.rstrip("/") if site_url else f"{base_iri}/site/{activity.site}"
    return account(home_page, site_account_name(activity.actor))


def community_of(activity: Activity) -> str | None:
    """The id of the Community of Practice an activity belongs to, or None."""
    grouping = activity.grouping
    return grouping.native_id if grouping is not None and grouping.type == COMMUNITY_GROUPING else None


class IdentityResolver:
    """Resolves a source-local actor to an xAPI actor, through the identity links of the store.

    Links are read once per site and cached; call :meth:`forget` after a batch stored
    new links for that site.
    """

    def __init__(self, engine: Engine, *, authority: str, base_iri: str) -> None:
        self.engine = engine
        self.authority = authority
        self.base_iri = base_iri
        self._nips: dict[tuple[str, str], dict[str, str]] = {}

    def forget(self, source: str, site: str) -> None:
        """Drop the cached links of a site (new links were stored)."""
        self._nips.pop((source, site), None)

    def actor(self, activity: Activity, site_url: str | None) -> dict[str, Any]:
        """The xAPI actor of an activity: NIP from the activity, else from its account's link.

        A chat member's pseudonym is linked by the HR roster (``people import``) under
        ``source="pseudonym"``, ``site_id=""``: one link serves every group and platform. A
        display name confirmed by ``people link-names`` is linked under ``source="name"``,
        ``site_id=<community>``: it serves that community only.
        """
        if parse_nip(activity.extras.get("nip")) is None:
            keys = [
                (PSEUDONYM_LINK_SOURCE, "")
                if activity.source in PSEUDONYMOUS_SOURCES
                else (activity.source, activity.site)
            ]
            community = community_of(activity)
            if activity.source in PSEUDONYMOUS_SOURCES and community is not None:
                keys.append((NAME_LINK_SOURCE, community))
            for key in keys:
                if key not in self._nips:
                    self._nips[key] = store.site_nips(self.engine, *key)
                nip = self._nips[key].get(activity.actor)
                if nip is not None:
                    return account(self.authority, nip)
        return actor_for(activity, authority=self.authority, base_iri=self.base_iri, site_url=site_url)


def forgotten_digest(pseudonymize: Pseudonymizer, kind: str, *parts: str) -> str:
    """The tombstone digest of a forgotten NIP, source account or chat pseudonym.

    ``kind, *parts`` is ``"nip", digits``, ``"account", source, site, local id`` or
    ``"pseudonym", pseudonym``. A keyed HMAC under the pseudonym key, in its own ``forgotten|`` domain, so it equals no
    pseudonym the store holds and cannot be reversed or tested without the key.
    """
    return pseudonymize("|".join(("forgotten", kind, *parts)))


class TombstonesChanged(Exception):
    """A ``forget`` committed since a batch's tombstones were read.

    Raised inside the batch's transaction (so it rolls back): the batch must be screened again.
    """


def tombstone_barrier(session: Session, *, exclusive: bool) -> None:
    """Order this transaction against ``forget``: call it first, before any read.

    ``forget`` holds the barrier exclusive for its whole transaction; each batch transaction of a
    sync holds it shared. So a batch either commits before ``forget`` reads anything (and
    ``forget`` then finds and removes what it stored) or reads the tombstones after ``forget``
    committed (and drops the person). PostgreSQL: a transaction-level advisory lock. SQLite: a
    write of nothing, which takes the database's one write lock at once (its writers are
    serialised, and a transaction's reads after it see the latest commit).
    """
    if session.get_bind().dialect.name == "postgresql":
        call = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        session.execute(text(f"SELECT {call}(:key)"), {"key": advisory_key("forget")})
    else:
        session.execute(delete(ForgottenPerson).where(ForgottenPerson.digest == ""))


class Tombstones:
    """The forgotten people of the store, checked by digest (see the module docstring).

    Args:
        digests: the stored tombstone digests.
        pseudonymize: the deployment's keyed pseudonymiser (None only when there are no tombstones).
    """

    def __init__(self, digests: frozenset[str], pseudonymize: Pseudonymizer | None) -> None:
        self.digests = digests
        self.pseudonymize = pseudonymize
        #: How many tombstones the store held when they were read (only ever grows).
        self.stored = len(digests)

    @classmethod
    def load(cls, bind: Engine | Session, settings: Settings) -> Tombstones:
        """Read the tombstones; the pseudonym key is needed only when there are some.

        Raises:
            ConfigError: people were forgotten and the pseudonym key is not set (without it
                nothing could tell that a record is theirs, so nothing runs).
        """
        if isinstance(bind, Session):
            digests = forgotten_digests(bind)
        else:
            with Session(bind) as session:
                digests = forgotten_digests(session)
        if not digests:
            return cls(frozenset(), None)
        try:
            pseudonymize = pseudonymizer_from_settings(settings)
        except ConfigError as exc:
            raise ConfigError(
                f"people were forgotten (lms-bridge forget) and only the pseudonym key can keep them forgotten: {exc}"
            ) from None
        return cls(digests, pseudonymize)

    def __bool__(self) -> bool:
        return bool(self.digests)

    def guard(self, session: Session) -> None:
        """Check, first thing in a batch's transaction, that no tombstone was added since they were read.

        Tombstones are only ever added, so a count is enough (the table is small). Tombstones this
        object added itself (:meth:`screen`) count as a change too: one harmless re-read.

        Raises:
            TombstonesChanged: they changed (the transaction must roll back; read them again).
        """
        tombstone_barrier(session, exclusive=False)
        if session.scalar(select(func.count()).select_from(ForgottenPerson)) != self.stored:
            raise TombstonesChanged

    def _has(self, kind: str, *parts: str) -> bool:
        return self.pseudonymize is not None and forgotten_digest(self.pseudonymize, kind, *parts) in self.digests

    def nip(self, nip: str | None) -> bool:
        """Whether this NIP (18 digits) was forgotten."""
        return bool(self.digests) and nip is not None and self._has("nip", nip)

    def actor(self, source: str, site: str, local_id: str) -> bool:
        """Whether this source-local actor (a site account, or a chat pseudonym) belonged to a forgotten person."""
        if not self.digests:
            return False
        if source in PSEUDONYMOUS_SOURCES or source in (PSEUDONYM_LINK_SOURCE, NAME_LINK_SOURCE):
            return self._has("pseudonym", local_id)
        return self._has("account", source, site, local_id)

    def activity(self, activity: Activity) -> bool:
        """Whether an activity is a forgotten person's: by the NIP it carries, or by its actor."""
        nip = parse_nip(activity.extras.get("nip"))
        return self.nip(nip.value if nip else None) or self.actor(activity.source, activity.site, activity.actor)

    def screen(
        self, engine: Engine, activities: Sequence[Activity], links: Sequence[store.LinkIn], *, dry_run: bool = False
    ) -> tuple[list[Activity], list[store.LinkIn], int]:
        """Drop the links and activities of forgotten people from a batch, before it is stored.

        A link carrying a forgotten NIP is not stored (nobody is linked again) and its account
        gets a tombstone, so its later activity is dropped too, even by a run that reads no links.

        Returns:
            (activities kept, links kept, activities dropped).
        """
        if not self.digests:
            return list(activities), list(links), 0
        kept_links: list[store.LinkIn] = []
        accounts: list[str] = []
        for link in links:
            nip = parse_nip(link.raw_nip)
            if self.nip(nip.value if nip else None) and self.pseudonymize is not None:
                accounts.append(
                    forgotten_digest(self.pseudonymize, "account", link.source, link.site_id, link.local_id)
                )
            else:
                kept_links.append(link)
        if accounts:
            self.digests = self.digests | frozenset(accounts)
            if not dry_run:
                with Session(engine) as session, session.begin():
                    add_tombstones(session, accounts)
        kept = [activity for activity in activities if not self.activity(activity)]
        return kept, kept_links, len(activities) - len(kept)
