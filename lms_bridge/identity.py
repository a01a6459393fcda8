"""Turning a source-local actor into an xAPI actor (docs/XAPI.md, "Actors").

- A person with a valid NIP: ``account`` with the identity authority and the NIP.
- A chat member: ``account`` under ``{base}/pseudonym/<source>`` with the pseudonym
  the parser made (the raw number never leaves the parser).
- Anyone else (a Moodle user without a NIP): a site-scoped ``account``, homePage =
  the site's URL, name = the source-local id; reported as unresolved.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from lms_bridge import store
from lms_bridge.activity import Activity
from lms_bridge.nip import parse_nip

#: ``IdentityLink.source`` of roster links from a chat pseudonym to a person.
PSEUDONYM_LINK_SOURCE = "pseudonym"

#: Sources whose actors are pseudonyms made by the parser (an LMS report row without a
#: valid NIP is identified by its pseudonymised e-mail; a row with one carries ``extras["nip"]``).
PSEUDONYMOUS_SOURCES = frozenset({"whatsapp", "telegram", "zoom", "meet", "teams", "lms_csv"})


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
    return account(site_url.rstrip("/") if site_url else f"{base_iri}/site/{activity.site}", activity.actor)


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
        ``source="pseudonym"``, ``site_id=""``: one link serves every group and platform.
        """
        if parse_nip(activity.extras.get("nip")) is None:
            key = (PSEUDONYM_LINK_SOURCE, "") if activity.source in PSEUDONYMOUS_SOURCES else (
                activity.source, activity.site)
            if key not in self._nips:
                self._nips[key] = store.site_nips(self.engine, *key)
            nip = self._nips[key].get(activity.actor)
            if nip is not None:
                return account(self.authority, nip)
        return actor_for(activity, authority=self.authority, base_iri=self.base_iri, site_url=site_url)
