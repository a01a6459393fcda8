"""The statement builders' settings, read from the configuration."""

from __future__ import annotations

from lms_bridge.config.settings import Settings
from xapi.statements import StatementSettings
from xapi.vocabulary import load_vocabulary


def statement_settings(settings: Settings) -> StatementSettings:
    """Build the statement builders' settings from the configuration."""
    return StatementSettings(
        namespace=settings.deployment.statement_namespace,
        base_iri=settings.deployment.base_iri,
        vocabulary=load_vocabulary(),
        # "auto" keeps the 1.0.3 form (valid under both): a statement's bytes never depend on which
        # LRS answered at build time (docs/lrs.md, "Choosing the xAPI version").
        xapi_version="2.0.0" if settings.lrs.version == "2.0.0" else "1.0.3",
    )
