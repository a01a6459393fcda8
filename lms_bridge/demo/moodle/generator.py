"""Deterministic, seeded data set shaped like the captured Moodle site.

The fixture site (see tests/data/README.md, "Dataset behind the responses") is an
Indonesian civil-service training Moodle: users with 18-digit NIPs in ``idnumber``, technical (PT),
leadership (PKP), self-paced (PBJ) and national (LATSAR) courses and a Community-of-Practice course
(COP) with forums and BigBlueButton webinars. ``Dataset(preset, seed)`` rebuilds that shape at any
scale. Same seed + preset => identical data. Per-user activity completion is computed on demand
from hashes of the seed (nothing is stored for it) unless overridden by the append API.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

DAY = 86400
# Capture time of the fixtures (_manifest.json captured_at_unix): 2026-11-22 17:02:48 UTC.
NOW0 = 1795366968
SITE_BUILT = 1795363727  # core_course_get_courses.json: site course timecreated
THEME_REV = 1795366949  # image URLs carry the theme revision
YEAR_START = 1767200400  # 2026-01-01 00:00 Asia/Jakarta
JAKARTA = timezone(timedelta(hours=7), "Asia/Jakarta")
ROLE_TEACHER, ROLE_STUDENT = 3, 5

FIRSTNAMES = tuple(
    "Taufik,I Ketut,Laras,Yohanes,Ayu,Maya,Adi,Umi,Hasan,Sri,Aisyah,Bagus,Slamet,I Made,Novi,Rudi,Kartika,"
    "Maria,Nabila,Fransiskus,Tri,Retno,Yanti,Hana,Wahyuni,Dimas,Ilham,Intan,Ika,Ridwan,Dian,Wahyu,Arief,Hadi,"
    "Heri,Budi,Dyah,Putri,Lina,Eko,Andi,Siti,Ni Luh,Nurul,Irfan,Galih,Yudi,Zulkifli,Surya,Rizky,Teguh,Imam,"
    "Sigit,Gilang,Mega,Citra,Febri,Agus,Dedi,Vina,Anton,Fatimah,Khairunnisa,Rina,Rani,Syamsul,Muhammad,"
    "Lestari,I Wayan".split(",")
)
LASTNAMES = tuple(
    "Nasution Gunawan Daulay Kurniawan Sinaga Pratama Hartono Maulana Lubis Anggraini Pohan Mokoginta "
    "Rangkuti Kusuma Wahyudi Suharto Sulistyo Sihombing Harahap Tarigan Tambunan Ramadhan Handayani "
    "Latuconsina Iskandar Santoso Sudirman Firmansyah Paturusi Pertiwi Wattimena Safitri Tanjung Maharani "
    "Nainggolan Pakpahan Permana Sembiring Hutapea Makmur Panjaitan Marpaung Batubara Situmorang Simanjuntak "
    "Purnomo Puspitasari Utomo Hidayat Nugroho Saputra Fauziah Rahmawati Ginting Hakim".split()
)
DEPARTMENTS = (
    "Bidang Pengembangan Kompetensi",
    "Dinas Komunikasi dan Informatika",
    "Sekretariat",
    "Bagian Kepegawaian",
    "Badan Perencanaan Pembangunan Daerah",
    "Bidang Pelayanan Publik",
    "Subbagian Tata Usaha",
    "Inspektorat",
    "Biro Umum",
    "Bagian Keuangan",
    "Pusat Data dan Informasi",
    "Bidang Perencanaan",
)
INSTITUTIONS = (
    "Pemerintah Provinsi Jawa Timur",
    "Pemerintah Kabupaten Sleman",
    "Kementerian Keuangan",
    "Kementerian Kesehatan",
    "Kementerian PANRB",
    "Pemerintah Kota Makassar",
    "Pemerintah Provinsi Jawa Barat",
    "Pemerintah Kota Denpasar",
    "Pemerintah Provinsi Sumatera Utara",
    "Lembaga Administrasi Negara",
    "Badan Kepegawaian Negara",
)
CITIES = (
    "Mataram",
    "Kupang",
    "Denpasar",
    "Bandung",
    "Banjarmasin",
    "Jakarta",
    "Medan",
    "Ambon",
    "Padang",
    "Surabaya",
    "Pontianak",
    "Makassar",
)
GOLONGAN = tuple(f"{g}/{s}" for g in ("II", "III", "IV") for s in "abcd") + ("IV/e",)
JABATAN = (
    "Analis Kebijakan Ahli Muda",
    "Analis Kebijakan Ahli Pertama",
    "Kepala Seksi",
    "Kepala Subbagian",
    "Pranata Komputer Ahli Pertama",
    "Pranata Komputer Ahli Muda",
    "Widyaiswara Ahli Madya",
    "Auditor Ahli Pertama",
    "Perencana Ahli Muda",
    "Statistisi Ahli Pertama",
    "Pengelola Keuangan",
    "Analis SDM Aparatur Ahli Muda",
    "Penata Kelola Sistem dan Teknologi Informasi",
    "Arsiparis Terampil",
)
# PT-01 .. PT-32 topics (core_enrol_get_enrolled_users.json enrolledcourses; PT-01 not captured)
PT_TOPICS = (
    "Manajemen Arsip Dinamis",
    "Penyusunan SAKIP",
    "Analisis Beban Kerja",
    "Manajemen Risiko Sektor Publik",
    "Pelayanan Publik Prima",
    "Penulisan Naskah Dinas",
    "Pengelolaan Keuangan Daerah",
    "Audit Internal Pemerintah",
    "Perencanaan Pembangunan Daerah",
    "Sistem Pemerintahan Berbasis Elektronik (SPBE)",
    "Keamanan Informasi",
    "Analisis Data dengan Python",
    "Literasi Digital ASN",
    "Manajemen ASN",
    "Penyusunan Standar Pelayanan",
    "Evaluasi Kebijakan Publik",
    "Reformasi Birokrasi",
    "Public Speaking untuk ASN",
    "Coaching dan Mentoring",
    "Kepemimpinan Digital",
    "Manajemen Proyek Pemerintah",
    "Perlindungan Data Pribadi",
    "Tata Kelola Data",
    "Inovasi Pelayanan Publik",
    "Penganggaran Berbasis Kinerja",
    "Akuntabilitas Kinerja Instansi",
    "Etika dan Integritas ASN",
    "Wawasan Kebangsaan",
    "Pengelolaan Barang Milik Negara",
    "Jabatan Fungsional Analis Kebijakan",
    "Satu Data Indonesia",
    "Manajemen Talenta ASN",
)
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X")
# mod_forum_get_forum_discussions.json subjects and messages
TOPICS = (
    "literasi digital pegawai",
    "e-Kinerja",
    "integrasi data kepegawaian",
    "SPBE",
    "interoperabilitas sistem",
    "arsip digital",
    "keamanan siber",
    "smart city",
    "kecerdasan artifisial di sektor publik",
    "manajemen talenta",
    "big data pemerintahan",
    "pengadaan secara elektronik",
    "perlindungan data pribadi",
    "layanan publik daring",
    "Satu Data Indonesia",
)
SUBJECTS = (
    "Bagaimana penerapan {} di instansi Bapak/Ibu?",
    "Kendala implementasi {}",
    "Tips dan trik {}",
    "Evaluasi pelaksanaan {} triwulan ini",
    "Minta masukan: rencana aksi {}",
    "Studi kasus {}",
    "Diskusi: regulasi terbaru terkait {}",
    "Pertanyaan seputar {}",
    "Berbagi pengalaman: {}",
    "Praktik baik {} di daerah",
)
SENTENCES = (
    "Menurut saya kuncinya ada pada komitmen pimpinan dan konsistensi pelaksanaan.",
    "Kami sudah mencoba pendekatan bertahap: pilot di satu bidang, lalu direplikasi.",
    "Regulasi terbaru mensyaratkan evaluasi berkala setiap enam bulan.",
    "Apakah ada contoh SOP yang bisa dibagikan di forum ini?",
    "Berikut pengalaman kami di daerah: anggaran terbatas, tetapi kolaborasi dengan perguruan tinggi sangat membantu.",
    "Setuju dengan pendapat di atas. Kami juga menerapkan hal serupa.",
    "Izin menambahkan referensi: Perpres 95/2018 tentang SPBE.",
    "Mohon pencerahan dari narasumber terkait standar interoperabilitas yang digunakan.",
    "Apakah ada forum lanjutan atau webinar terkait topik ini?",
    "Saran saya, lakukan pemetaan proses bisnis terlebih dahulu sebelum membangun aplikasi.",
    "Kami terbuka untuk studi banding ke instansi Bapak/Ibu.",
    "Kami mengalami kesulitan dalam koordinasi lintas bidang, terutama terkait penyediaan data.",
    "Terima kasih atas materinya, sangat bermanfaat.",
    "Tim kami sedang menyusun kajian, nanti hasilnya kami bagikan di sini.",
    "Salah satu tantangan terbesar adalah perubahan pola pikir (mindset) pegawai.",
    "Di unit kami, implementasinya sudah berjalan sejak awal tahun, namun masih ada kendala infrastruktur.",
    "Data kami tunjukkan peningkatan kepuasan layanan sebesar 12% setelah digitalisasi.",
    "Sudah dicoba, tetapi integrasinya masih manual (ekspor CSV).",
)
# The README's "post with emoji/HTML entities" trap (JSON escapes it as \ud83d\udc4d).
EMOJI_MESSAGE = "<p>Mantap \U0001f44d! Terima kasih &amp; salam dari Makassar &lt;3 &quot;Bersama kita bisa&quot;</p>"


@dataclass(frozen=True)
class Preset:
    """Scale knobs of a generated site (the "fixture" preset mirrors the README's counts)."""

    users: int
    pt_courses: int
    pkp_courses: int
    pbj_sections: int  # 0 = no PBJ course
    latsar_sections: int
    pt_size: tuple[int, int]
    pkp_size: int
    pbj_size: int
    cop_size: int
    cop_discussions: tuple[int, int, int, int, int]  # general, share, qanda, groups, news
    cop_replies: float
    other_discussions: int  # per non-CoP course announcements forum
    other_replies: float
    hidden_courses: int
    shared_nips: int
    unenrolled_posters: int


PRESETS: dict[str, Preset] = {
    "small": Preset(
        users=60,
        pt_courses=3,
        pkp_courses=1,
        pbj_sections=0,
        latsar_sections=6,
        pt_size=(8, 15),
        pkp_size=20,
        pbj_size=0,
        cop_size=40,
        cop_discussions=(8, 4, 3, 3, 2),
        cop_replies=5.0,
        other_discussions=2,
        other_replies=2.0,
        hidden_courses=1,
        shared_nips=1,
        unenrolled_posters=1,
    ),
    "fixture": Preset(
        users=10000,
        pt_courses=64,
        pkp_courses=8,
        pbj_sections=100,
        latsar_sections=500,
        pt_size=(15, 60),
        pkp_size=100,
        pbj_size=1000,
        cop_size=800,
        cop_discussions=(142, 70, 40, 36, 12),
        cop_replies=7.0,
        other_discussions=10,
        other_replies=7.8,
        hidden_courses=3,
        shared_nips=2,
        unenrolled_posters=5,
    ),
}


def stable_hash(*parts: object) -> int:
    """A 64-bit hash independent of PYTHONHASHSEED (used for on-demand per-user data)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def spaced_nip(nip: str) -> str:
    """'199604012018032312' -> '19960401 201803 2 312' (how some NIPs are stored, README)."""
    return f"{nip[:8]} {nip[8:14]} {nip[14]} {nip[15:]}"


def moodle_date(ts: int) -> tuple[str, str]:
    """(ISO datetime, 'Saturday, 21 March 2026, 4:56 AM') in the site timezone, as forum HTML shows."""
    dt = datetime.fromtimestamp(ts, JAKARTA)
    hour = dt.hour % 12 or 12
    text = f"{dt:%A}, {dt.day} {dt:%B} {dt.year}, {hour}:{dt:%M} {dt:%p}"
    return dt.isoformat(), text


@dataclass(slots=True)
class User:
    """A Moodle user; empty strings mean "not set" (omitted from responses like Moodle does)."""

    id: int
    username: str
    firstname: str
    lastname: str
    email: str
    department: str = ""
    institution: str = ""
    idnumber: str = ""
    city: str = ""
    golongan: str = ""
    jabatan: str = ""
    jenisasn: str = ""
    firstaccess: int = 0
    lastaccess: int = 0
    suspended: bool = False
    deleted: bool = False

    @property
    def fullname(self) -> str:
        return f"{self.firstname} {self.lastname}"


@dataclass(slots=True)
class Enrolment:
    """One user_enrolments row plus the role and course last access."""

    userid: int
    roleid: int
    status: int  # 0 active, 1 suspended
    timestart: int
    timeend: int
    lastaccess: int


@dataclass(slots=True)
class Module:
    """A course module; ``rule`` is its automatic completion rule ("" = no completion tracking)."""

    id: int
    course: int
    section: int
    modname: str
    instance: int
    name: str
    rule: str = ""
    rulevalue: int = 0
    timemodified: int = 0
    groupmode: int = 0
    files: int = 0  # resource: number of attached files
    opening: int = 0  # bigbluebuttonbn: session start (openingtime)
    closing: int = 0  # bigbluebuttonbn: session end (closingtime); 0 = not set


@dataclass(slots=True)
class Course:
    """A course with its modules, enrolments, groups and completion criteria (cmids, aggregation ALL)."""

    id: int
    shortname: str
    fullname: str
    idnumber: str
    category: int
    sortorder: int
    summary: str
    kind: str  # pt, pkp, pbj, latsar, cop
    visible: int
    startdate: int
    enddate: int
    numsections: int
    timecreated: int
    timemodified: int
    first_section_id: int = 0
    modules: list[Module] = field(default_factory=list)
    criteria: list[int] = field(default_factory=list)
    enrol: dict[int, Enrolment] = field(default_factory=dict)
    groups: dict[int, int] = field(default_factory=dict)  # userid -> groupid
    customfields: dict[str, str] = field(default_factory=dict)  # course custom field shortname -> valueraw
    tags: list[str] = field(default_factory=list)  # course tags as typed (Moodle matches them case-insensitively)


@dataclass(slots=True)
class Post:
    """A forum post; ``modified > created`` means it was edited."""

    id: int
    discussion: int
    parent: int
    userid: int
    created: int
    modified: int
    subject: str
    message: str
    #: When an edit through Moodle's forum_update_post happened (0: never): the post's ``timemodified``
    #: shows it, the discussion's does not (Moodle 4.5 leaves it "to track the latest new post").
    edited: int = 0

    @property
    def shown_modified(self) -> int:
        """The post's ``timemodified`` as the web services show it."""
        return max(self.modified, self.edited)


@dataclass(slots=True)
class Discussion:
    """A forum discussion; ``posts[0]`` is the first post, whose id the WS calls the discussion "id"."""

    id: int
    forum: int
    name: str
    groupid: int
    pinned: bool = False
    locked: bool = False
    posts: list[Post] = field(default_factory=list)

    @property
    def last(self) -> Post:
        # discussion timemodified / usermodified follow the latest post (README, "Forums")
        return max(self.posts, key=lambda post: (post.modified, post.id))


@dataclass(slots=True)
class Forum:
    """A forum instance (its id is the module instance)."""

    id: int
    course: int
    cmid: int
    type: str
    name: str
    intro: str
    completionposts: int = 0
    completiondiscussions: int = 0
    discussions: list[Discussion] = field(default_factory=list)


@dataclass(slots=True)
class Category:
    """A course category (core_course_get_categories.json)."""

    id: int
    name: str
    idnumber: str
    description: str
    parent: int
    sortorder: int
    timemodified: int

    @property
    def path(self) -> str:
        return f"/{self.parent}/{self.id}" if self.parent else f"/{self.id}"


# core_course_get_categories.json (names are stored HTML-escaped, as Moodle returns them)
CATEGORIES = (
    (1, "Umum", "CAT-UMUM", "", 0),
    (2, "Pelatihan Dasar CPNS", "CAT-LATSAR", "<p>Pelatihan dasar calon pegawai negeri sipil.</p>", 0),
    (3, "Pelatihan Teknis", "CAT-TEK", "<p>Pelatihan teknis substantif.</p>", 0),
    (4, "Transformasi Digital", "CAT-TEK-DIG", "<p>Sub-kategori pelatihan teknis digital.</p>", 3),
    (5, "Pelatihan Kepemimpinan &amp; Manajerial", "CAT-MAN", "<p>PKA, PKP dan manajerial.</p>", 0),
    (6, "Komunitas Praktik (CoP)", "CAT-COP", "<p>Komunitas praktik lintas instansi.</p>", 0),
)
GROUP_NAMES = ("Regional Barat", "Regional Tengah", "Regional Timur")


class Dataset:
    """The generated site plus the append API (new posts, completions, attendance).

    Attributes:
        seed: the seed the data was built from.
        preset: the scale (a ``Preset``).
        clock: the site's "now"; appended activity is stamped with it and moves it forward.
        notable: ids of interesting objects (courses, forums, users...), see ``_pick_notables``.
        lock: hold it while reading or changing the data from several threads.
    """

    def __init__(self, preset: str | Preset = "small", seed: int = 1):
        self.preset = PRESETS[preset] if isinstance(preset, str) else preset
        self.seed = seed
        self.clock = NOW0
        self.lock = threading.RLock()
        self.users: dict[int, User] = {}
        self.courses: dict[int, Course] = {}
        self.categories = []
        for cid, name, idnumber, description, parent in CATEGORIES:
            modified = SITE_BUILT + 725 if cid > 1 else SITE_BUILT  # core_course_get_categories.json
            self.categories.append(Category(cid, name, idnumber, description, parent, cid * 10000, modified))
        self.forums: dict[int, Forum] = {}
        self.discussions: dict[int, Discussion] = {}
        self.posts: dict[int, Post] = {}
        self.modules: dict[int, Module] = {}
        self.user_courses: dict[int, list[int]] = {}
        self.overrides: dict[tuple[int, int], int] = {}  # (userid, cmid) -> timecompleted
        #: Site administration > General > Advanced features > Enable tags functionality (``usetags``).
        self.usetags = True
        # (userid, cmid) -> (state, timecompleted) of a graded module: 2 pass, 3 fail (COMPLETION_COMPLETE_FAIL).
        self.graded: dict[tuple[int, int], tuple[int, int]] = {}
        self.post_times: dict[tuple[int, int], list[int]] = {}  # (forumid, userid) -> post created times
        self.start_times: dict[tuple[int, int], list[int]] = {}  # (forumid, userid) -> discussion start times
        self.notable: dict[str, Any] = {}
        # id counters (the site course is 1; cmid 1 and the guest user 1 are not generated)
        self._ids: dict[str, Any] = {
            "course": 1,
            "cm": 1,
            "section": 0,
            "instance": {},
            "discussion": 0,
            "post": 0,
            "append": 0,
        }
        rng = random.Random(f"fake-moodle:{seed}")
        self._make_users(rng)
        self._make_courses(rng)
        self._make_forum_activity(rng)
        self._pick_notables()
        order = [1, *self.courses]
        random.Random(f"order:{seed}").shuffle(order)
        self.course_order = order  # core_course_get_courses.json: neither id nor category order

    # ------------------------------------------------------------------ users
    def _make_users(self, rng: random.Random) -> None:
        pre = self.preset
        self.users[2] = User(2, "admin", "Admin", "User", "admin@example.invalid")
        nips: set[str] = set()
        for uid in range(3, pre.users + 3):
            first, last = rng.choice(FIRSTNAMES), rng.choice(LASTNAMES)
            num = uid - 2
            user = User(
                uid,
                f"tool_generator_{num:06d}",
                first,
                last,
                f"{first.lower().replace(' ', '')}.{last.lower()}.{num:06d}@asn.example",
                department=rng.choice(DEPARTMENTS),
                institution=rng.choice(INSTITUTIONS),
                city=rng.choice(CITIES),
                golongan=rng.choice(GOLONGAN),
                jabatan=rng.choice(JABATAN),
            )
            roll = rng.random()
            if roll < 0.11:  # ~11% blank idnumber: contract staff / non-ASN
                user.jenisasn = rng.choice(("PPPK", "Non-ASN"))
            else:
                nip = self._nip(rng, nips)
                user.jenisasn = "PNS" if rng.random() < 0.9 else "PPPK"
                # ~1% stored with spaces (19960401 201803 2 312): exact-match lookups miss them
                user.idnumber = spaced_nip(nip) if roll > 0.9885 else nip
            if rng.random() < 0.03:
                user.firstaccess = user.lastaccess = 0  # never logged in
            else:
                user.firstaccess = YEAR_START + rng.randint(0, 120 * DAY)
                user.lastaccess = rng.randint(user.firstaccess, NOW0 - 600)
            user.suspended = rng.random() < 0.01
            self.users[uid] = user
        people = list(self.users.values())[1:]
        for user in rng.sample(people[len(people) // 2 :], 2):  # two deleted users who had posted
            user.deleted = True
        people = [u for u in people if not u.deleted]
        if not any(" " in u.idnumber for u in people):  # small presets: force the spaced-NIP trap to exist
            victim = next(u for u in people if u.idnumber)
            victim.idnumber = spaced_nip(victim.idnumber)
        if not any(u.suspended for u in people):
            people[-3].suspended = True
        plain = [u for u in people if len(u.idnumber) == 18]
        for i in range(pre.shared_nips):  # the same NIP on two accounts
            plain[-1 - 2 * i].idnumber = plain[-2 - 2 * i].idnumber
        service = User(pre.users + 3, "ws_monitor", "Monitor", "Integrasi", "ws.monitor@example.invalid")
        self.users[service.id] = service  # the "limited" token's user: enrolled nowhere
        for uid in self.users:
            self.user_courses[uid] = []

    @staticmethod
    def _nip(rng: random.Random, taken: set[str]) -> str:
        while True:
            year, month, day = rng.randint(1965, 2000), rng.randint(1, 12), rng.randint(1, 28)
            appointed = min(2025, year + rng.randint(19, 30))
            # YYYYMMDD birth + YYYYMM appointment + gender digit + 3-digit sequence
            nip = (
                f"{year}{month:02d}{day:02d}{appointed}{rng.randint(1, 12):02d}"
                f"{rng.randint(1, 2)}{rng.randint(1, 999):03d}"
            )
            if nip not in taken:
                taken.add(nip)
                return nip

    # ---------------------------------------------------------------- courses
    def _new_course(
        self,
        rng: random.Random,
        kind: str,
        names: tuple[str, str, str],
        category: int,
        summary: str,
        dates: tuple[int, int],
        numsections: int,
    ) -> Course:
        """Add a course; ``names`` = (shortname, fullname, idnumber), ``dates`` = (startdate, enddate)."""
        self._ids["course"] += 1
        cid = self._ids["course"]
        created = SITE_BUILT + 100 + cid * 7
        same_category = sum(1 for c in self.courses.values() if c.category == category)
        course = Course(
            cid,
            *names,
            category,
            category * 10000 + same_category + 1,
            summary,
            kind,
            1,
            *dates,
            numsections,
            created,
            created + rng.choice((0, 0, 600)),
        )
        course.first_section_id = self._ids["section"] + 1
        self._ids["section"] += numsections + 1
        self.courses[cid] = course
        return course

    def _module(
        self, course: Course, section: int, modname: str, name: str, rule: str = "", rulevalue: int = 0, **extra: int
    ) -> Module:
        self._ids["cm"] += 1
        instances = self._ids["instance"]
        instances[modname] = instances.get(modname, 0) + 1
        # BigBlueButton modules report timemodified 0 (mod_bigbluebuttonbn_get_bigbluebuttonbns_*.json)
        when = 0 if modname == "bigbluebuttonbn" else course.timecreated + 30
        mod = Module(
            self._ids["cm"], course.id, section, modname, instances[modname], name, rule, rulevalue, when, **extra
        )
        course.modules.append(mod)
        self.modules[mod.id] = mod
        if modname == "forum":
            self.forums[mod.instance] = Forum(
                mod.instance, course.id, mod.id, "news", name, "General news and announcements"
            )
        return mod

    def _make_courses(self, rng: random.Random) -> None:
        pre = self.preset
        pt_courses = [self._make_pt_course(rng, i, pre) for i in range(pre.pt_courses)]
        pkp = []
        for i in range(pre.pkp_courses):
            start = YEAR_START + (31 + 35 * i) * DAY + 36452
            short = f"PKP-2026-{i + 1:02d}"
            names = (short, f"Pelatihan Kepemimpinan Pengawas (PKP) Angkatan {ROMAN[i]} Tahun 2026", short)
            summary = "<p>Pelatihan Kepemimpinan Pengawas (blended learning).</p>"
            course = self._new_course(rng, "pkp", names, 5, summary, (start, start + 90 * DAY), 10)
            self._module(course, 0, "resource", "Small files", files=8)
            self._module(course, 0, "forum", "Announcements")
            # core_course_get_contents__pkp.json: Page 1-3 (view) and Assignment 1-2 (grade) are the criteria
            pages, tasks = [], []
            for sec in range(1, 11):
                rule = "completionusegrade" if sec <= 2 else ""
                tasks.append(self._module(course, sec, "assign", f"Assignment {sec}", rule))
                for num in range(sec * 5 - 4, sec * 5 + 1):
                    rule = "completionview" if num <= 3 else ""
                    pages.append(self._module(course, sec, "page", f"Page {num}", rule))
                if sec in (4, 8):
                    self._module(course, sec, "resource", f"Big file {sec // 4 - 1}", files=2)
            course.criteria = [tasks[1].id, pages[0].id, tasks[0].id, pages[1].id, pages[2].id]
            pkp.append(course)
        big = []
        if pre.pbj_sections:
            start = YEAR_START + 176 * DAY + 36452
            names = (
                "PBJ-DASAR-2026",
                "Pelatihan Teknis Pengadaan Barang/Jasa Pemerintah Tingkat Dasar (Kelas Besar)",
                "PBJ-2026-001",
            )
            course = self._new_course(
                rng, "pbj", names, 3, "<p>Pelatihan mandiri pengadaan barang/jasa.</p>", (start, 0), pre.pbj_sections
            )
            self._sectioned(course, pre.pbj_sections)
            big.append(course)
        start = YEAR_START + 125 * DAY + 36452
        names = ("DIKLAT-L-LATSAR", "Pelatihan Dasar CPNS (Latsar) Angkatan Nasional", "LATSAR-2026-NAS")
        summary = "<p>Pelatihan Dasar CPNS Golongan III tahun anggaran 2026 (kelas nasional, e-learning).</p>"
        dates = (start, start + 230 * DAY)
        latsar = self._new_course(rng, "latsar", names, 2, summary, dates, pre.latsar_sections)
        self._sectioned(latsar, pre.latsar_sections)
        self._ids["course"] += 1  # one course was deleted on the fixture site (ids jump 75 -> 77)
        names = ("COP-TDP", "Komunitas Praktik: Transformasi Digital Pemerintahan", "COP-2026-TDP")
        summary = "<p>Ruang berbagi praktik baik transformasi digital lintas instansi pemerintah.</p>"
        cop = self._new_course(rng, "cop", names, 6, summary, (YEAR_START + 4 * DAY + 32515, 0), 4)
        # The admin marks CoP courses with a course tag (cop_forums.course_tags); "Diklat" is on a PT course too.
        cop.tags = ["CoP", "Diklat"]
        pt_courses[0].tags = ["Diklat"]
        self._make_cop_modules(cop)
        self._enrol_all(rng, pt_courses, pkp, big, latsar, cop)
        self.notable.update(
            cop_course=cop.id,
            leadership_course=pkp[0].id,
            big_course=latsar.id,
            nocriteria_course=pt_courses[1].id,
            criteria_pt_course=pt_courses[0].id,
            hidden_courses=[c.id for c in pt_courses if not c.visible],
            leadership_category=5,
            courses_with_criteria=[c.id for c in self.courses.values() if c.criteria],
        )

    def _make_pt_course(self, rng: random.Random, i: int, pre: Preset) -> Course:
        """PT-xx-I/II technical course: one section with a page, slides and a final task."""
        topic, batch = PT_TOPICS[i % 32], ROMAN[i // 32]
        start = YEAR_START + rng.randint(1, 330) * DAY  # midnight WIB; some start after "now"
        names = (
            f"PT-{i % 32 + 1:02d}-{batch}",
            f"Pelatihan Teknis {topic} Angkatan {batch}",
            f"DIKLAT-2026-{i + 1:04d}",
        )
        summary = f"<p>Pelatihan teknis <strong>{topic}</strong> bagi ASN, angkatan {batch}.</p>"
        course = self._new_course(
            rng, "pt", names, rng.choice((1, 3, 4, 5)), summary, (start, start + rng.randint(14, 60) * DAY), 1
        )
        if i >= 2 and i % 7 == 2 and i // 7 < pre.hidden_courses:  # a few hidden courses (README: 3)
            course.visible = 0
        self._module(course, 0, "forum", "Announcements")
        # every other PT course has completion but no criteria (error_nocriteriaset.json: course 3)
        with_criteria = i % 2 == 0
        page = self._module(course, 1, "page", f"Materi {topic}", "completionview" if with_criteria else "")
        self._module(course, 1, "resource", f"Bahan Tayang {topic}", files=2)
        task = self._module(course, 1, "assign", "Tugas Akhir", "completionusegrade" if with_criteria else "")
        if with_criteria:
            course.criteria = [task.id, page.id]
        # A "jp" course custom field (program JP) on the first PT course (it has criteria) and about half
        # the others, from the seed without touching ``rng``; never in category 5: the contract call
        # (core_course_get_courses_by_field__category.json, category 5) shows no custom fields.
        roll = stable_hash(self.seed, "customfield-jp", course.id)
        if course.category != 5 and (i == 0 or roll % 2 == 0):
            course.customfields["jp"] = str((12, 16, 24, 32)[roll // 2 % 4])
        return course

    def _sectioned(self, course: Course, sections: int) -> None:
        """LATSAR / PBJ: many sections of two pages and an evaluation; three criteria."""
        self._module(course, 0, "forum", "Announcements")
        first = []
        for sec in range(1, sections + 1):
            rule = "completionview" if sec == 1 else ""
            first.append(self._module(course, sec, "page", f"Materi {sec}.1", rule))
            self._module(course, sec, "page", f"Materi {sec}.2", rule)
            rule = "completionusegrade" if sec == sections else ""
            last = self._module(course, sec, "assign", f"Evaluasi {sec}", rule)
        course.criteria = [first[0].id, first[0].id + 1, last.id]

    def _make_cop_modules(self, cop: Course) -> None:
        # core_course_get_contents.json / mod_forum_get_forums_by_courses.json (course 77)
        page = self._module(cop, 0, "page", "Panduan Komunitas", "completionview")
        news = self._module(cop, 0, "forum", "Announcements")
        general = self._module(cop, 1, "forum", "Forum Diskusi Umum", "completionposts", 3)
        share = self._module(cop, 1, "forum", "Berbagi Praktik Baik", "completiondiscussions", 1)
        qanda = self._module(cop, 2, "forum", "Tanya Jawab Narasumber")
        groups = self._module(cop, 2, "forum", "Diskusi Kelompok Regional", groupmode=1)
        intros = (
            (general, "general", "Diskusi bebas seputar transformasi digital."),
            (share, "general", "Bagikan satu praktik baik dari instansi Anda."),
            (qanda, "qanda", "Ajukan pertanyaan kepada narasumber."),
            (groups, "general", "Diskusi per kelompok regional."),
        )
        for mod, kind, intro in intros:
            forum = self.forums[mod.instance]
            forum.type, forum.intro = kind, f"<p>{intro}</p>"
        self.forums[general.instance].completionposts = 3
        self.forums[share.instance].completiondiscussions = 1
        for i in range(6):  # six webinars, the last one still in the future
            opening = NOW0 + 10 * DAY if i == 5 else cop.startdate + (20 + 55 * i) * DAY + 2 * 3600
            name = f"Webinar Komunitas Sesi {i + 1}"
            # Scheduled for 90 minutes (the real logs show sessions of 45 to 120 minutes).
            closing = opening + 90 * 60
            self._module(cop, 3, "bigbluebuttonbn", name, "completionattendance", 30, opening=opening, closing=closing)
        cop.criteria = [page.id, general.id]
        self.notable.update(
            cop_news_forum=news.instance,
            cop_general_forum=general.instance,
            cop_share_forum=share.instance,
            cop_qanda_forum=qanda.instance,
            cop_groups_forum=groups.instance,
            cop_general_cmid=general.id,
            cop_page_cmid=page.id,
            webinar_cmids=[m.id for m in cop.modules if m.modname == "bigbluebuttonbn"],
            future_webinar_cmid=cop.modules[-1].id,
        )

    # ------------------------------------------------------------- enrolments
    def _enrol(self, rng: random.Random, course: Course, uid: int, roleid: int) -> None:
        student = roleid == ROLE_STUDENT
        status = 1 if student and rng.random() < 0.02 else 0  # ~2% suspended enrolments (README: 298/15258)
        timestart = course.startdate - rng.randint(1, 14) * DAY
        timeend = 0
        if student and rng.random() < 0.008:  # a few enrolments with an end date, half already expired
            timeend = rng.choice((NOW0 - rng.randint(2, 60) * DAY, NOW0 + rng.randint(2, 60) * DAY))
        user = self.users[uid]
        lastaccess = 0  # course last access; the user's site last access is never older
        if user.firstaccess and course.startdate < NOW0 - DAY and rng.random() > 0.1:
            lastaccess = rng.randint(min(max(course.startdate, user.firstaccess), NOW0 - 900), NOW0 - 600)
            user.lastaccess = max(user.lastaccess, lastaccess)
        course.enrol[uid] = Enrolment(uid, roleid, status, timestart, timeend, lastaccess)
        self.user_courses[uid].append(course.id)

    def _enrol_all(
        self, rng: random.Random, pt: list[Course], pkp: list[Course], big: list[Course], latsar: Course, cop: Course
    ) -> None:
        pool = [u.id for u in self.users.values() if u.username.startswith("tool_") and not u.deleted]
        sizes = [(c, rng.randint(*self.preset.pt_size)) for c in pt]
        sizes += [(c, self.preset.pkp_size) for c in pkp] + [(c, self.preset.pbj_size) for c in big]
        for course, size in sizes:
            self._enrol(rng, course, 2, ROLE_TEACHER)  # the admin teaches everywhere but the CoP
            chosen = rng.sample(pool, min(len(pool), size + 2))
            for uid in chosen[:2]:
                self._enrol(rng, course, uid, ROLE_TEACHER)
            for uid in sorted(chosen[2:]):
                self._enrol(rng, course, uid, ROLE_STUDENT)
        self._enrol(rng, latsar, 2, ROLE_TEACHER)
        teachers = rng.sample(pool, 3)
        for uid in pool:
            self._enrol(rng, latsar, uid, ROLE_TEACHER if uid in teachers else ROLE_STUDENT)
        members = sorted(rng.sample(pool, min(len(pool), self.preset.cop_size)))
        for uid in members:
            self._enrol(rng, cop, uid, ROLE_STUDENT)
            roll = stable_hash(self.seed, "group", uid) % 10
            if roll:  # ~10% of members are in no group (mod_forum_get_discussion_posts__deleted_author.json)
                cop.groups[uid] = 1 + roll % 3
        for course in self.courses.values():  # enrolled users come back ordered by user id
            course.enrol = dict(sorted(course.enrol.items()))
        if not any(e.status for e in latsar.enrol.values()):  # tiny presets: keep the trap
            list(latsar.enrol.values())[-1].status = 1

    # ------------------------------------------------------------------ forums
    def _message(self, rng: random.Random) -> str:
        return "<p>" + " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 4))) + "</p>"

    def _thread(
        self,
        rng: random.Random,
        forum: Forum,
        name: str,
        author: int,
        created: int,
        replies: int,
        repliers: list[int],
        groupid: int = -1,
    ) -> Discussion:
        disc = Discussion(0, forum.id, name, groupid)
        disc.posts.append(Post(0, 0, 0, author, created, created, name, self._message(rng)))
        when = created
        for _ in range(replies):
            when += int(rng.expovariate(1 / (1.5 * DAY))) + 60
            if when > NOW0 - 120:
                break
            # parent holds a 1-based position in the thread until _number_posts assigns ids
            parent = 1 if rng.random() < 0.65 else rng.randint(1, len(disc.posts))
            disc.posts.append(Post(0, 0, parent, rng.choice(repliers), when, when, f"Re: {name}", self._message(rng)))
        forum.discussions.append(disc)
        return disc

    def _make_forum_activity(self, rng: random.Random) -> None:
        pre = self.preset
        cop = self.courses[self.notable["cop_course"]]
        members = [uid for uid, e in cop.enrol.items() if e.roleid == ROLE_STUDENT]
        posters = rng.sample(members, max(3, len(members) * 3 // 4))
        # mirrors fixture user 6620: in a regional group, completes the CoP through forum posts
        champion = next((uid for uid in posters if uid in cop.groups), posters[0])
        deleted = [u.id for u in self.users.values() if u.deleted]
        counts = dict(zip(("general", "share", "qanda", "groups", "news"), pre.cop_discussions, strict=True))
        for key, count in counts.items():
            forum = self.forums[self.notable[f"cop_{key}_forum"]]
            for i in range(count):
                author = rng.choice(posters)
                if key == "general" and i >= count - 2:  # fresh threads for updates_since
                    created = NOW0 - rng.randint(1, 3) * DAY
                else:
                    created = rng.randint(cop.startdate + DAY, NOW0 - 5 * DAY)
                subject = rng.choice(SUBJECTS).format(rng.choice(TOPICS))
                replies = max(0, int(rng.expovariate(1 / pre.cop_replies)))
                if key == "general" and i == 0:  # one long thread (mod_forum_get_discussion_posts.json)
                    replies = max(replies, 14)
                group = cop.groups.get(author, 1) if key == "groups" else -1
                self._thread(rng, forum, subject, author, created, replies, [*posters, champion], group)
        general = self.forums[self.notable["cop_general_forum"]]
        # longest threads first: the deleted author's thread then has (grouped) repliers to show
        others = sorted((d for d in general.discussions[1:] if len(d.posts) > 1), key=lambda d: -len(d.posts))
        others[0].posts[0].userid = deleted[0]  # a thread started by a later-deleted user
        others[1].posts[-1].userid = deleted[1]
        others[-1].posts[-1].message = EMOJI_MESSAGE
        grouped = [p for d in general.discussions for p in d.posts[1:] if d.posts[p.parent - 1].userid in cop.groups]
        for post in grouped[:3]:
            post.userid = champion  # at least 3 posts: completionposts=3 satisfied
        for disc in general.discussions[2:4]:
            disc.pinned = True
        general.discussions[4].locked = True
        self.forums[self.notable["cop_news_forum"]].discussions[0].pinned = True
        for course in self.courses.values():
            if course.kind == "cop":
                continue
            news = next(m for m in course.modules if m.modname == "forum")
            forum = self.forums[news.instance]
            teachers = [uid for uid, e in course.enrol.items() if e.roleid == ROLE_TEACHER and uid != 2]
            students = [uid for uid, e in course.enrol.items() if e.roleid == ROLE_STUDENT]
            for _ in range(pre.other_discussions if course.startdate < NOW0 - 2 * DAY else 0):
                kind = rng.choice(("Jadwal pelaksanaan", "Pengumuman", "Informasi tugas", "Tautan materi"))
                name = f"{kind} {course.shortname}"
                created = rng.randint(course.startdate, min(NOW0 - DAY, course.enddate or NOW0))
                self._thread(
                    rng,
                    forum,
                    name,
                    rng.choice(teachers or [2]),
                    created,
                    int(rng.expovariate(1 / pre.other_replies)),
                    students or teachers or [2],
                )
        self._number_posts(rng)
        if not any(p.modified > p.created for p in self.posts.values()):  # keep the edited-post trap
            post = others[0].posts[-1]
            post.modified = min(NOW0 - 60, post.created + 2387)
        for post in self.posts.values():  # posting means visiting: last access is never older
            forum = self.forums[self.discussions[post.discussion].forum]
            self._seen(self.courses[forum.course], post.userid, post.modified)
        for uid in rng.sample([p for p in posters if p != champion], pre.unenrolled_posters):
            del cop.enrol[uid]  # posted, then left the community (README: 5 posters unenrolled afterwards)
            cop.groups.pop(uid, None)
            self.user_courses[uid].remove(cop.id)
        self.notable.update(deleted_users=deleted, cop_champion=champion)

    def _number_posts(self, rng: random.Random) -> None:
        """Give discussion ids by creation time and contiguous post ids per thread (like the fixtures)."""
        threads = [d for f in self.forums.values() for d in f.discussions]
        threads.sort(key=lambda d: d.posts[0].created)
        for disc in threads:
            self._ids["discussion"] += 1
            disc.id = self._ids["discussion"]
            self.discussions[disc.id] = disc
            for post in disc.posts:
                self._ids["post"] += 1
                post.id, post.discussion = self._ids["post"], disc.id
                if post.parent:
                    post.parent = disc.posts[post.parent - 1].id
                if rng.random() < 0.04:  # edited later (timemodified > timecreated)
                    post.modified = min(NOW0 - 60, post.created + rng.randint(120, DAY))
                self.posts[post.id] = post
                self._index_post(disc, post)

    def _index_post(self, disc: Discussion, post: Post) -> None:
        self.post_times.setdefault((disc.forum, post.userid), []).append(post.created)
        if not post.parent:
            self.start_times.setdefault((disc.forum, post.userid), []).append(post.created)

    # ---------------------------------------------------------------- notables
    def _pick_notables(self) -> None:
        lead = self.courses[self.notable["leadership_course"]]
        nocrit = self.courses[self.notable["nocriteria_course"]]
        nip_count = Counter(u.idnumber for u in self.users.values() if u.idnumber and not u.deleted)
        students = [uid for uid in lead.enrol if self.is_tracked(lead, uid)]
        plain = [
            uid
            for uid in students
            if len(self.users[uid].idnumber) == 18
            and uid not in nocrit.enrol
            and nip_count[self.users[uid].idnumber] == 1
        ]
        done = next((uid for uid in plain if self.course_completion(lead, uid)[0]), None)
        if done is None:  # make sure one exists: complete every criterion during the course
            done = plain[0]
            for k, cmid in enumerate(lead.criteria):
                self.overrides[(done, cmid)] = lead.startdate + (10 + 7 * k) * DAY

        def done_count(uid: int) -> int:
            return sum(state for _, state, _ in self.course_completion(lead, uid)[1])

        total = len(lead.criteria)
        partial = next((uid for uid in students if uid != done and 0 < done_count(uid) < total), None)
        if partial is None:
            partial = next(uid for uid in students if uid != done and done_count(uid) == 0)
            self.overrides[(partial, lead.criteria[1])] = lead.startdate + 12 * DAY
        cop = self.courses[self.notable["cop_course"]]
        member = self.notable["cop_champion"]
        if not self.course_completion(cop, member)[0]:
            self.overrides[(member, self.notable["cop_page_cmid"])] = cop.startdate + 40 * DAY
        unique = [u for u in self.users.values() if len(u.idnumber) == 18 and nip_count[u.idnumber] == 1]
        self.notable.update(
            completed_user=done,
            incomplete_user=partial,
            cop_member=member,
            nocriteria_student=next(uid for uid in nocrit.enrol if self.is_tracked(nocrit, uid)),
            nip_users=[unique[0].id, unique[1].id],
            shared_nip=next(nip for nip, count in nip_count.items() if count > 1),
            spaced_nip=next(nip for nip in nip_count if " " in nip),
            suspended_user=next(u.id for u in self.users.values() if u.suspended),
            suspended_enrolment=next(
                (c.id, e.userid) for c in self.courses.values() for e in c.enrol.values() if e.status
            ),
            limited_user=max(self.users),
        )
        general = self.forums[self.notable["cop_general_forum"]]
        deleted = self.notable["deleted_users"]
        by_deleted = next(d for d in general.discussions if d.posts[0].userid in deleted)
        longest = max((d for d in general.discussions if d is not by_deleted), key=lambda d: len(d.posts))
        self.notable.update(
            long_discussion=longest.id,
            deleted_author_discussion=by_deleted.id,
            pinned_discussions=[d.id for f in self.forums.values() for d in f.discussions if d.pinned],
            locked_discussion=next(d.id for d in general.discussions if d.locked),
            edited_post=next(p.id for p in self.posts.values() if p.modified > p.created),
            emoji_post=next(p.id for p in self.posts.values() if p.message == EMOJI_MESSAGE),
        )

    # -------------------------------------------------------------- completion
    def is_tracked(self, course: Course, uid: int) -> bool:
        """Active student enrolment: what completion calls require (else usernotenroled)."""
        enrol = course.enrol.get(uid)
        return (
            enrol is not None
            and enrol.roleid == ROLE_STUDENT
            and enrol.status == 0
            and (enrol.timeend == 0 or enrol.timeend > self.clock)
            and not self.users[uid].deleted
        )

    def activity_state(self, module: Module, uid: int) -> tuple[int, int]:
        """(state, timecompleted) of one completion-tracked module for one user; (0, 0) when not complete."""
        if (uid, module.id) in self.graded:
            return self.graded[(uid, module.id)]
        if (uid, module.id) in self.overrides:
            return 1, self.overrides[(uid, module.id)]
        course = self.courses[module.course]
        enrol = course.enrol.get(uid)
        if enrol is None or enrol.roleid != ROLE_STUDENT or not module.rule:
            return 0, 0
        if module.rule in ("completionposts", "completiondiscussions"):
            table = self.post_times if module.rule == "completionposts" else self.start_times
            times = sorted(table.get((module.instance, uid), ()))
            return (1, times[module.rulevalue - 1]) if len(times) >= module.rulevalue else (0, 0)
        roll = stable_hash(self.seed, "cmc", module.id, uid)
        if module.rule == "completionattendance":
            attended = module.opening < NOW0 and roll % 100 < 35
            return (1, module.opening + 1800 + (roll >> 8) % 1800) if attended else (0, 0)
        diligence = 25 + stable_hash(self.seed, "rate", course.id, uid) % 76
        low = max(course.startdate, enrol.timestart, YEAR_START)
        high = min(NOW0 - 3600, course.enddate or NOW0)
        if roll % 100 >= diligence or high <= low:
            return 0, 0
        return 1, low + (roll >> 8) % (high - low)

    def course_completion(self, course: Course, uid: int) -> tuple[bool, list[tuple[Module, int, int]]]:
        """Whether the course is complete (aggregation ALL) and the per-criterion (module, state, time)."""
        modules = [self.modules[cmid] for cmid in course.criteria]
        rows = [(module, *self.activity_state(module, uid)) for module in modules]
        return bool(rows) and all(state for _, state, _ in rows), rows

    # ------------------------------------------------------------- append API
    def _seen(self, course: Course, uid: int, when: int) -> None:
        """Activity at ``when`` moves the user's site and course last access forward."""
        user = self.users[uid]
        user.lastaccess = max(user.lastaccess, when)
        user.firstaccess = user.firstaccess or when
        if uid in course.enrol:
            course.enrol[uid].lastaccess = max(course.enrol[uid].lastaccess, when)

    def _touch(self, course: Course, uid: int) -> None:
        """New activity (append API) happens at the clock."""
        self._seen(course, uid, self.clock)

    def _append_rng(self) -> random.Random:
        self._ids["append"] += 1
        return random.Random(f"append:{self.seed}:{self._ids['append']}")

    def advance(self, seconds: int) -> int:
        """Move the site clock forward; returns the new clock."""
        with self.lock:
            self.clock += int(seconds)
            return self.clock

    def add_posts(self, n: int, new_discussion_ratio: float = 0.25) -> list[int]:
        """Append ``n`` CoP forum posts (replies and some new discussions) at a moving clock.

        Returns:
            The new post ids (each later than anything before it).
        """
        with self.lock:
            rng = self._append_rng()
            cop = self.courses[self.notable["cop_course"]]
            authors = [uid for uid in cop.enrol if self.is_tracked(cop, uid)]
            keys = ("general", "share", "qanda", "groups")
            forums = [self.forums[self.notable[f"cop_{key}_forum"]] for key in keys]
            new_ids = []
            for _ in range(n):
                self.clock += rng.randint(30, 120)
                forum, author = rng.choice(forums), rng.choice(authors)
                open_threads = [d for d in forum.discussions if not d.locked]
                if rng.random() < new_discussion_ratio or not open_threads:
                    self._ids["discussion"] += 1
                    name = rng.choice(SUBJECTS).format(rng.choice(TOPICS))
                    group = cop.groups.get(author, 1) if forum.id == self.notable["cop_groups_forum"] else -1
                    disc = Discussion(self._ids["discussion"], forum.id, name, group)
                    forum.discussions.append(disc)
                    self.discussions[disc.id] = disc
                    parent, subject = 0, name
                else:
                    disc = rng.choice(open_threads[-10:])
                    parent, subject = rng.choice(disc.posts).id, f"Re: {disc.name}"
                self._ids["post"] += 1
                post = Post(
                    self._ids["post"], disc.id, parent, author, self.clock, self.clock, subject, self._message(rng)
                )
                disc.posts.append(post)
                self.posts[post.id] = post
                self._index_post(disc, post)
                self._touch(cop, author)
                new_ids.append(post.id)
            return new_ids

    def override_completion(self, uid: int, cmid: int) -> int:
        """A teacher's override (``core_completion_override_activity_completion_status``) at the clock.

        As on the real Moodle 4.5 (tests/real_moodle): the completion is recorded, the user's course
        access is not touched, so a user who never opened the course keeps ``lastcourseaccess`` 0.

        Returns:
            The completion time.
        """
        self.clock += 60
        self.overrides[(uid, cmid)] = self.clock
        return self.clock

    def add_completions(self, n: int) -> list[tuple[int, int]]:
        """Complete every open criterion of ``n`` (course, user) pairs at a moving clock.

        Returns:
            The (courseid, userid) pairs that became complete.
        """
        with self.lock:
            rng = self._append_rng()
            courses = [c for c in self.courses.values() if c.criteria and c.startdate < self.clock]
            enrolled = {c.id: list(c.enrol) for c in courses}
            done: list[tuple[int, int]] = []
            for _ in range(n * 200):
                if len(done) == n:
                    break
                course = rng.choice(courses)
                uid = rng.choice(enrolled[course.id])
                if not self.is_tracked(course, uid) or self.course_completion(course, uid)[0]:
                    continue
                self.clock += rng.randint(30, 120)
                for module, state, _ in self.course_completion(course, uid)[1]:
                    if not state:
                        self.overrides[(uid, module.id)] = self.clock
                self._touch(course, uid)
                done.append((course.id, uid))
            return done

    def add_attendance(self, n: int) -> list[tuple[int, int]]:
        """Record ``n`` webinar attendances (activity completion of a started BigBlueButton session).

        Returns:
            The (cmid, userid) pairs that became complete.
        """
        with self.lock:
            rng = self._append_rng()
            cop = self.courses[self.notable["cop_course"]]
            webinars = [m for m in cop.modules if m.modname == "bigbluebuttonbn" and m.opening <= self.clock]
            members = [uid for uid in cop.enrol if self.is_tracked(cop, uid)]
            done: list[tuple[int, int]] = []
            for _ in range(n * 200):
                if len(done) == n:
                    break
                module, uid = rng.choice(webinars), rng.choice(members)
                if self.activity_state(module, uid)[0]:
                    continue
                self.clock += rng.randint(30, 120)
                self.overrides[(uid, module.id)] = self.clock
                self._touch(cop, uid)
                done.append((module.id, uid))
            return done

    def grade(self, cmid: int, uid: int, passed: bool) -> int:
        """A teacher grades ``uid`` on a graded module with a pass mark, at the clock.

        Moodle moves the completion to 2 (pass) or 3 (fail, COMPLETION_COMPLETE_FAIL) when the
        grade is written (lib/completionlib.php internal_get_grade_state). The student's course
        access does not move: the teacher acted, not the student.

        Returns:
            The time of the completion.
        """
        with self.lock:
            self.clock += 60
            self.graded[(uid, cmid)] = (2 if passed else 3, self.clock)
            return self.clock

    def edit_post(self, post_id: int, message: str) -> int:
        """The author edits a post at the clock, as Moodle 4.5's ``forum_update_post`` does: the post's
        ``timemodified`` moves, the discussion's ``timemodified`` does not (checked on the real Moodle:
        tests/real_moodle/test_real_moodle_changes.py), so an incremental sync does not see the edit.

        Returns:
            The post's new ``modified``.
        """
        with self.lock:
            self.clock += 60
            post = self.posts[post_id]
            post.message, post.edited = message, self.clock
            return self.clock

    def delete_post(self, post_id: int) -> list[int]:
        """A moderator deletes a post as Moodle 4.5's mod/forum/post.php does.

        The first post deletes the whole discussion (forum_delete_discussion); any other post is
        removed with its replies (forum_delete_post with mod/forum:deleteanypost), and the
        discussion's ``timemodified`` falls back to its latest remaining post
        (forum_discussion_update_last_post). Nothing is kept marked "deleted": the rows are gone.

        Returns:
            The ids of the posts removed.
        """
        with self.lock:
            post = self.posts[post_id]
            disc = self.discussions[post.discussion]
            if not post.parent:
                gone = [p.id for p in disc.posts]
                self.forums[disc.forum].discussions.remove(disc)
                del self.discussions[disc.id]
            else:
                gone, frontier = [], [post.id]
                while frontier:
                    current = frontier.pop()
                    gone.append(current)
                    frontier.extend(p.id for p in disc.posts if p.parent == current)
                disc.posts = [p for p in disc.posts if p.id not in gone]
            for pid in gone:
                removed = self.posts.pop(pid)
                times = self.post_times.get((disc.forum, removed.userid), [])
                if removed.created in times:
                    times.remove(removed.created)
            return gone

    def record_attendance(self, cmid: int, uid: int) -> int:
        """BigBlueButton's end-of-meeting callback: completion recorded at the clock, no course access moved.

        Moodle writes the attendance when the meeting's summary arrives (mod/bigbluebuttonbn
        classes/completion/custom_completion.php reads the summary logs), after the participant left.

        Returns:
            The time of the completion.
        """
        with self.lock:
            self.clock += 60
            self.overrides[(uid, cmid)] = self.clock
            return self.clock

    def counts(self) -> dict[str, int]:
        """Rough size of the site (compare with the README's dataset table)."""
        people = [u for u in self.users.values() if u.username.startswith("tool_")]
        return {
            "users": sum(not u.deleted for u in people),
            "users_deleted": sum(u.deleted for u in people),
            "users_suspended": sum(u.suspended for u in people),
            "users_nip_blank": sum(not u.idnumber for u in people),
            "users_nip_spaced": sum(" " in u.idnumber for u in people),
            "courses": len(self.courses),
            "courses_hidden": sum(not c.visible for c in self.courses.values()),
            "courses_with_criteria": sum(bool(c.criteria) for c in self.courses.values()),
            "modules": len(self.modules),
            "enrolments": sum(len(c.enrol) for c in self.courses.values()),
            "enrolments_suspended": sum(e.status for c in self.courses.values() for e in c.enrol.values()),
            "forums": len(self.forums),
            "discussions": len(self.discussions),
            "posts": len(self.posts),
        }
