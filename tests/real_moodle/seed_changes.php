<?php
// Issue 17 items 2, 6, 7 on a real Moodle 4.5, through its own code (run after seed.php):
//   php seed_changes.php MOODLE_DIR seed          -> a course with a graded assignment, a CoP forum and a news forum
//   php seed_changes.php MOODLE_DIR change IDS    -> what happens after the first sync: a late grade, an edit,
//                                                    a moderator's deletion
// Each prints one JSON object.
define('CLI_SCRIPT', true);
$dir = $argv[1] ?? die("usage: php seed_changes.php MOODLE_DIR seed|change [IDS_JSON]\n");
require($dir . '/config.php');
require_once($CFG->libdir . '/testing/classes/util.php');
require_once($CFG->libdir . '/testing/generator/lib.php');
require_once($CFG->libdir . '/completionlib.php');
require_once($CFG->dirroot . '/mod/assign/locallib.php');
require_once($CFG->dirroot . '/mod/forum/lib.php');
global $DB, $CFG;

$grade = function (int $cmid, int $userid, float $value, int $teacher) {
    // What the grader's form and mod_assign_save_grade do: assign::save_grade as the teacher.
    \core\session\manager::set_user(core_user::get_user($teacher));
    $cm = get_coursemodule_from_id('assign', $cmid, 0, false, MUST_EXIST);
    $assign = new assign(context_module::instance($cmid), $cm, get_course($cm->course));
    $assign->save_grade($userid, (object)['grade' => $value, 'attemptnumber' => -1]);
    \core\session\manager::set_user(get_admin());
};

