"""Keyed pseudonyms of personal identifiers (docs/xapi.md "Actors", docs/domain.md §3b).

A pseudonym is HMAC-SHA256(key, canonical identifier text as UTF-8), hex, first
32 characters. The canonical text comes from :mod:`lms_bridge.identifiers`
(``phone:+62...``, ``telegram:user...``, ``email:...``), so the roster import and
every chat or attendance parser give one person the same pseudonym. The key is a
secret: it is never logged, printed or stored.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from pydantic import SecretStr

from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError

#: Hex characters kept from the HMAC digest.
PSEUDONYM_LENGTH = 32

Pseudonymizer = Callable[[str], str]


def make_pseudonymizer(key: SecretStr) -> Pseudonymizer:
    """Return a function that turns a canonical identifier into its pseudonym.

    Args:
        key: the deployment's HMAC key.

    Returns:
        ``pseudonymize(identifier) -> 32 hex characters``; the same key and text always
        give the same pseudonym.

    Raises:
        ConfigError: when the key is empty.
    """
    secret = key.get_secret_value().encode("utf-8")
    if not secret:
        raise ConfigError("the pseudonym key is empty")

    def pseudonymize(identifier: str) -> str:
        digest = hmac.new(secret, identifier.encode("utf-8"), hashlib.sha256).hexdigest()
        return digest[:PSEUDONYM_LENGTH]

    return pseudonymize


def pseudonymizer_from_settings(settings: Settings) -> Pseudonymizer:
    """Build the pseudonymiser from the key named by ``[deployment] pseudonym_key_env``.

    Args:
        settings: the loaded configuration.

    Returns:
        The deployment's pseudonymiser.

    Raises:
        ConfigError: when the key is set neither in the environment nor in the secrets file.
    """
    name = settings.deployment.pseudonym_key_env
    key = settings.optional_secret(name)
    if key is None:
        where = (
            f"the environment or the secrets file {settings.secrets.file}"
            if settings.secrets.file
            else ("the environment (or a 0600 secrets file named in [secrets] file)")
        )
        raise ConfigError(f"the pseudonym key {name} is not set: put a long random value in {where}")
    return make_pseudonymizer(key)
