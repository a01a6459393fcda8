"""Moodle REST wire format: PHP-style form parameters in, JSON or XML out.

Everything here mirrors what Moodle 4.5's ``webservice/rest/server.php`` does, as captured in
``tests/data/moodle`` (see tests/data/README.md, "Response shapes" and "Errors").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

# A return description ("schema") is: None for a scalar VALUE, [item] for a MULTIPLE,
# {key: schema} for a SINGLE (ordered like Moodle's external_description).
Schema = Any

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SUB_RE = re.compile(r"\[([^\[\]]*)\]")
_INT_KEY_RE = re.compile(r"^(?:0|-?[1-9][0-9]*)$")


def parse_php_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Turn ``a[0][name]=x`` style pairs into nested dicts and lists, like PHP's ``$_POST``.

    Arrays whose keys are all integers become Python lists in insertion order (Moodle
    iterates PHP array values in insertion order, whatever the indexes). ``a[]=`` appends.
    A repeated scalar key keeps the last value, as PHP does.

    Args:
        pairs: decoded (key, value) pairs, e.g. from ``urllib.parse.parse_qsl``.

    Returns:
        The nested parameter structure.
    """
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        match = _KEY_RE.match(raw_key)
        path = [match.group(1), *_SUB_RE.findall(match.group(2))] if match else [raw_key]
        node = root
        for depth, key in enumerate(path):
            if key == "":
                ints = [int(k) for k in node if _INT_KEY_RE.match(k)]
                key = str(max(ints) + 1 if ints else 0)
            if depth == len(path) - 1:
                node[key] = value
            else:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {}
                node = child
    return {key: _listify(value) for key, value in root.items()}


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {key: _listify(sub) for key, sub in value.items()}
    if items and all(_INT_KEY_RE.match(key) for key in items):
        return list(items.values())
    return items


def parse_schema(text: str) -> Schema:
    """Parse the compact return-description notation used in ``schemas.py``.

    ``{a,b:[{c}],d:[]}`` is a SINGLE with scalar ``a``, a MULTIPLE ``b`` of SINGLEs with
    scalar ``c`` and a MULTIPLE ``d`` of scalars.

    Args:
        text: the description, whitespace ignored.

    Returns:
        The schema (None / list / dict).
    """
    src = re.sub(r"\s+", "", text)
    schema, pos = _parse_node(src, 0)
    if pos != len(src):
        raise ValueError(f"trailing text in schema at {pos}: {src[pos : pos + 20]!r}")
    return schema


def _parse_node(src: str, pos: int) -> tuple[Schema, int]:
    if pos >= len(src) or src[pos] not in "{[":
        return None, pos
    if src[pos] == "[":
        item, pos = _parse_node(src, pos + 1)
        if src[pos] != "]":
            raise ValueError(f"expected ] at {pos}")
        return [item], pos + 1
    fields: dict[str, Schema] = {}
    pos += 1
    while src[pos] != "}":
        match = re.compile(r"[A-Za-z0-9_]+").match(src, pos)
        if not match:
            raise ValueError(f"expected a key at {pos}: {src[pos : pos + 20]!r}")
        pos = match.end()
        sub: Schema = None
        if src[pos] == ":":
            sub, pos = _parse_node(src, pos + 1)
        fields[match.group(0)] = sub
        if src[pos] == ",":
            pos += 1
    return fields, pos + 1


def _clean(value: Any, schema: Schema) -> Any:
    """Order keys like the description and drop unknown ones, as external_api::clean_returnvalue."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return value
        out = {key: _clean(value[key], sub) for key, sub in schema.items() if key in value}
        # An object whose optional keys are all absent is an empty PHP array: json "[]"
        # (e.g. activitybadge in core_course_get_contents.json).
        return out if out else []
    if isinstance(schema, list) and isinstance(value, list):
        return [_clean(item, schema[0]) for item in value]
    return value


def php_json(value: Any) -> bytes:
    """Encode like PHP's json_encode defaults: no spaces, ``\\/`` and ``\\uXXXX`` escapes."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


def encode_json(value: Any, schema: Schema) -> bytes:
    """Render a function result as Moodle's JSON (keys ordered/filtered by the schema)."""
    return php_json(_clean(value, schema))