if (($argv[2] ?? '') === 'seed') {
    $gen = testing_util::get_data_generator();
    $forumgen = $gen->get_plugin_generator('mod_forum');
    $past = time() - 2 * 86400;
    $person = function (string $username, string $nip) use ($gen) {
        return $gen->create_user(['username' => $username, 'firstname' => ucfirst($username), 'lastname' => 'Test',
            'idnumber' => $nip, 'email' => "$username@example.go.id"]);
    };
    $eka = $person('eka', '199101012019011001');    // graded late (after the first sync)
    $fajar = $person('fajar', '199202022019021002'); // fails the assignment; his reply is deleted
    $guru = $DB->get_record('user', ['username' => 'guru'], '*', MUST_EXIST);
    $cat = $DB->get_record('course_categories', ['idnumber' => 'LATSAR'], '*', MUST_EXIST);
    $course = $gen->create_course(['fullname' => 'Komunikasi Efektif', 'shortname' => 'KOM-2026',
        'idnumber' => 'KOM-2026', 'category' => $cat->id, 'enablecompletion' => 1]);
    $gen->enrol_user($eka->id, $course->id, 'student');
    $gen->enrol_user($fajar->id, $course->id, 'student');
    $gen->enrol_user($guru->id, $course->id, 'editingteacher');
    // Completion on a passing grade: a failing grade is completion state 3 (COMPLETION_COMPLETE_FAIL).
    $assign = $gen->create_module('assign', ['course' => $course->id, 'name' => 'Tugas Akhir Komunikasi',
        'grade' => 100, 'gradepass' => 50, 'completion' => COMPLETION_TRACKING_AUTOMATIC,
        'completionusegrade' => 1, 'completionpassgrade' => 1, 'assignsubmission_onlinetext_enabled' => 1]);
    $forum = $gen->create_module('forum', ['course' => $course->id, 'name' => 'Forum Praktik Komunikasi',
        'type' => 'general']);
    $news = $gen->create_module('forum', ['course' => $course->id, 'name' => 'Pengumuman', 'type' => 'news']);
    foreach ([$eka, $fajar] as $u) {
        \core\session\manager::set_user($u);
        user_accesstime_log($course->id);
    }
    \core\session\manager::set_user(get_admin());
    // Their visits were two days ago (settled long before the first sync): only the late grade brings Eka back.
    $DB->set_field('user_lastaccess', 'timeaccess', $past, ['courseid' => $course->id]);
    // Both hand in online text (mod_assign_get_grades only answers grades of a student's latest submission:
    // a grade given without one, for work handed in on paper, is not in its answer).
    $assigngen = $gen->get_plugin_generator('mod_assign');
    foreach ([$eka, $fajar] as $u) {
        $assigngen->create_submission(['userid' => $u->id, 'cmid' => $assign->cmid, 'onlinetext' => 'Jawaban saya.']);
    }
    \core\session\manager::set_user(get_admin());
    $grade($assign->cmid, $fajar->id, 30, $guru->id);
    $d = $forumgen->create_discussion(['course' => $course->id, 'forum' => $forum->id, 'userid' => $eka->id,
        'name' => 'Menyampaikan kabar buruk', 'message' => '<p>Bagaimana caranya?</p>',
        'timemodified' => $past, 'timestart' => 0]);
    $edited = $forumgen->create_post(['discussion' => $d->id, 'parent' => $d->firstpost, 'userid' => $eka->id,
        'message' => '<p>Langsung saja.</p>', 'created' => $past + 600, 'modified' => $past + 600]);
    // The deleted reply is in a thread of its own, so the edit above is the only change of its thread.
    $d2 = $forumgen->create_discussion(['course' => $course->id, 'forum' => $forum->id, 'userid' => $eka->id,
        'name' => 'Bahasa tubuh', 'message' => '<p>Seberapa penting?</p>', 'timemodified' => $past + 60,
        'timestart' => 0]);
    $deleted = $forumgen->create_post(['discussion' => $d2->id, 'parent' => $d2->firstpost, 'userid' => $fajar->id,
        'message' => '<p>Iklan obat kuat.</p>', 'created' => $past + 1200, 'modified' => $past + 1200]);
    $announcement = $forumgen->create_discussion(['course' => $course->id, 'forum' => $news->id,
        'userid' => $guru->id, 'name' => 'Jadwal ujian', 'message' => '<p>Ujian hari Senin.</p>',
        'timemodified' => $past, 'timestart' => 0]);
    echo json_encode(['course' => $course->id, 'eka' => $eka->id, 'fajar' => $fajar->id, 'guru' => $guru->id,
        'assign' => $assign->cmid, 'forum' => $forum->id, 'news' => $news->id, 'discussion' => $d->id,
        'announcement' => $announcement->id, 'edited' => $edited->id, 'deleted' => $deleted->id]), "\n";
} else if (($argv[2] ?? '') === 'bbb') {
    // A webinar: BigBlueButton switched on the way the admin's "Manage activities" eye does, an activity
    // scheduled 90 minutes two days ago with completion on attendance, and Eka's attendance recorded by
    // the teacher's override (no BigBlueButton server answers here, so no meeting end callback).
    $gen = testing_util::get_data_generator();
    \core\session\manager::set_user(get_admin());
    \core\plugininfo\mod::enable_plugin('bigbluebuttonbn', 1);
    $ids = json_decode($argv[3], true);
    $open = time() - 2 * 86400;
    $bbb = $gen->create_module('bigbluebuttonbn', ['course' => $ids['course'], 'name' => 'Webinar Komunikasi',
        'type' => 0, 'openingtime' => $open, 'closingtime' => $open + 5400,
        'completion' => COMPLETION_TRACKING_AUTOMATIC, 'completionattendance' => 30]);
    \core\session\manager::set_user(core_user::get_user($ids['guru']));
    core_completion_external::override_activity_completion_status($ids['eka'], $bbb->cmid, COMPLETION_COMPLETE);
    echo json_encode(['bbb' => $bbb->cmid, 'instance' => $bbb->id]), "\n";
} else if (($argv[2] ?? '') === 'tag') {
    // The admin marks the course as a Community of Practice with a course tag, as the course settings form
    // does (update_course with its "tags" field); Moodle keeps the name as typed and matches it in lower case.
    require_once($CFG->dirroot . '/course/lib.php');
    $ids = json_decode($argv[3], true);
    \core\session\manager::set_user(get_admin());
    update_course((object)['id' => $ids['course'], 'tags' => ['CoP', 'Komunikasi']]);
    echo json_encode(['tagged' => $ids['course']]), "\n";
} else if (($argv[2] ?? '') === 'change') {
    $ids = json_decode($argv[3], true);
    $grade($ids['assign'], $ids['eka'], 80, $ids['guru']);
    \core\session\manager::set_user(core_user::get_user($ids['guru']));
    forum_update_post((object)['id' => $ids['edited'], 'message' => '<p>Langsung, dengan empati.</p>'], null);
    $post = $DB->get_record('forum_posts', ['id' => $ids['deleted']], '*', MUST_EXIST);
    $forum = $DB->get_record('forum', ['id' => $ids['forum']], '*', MUST_EXIST);
    $cm = get_coursemodule_from_instance('forum', $forum->id, 0, false, MUST_EXIST);
    forum_delete_post($post, true, get_course($forum->course), $cm, $forum);
    echo json_encode(['changed' => true]), "\n";
}
