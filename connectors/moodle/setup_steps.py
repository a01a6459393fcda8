"""The Moodle administrator's steps for an lms-bridge token, printed by ``lms-bridge sites add``.

Built from the same function lists ``sites test`` checks, so the steps cannot drift from what a sync
calls. The long version with every click and capability is docs/moodle-setup.md.
"""

from __future__ import annotations

import textwrap

from connectors.moodle.settings import CUSTOMFIELDS_FUNCTION, REQUIRED_FUNCTIONS, WEBINARS_FUNCTION

#: Recommended, not required: without them a sync logs a warning and goes on (docs/sources/moodle.md).
RECOMMENDED_FUNCTIONS = ("mod_assign_get_assignments", "mod_assign_get_grades", "mod_bigbluebuttonbn_meeting_info")


def admin_steps(site_url: str, token_env: str) -> str:
    """The numbered steps, for the site at ``site_url``, ending with where the token goes."""

    def wrapped(names: tuple[str, ...]) -> str:
        return textwrap.fill(", ".join(names), width=96, initial_indent="       ", subsequent_indent="       ")

    base = site_url.rstrip("/")
    return f"""\
Moodle admin steps for this token (Moodle 4.x; every click and capability: docs/moodle-setup.md)
  1. {base}/admin/search.php?query=enablewebservices: tick "Enable web services", save.
  2. Site administration > Server > Web services > Manage protocols: enable "REST protocol".
  3. Site administration > Users > Accounts > Add a new user "lms-bridge" (manual account, long random
     password), then Users > Permissions > Assign system roles > Manager: add it (a teacher's token
     cannot read the course catalogue). The Manager role needs "Use REST protocol" (webservice/rest:use).
  4. Site administration > Server > Web services > External services > Add: "lms-bridge", Enabled,
     Authorised users only; then Add functions:
{wrapped(REQUIRED_FUNCTIONS)}
     with BigBlueButton also {WEBINARS_FUNCTION}; with course_customfields = true also
     {CUSTOMFIELDS_FUNCTION}; recommended: {", ".join(RECOMMENDED_FUNCTIONS)}.
     Then the service's "Authorised users": add the lms-bridge user.
  5. Site administration > Server > Web services > Manage tokens > Create token: user lms-bridge, service
     lms-bridge. Put the token in the secrets file (or the environment) as {token_env}=<token>.
"""