def xml_escape(text: str) -> str:
    """PHP htmlspecialchars(ENT_COMPAT): & < > and double quotes; apostrophes stay."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _xml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(value, ".14G")  # PHP's float to string (precision=14)
    if isinstance(value, str):
        return xml_escape(value)
    raise TypeError(f"cannot render {type(value).__name__} as an XML VALUE")


def _xml(value: Any, schema: Schema, out: list[str]) -> None:
    # Moodle's xmlize_result writes every described key, absent ones as null / empty
    # MULTIPLE (see core_course_get_contents.xml: availabilityinfo, activitybadge).
    if isinstance(schema, dict):
        out.append("<SINGLE>\n")
        src = value if isinstance(value, dict) else {}
        for key, sub in schema.items():
            out.append(f'<KEY name="{key}">')
            _xml(src.get(key), sub, out)
            out.append("</KEY>\n")
        out.append("</SINGLE>\n")
    elif isinstance(schema, list):
        out.append("<MULTIPLE>\n")
        for item in value or ():
            _xml(item, schema[0], out)
        out.append("</MULTIPLE>\n")
    elif value is None:
        out.append('<VALUE null="null"/>\n')
    else:
        out.append(f"<VALUE>{_xml_scalar(value)}</VALUE>\n")


XML_HEADER = '<?xml version="1.0" encoding="UTF-8" ?>\n'


def encode_xml(value: Any, schema: Schema) -> bytes:
    """Render a function result as Moodle's XML, byte-compatible with the .xml fixtures."""
    out = [XML_HEADER, "<RESPONSE>\n"]
    _xml(value, schema, out)
    out.append("</RESPONSE>\n")
    return "".join(out).encode("utf-8")


class WsError(Exception):
    """A Moodle exception as returned by the web service layer (always HTTP 200).

    Attributes:
        exception: PHP class name, e.g. ``core\\exception\\moodle_exception``.
        errorcode: Moodle error code, e.g. ``invalidtoken``.
        message: the English message.
        debuginfo: only sent when the fake runs with ``debug=True``.
    """

    def __init__(self, exception: str, errorcode: str, message: str, debuginfo: str | None = None):
        super().__init__(f"{errorcode}: {message}")
        self.exception = exception
        self.errorcode = errorcode
        self.message = message
        self.debuginfo = debuginfo

    def encode(self, fmt: str, debug: bool) -> bytes:
        """Render the error body exactly like the ``error_*`` fixtures."""
        debuginfo = self.debuginfo if debug else None
        if fmt == "json":
            body = {"exception": self.exception, "errorcode": self.errorcode, "message": self.message}
            if debuginfo is not None:
                body["debuginfo"] = debuginfo
            return php_json(body)
        parts = [
            XML_HEADER,
            f'<EXCEPTION class="{self.exception}">\n',
            f"<ERRORCODE>{xml_escape(self.errorcode)}</ERRORCODE>\n",
            f"<MESSAGE>{xml_escape(self.message)}</MESSAGE>\n",
        ]
        if debuginfo is not None:
            parts.append(f"<DEBUGINFO>{xml_escape(debuginfo)}</DEBUGINFO>\n")
        parts.append("</EXCEPTION>\n")
        return "".join(parts).encode("utf-8")


MOODLE_EXCEPTION = "core\\exception\\moodle_exception"
PARAM_EXCEPTION = "core\\exception\\invalid_parameter_exception"


def invalid_token() -> WsError:
    """error_invalidtoken.json."""
    return WsError(MOODLE_EXCEPTION, "invalidtoken", "Invalid token - token not found")


def access_exception() -> WsError:
    """error_accessexception__function_not_in_service.json."""
    return WsError("webservice_access_exception", "accessexception", "Access control exception")


def invalid_record(table: str, value: int | str, column: str = "id") -> WsError:
    """error_invalidrecord__course_not_found.json / error_function_does_not_exist.json."""
    shown = str(value) if isinstance(value, int) else "'" + value.replace("'", "\\'") + "'"
    debuginfo = f"SELECT * FROM {{{table}}} WHERE {column} = ?\n[array (\n  0 => {shown},\n)]"
    return WsError(
        "dml_missing_record_exception",
        "invalidrecord",
        f"Can't find data record in database table {table}.",
        debuginfo,
    )


def invalid_parameter(debuginfo: str) -> WsError:
    """error_invalid_parameter__*.json: the detail is only in debuginfo."""
    return WsError(PARAM_EXCEPTION, "invalidparameter", "Invalid parameter value detected", debuginfo)


def moodle_error(errorcode: str, message: str) -> WsError:
    """A plain moodle_exception (nocriteriaset, usernotenroled, ...)."""
    return WsError(MOODLE_EXCEPTION, errorcode, message)


def course_context_error(courseid: int) -> WsError:
    """error_limited_user__enrolled_users.json: token user cannot access the course."""
    return moodle_error(
        "errorcoursecontextnotvalid",
        f"You cannot execute functions in the course context (course id:{courseid}). "
        "The context error message was: Course or activity not accessible.",
    )
