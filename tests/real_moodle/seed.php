<?php
// Seed a fresh real Moodle 4.5 through its own code (issue 17): the data generator for users, courses,
// enrolments, modules and forum posts; the web-service functions themselves (run as the teacher) for
// completion overrides; Moodle's own access log for "opened the course".
//   faketime -f -3d php seed.php MOODLE_DIR    -> prints one JSON object with the ids the tests need
// Run under faketime so that everything is dated in the past; completion aggregation is cron's job
// (admin/cli/scheduled_task.php --execute='\core\task\completion_regular_task'), run afterwards.
define('CLI_SCRIPT', true);
$dir = $argv[1] ?? die("usage: php seed.php MOODLE_DIR\n");
require($dir . '/config.php');
require_once($CFG->libdir . '/testing/classes/util.php');
require_once($CFG->libdir . '/testing/generator/lib.php');
require_once($CFG->libdir . '/completionlib.php');
require_once($CFG->dirroot . '/completion/criteria/completion_criteria_activity.php');
require_once($CFG->dirroot . '/completion/completion_aggregation.php');
require_once($CFG->dirroot . '/user/lib.php');
global $DB, $CFG;

set_config('enablecompletion', 1);
// Let any account use REST (a site that hands teachers tokens does this), so a teacher's token reaches the
// functions and fails only where Moodle checks a capability (issue 17 item 3).
$userrole = $DB->get_record('role', ['shortname' => 'user'], '*', MUST_EXIST);
assign_capability('webservice/rest:use', CAP_ALLOW, $userrole->id, context_system::instance()->id, true);
$gen = testing_util::get_data_generator();
// faketime hangs Moodle's bootstrap on Debian 12 (see tests/real_moodle/conftest.py): date posts explicitly.
$past = time() - 3 * 86400;
$forumgen = $gen->get_plugin_generator('mod_forum');
$admin = get_admin();

$person = function (string $username, string $first, string $last, string $nip) use ($gen) {
    return $gen->create_user(['username' => $username, 'firstname' => $first, 'lastname' => $last,
        'idnumber' => $nip, 'email' => "$username@example.go.id"]);
};
$ani = $person('ani', 'Ani', 'Lestari', '198001012005012001');
$budi = $person('budi', 'Budi', 'Santoso', '198502022010011002');   // never opens the course
$citra = $person('citra', 'Citra', 'Dewi', '199003032015032003');   // opens it, completes nothing
$dedi = $person('dedi', 'Dedi', 'Kurniawan', '198704042012121004'); // posts, then leaves the course
$guru = $person('guru', 'Sri', 'Wahyuni', '197505052000032005');    // the course's teacher

$cat = $gen->create_category(['name' => 'Pelatihan Dasar', 'idnumber' => 'LATSAR']);
$c1 = $gen->create_course(['fullname' => 'Etika dan Integritas ASN', 'shortname' => 'ETIKA-2026',
    'idnumber' => 'ETIKA-2026', 'category' => $cat->id, 'enablecompletion' => 1]);
$c2 = $gen->create_course(['fullname' => 'Pelayanan Publik', 'shortname' => 'YANLIK-2026',
    'category' => $cat->id, 'enablecompletion' => 1]);

foreach ([$ani, $budi, $citra, $dedi] as $u) {
    $gen->enrol_user($u->id, $c1->id, 'student');
}
$gen->enrol_user($guru->id, $c1->id, 'editingteacher');
$gen->enrol_user($ani->id, $c2->id, 'student');
$gen->enrol_user($guru->id, $c2->id, 'editingteacher');

$manual = ['completion' => COMPLETION_TRACKING_MANUAL];
$m1 = $gen->create_module('page', ['course' => $c1->id, 'name' => 'Modul 1: Nilai Dasar ASN'] + $manual);
$m2 = $gen->create_module('page', ['course' => $c1->id, 'name' => 'Modul 2: Kode Etik'] + $manual);
$mb = $gen->create_module('page', ['course' => $c2->id, 'name' => 'Modul B: Standar Pelayanan'] + $manual);
$forum = $gen->create_module('forum', ['course' => $c1->id, 'name' => 'Forum Diskusi Etika', 'type' => 'general']);

// Course completion of ETIKA-2026: Modul 1 (aggregated by cron).
$criterion = new completion_criteria_activity();
$config = (object)['id' => $c1->id, 'criteria_activity' => [$m1->cmid => 1]];
$criterion->update_config($config);
$aggregation = new completion_aggregation(['course' => $c1->id, 'criteriatype' => null,
    'method' => COMPLETION_AGGREGATION_ALL]);
$aggregation->save();

// Opening a course is what Moodle's own page load logs (user_lastaccess); Budi never does.
foreach ([[$ani, $c1], [$citra, $c1], [$dedi, $c1], [$ani, $c2]] as [$u, $c]) {
    \core\session\manager::set_user($u);
    user_accesstime_log($c->id);
}

// Forum: Dedi opens a discussion, Ani and Dedi reply; then Dedi leaves the course.
$d1 = $forumgen->create_discussion(['course' => $c1->id, 'forum' => $forum->id, 'userid' => $dedi->id,
    'name' => 'Konflik kepentingan', 'message' => '<p>Bagaimana menyikapi hadiah dari mitra kerja?</p>',
    'timemodified' => $past, 'timestart' => 0]);
$p1 = $forumgen->create_post(['discussion' => $d1->id, 'parent' => $d1->firstpost, 'userid' => $ani->id,
    'message' => '<p>Tolak dengan sopan dan laporkan ke UPG.</p>', 'created' => $past + 600, 'modified' => $past + 600]);
$p2 = $forumgen->create_post(['discussion' => $d1->id, 'parent' => $p1->id, 'userid' => $dedi->id,
    'message' => '<p>Terima kasih.</p>', 'created' => $past + 1200, 'modified' => $past + 1200]);

// The teacher records completions the way a teacher does: the override web-service function, as herself.
\core\session\manager::set_user($guru);
$override = function (int $userid, int $cmid) {
    // The web-service function's own code, run as the teacher (its capability and context checks apply).
    core_completion_external::override_activity_completion_status($userid, $cmid, COMPLETION_COMPLETE);
};
$override($ani->id, $m1->cmid);
$override($budi->id, $m1->cmid);    // issue 17 item 1: a user who never opened the course
$override($ani->id, $m2->cmid);
$override($ani->id, $mb->cmid);
\core\session\manager::set_user($admin);

$enrol = enrol_get_plugin('manual');
$instance = $DB->get_record('enrol', ['courseid' => $c1->id, 'enrol' => 'manual'], '*', MUST_EXIST);
$enrol->unenrol_user($instance, $dedi->id);

echo json_encode([
    'users' => ['ani' => $ani->id, 'budi' => $budi->id, 'citra' => $citra->id, 'dedi' => $dedi->id,
        'guru' => $guru->id],
    'courses' => ['etika' => $c1->id, 'yanlik' => $c2->id],
    'modules' => ['m1' => $m1->cmid, 'm2' => $m2->cmid, 'mb' => $mb->cmid, 'forum' => $forum->cmid],
    'forum' => $forum->id, 'discussion' => $d1->id,
]), "\n";
