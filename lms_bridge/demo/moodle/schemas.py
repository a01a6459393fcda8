"""Return descriptions of the served functions, in the compact notation of ``wsformat.parse_schema``.

Key order and the full key sets come from the XML fixtures in tests/data/moodle (Moodle's
XML writer emits every described key, even absent optional ones, so an .xml fixture shows the
whole description). Functions captured only as JSON use the union of keys seen in the JSON file.
"""

from __future__ import annotations

from .wsformat import parse_schema

_WARNINGS = "warnings:[{item,itemid,warningcode,message}]"

# core_webservice_get_site_info.xml
SITE_INFO = parse_schema(
    "{sitename,username,firstname,lastname,fullname,lang,userid,siteurl,userpictureurl,functions:[{name,version}],"
    "downloadfiles,uploadfiles,release,version,mobilecssurl,advancedfeatures:[{name,value}],usercanmanageownfiles,"
    "userquota,usermaxuploadfilesize,userhomepage,userhomepageurl,userprivateaccesskey,siteid,sitecalendartype,"
    "usercalendartype,userissiteadmin,theme,limitconcurrentlogins,usersessionscount,policyagreed}"
)

# core_course_get_courses.xml
COURSES = parse_schema(
    "[{id,shortname,categoryid,categorysortorder,fullname,displayname,idnumber,summary,summaryformat,format,"
    "showgrades,newsitems,startdate,enddate,numsections,maxbytes,showreports,visible,hiddensections,groupmode,"
    "groupmodeforce,defaultgroupingid,timecreated,timemodified,enablecompletion,completionnotify,lang,forcetheme,"
    "courseformatoptions:[{name,value}],showactivitydates,showcompletionconditions,customfields:[]}]"
)

# core_course_get_courses_by_field__category.json (JSON only)
COURSES_BY_FIELD = parse_schema(
    "{courses:[{id,fullname,displayname,shortname,courseimage,categoryid,categoryname,sortorder,summary,"
    "summaryformat,summaryfiles:[],overviewfiles:[],showactivitydates,showcompletionconditions,"
    "contacts:[{id,fullname}],enrollmentmethods:[],idnumber,format,showgrades,newsitems,startdate,enddate,"
    "maxbytes,showreports,visible,groupmode,groupmodeforce,defaultgroupingid,enablecompletion,completionnotify,"
    "lang,theme,marker,legacyfiles,calendartype,timecreated,timemodified,requested,cacherev,"
    "filters:[{filter,localstate,inheritedstate}],courseformatoptions:[{name,value}]}]," + _WARNINGS + "}"
)

# core_course_get_categories.xml
CATEGORIES = parse_schema(
    "[{id,name,idnumber,description,descriptionformat,parent,sortorder,coursecount,visible,visibleold,"
    "timemodified,depth,path,theme}]"
)

# core_course_get_contents.xml (+ mimetype/isexternalfile seen in core_course_get_contents__pkp.json)
CONTENTS = parse_schema(
    "[{id,name,visible,summary,summaryformat,section,hiddenbynumsections,uservisible,availabilityinfo,component,"
    "itemid,modules:[{id,url,name,instance,contextid,description,visible,uservisible,availabilityinfo,"
    "visibleoncoursepage,modicon,modname,purpose,branded,modplural,availability,indent,onclick,afterlink,"
    "activitybadge:{badgecontent,badgestyle,badgeurl,badgeelementid,badgeextraattributes:[]},customdata,"
    "noviewlink,completion,completiondata:{state,timecompleted,overrideby,valueused,hascompletion,isautomatic,"
    "istrackeduser,uservisible,details:[{rulename,rulevalue:{status,description}}],isoverallcomplete},"
    "downloadcontent,dates:[],groupmode,contents:[{type,filename,filepath,filesize,fileurl,content,timecreated,"
    "timemodified,sortorder,mimetype,isexternalfile,repositorytype,userid,author,license,tags:[]}],"
    "contentsinfo:{filescount,filessize,lastmodified,mimetypes:[],repositorytype}}]}]"
)

# core_enrol_get_enrolled_users.xml; group items from core_enrol_get_enrolled_users__cop_page1.json
ENROLLED_USERS = parse_schema(
    "[{id,username,firstname,lastname,fullname,email,address,phone1,phone2,department,institution,idnumber,"
    "interests,firstaccess,lastaccess,lastcourseaccess,description,descriptionformat,city,country,"
    "profileimageurlsmall,profileimageurl,customfields:[{type,value,name,shortname}],"
    "groups:[{id,name,description,descriptionformat}],roles:[{roleid,name,shortname,sortorder}],"
    "preferences:[{name,value}],enrolledcourses:[{id,fullname,shortname}]}]"
)

# core_enrol_get_users_courses.xml
USERS_COURSES = parse_schema(
    "[{id,shortname,fullname,displayname,enrolledusercount,idnumber,visible,summary,summaryformat,format,"
    "courseimage,showgrades,lang,enablecompletion,completionhascriteria,completionusertracked,category,progress,"
    "completed,startdate,enddate,marker,lastaccess,isfavourite,hidden,overviewfiles:[],showactivitydates,"
    "showcompletionconditions,timemodified}]"
)

# core_course_get_recent_courses.json (JSON only)
RECENT_COURSES = parse_schema(
    "[{id,fullname,shortname,idnumber,summary,summaryformat,startdate,enddate,visible,showactivitydates,"
    "showcompletionconditions,pdfexportfont,fullnamedisplay,viewurl,courseimage,progress,hasprogress,isfavourite,"
    "hidden,timeaccess,showshortname,coursecategory}]"
)

