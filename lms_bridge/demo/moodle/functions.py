"""The web-service functions the fake serves: parameter validation and response building.

Each handler returns plain Python data; ``wsformat`` orders/filters it with the function's return
description (``schemas.py``) and renders JSON or XML. Response values mirror the captured fixtures
in tests/data/moodle (file names are cited next to each handler).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import schemas
from .generator import (
    GROUP_NAMES,
    ROLE_STUDENT,
    SITE_BUILT,
    THEME_REV,
    Course,
    Dataset,
    Discussion,
    Module,
    Post,
    User,
    moodle_date,
)
from .wsformat import Schema, course_context_error, invalid_parameter, invalid_record, moodle_error, parse_schema

CORE_VERSION = "2024100705.01"  # core_webservice_get_site_info.json: version
PLUGIN_VERSION = "2024100700"
RELEASE = "4.5.5+ (Build: 20250613)"
CONTEXT_OFFSET = 10092  # module context id = cmid + offset (core_course_get_contents.json: 2658 -> 12750)
REQUIRED = object()


@dataclass
class Call:
    """What a handler knows about the current request."""

    data: Dataset
    userid: int  # the token's user
    admin: bool  # False for the "limited" token
    wwwroot: str
    functions: list[str]  # the external service's functions (for site info)


@dataclass(frozen=True)
class WsFunction:
    """A served function: its handler, return description and accepted parameter names."""

    name: str
    handler: Callable[[Call, dict[str, Any]], Any]
    schema: Schema
    params: tuple[str, ...]
    version: str


FUNCTIONS: dict[str, WsFunction] = {}
# Write functions that exist in Moodle but are never in a read-only sync service -> accessexception
# (error_accessexception__function_not_in_service.json used core_user_create_users). Any other name the
# fake does not serve answers "function does not exist" (error_function_does_not_exist.json).
KNOWN_NOT_IN_SERVICE = frozenset(
    {
        "core_user_create_users",
        "core_user_update_users",
        "core_user_delete_users",
        "enrol_manual_enrol_users",
        "enrol_manual_unenrol_users",
        "core_course_create_courses",
        "core_course_delete_courses",
        "core_message_send_instant_messages",
        "core_role_assign_roles",
        "core_group_create_groups",
        "core_completion_update_activity_completion_status_manually",
        "mod_forum_add_discussion",
        "mod_forum_add_discussion_post",
    }
)


def ws(name: str, schema: Schema, params: tuple[str, ...] = (), version: str = CORE_VERSION) -> Callable:
    """Register a handler as a served web-service function."""

    def register(handler: Callable[[Call, dict[str, Any]], Any]) -> Callable[[Call, dict[str, Any]], Any]:
        FUNCTIONS[name] = WsFunction(name, handler, schema, params, version)
        return handler

    return register


# ------------------------------------------------------------------ parameters
def check_keys(params: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """Moodle rejects parameters the function does not declare."""
    extra = [key for key in params if key not in allowed]
    if extra:
        raise invalid_parameter(f"Unexpected keys ({', '.join(extra)}) detected in parameter array.")


def _type_error(key: str, value: Any, expected: str) -> Exception:
    shown = "Array" if isinstance(value, dict | list) else value
    return invalid_parameter(
        f'{key} => Invalid parameter value detected: Invalid external api parameter: the value is "{shown}", '
        f'the server was expecting "{expected}" type'
    )


def _get(params: dict[str, Any], key: str, default: Any) -> Any:
    if key in params:
        return params[key]
    if default is REQUIRED:
        raise invalid_parameter(f"Missing required key in single structure: {key}")
    return default


def to_int(value: Any, key: str) -> int:
    """PARAM_INT: digits only (form values arrive as strings)."""
    if isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value)):
        return int(value)
    raise _type_error(key, value, "int")


def p_int(params: dict[str, Any], key: str, default: Any = REQUIRED) -> int:
    """A PARAM_INT parameter."""
    value = _get(params, key, default)
    return value if value is default else to_int(value, key)


def p_str(params: dict[str, Any], key: str, default: Any = REQUIRED) -> str:
    """A PARAM_RAW / PARAM_ALPHA parameter."""
    value = _get(params, key, default)
    if value is not default and not isinstance(value, str):
        raise _type_error(key, value, "string")
    return value


def p_bool(params: dict[str, Any], key: str, default: Any = REQUIRED) -> bool:
    """A PARAM_BOOL parameter ("1", "0", "true", "false")."""
    value = _get(params, key, default)
    if value is default:
        return bool(value)
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        return value.lower() in ("1", "true", "yes", "on")
    raise _type_error(key, value, "bool")


def p_list(params: dict[str, Any], key: str, default: Any = REQUIRED) -> list[Any]:
    """A multiple structure: must be an array."""
    value = _get(params, key, default)
    if value is default:
        return list(value)
    if isinstance(value, dict) and not value:
        return []
    if not isinstance(value, list):
        raise invalid_parameter(
            f"{key} => Invalid parameter value detected: Only arrays accepted. The bad value is: '{value}'"
        )
    return value


def p_options(params: dict[str, Any], key: str = "options") -> dict[str, str]:
    """``options[0][name]=x&options[0][value]=y`` -> {"x": "y"}."""
    out = {}
    for item in p_list(params, key, []):
        if not isinstance(item, dict) or "name" not in item:
            raise invalid_parameter(f"Missing required key in single structure: {key} name")
        out[item["name"]] = item.get("value", "")
    return out


# --------------------------------------------------------------------- helpers
def site_course(data: Dataset) -> Course:
    """The site course (id 1): listed by core_course_get_courses, no enrolments."""
    return Course(
        1,
        "DIKLAT-ACC",
        "Diklat ASN Learning Center (acceptance)",
        "",
        0,
        1,
        "Loopback-only acceptance Moodle",
        "site",
        1,
        0,
        0,
        1,
        SITE_BUILT,
        SITE_BUILT + 48,
    )


def get_course(call: Call, courseid: int) -> Course:
    """The course or invalidrecord (error_invalidrecord__course_not_found.json); limited -> context error."""
    course = call.data.courses.get(courseid) or (site_course(call.data) if courseid == 1 else None)
    if course is None:
        raise invalid_record("course", courseid)
    if not call.admin:
        raise course_context_error(courseid)  # error_limited_user__enrolled_users.json
    return course


def get_user(call: Call, userid: int) -> User:
    """A non-deleted user or invalidrecord on table user."""
    user = call.data.users.get(userid)
    if user is None or user.deleted:
        raise invalid_record("user", userid)
    return user


def pic(call: Call, size: str = "f1") -> str:
    """Default profile picture URL (every generated user has none)."""
    return f"{call.wwwroot}/theme/image.php/boost/core/{THEME_REV}/u/{size}"


def customfields(user: User, display: bool = False) -> list[dict[str, str]]:
    """The 'Data Kepegawaian' profile fields (core_enrol_get_enrolled_users.json)."""
    fields = []
    for kind, value, name, short in (
        ("menu", user.golongan, "Pangkat/Golongan", "golongan"),
        ("text", user.jabatan, "Jabatan", "jabatan"),
        ("menu", user.jenisasn, "Jenis ASN", "jenisasn"),
    ):
        if value:
            item = {"type": kind, "value": value, "name": name, "shortname": short}
            if display:
                item["displayvalue"] = value
            fields.append(item)
    return fields


def _optional(record: dict[str, Any], **values: Any) -> None:
    """Empty optional fields are omitted, not sent as "" (README, "Response shapes")."""
    record.update({key: value for key, value in values.items() if value not in ("", None, [])})


def user_record(call: Call, user: User) -> dict[str, Any]:
    """core_user_get_users_by_field.json item."""
    record = {
        "id": user.id,
        "username": user.username,
        "firstname": user.firstname,
        "lastname": user.lastname,
        "fullname": user.fullname,
        "email": user.email,
        "department": user.department,
    }
    _optional(record, institution=user.institution, idnumber=user.idnumber)
    record.update(
        firstaccess=user.firstaccess,
        lastaccess=user.lastaccess,
        auth="manual",
        suspended=user.suspended,
        confirmed=True,
        lang="en",
        theme="",
        timezone="99",
        mailformat=1,
        trackforums=0,
    )
    _optional(record, city=user.city, country="ID" if user.city else "")
    record.update(profileimageurlsmall=pic(call, "f2"), profileimageurl=pic(call))
    _optional(record, customfields=customfields(user, display=True))
    return record


def completion_detail(module: Module, state: int) -> dict[str, Any]:
    """One details[] entry of completion data (core_completion_get_activities_completion_status.json)."""
    value = module.rulevalue
    text = {
        "completionview": "View",
        "completionusegrade": "Receive a grade",
        "completionposts": f"Make forum posts: {value}",
        "completiondiscussions": f"Start discussions: {value}",
        "completionattendance": f"Enter and remain in the room for at least {value} minute(s).",
    }
    return {"rulename": module.rule, "rulevalue": {"status": state, "description": text[module.rule]}}


def course_image(call: Call, course: Course) -> str:
    """Generated course image URL (core_course_get_courses_by_field__category.json)."""
    return f"{call.wwwroot}/pluginfile.php/{course.id * 24}/course/generated/course.svg"


def group_list(course: Course, uid: int) -> list[dict[str, Any]]:
    """The user's groups in the course (CoP regional groups only)."""
    gid = course.groups.get(uid)
    return [{"id": gid, "name": GROUP_NAMES[gid - 1]}] if gid else []


