"""The vocabulary (verbs, activity types, kinds) read from ``mappings/vocabulary.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lms_bridge.errors import RuleError

#: The vocabulary shipped with lms-bridge.
DEFAULT_VOCABULARY = Path(__file__).resolve().parent.parent / "mappings" / "vocabulary.toml"


@dataclass(frozen=True)
class Verb:
    """An xAPI verb: its IRI and its one English display."""

    id: str
    display: str


@dataclass(frozen=True)
class KindMapping:
    """How one Activity kind is written: verb and object activity type."""

    verb: Verb
    object_type: str


@dataclass(frozen=True)
class Vocabulary:
    """Everything statement builders need to name things."""

    version: int
    verbs: dict[str, Verb]
    activity_types: dict[str, str]
    kinds: dict[str, KindMapping]
    platforms: dict[str, str]
    aliases: dict[str, str]

    def activity_type(self, name: str) -> str | None:
        """The activity-type IRI for a short object type, or None when unknown."""
        return self.activity_types.get(name)


def _table(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise RuleError(f"{path}: [{name}] must be a table")
    return value


def load_vocabulary(path: Path = DEFAULT_VOCABULARY) -> Vocabulary:
    """Read and check a vocabulary file.

    Raises:
        RuleError: naming the file, table and key that is wrong.
    """
    from xapi.validate import is_iri  # local: validate is a sibling leaf

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError(f"{path}: cannot be read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{path}: not valid TOML: {exc}") from exc

    verbs: dict[str, Verb] = {}
    for key, entry in _table(data, "verbs", path).items():
        if not isinstance(entry, dict) or not is_iri(entry.get("id")) or not isinstance(entry.get("display"), str):
            raise RuleError(f"{path}: [verbs] {key}: needs an IRI `id` and a `display` string")
        verbs[key] = Verb(id=entry["id"], display=entry["display"])
    types: dict[str, str] = {}
    for key, iri in _table(data, "activity_types", path).items():
        if not is_iri(iri):
            raise RuleError(f"{path}: [activity_types] {key}: {iri!r} is not an IRI")
        types[key] = iri
    kinds: dict[str, KindMapping] = {}
    for key, entry in _table(data, "kinds", path).items():
        if not isinstance(entry, dict) or entry.get("verb") not in verbs:
            raise RuleError(f"{path}: [kinds] {key}: `verb` must name an entry of [verbs]")
        if entry.get("object") not in types:
            raise RuleError(f"{path}: [kinds] {key}: `object` must name an entry of [activity_types]")
        kinds[key] = KindMapping(verb=verbs[entry["verb"]], object_type=types[entry["object"]])
    aliases: dict[str, str] = {}
    for iri, verb in _table(data, "aliases", path).items():
        if verb not in verbs:
            raise RuleError(f"{path}: [aliases] {iri}: {verb!r} is not an entry of [verbs]")
        aliases[iri] = verb
    platforms = {str(k): str(v) for k, v in _table(data, "platforms", path).items()}
    version = data.get("version")
    if not isinstance(version, int):
        raise RuleError(f"{path}: `version` must be an integer")
    return Vocabulary(
        version=version, verbs=verbs, activity_types=types, kinds=kinds, platforms=platforms, aliases=aliases
    )