# core_user_get_users_by_field.xml
_USER = (
    "{id,username,firstname,lastname,fullname,email,address,phone1,phone2,department,institution,idnumber,"
    "interests,firstaccess,lastaccess,auth,suspended,confirmed,lang,calendartype,theme,timezone,mailformat,"
    "trackforums,description,descriptionformat,city,country,profileimageurlsmall,profileimageurl,"
    "customfields:[{type,value,displayvalue,name,shortname}],preferences:[{name,value}]}"
)
USERS_BY_FIELD = parse_schema("[" + _USER + "]")
# core_user_get_users__idnumber.json: same user description inside {users, warnings}
USERS = parse_schema("{users:[" + _USER + "]," + _WARNINGS + "}")

# core_completion_get_course_completion_status.xml
COURSE_COMPLETION = parse_schema(
    "{completionstatus:{completed,aggregation,completions:[{type,title,status,complete,timecompleted,"
    "details:{type,criteria,requirement,status}}]}," + _WARNINGS + "}"
)

# core_completion_get_activities_completion_status.xml
ACTIVITIES_COMPLETION = parse_schema(
    "{statuses:[{cmid,modname,instance,state,timecompleted,tracking,overrideby,valueused,hascompletion,"
    "isautomatic,istrackeduser,uservisible,details:[{rulename,rulevalue:{status,description}}],"
    "isoverallcomplete}]," + _WARNINGS + "}"
)

# mod_forum_get_forums_by_courses.xml
FORUMS = parse_schema(
    "[{id,course,type,name,intro,introformat,introfiles:[],lang,duedate,cutoffdate,assessed,assesstimestart,"
    "assesstimefinish,scale,grade_forum,grade_forum_notify,maxbytes,maxattachments,forcesubscribe,trackingtype,"
    "rsstype,rssarticles,timemodified,warnafter,blockafter,blockperiod,completiondiscussions,completionreplies,"
    "completionposts,cmid,numdiscussions,cancreatediscussions,lockdiscussionafter,istracked,unreadpostscount}]"
)

# mod_forum_get_forum_discussions.xml
DISCUSSIONS = parse_schema(
    "{discussions:[{id,name,groupid,timemodified,usermodified,timestart,timeend,discussion,parent,userid,"
    "created,modified,mailed,subject,message,messageformat,messagetrust,messageinlinefiles:[],attachment,"
    "attachments:[],totalscore,mailnow,userfullname,usermodifiedfullname,userpictureurl,usermodifiedpictureurl,"
    "numreplies,numunread,pinned,locked,starred,canreply,canlock,canfavourite}]," + _WARNINGS + "}"
)

# mod_forum_get_discussion_posts.xml
_POST = (
    "{id,subject,replysubject,message,messageformat,author:{id,fullname,isdeleted,groups:[{id,name,"
    "urls:{image}}],urls:{profile,profileimage}},discussionid,hasparent,parentid,timecreated,timemodified,unread,"
    "isdeleted,isprivatereply,haswordcount,wordcount,charcount,capabilities:{view,edit,delete,split,reply,"
    "selfenrol,export,controlreadstatus,canreplyprivately},urls:{view,viewisolated,viewparent,edit,delete,split,"
    "reply,export,markasread,markasunread,discuss},attachments:[],messageinlinefiles:[],tags:[],"
    "html:{rating,taglist,authorsubheading}}"
)
DISCUSSION_POSTS = parse_schema(
    "{posts:[" + _POST + "],forumid,courseid,ratinginfo:{contextid,component,ratingarea,canviewall,"
    "canviewany,scales:[],ratings:[]}," + _WARNINGS + "}"
)
# mod_forum_get_discussion_posts_by_userid.json (JSON only)
POSTS_BY_USERID = parse_schema(
    "{discussions:[{name,id,timecreated,authorfullname,posts:{userposts:["
    + _POST
    + "],parentposts:["
    + _POST
    + "]}}],"
    + _WARNINGS
    + "}"
)

# mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses.json (JSON only)
BIGBLUEBUTTONBNS = parse_schema(
    "{bigbluebuttonbns:[{id,coursemodule,course,name,intro,introformat,introfiles:[],section,visible,groupmode,"
    "groupingid,lang,meetingid,timemodified}]," + _WARNINGS + "}"
)

# mod_bigbluebuttonbn_meeting_info (mod/bigbluebuttonbn/classes/external/meeting_info.php, Moodle 4.5):
# openingtime/closingtime only when the activity sets them.
MEETING_INFO = parse_schema(
    "{cmid,userlimit,bigbluebuttonbnid,groupid,meetingid,openingtime,closingtime,statusrunning,statusclosed,"
    "statusopen,statusmessage,canjoin,ismoderator,presentations:[],joinurl,features:[{name,isenabled}]}"
)

# mod_assign_get_assignments (mod/assign/externallib.php, Moodle 4.5), the fields lms-bridge reads and a few more.
ASSIGNMENTS = parse_schema(
    "{courses:[{id,fullname,shortname,timemodified,assignments:[{id,cmid,course,name,nosubmissions,"
    "duedate,allowsubmissionsfromdate,grade,timemodified,completionsubmit,cutoffdate,gradingduedate,"
    "teamsubmission,requireallteammemberssubmit,intro,introformat}]}]," + _WARNINGS + "}"
)

# mod_assign_get_grades (mod/assign/externallib.php, Moodle 4.5): grades modified at or after ``since``.
ASSIGN_GRADES = parse_schema(
    "{assignments:[{assignmentid,grades:[{id,userid,attemptnumber,timecreated,timemodified,grader,grade}]}],"
    + _WARNINGS
    + "}"
)

# core_course_get_updates_since.xml
UPDATES_SINCE = parse_schema(
    "{instances:[{contextlevel,id,updates:[{name,timeupdated,itemids:[]}]}]," + _WARNINGS + "}"
)