def progress(data: Dataset, course: Course, uid: int) -> int | float:
    """Percentage of completion-tracked activities done (int when whole, like the fixtures)."""
    tracked = [m for m in course.modules if m.rule]
    if not tracked or not data.is_tracked(course, uid):
        return 0
    value = 100 * sum(data.activity_state(m, uid)[0] for m in tracked) / len(tracked)
    return int(value) if value.is_integer() else value


# ------------------------------------------------------------- site & courses
@ws("core_webservice_get_site_info", schemas.SITE_INFO, ("serviceshortnames",))
def site_info(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """core_webservice_get_site_info.json (functions = the fake's service)."""
    user = call.data.users[call.userid]
    key = hashlib.sha1(f"{call.data.seed}:key:{user.id}".encode()).hexdigest()
    features = (
        ("usecomments", 1),
        ("usetags", 1),
        ("enablenotes", 1),
        ("messaging", 1),
        ("enableblogs", 1),
        ("enablecompletion", 1),
        ("enablebadges", 1),
        ("messagingallusers", 0),
        ("enablecustomreports", 1),
        ("enableglobalsearch", 0),
        ("mnet_dispatcher_mode", 0),
        ("enablecompetencies", 1),
    )
    return {
        "sitename": "Diklat ASN Learning Center (acceptance)",
        "username": user.username,
        "firstname": user.firstname,
        "lastname": user.lastname,
        "fullname": user.fullname,
        "lang": "en",
        "userid": user.id,
        "siteurl": call.wwwroot,
        "userpictureurl": pic(call),
        "functions": [{"name": name, "version": FUNCTIONS[name].version} for name in call.functions],
        "downloadfiles": 1,
        "uploadfiles": 0,
        "release": RELEASE,
        "version": CORE_VERSION,
        "mobilecssurl": "",
        "advancedfeatures": [{"name": name, "value": value} for name, value in features],
        "usercanmanageownfiles": True,
        "userquota": 0,
        "usermaxuploadfilesize": -1,
        "userhomepage": 1,
        "userprivateaccesskey": key,
        "siteid": 1,
        "sitecalendartype": "gregorian",
        "usercalendartype": "gregorian",
        "userissiteadmin": call.admin,
        "theme": "boost",
        "limitconcurrentlogins": 0,
        "policyagreed": 0,
    }


def course_record(course: Course) -> dict[str, Any]:
    """core_course_get_courses.json item (the site course differs: format site, no hiddensections)."""
    site = course.kind == "site"
    record = {
        "id": course.id,
        "shortname": course.shortname,
        "categoryid": course.category,
        "categorysortorder": course.sortorder,
        "fullname": course.fullname,
        "displayname": course.fullname,
        "idnumber": course.idnumber,
        "summary": course.summary,
        "summaryformat": 1,
        "format": "site" if site else "topics",
        "showgrades": 1,
        "newsitems": 3 if site else 0,
        "startdate": course.startdate,
        "enddate": course.enddate,
        "numsections": course.numsections,
        "maxbytes": 0,
        "showreports": 0,
        "visible": course.visible,
        "groupmode": 0,
        "groupmodeforce": 0,
        "defaultgroupingid": 0,
        "timecreated": course.timecreated,
        "timemodified": course.timemodified,
        "enablecompletion": 0 if site else 1,
        "completionnotify": 0,
        "lang": "",
        "forcetheme": "",
        "showactivitydates": False,
        "showcompletionconditions": None if site else True,
        "courseformatoptions": [{"name": "numsections", "value": 1}]
        if site
        else [{"name": "hiddensections", "value": 1}, {"name": "coursedisplay", "value": 0}],
    }
    if not site:
        record["hiddensections"] = 1
    return record


@ws("core_course_get_courses", schemas.COURSES, ("options",))
def get_courses(call: Call, params: dict[str, Any]) -> list[dict[str, Any]]:
    """core_course_get_courses.json: everything incl. the site course, in no useful order."""
    options = params.get("options") or {}
    if not isinstance(options, dict):
        raise _type_error("options", options, "array")
    ids = sorted({to_int(v, "ids") for v in p_list(options, "ids", [])})
    data = call.data
    order = ids or data.course_order
    if not call.admin:  # validate_context fails on the first course the token user cannot enter
        first = next((cid for cid in order if cid != 1 and (cid in data.courses)), None)
        if first is not None:
            raise course_context_error(first)
    return [
        course_record(data.courses[cid] if cid != 1 else site_course(data))
        for cid in order
        if cid == 1 or cid in data.courses
    ]


# schemas.COURSES_BY_FIELD plus Moodle's optional course ``customfields`` (after enrollmentmethods, as in
# core_course_external::get_course_structure); sent only for courses that have a custom field value.
COURSES_BY_FIELD = parse_schema(
    "{courses:[{id,fullname,displayname,shortname,courseimage,categoryid,categoryname,sortorder,summary,"
    "summaryformat,summaryfiles:[],overviewfiles:[],showactivitydates,showcompletionconditions,"
    "contacts:[{id,fullname}],enrollmentmethods:[],customfields:[{name,shortname,type,valueraw,value}],"
    "idnumber,format,showgrades,newsitems,startdate,enddate,"
    "maxbytes,showreports,visible,groupmode,groupmodeforce,defaultgroupingid,enablecompletion,completionnotify,"
    "lang,theme,marker,legacyfiles,calendartype,timecreated,timemodified,requested,cacherev,"
    "filters:[{filter,localstate,inheritedstate}],courseformatoptions:[{name,value}]}],"
    "warnings:[{item,itemid,warningcode,message}]}"
)
#: Course custom fields of the fake site: shortname -> (name, type).
COURSE_CUSTOMFIELDS = {"jp": ("Jam Pelajaran (JP)", "text")}


def course_customfields(course: Course) -> list[dict[str, Any]]:
    """The course's custom field values (core_course_get_courses_by_field ``customfields``)."""
    out = []
    for short, raw in course.customfields.items():
        name, kind = COURSE_CUSTOMFIELDS.get(short, (short, "text"))
        out.append({"name": name, "shortname": short, "type": kind, "valueraw": raw, "value": raw})
    return out


@ws("core_course_get_courses_by_field", COURSES_BY_FIELD, ("field", "value"))
def get_courses_by_field(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """core_course_get_courses_by_field__category.json: {courses, warnings} with contacts/filters."""
    field, value = p_str(params, "field", ""), str(p_str(params, "value", ""))
    data = call.data
    tests = {
        "": lambda c: True,
        "id": lambda c: str(c.id) == value,
        "ids": lambda c: str(c.id) in value.split(","),
        "shortname": lambda c: c.shortname == value,
        "idnumber": lambda c: c.idnumber == value,
        "category": lambda c: str(c.category) == value,
    }
    if field not in tests:
        raise invalid_parameter(f"Invalid field name: {field}")
    courses = [c for c in data.courses.values() if tests[field](c)] if call.admin else []
    filters = ("displayh5p", "activitynames", "mathjaxloader", "emoticon", "urltolink", "mediaplugin")
    out = []
    for course in courses:
        teachers = [uid for uid, e in course.enrol.items() if e.roleid != ROLE_STUDENT]
        teachers = [uid for uid in teachers if uid != 2] + [uid for uid in teachers if uid == 2]
        record = course_record(course)
        record.update(
            courseimage=course_image(call, course),
            categoryname=data.categories[course.category - 1].name,
            sortorder=course.sortorder,
            summaryfiles=[],
            overviewfiles=[],
            contacts=[{"id": uid, "fullname": data.users[uid].fullname} for uid in teachers],
            enrollmentmethods=["manual", "self"] if course.kind in ("pbj", "cop") else ["manual"],
            theme="",
            marker=0,
            legacyfiles=0,
            calendartype="",
            requested=0,
            cacherev=THEME_REV,
            filters=[{"filter": name, "localstate": 0, "inheritedstate": 1} for name in filters],
            courseformatoptions=[*record["courseformatoptions"], {"name": "indentation", "value": "1"}],
        )
        _optional(record, customfields=course_customfields(course))
        out.append(record)
    return {"courses": out, "warnings": []}


# ------------------------------------------------------------------ course tags
# Shapes captured from the real Moodle 4.5 of tests/real_moodle (tag/classes/external.php, course/externallib.php):
# the course tag area is component core, item type course, in the default collection 1.
TAG_AREAS = parse_schema(
    "{areas:[{id,component,itemtype,enabled,tagcollid,callback,callbackfile,showstandard,multiplecontexts,locked}],"
    "warnings:[{item,itemid,warningcode,message}]}"
)
TAG_INDEX = parse_schema(
    "{tagid,ta,component,itemtype,nextpageurl,prevpageurl,exclusiveurl,exclusivetext,title,content,hascontent,anchor}"
)
SEARCH_COURSES = parse_schema(
    "{total,courses:[{id,fullname,displayname,shortname,courseimage,categoryid,categoryname,sortorder,summary,"
    "summaryformat,summaryfiles:[],overviewfiles:[],showactivitydates,showcompletionconditions,"
    "contacts:[{id,fullname}],enrollmentmethods:[],customfields:[{name,shortname,type,valueraw,value}]}],"
    "warnings:[{item,itemid,warningcode,message}]}"
)
_COURSE_TAG_AREA = 2


def _tags_on(call: Call) -> None:
    """Moodle's tag functions refuse to work when the site's ``usetags`` is off."""
    if not call.data.usetags:
        raise moodle_error("tagsaredisabled", "Tags are disabled")


def tag_ids(data: Any) -> dict[str, int]:
    """Tag name (lower case, as Moodle's ``tag.name``) -> tag id, numbered in name order."""
    names = sorted({tag.lower() for course in data.courses.values() for tag in course.tags})
    return {name: index for index, name in enumerate(names, start=1)}


@ws("core_tag_get_tag_areas", TAG_AREAS, ())
def get_tag_areas(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """The tag areas (the user area and the course area of the real site)."""
    _tags_on(call)

    def area(area_id: int, itemtype: str, callback: str, file: str, showstandard: int) -> dict[str, Any]:
        return {
            "id": area_id,
            "component": "core",
            "itemtype": itemtype,
            "enabled": True,
            "tagcollid": 1,
            "callback": callback,
            "callbackfile": file,
            "showstandard": showstandard,
            "multiplecontexts": False,
            "locked": False,
        }

    return {
        "areas": [
            area(_COURSE_TAG_AREA, "course", "course_get_tagged_courses", "/course/lib.php", 0),
            area(1, "user", "user_get_tagged_users", "/user/lib.php", 2),
        ],
        "warnings": [],
    }


@ws("core_tag_get_tagindex", TAG_INDEX, ("tagindex",))
def get_tagindex(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """A tag's index in one area: its id (invalidrecord on table tag when no item carries the name)."""
    _tags_on(call)
    index = params.get("tagindex")
    if not isinstance(index, dict) or "tag" not in index or "tc" not in index or "ta" not in index:
        raise invalid_parameter("Missing required key in single structure: tagindex")
    name = str(index["tag"]).strip().lower()
    tag_id = tag_ids(call.data).get(name)
    if tag_id is None or to_int(index["tc"], "tc") != 1:
        raise invalid_record("tag", name, "name")
    courses = [c for c in call.data.courses.values() if name in {t.lower() for t in c.tags}]
    items = "".join(f'<li><a href="{call.wwwroot}/course/view.php?id={c.id}">{c.fullname}</a></li>' for c in courses)
    return {
        "tagid": tag_id,
        "ta": to_int(index["ta"], "ta"),
        "component": "core",
        "itemtype": "course",
        "nextpageurl": None,
        "prevpageurl": None,
        "exclusiveurl": None,
        "exclusivetext": "Show only tagged Courses",
        "title": "Courses",
        "content": f'<ul class="tag_feed">{items}</ul>',
        "hascontent": 1 if courses else 0,
        "anchor": None,
    }


@ws(
    "core_course_search_courses",
    SEARCH_COURSES,
    (
        "criterianame",
        "criteriavalue",
        "page",
        "perpage",
        "requiredcapabilities",
        "limittoenrolled",
        "onlywithcompletion",
    ),
)
def search_courses(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Courses by tag id (``criterianame = tagid``; the other criteria are not modelled)."""
    criterion = p_str(params, "criterianame")
    if criterion not in ("search", "modulelist", "blocklist", "tagid"):
        raise invalid_parameter(f"Invalid value for criterianame parameter (value: {criterion})")
    if criterion != "tagid":
        raise invalid_parameter(f"the fake Moodle models criterianame tagid only, not {criterion}")
    wanted = to_int(p_str(params, "criteriavalue"), "criteriavalue")
    ids = tag_ids(call.data)
    courses = [
        c
        for c in sorted(call.data.courses.values(), key=lambda c: c.sortorder)
        if wanted in {ids[t.lower()] for t in c.tags}
    ]
    page, perpage = p_int(params, "page", 0), p_int(params, "perpage", 0)
    shown = courses[page * perpage : (page + 1) * perpage] if perpage else courses
    out = []
    for course in shown:
        record = {
            "id": course.id,
            "fullname": course.fullname,
            "displayname": course.fullname,
            "shortname": course.shortname,
            "courseimage": course_image(call, course),
            "categoryid": course.category,
            "categoryname": call.data.categories[course.category - 1].name,
            "sortorder": course.sortorder,
            "summary": course.summary,
            "summaryformat": 1,
            "summaryfiles": [],
            "overviewfiles": [],
            "showactivitydates": False,
            "showcompletionconditions": True,
            "contacts": [],
            "enrollmentmethods": ["manual"],
        }
        _optional(record, customfields=course_customfields(course))
        out.append(record)
    return {"total": len(courses), "courses": out, "warnings": []}


@ws("core_course_get_categories", schemas.CATEGORIES, ("criteria", "addsubcategories"))
def get_categories(call: Call, params: dict[str, Any]) -> list[dict[str, Any]]:
    """core_course_get_categories.json / __by_parent.json (criteria key/value, addsubcategories)."""
    cats = call.data.categories
    chosen = list(cats)
    for crit in p_list(params, "criteria", []):
        key, value = crit.get("key", ""), str(crit.get("value", ""))
        if key not in ("id", "ids", "name", "parent", "idnumber", "visible", "theme"):
            raise invalid_parameter(f"The key '{key}' is not a valid criteria key")
        if key == "ids":
            chosen = [c for c in chosen if str(c.id) in value.split(",")]
        elif key == "visible":
            chosen = [c for c in chosen if value == "1"]
        elif key != "theme":
            chosen = [c for c in chosen if str(getattr(c, key)) == value]
    if p_bool(params, "addsubcategories", True):
        ids = {c.id for c in chosen}
        chosen = [c for c in cats if c.id in ids or c.parent in ids]
    return [
        {
            "id": c.id,
            "name": c.name,
            "idnumber": c.idnumber,
            "description": c.description,
            "descriptionformat": 1,
            "parent": c.parent,
            "sortorder": c.sortorder,
            "coursecount": sum(1 for course in call.data.courses.values() if course.category == c.id),
            "visible": 1,
            "visibleold": 1,
            "timemodified": c.timemodified,
            "depth": 2 if c.parent else 1,
            "path": c.path,
            "theme": "",
        }
        for c in chosen
    ]


# ------------------------------------------------------------- course contents
MODULE_LOOK = {  # modname -> (purpose, plural): core_course_get_contents*.json
    "page": ("content", "Pages"),
    "resource": ("content", "Files"),
    "forum": ("collaboration", "Forums"),
    "assign": ("assessment", "Assignments"),
    "bigbluebuttonbn": ("communication", "BigBlueButton"),
}


def _customdata(data: Dataset, module: Module) -> str:
    rules: dict[str, Any] | None = None
    if module.modname == "forum":
        forum = data.forums[module.instance]
        extra: dict[str, Any] = {"trackingtype": "1"}
        if module.rule:
            rules = {
                "completiondiscussions": str(forum.completiondiscussions),
                "completionreplies": "0",
                "completionposts": str(forum.completionposts),
            }
            extra = {"customcompletionrules": rules, **extra}
        return json.dumps(extra, separators=(",", ":"))
    if module.modname == "resource":
        options = {"filtericon": True, "displayoptions": 'a:1:{s:10:"printintro";i:0;}', "display": 5}
        return json.dumps(options, separators=(",", ":"))
    if module.modname == "bigbluebuttonbn":
        rules = {"completionattendance": str(module.rulevalue)}
        for kind in ("chats", "talks", "raisehand", "pollvotes", "emojis"):
            rules[f"completionengagement{kind}"] = "0"
    elif module.modname == "assign" and module.rule:
        rules = {"completionsubmit": "0"}
    return json.dumps({"customcompletionrules": rules} if rules else "", separators=(",", ":"))


def _files(call: Call, module: Module, context: int) -> list[dict[str, Any]]:
    if module.modname == "page":
        return [
            {
                "type": "file",
                "filename": "index.html",
                "filepath": "/",
                "filesize": 0,
                "fileurl": f"{call.wwwroot}/webservice/pluginfile.php/{context}/mod_page/content/index.html"
                "?forcedownload=1",
                "timecreated": None,
                "timemodified": module.timemodified,
                "sortorder": 1,
                "userid": None,
                "author": None,
                "license": None,
            }
        ]
    names = [(f"resource{module.instance}.txt", 32, "text/plain", 1)]
    names += [(f"file{k}.dat", 10240, "application/octet-stream", 0) for k in range(module.files - 1)]
    return [
        {
            "type": "file",
            "filename": name,
            "filepath": "/",
            "filesize": size,
            "fileurl": f"{call.wwwroot}/webservice/pluginfile.php/{context}/mod_resource/content/0/{name}"
            "?forcedownload=1",
            "timecreated": module.timemodified - 1,
            "timemodified": module.timemodified,
            "sortorder": order,
            "mimetype": mime,
            "isexternalfile": False,
            "userid": None,
            "author": None,
            "license": None,
        }
        for name, size, mime, order in names
    ]


def module_record(call: Call, module: Module, with_files: bool) -> dict[str, Any]:
    """One modules[] entry of core_course_get_contents.json."""
    www, name = call.wwwroot, module.modname
    purpose, plural = MODULE_LOOK[name]
    icon = "core" if name == "resource" else name
    icon_path = "f/text" if name == "resource" else "monologo"
    record: dict[str, Any] = {
        "id": module.id,
        "url": f"{www}/mod/{name}/view.php?id={module.id}",
        "name": module.name,
        "instance": module.instance,
        "contextid": module.id + CONTEXT_OFFSET,
        "visible": 1,
        "uservisible": True,
        "visibleoncoursepage": 1,
        "modicon": f"{www}/theme/image.php/boost/{icon}/{THEME_REV}/{icon_path}?filtericon=1",
        "modname": name,
        "purpose": purpose,
        "branded": name == "bigbluebuttonbn",
        "modplural": plural,
        "availability": None,
        "indent": 0,
        "onclick": "",
        "afterlink": None,
        "customdata": _customdata(call.data, module),
        "noviewlink": False,
        "completion": 2 if module.rule else 0,
        "downloadcontent": 1,
        "dates": [],
        "groupmode": module.groupmode,
    }
    if name in ("forum", "resource"):
        record["activitybadge"] = {}  # an empty badge: json [] (core_course_get_contents.json)
    if module.rule:
        record["completiondata"] = {
            "state": 0,
            "timecompleted": 0,
            "overrideby": None,
            "valueused": False,
            "hascompletion": True,
            "isautomatic": True,
            "istrackeduser": False,
            "uservisible": True,
            "details": [completion_detail(module, 0)],
            "isoverallcomplete": False,
        }
    if name in ("page", "resource"):
        files = _files(call, module, module.id + CONTEXT_OFFSET)
        record["contents"] = files if with_files else []
        record["contentsinfo"] = {
            "filescount": len(files),
            "filessize": sum(f["filesize"] for f in files),
            "lastmodified": module.timemodified,
            "mimetypes": list(dict.fromkeys(f["mimetype"] for f in files if "mimetype" in f)),
            "repositorytype": "",
        }
    return record


@ws("core_course_get_contents", schemas.CONTENTS, ("courseid", "options"))
def get_contents(call: Call, params: dict[str, Any]) -> list[dict[str, Any]]:
    """core_course_get_contents.json; options excludemodules/excludecontents, sectionnumber, cmid, modname."""
    course = get_course(call, p_int(params, "courseid"))
    options = p_options(params)
    no_modules = options.get("excludemodules") in ("1", "true")
    with_files = options.get("excludecontents") not in ("1", "true")
    sections = []
    for number in range(course.numsections + 1):
        if "sectionnumber" in options and str(number) != options["sectionnumber"]:
            continue
        modules = [
            m
            for m in course.modules
            if m.section == number
            and options.get("cmid", str(m.id)) == str(m.id)
            and options.get("modname", m.modname) == m.modname
        ]
        sections.append(
            {
                "id": course.first_section_id + number,
                "name": "General" if number == 0 else "New section",
                "visible": 1,
                "summary": "",
                "summaryformat": 1,
                "section": number,
                "hiddenbynumsections": 0,
                "uservisible": True,
                "component": None,
                "itemid": None,
                "modules": [] if no_modules else [module_record(call, m, with_files) for m in modules],
            }
        )
    return sections


@ws("core_course_get_updates_since", schemas.UPDATES_SINCE, ("courseid", "since", "filter"))
def get_updates_since(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """core_course_get_updates_since.json: changed modules, forum discussions as first-post ids."""
    course = get_course(call, p_int(params, "courseid"))
    since = p_int(params, "since")
    areas = set(p_list(params, "filter", [])) or {"configuration", "discussions"}
    data = call.data
    instances = []
    for module in course.modules:
        updates: list[dict[str, Any]] = []
        if "configuration" in areas and module.timemodified > since:
            updates.append({"name": "configuration", "timeupdated": module.timemodified})
        if "discussions" in areas and module.modname == "forum":
            fresh = sorted(
                (d for d in data.forums[module.instance].discussions if d.last.modified > since),
                key=lambda d: (d.last.modified, d.id),
                reverse=True,
            )
            if fresh:
                updates.append({"name": "discussions", "itemids": [d.posts[0].id for d in fresh]})
        if updates:
            instances.append({"contextlevel": "module", "id": module.id, "updates": updates})
    return {"instances": instances, "warnings": []}


# -------------------------------------------------------------------- users
def _enrolled_record(call: Call, course: Course, user: User) -> dict[str, Any]:
    data = call.data
    enrol = course.enrol[user.id]
    record: dict[str, Any] = {
        "id": user.id,
        "username": user.username,
        "firstname": user.firstname,
        "lastname": user.lastname,
        "fullname": user.fullname,
        "email": user.email,
        "department": user.department,
    }
    _optional(record, institution=user.institution, idnumber=user.idnumber)
    record.update(firstaccess=user.firstaccess, lastaccess=user.lastaccess, lastcourseaccess=enrol.lastaccess)
    _optional(record, city=user.city, country="ID" if user.city else "")
    record.update(profileimageurlsmall=pic(call, "f2"), profileimageurl=pic(call))
    groups = [
        {**g, "description": f"<p>Kelompok {g['name']}.</p>", "descriptionformat": 1}
        for g in group_list(course, user.id)
    ]
    _optional(record, customfields=customfields(user), groups=groups)
    shortname = "student" if enrol.roleid == ROLE_STUDENT else "editingteacher"
    record["roles"] = [{"roleid": enrol.roleid, "name": "", "shortname": shortname, "sortorder": 0}]
    if user.id == call.userid:  # only the token user's own preferences are visible (fixture: admin)
        record["preferences"] = [
            {"name": "last_time_enrolments_synced", "value": str(SITE_BUILT + 313)},
            {"name": "_lastloaded", "value": data.clock},
        ]
    courses = [data.courses[cid] for cid in data.user_courses[user.id]]
    record["enrolledcourses"] = [{"id": c.id, "fullname": c.fullname, "shortname": c.shortname} for c in courses]
    return record


@ws("core_enrol_get_enrolled_users", schemas.ENROLLED_USERS, ("courseid", "options"))
def get_enrolled_users(call: Call, params: dict[str, Any]) -> list[dict[str, Any]]:
    """core_enrol_get_enrolled_users*.json: options userfields, limitfrom/limitnumber, onlyactive, sortby."""
    course = get_course(call, p_int(params, "courseid"))
    options = p_options(params)
    data = call.data
    rows = [e for e in course.enrol.values() if not data.users[e.userid].deleted]
    if options.get("onlyactive") in ("1", "true"):  # drops suspended / expired enrolments
        rows = [e for e in rows if e.status == 0 and (e.timeend == 0 or e.timeend > data.clock)]
    if "groupid" in options:
        rows = [e for e in rows if course.groups.get(e.userid) == to_int(options["groupid"], "groupid")]
    sortby = options.get("sortby", "id")
    if sortby in ("firstname", "lastname"):
        rows.sort(key=lambda e: (getattr(data.users[e.userid], sortby), e.userid))
    if options.get("sortdirection", "ASC").upper() == "DESC":
        rows.reverse()
    start = to_int(options.get("limitfrom", "0"), "limitfrom")
    count = to_int(options.get("limitnumber", "0"), "limitnumber")
    rows = rows[start : start + count] if count > 0 else rows[start:]
    fields = None
    if options.get("userfields"):
        fields = {f.strip() for f in options["userfields"].split(",")} | {"id"}
    out = []
    for enrol in rows:
        record = _enrolled_record(call, course, data.users[enrol.userid])
        out.append(record if fields is None else {k: v for k, v in record.items() if k in fields})
    return out


@ws("core_user_get_users_by_field", schemas.USERS_BY_FIELD, ("field", "values"))
def get_users_by_field(call: Call, params: dict[str, Any]) -> list[dict[str, Any]]:
    """core_user_get_users_by_field.json: exact match, unknown values dropped, sorted by id."""
    field = p_str(params, "field")
    values = {str(v) for v in p_list(params, "values")}
    if field not in ("id", "idnumber", "username", "email"):
        raise invalid_parameter(f"Invalid field: {field}")
    if not call.admin:  # core_user_get_users_by_field__limited_user_empty.json: silently []
        return []
    users = [u for u in call.data.users.values() if not u.deleted and str(getattr(u, field)) in values]
    return [user_record(call, u) for u in users if getattr(u, field) != ""]


@ws("core_user_get_users", schemas.USERS, ("criteria",))
def get_users(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """core_user_get_users__idnumber.json: criteria key/value (AND), {users, warnings}."""
    users = [u for u in call.data.users.values() if not u.deleted]
    warnings = []
    for crit in p_list(params, "criteria"):
        key, value = crit.get("key", ""), str(crit.get("value", ""))
        if key not in ("id", "idnumber", "username", "email", "firstname", "lastname", "auth"):
            warnings.append(
                {
                    "item": key,
                    "warningcode": "invalidfieldparameter",
                    "message": f"The search key '{key}' is not supported, look at the web service documentation",
                }
            )
            continue
        pattern = re.compile("^" + ".*".join(map(re.escape, value.split("%"))) + "$", re.IGNORECASE)
        users = [u for u in users if key != "auth" and pattern.match(str(getattr(u, key)))]
    return {"users": [user_record(call, u) for u in users] if call.admin else [], "warnings": warnings}


@ws("core_enrol_get_users_courses", schemas.USERS_COURSES, ("userid", "returnusercount"))
def get_users_courses(call: Call, params: dict[str, Any]) -> list[dict[str, Any]]:
    """core_enrol_get_users_courses.json: per-user courses with completed / progress / lastaccess."""
    user = get_user(call, p_int(params, "userid"))
    with_count = p_bool(params, "returnusercount", True)
    data = call.data
    out = []
    for cid in data.user_courses[user.id] if call.admin else ():
        course = data.courses[cid]
        record = course_record(course)
        enrol = course.enrol[user.id]
        record.update(
            courseimage=course_image(call, course),
            showgrades=True,
            enablecompletion=True,
            completionhascriteria=bool(course.criteria),
            completionusertracked=enrol.roleid == ROLE_STUDENT,
            category=course.category,
            progress=progress(data, course, user.id),
            completed=data.course_completion(course, user.id)[0],
            marker=0,
            lastaccess=enrol.lastaccess or None,
            isfavourite=False,
            hidden=False,
            overviewfiles=[],
        )
        if with_count:
            record["enrolledusercount"] = len(course.enrol)
        out.append(record)
    return out


@ws("core_course_get_recent_courses", schemas.RECENT_COURSES, ("userid", "limit", "offset", "sort"))
def get_recent_courses(call: Call, params: dict[str, Any]) -> list[dict[str, Any]]:
    """core_course_get_recent_courses.json: courses by last access, newest first; image as data: URI."""
    user = get_user(call, p_int(params, "userid", 0) or call.userid)
    limit, offset = p_int(params, "limit", 0), p_int(params, "offset", 0)
    data = call.data
    courses = [data.courses[cid] for cid in data.user_courses[user.id] if data.courses[cid].enrol[user.id].lastaccess]
    courses.sort(key=lambda c: c.enrol[user.id].lastaccess, reverse=True)
    courses = courses[offset : offset + limit] if limit else courses[offset:]
    out = []
    for course in courses:
        svg = (
            f'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="300" height="150">'
            f'<rect width="300" height="150" fill="#{course.id * 2654435761 % 0xFFFFFF:06x}"/></svg>'
        )
        has_progress = bool(course.criteria) and data.is_tracked(course, user.id)
        out.append(
            {
                "id": course.id,
                "fullname": course.fullname,
                "shortname": course.shortname,
                "idnumber": course.idnumber,
                "summary": course.summary,
                "summaryformat": 1,
                "startdate": course.startdate,
                "enddate": course.enddate,
                "visible": bool(course.visible),
                "showactivitydates": False,
                "showcompletionconditions": True,
                "pdfexportfont": "",
                "fullnamedisplay": course.fullname,
                "viewurl": f"{call.wwwroot}/course/view.php?id={course.id}",
                "courseimage": "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode(),
                "progress": progress(data, course, user.id) if has_progress else 0,
                "hasprogress": has_progress,
                "isfavourite": False,
                "hidden": False,
                "timeaccess": course.enrol[user.id].lastaccess,
                "showshortname": False,
                "coursecategory": data.categories[course.category - 1].name,
            }
        )
    return out if call.admin else []


# --------------------------------------------------------------- completion
@ws("core_completion_get_course_completion_status", schemas.COURSE_COMPLETION, ("courseid", "userid"))
def course_completion_status(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """core_completion_get_course_completion_status*.json; usernotenroled before nocriteriaset (error_*)."""
    course = get_course(call, p_int(params, "courseid"))
    user = get_user(call, p_int(params, "userid"))
    data = call.data
    if course.kind == "site" or not data.is_tracked(course, user.id):
        raise moodle_error("usernotenroled", "User is not enrolled in this course")
    if not course.criteria:
        raise moodle_error("nocriteriaset", "No completion criteria set for this course")
    completed, rows = data.course_completion(course, user.id)
    completions = []
    for module, state, when in rows:
        requirement = {"page": "Viewing the page", "assign": "Achieving grade"}.get(module.modname, "")
        link = f'<a href="{call.wwwroot}/mod/{module.modname}/view.php?id={module.id}">{module.name}</a>'
        completions.append(
            {
                "type": 4,
                "title": "Activity completion",
                "status": "Yes" if state else "No",
                "complete": bool(state),
                "timecompleted": when if state else None,
                "details": {"type": "Activity completion", "criteria": link, "requirement": requirement, "status": ""},
            }
        )
    return {"completionstatus": {"completed": completed, "aggregation": 1, "completions": completions}, "warnings": []}


@ws("core_completion_get_activities_completion_status", schemas.ACTIVITIES_COMPLETION, ("courseid", "userid"))
def activities_completion_status(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """core_completion_get_activities_completion_status.json: tracked modules only, timecompleted 0 if not."""
    course = get_course(call, p_int(params, "courseid"))
    user = get_user(call, p_int(params, "userid"))
    data = call.data
    statuses = []
    for module in course.modules:
        if not module.rule:
            continue
        state, when = data.activity_state(module, user.id)
        statuses.append(
            {
                "cmid": module.id,
                "modname": module.modname,
                "instance": module.instance,
                "state": state,
                "timecompleted": when,
                "tracking": 2,
                "overrideby": None,
                "valueused": False,
                "hascompletion": True,
                "isautomatic": True,
                "istrackeduser": data.is_tracked(course, user.id),
                "uservisible": True,
                "details": [completion_detail(module, state)],
                "isoverallcomplete": bool(state),
            }
        )
    return {"statuses": statuses, "warnings": []}


# ------------------------------------------------------------------- forums
def _course_ids(call: Call, params: dict[str, Any]) -> list[int]:
    ids = [to_int(v, "courseids") for v in p_list(params, "courseids", [])]
    return [cid for cid in (ids or list(call.data.courses)) if cid in call.data.courses] if call.admin else []


@ws("mod_forum_get_forums_by_courses", schemas.FORUMS, ("courseids",), PLUGIN_VERSION)
def get_forums_by_courses(call: Call, params: dict[str, Any]) -> list[dict[str, Any]]:
    """mod_forum_get_forums_by_courses.json: in course module order (news forum first)."""
    data = call.data
    out = []
    for cid in _course_ids(call, params):
        for module in data.courses[cid].modules:
            if module.modname != "forum":
                continue
            forum = data.forums[module.instance]
            out.append(
                {
                    "id": forum.id,
                    "course": cid,
                    "type": forum.type,
                    "name": forum.name,
                    "intro": forum.intro,
                    "introformat": 1,
                    "introfiles": [],
                    "lang": "",
                    "duedate": 0,
                    "cutoffdate": 0,
                    "assessed": 0,
                    "assesstimestart": 0,
                    "assesstimefinish": 0,
                    "scale": 0,
                    "grade_forum": 0,
                    "grade_forum_notify": 0,
                    "maxbytes": 0,
                    "maxattachments": 1,
                    "forcesubscribe": 1 if forum.type == "news" else 0,
                    "trackingtype": 1,
                    "rsstype": 0,
                    "rssarticles": 0,
                    "timemodified": module.timemodified,
                    "warnafter": 0,
                    "blockafter": 0,
                    "blockperiod": 0,
                    "completiondiscussions": forum.completiondiscussions,
                    "completionreplies": 0,
                    "completionposts": forum.completionposts,
                    "cmid": module.id,
                    "numdiscussions": len(forum.discussions),
                    "cancreatediscussions": True,
                    "lockdiscussionafter": 0,
                    "istracked": False,
                }
            )
    return out


@ws(
    "mod_forum_get_forum_discussions",
    schemas.DISCUSSIONS,
    ("forumid", "sortorder", "page", "perpage", "groupid"),
    PLUGIN_VERSION,
)
def get_forum_discussions(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """mod_forum_get_forum_discussions*.json: pinned first, then last post desc; id = first post id."""
    forumid = p_int(params, "forumid")
    sortorder, page = p_int(params, "sortorder", -1), p_int(params, "page", -1)
    perpage, groupid = p_int(params, "perpage", 0), p_int(params, "groupid", 0)
    data = call.data
    forum = data.forums.get(forumid)
    if forum is None:
        raise invalid_record("forum", forumid)
    get_course(call, forum.course)
    keys: dict[int, Callable[[Discussion], Any]] = {
        1: lambda d: -d.last.modified,
        2: lambda d: d.last.modified,
        3: lambda d: -d.posts[0].created,
        4: lambda d: d.posts[0].created,
        5: lambda d: -len(d.posts),
        6: lambda d: len(d.posts),
    }
    if sortorder not in (-1, *keys):
        raise invalid_parameter(f"sortorder => Invalid parameter value detected: {sortorder}")
    order = keys.get(sortorder, keys[1])
    discussions = [d for d in forum.discussions if groupid <= 0 or d.groupid in (groupid, -1)]
    discussions.sort(key=lambda d: (not d.pinned, order(d), -d.id))
    if page >= 0 and perpage > 0:
        discussions = discussions[page * perpage : (page + 1) * perpage]
    out = []
    for disc in discussions:
        first, last = disc.posts[0], disc.last
        author, modifier = data.users[first.userid], data.users[last.userid]
        out.append(
            {
                "id": first.id,
                "name": disc.name,
                "groupid": disc.groupid,
                "timemodified": last.modified,
                "usermodified": last.userid,
                "timestart": 0,
                "timeend": 0,
                "discussion": disc.id,
                "parent": 0,
                "userid": first.userid,
                "created": first.created,
                "modified": first.shown_modified,
                "mailed": 1 if first.created < data.clock - 1800 else 0,
                "subject": first.subject,
                "message": first.message,
                "messageformat": 1,
                "messagetrust": 0,
                "attachment": False,
                "totalscore": 0,
                "mailnow": 0,
                "userfullname": author.fullname,
                "usermodifiedfullname": modifier.fullname,
                "userpictureurl": pic(call, "f2"),
                "usermodifiedpictureurl": pic(call, "f2"),
                "numreplies": len(disc.posts) - 1,
                "numunread": 0,
                "pinned": disc.pinned,
                "locked": disc.locked,
                "starred": False,
                "canreply": not disc.locked,
                "canlock": True,
                "canfavourite": True,
            }
        )
    return {"discussions": out, "warnings": []}


def post_record(call: Call, disc: Discussion, post: Post) -> dict[str, Any]:
    """One posts[] entry of mod_forum_get_discussion_posts.json (deleted authors: __deleted_author.json)."""
    www = call.wwwroot
    data = call.data
    forum = data.forums[disc.forum]
    course = data.courses[forum.course]
    author = data.users[post.userid]
    name = "Deleted user" if author.deleted else author.fullname
    profile = f"{www}/user/view.php?id={author.id}&course={course.id}"
    iso, text = moodle_date(post.created)
    groups = [] if author.deleted else [{**g, "urls": {"image": None}} for g in group_list(course, author.id)]
    discuss = f"{www}/mod/forum/discuss.php?d={disc.id}"
    return {
        "id": post.id,
        "subject": post.subject,
        "replysubject": f"Re: {disc.name}",
        "message": post.message,
        "messageformat": 1,
        "author": {
            "id": author.id,
            "fullname": name,
            "isdeleted": author.deleted,
            "groups": groups,
            "urls": {"profile": profile, "profileimage": pic(call)},
        },
        "discussionid": disc.id,
        "hasparent": bool(post.parent),
        "parentid": post.parent or None,
        "timecreated": post.created,
        "timemodified": post.shown_modified,
        "unread": None,
        "isdeleted": False,
        "isprivatereply": False,
        "haswordcount": False,
        "wordcount": None,
        "charcount": None,
        "capabilities": {
            "view": True,
            "edit": True,
            "delete": True,
            "split": bool(post.parent),
            "reply": not disc.locked,
            "selfenrol": False,
            "export": False,
            "controlreadstatus": False,
            "canreplyprivately": True,
        },
        "urls": {
            "view": f"{discuss}#p{post.id}",
            "viewisolated": f"{discuss}&parent={post.id}",
            "viewparent": f"{discuss}#p{post.parent}" if post.parent else None,
            "edit": f"{www}/mod/forum/post.php?edit={post.id}",
            "delete": f"{www}/mod/forum/post.php?delete={post.id}",
            "split": f"{www}/mod/forum/post.php?prune={post.id}" if post.parent else None,
            "reply": f"{www}/mod/forum/post.php?reply={post.id}#mformforum",
            "export": None,
            "markasread": None,
            "markasunread": None,
            "discuss": discuss,
        },
        "attachments": [],
        "messageinlinefiles": [],
        "tags": [],
        "html": {
            "rating": None,
            "taglist": None,
            "authorsubheading": f'by <a href="{profile}">{name}</a> - <time datetime="{iso}">{text}</time>',
        },
    }


def _sorted_posts(posts: list[Post], sortby: str, direction: str) -> list[Post]:
    if sortby not in ("id", "created", "modified"):
        raise invalid_parameter(f"sortby => Invalid parameter value detected: {sortby}")
    if direction.upper() not in ("ASC", "DESC"):
        raise invalid_parameter(f"sortdirection => Invalid parameter value detected: {direction}")
    return sorted(posts, key=lambda p: (getattr(p, sortby), p.id), reverse=direction.upper() == "DESC")


@ws(
    "mod_forum_get_discussion_posts",
    schemas.DISCUSSION_POSTS,
    ("discussionid", "sortby", "sortdirection", "includeinlineattachments"),
    PLUGIN_VERSION,
)
def get_discussion_posts(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """mod_forum_get_discussion_posts.json: the whole thread; default order is created DESC."""
    discussionid = p_int(params, "discussionid")
    sortby, direction = p_str(params, "sortby", "created"), p_str(params, "sortdirection", "DESC")
    p_bool(params, "includeinlineattachments", False)
    data = call.data
    disc = data.discussions.get(discussionid)
    if disc is None:
        raise invalid_record("forum_discussions", discussionid)
    forum = data.forums[disc.forum]
    get_course(call, forum.course)
    return {
        "posts": [post_record(call, disc, p) for p in _sorted_posts(disc.posts, sortby, direction)],
        "forumid": forum.id,
        "courseid": forum.course,
        "ratinginfo": {
            "contextid": forum.cmid + CONTEXT_OFFSET,
            "component": "mod_forum",
            "ratingarea": "post",
            "canviewall": None,
            "canviewany": None,
            "scales": [],
            "ratings": [],
        },
        "warnings": [],
    }


@ws(
    "mod_forum_get_discussion_posts_by_userid",
    schemas.POSTS_BY_USERID,
    ("userid", "cmid", "sortby", "sortdirection"),
    PLUGIN_VERSION,
)
def get_discussion_posts_by_userid(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """mod_forum_get_discussion_posts_by_userid.json: one user's posts in one forum, grouped by discussion."""
    user = get_user(call, p_int(params, "userid"))
    cmid = p_int(params, "cmid")
    sortby, direction = p_str(params, "sortby", "modified"), p_str(params, "sortdirection", "DESC")
    data = call.data
    module = data.modules.get(cmid)
    if module is None or module.modname != "forum":
        raise invalid_record("course_modules", cmid)
    get_course(call, module.course)
    groups = []
    for disc in data.forums[module.instance].discussions:
        mine = _sorted_posts([p for p in disc.posts if p.userid == user.id], sortby, direction)
        if mine:
            parent_ids = list(dict.fromkeys(p.parent for p in mine if p.parent))
            parents = [p for p in disc.posts if p.id in parent_ids]
            groups.append((getattr(mine[0], sortby), disc, mine, parents))
    groups.sort(key=lambda g: (g[0], g[1].id), reverse=direction.upper() == "DESC")
    return {
        "discussions": [
            {
                "name": disc.name,
                "id": disc.id,
                "timecreated": disc.posts[0].created,
                "authorfullname": data.users[disc.posts[0].userid].fullname,
                "posts": {
                    "userposts": [post_record(call, disc, p) for p in mine],
                    "parentposts": [post_record(call, disc, p) for p in parents],
                },
            }
            for _, disc, mine, parents in groups
        ],
        "warnings": [],
    }


@ws("mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses", schemas.BIGBLUEBUTTONBNS, ("courseids",), PLUGIN_VERSION)
def get_bigbluebuttonbns(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses.json: no schedule; attendance is via completion."""
    data = call.data
    out = []
    for cid in _course_ids(call, params):
        for module in data.courses[cid].modules:
            if module.modname == "bigbluebuttonbn":
                out.append(
                    {
                        "id": module.instance,
                        "coursemodule": module.id,
                        "course": cid,
                        "name": module.name,
                        "intro": "<p>Webinar daring bersama narasumber.</p>",
                        "introformat": 1,
                        "introfiles": [],
                        "section": module.section,
                        "visible": True,
                        "groupmode": 0,
                        "groupingid": 0,
                        "lang": None,
                        "meetingid": hashlib.sha1(f"{data.seed}:meeting:{module.id}".encode()).hexdigest(),
                        "timemodified": 0,
                    }
                )
    return {"bigbluebuttonbns": out, "warnings": []}


@ws(
    "mod_bigbluebuttonbn_meeting_info",
    schemas.MEETING_INFO,
    ("bigbluebuttonbnid", "groupid", "updatecache"),
    PLUGIN_VERSION,
)
def meeting_info(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """mod_bigbluebuttonbn_meeting_info (Moodle 4.5 meeting_info.php): the schedule of one BigBlueButton activity.

    Real Moodle asks its BigBlueButton server first; the fake's server always answers.
    ``openingtime``/``closingtime`` are left out when the activity does not set them.
    """
    instance = p_int(params, "bigbluebuttonbnid")
    p_int(params, "groupid", 0)
    p_bool(params, "updatecache", False)
    data = call.data
    module = next((m for m in data.modules.values() if m.modname == "bigbluebuttonbn" and m.instance == instance), None)
    if module is None:
        raise invalid_record("bigbluebuttonbn", instance)
    now = data.clock
    out: dict[str, Any] = {
        "cmid": module.id,
        "userlimit": 0,
        "bigbluebuttonbnid": str(module.instance),
        "groupid": 0,
        "meetingid": hashlib.sha1(f"{data.seed}:meeting:{module.id}".encode()).hexdigest(),
    }
    if module.opening:
        out["openingtime"] = module.opening
    if module.closing:
        out["closingtime"] = module.closing
    closed = bool(module.closing) and module.closing < now
    out.update(
        statusrunning=False,
        statusclosed=closed,
        statusopen=not closed and module.opening <= now,
        statusmessage="This room is not running.",
        canjoin=not closed,
        ismoderator=call.admin,
        presentations=[],
        joinurl=f"{call.wwwroot}/mod/bigbluebuttonbn/bbb_view.php?action=join&id={module.id}&bn={module.instance}",
        features=[{"name": "showroom", "isenabled": True}],
    )
    return out


# ------------------------------------------------------------------- assignments
def _assign_modules(call: Call, course_ids: list[int]) -> list[Module]:
    return [m for cid in course_ids for m in call.data.courses[cid].modules if m.modname == "assign"]


@ws("mod_assign_get_assignments", schemas.ASSIGNMENTS, ("courseids", "capabilities", "includenotenrolledcourses"))
def get_assignments(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """mod_assign_get_assignments: the assignments of the given courses (all the user's courses when none)."""
    p_list(params, "capabilities", [])
    everyone = p_bool(params, "includenotenrolledcourses", False)
    courses = []
    warnings = []
    for cid in _course_ids(call, params):
        course = call.data.courses[cid]
        if not everyone:
            # As Moodle 4.5: without includenotenrolledcourses only the token user's own enrolments are
            # answered, and the fake's token user (a Manager at system level) is enrolled in no course.
            warnings.append(
                {
                    "item": "course",
                    "itemid": cid,
                    "warningcode": "2",
                    "message": "User is not enrolled or does not have requested capability",
                }
            )
            continue
        assignments = [
            {
                "id": m.instance,
                "cmid": m.id,
                "course": cid,
                "name": m.name,
                "nosubmissions": 0,
                "duedate": 0,
                "allowsubmissionsfromdate": 0,
                "grade": 100,
                "timemodified": m.timemodified,
                "completionsubmit": 0,
                "cutoffdate": 0,
                "gradingduedate": 0,
                "teamsubmission": 0,
                "requireallteammemberssubmit": 0,
                "intro": "",
                "introformat": 1,
            }
            for m in _assign_modules(call, [cid])
        ]
        courses.append(
            {
                "id": cid,
                "fullname": course.fullname,
                "shortname": course.shortname,
                "timemodified": course.timemodified,
                "assignments": assignments,
            }
        )
    return {"courses": courses, "warnings": warnings}


@ws("mod_assign_get_grades", schemas.ASSIGN_GRADES, ("assignmentids", "since"))
def get_assign_grades(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """mod_assign_get_grades: per assignment, the grades whose ``timemodified`` is at or after ``since``.

    A graded module's completion (completionusegrade) has a grade row written at its completion time.
    Assignments without grades since are listed in ``warnings`` (Moodle: "No grades found").
    """
    ids = [to_int(v, "assignmentids") for v in p_list(params, "assignmentids")]
    since = p_int(params, "since", 0)
    data = call.data
    by_instance = {m.instance: m for m in data.modules.values() if m.modname == "assign"}
    out, warnings = [], []
    for aid in ids:
        module = by_instance.get(aid)
        grades = []
        if module is not None:
            course = data.courses[module.course]
            for uid in sorted(course.enrol):
                state, when = data.activity_state(module, uid) if module.rule == "completionusegrade" else (0, 0)
                if state and when >= since:
                    grades.append(
                        {
                            "id": module.id * 100000 + uid,
                            "userid": uid,
                            "attemptnumber": 0,
                            "timecreated": when,
                            "timemodified": when,
                            "grader": 2,
                            "grade": "40.00000" if state == 3 else "80.00000",
                        }
                    )
        if grades:
            out.append({"assignmentid": aid, "grades": grades})
        else:
            warnings.append({"item": "assignment", "itemid": aid, "warningcode": "3", "message": "No grades found"})
    return {"assignments": out, "warnings": warnings}
