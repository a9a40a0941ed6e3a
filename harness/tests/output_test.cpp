// The outputs around the runner: kernel log classification, KTAP, JUnit XML,
// and reading an interrupted run back for --resume.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "junit.h"
#include "kmsg.h"
#include "ktap.h"
#include "report.h"
#include "runner.h"

namespace {

namespace fs = std::filesystem;
using uc::Json;

class TempDir {
  public:
    TempDir() {
        char pattern[] = "/tmp/uc-output-test-XXXXXX";
        path_ = mkdtemp(pattern);
    }
    ~TempDir() { fs::remove_all(path_); }
    std::string operator/(const std::string& name) const { return (path_ / name).string(); }

  private:
    fs::path path_;
};

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Runs argv, returns its exit status and (merged) output.
std::pair<int, std::string> run_command(const std::string& command) {
    std::string output;
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    if (!pipe) return {-1, "popen failed"};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
    int status = pclose(pipe);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// tools/ of this checkout, found from the working directory or this file.
std::optional<fs::path> tools_dir() {
    for (fs::path start : {fs::current_path(), fs::absolute(fs::path(__FILE__)).parent_path()})
        for (fs::path dir = start; !dir.empty() && dir != dir.root_path(); dir = dir.parent_path())
            if (fs::exists(dir / "tools" / "uring_conform" / "ktap.py")) return dir / "tools";
    return std::nullopt;
}

Json result(const std::string& id, const std::string& verdict, const std::string& reason, Json evidence = Json::object()) {
    std::string family = id.substr(0, id.find('/'));
    return {{"id", id},           {"family", family}, {"scenario", id.substr(family.size() + 1)},
            {"params", Json::object()}, {"verdict", verdict}, {"reason", reason},
            {"duration_ms", 12.5}, {"iterations", 0}, {"metrics", Json::object()}, {"evidence", evidence}};
}

// Every verdict, and text that could break a line-based or XML format.
std::vector<Json> nasty_results() {
    Json fail_evidence = {{"failures", {"final CQE res -ECANCELED, expected 0\nsecond line"}},
                          {"cqe_tail", {{{"ring", 0}, {"user_data", 1}, {"res", -125}, {"flags", 2}, {"flag_names", "MORE"}, {"t_us", 5.5}}}},
                          {"kernel_log", {"WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1", "Call Trace:"}},
                          {"taint", {{"before", 0}, {"after", 512}, {"added", "W"}}},
                          {"output_tail", std::string("out <b>&amp;</b> \"q\" 'a' ]]> \x01\x1b[31m \xff\xfe end\n")}};
    Json resumed = result("beta/carried[none]", "pass", "");
    resumed["resumed"] = true;
    return {result("alpha/passes[none,cq=8]", "pass", ""),
            result("alpha/skips[sqpoll]", "skip", "kernel lacks IORING_OP_X # not # a directive\nreally"),
            result("alpha/fails[none]", "fail", "final CQE res -ECANCELED, expected 0\nsecond line", fail_evidence),
            result("alpha/hangs[none]", "hang", "watchdog: no verdict within 1 s", {{"outstanding", {"ring 0: user_data=42"}}}),
            result("beta/crashes[none]", "crash", "scenario child killed by SIGSEGV", {{"signal", "SIGSEGV"}}),
            result("beta/errors[none]", "error", "socket: EMFILE"),
            resumed};
}

// --- kernel log ---

TEST(KernelLog, ClassifiesSplatOpenings) {
    const std::pair<const char*, const char*> samples[] = {
        {"------------[ cut here ]------------", "cut-here"},
        {"WARNING: CPU: 3 PID: 1234 at io_uring/io_uring.c:2797 io_ring_exit_work+0x1a/0x30", "warn"},
        {"WARNING: possible circular locking dependency detected", "lockdep"},
        {"WARNING: suspicious RCU usage", "lockdep"},
        {"WARNING: inconsistent lock state", "lockdep"},
        {"INFO: possible irq lock inversion dependency detected", "lockdep"},
        {"BUG: KASAN: slab-use-after-free in io_req_task_work_add+0x1f/0x80", "kasan"},
        {"BUG: KFENCE: use-after-free read in io_free_req+0x10/0x20", "kfence"},
        {"BUG: kernel NULL pointer dereference, address: 0000000000000008", "bug"},
        {"BUG: sleeping function called from invalid context at kernel/sched/core.c:1", "bug"},
        {"kernel BUG at io_uring/rsrc.c:100!", "bug"},
        {"UBSAN: shift-out-of-bounds in io_uring/net.c:12:3", "ubsan"},
        {"Oops: general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1] SMP KASAN",
         "gpf"},
        {"general protection fault: 0000 [#1] SMP PTI", "gpf"},
        {"Oops: 0002 [#1] PREEMPT SMP", "oops"},
        {"Internal error: Oops: 96000004 [#1] SMP", "oops"},
        {"Kernel panic - not syncing: Fatal exception", "panic"},
        {"Call Trace:", "call-trace"},
        {"INFO: task iou-wrk-123:456 blocked for more than 120 seconds.", "hung-task"},
        {"rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "rcu-stall"},
    };
    for (const auto& [line, kind] : samples) EXPECT_EQ(uc::classify_kernel_line(line), kind) << line;
}

TEST(KernelLog, OrdinaryMessagesAreNotSplats) {
    for (const char* line : {"io_uring: io_uring_setup: unprivileged SQPOLL", "random: crng init done",
                             "ACPI: bug in firmware table", "Buggy BIOS, keep calm",
                             "traps: a.out[123] general protection fault ip:7f00 sp:7ffc error:0 in libc.so.6",
                             "a.out[123]: segfault at 0 ip 0000 sp 7ffc error 4 in a.out", "audit: type=1400"})
        EXPECT_EQ(uc::classify_kernel_line(line), "") << line;
}

TEST(KernelLog, ParsesDevKmsgRecords) {
    auto warn = uc::parse_kmsg_record("4,902,1002,-;WARNING: CPU: 1 PID: 42 at x.c:1 f");
    ASSERT_TRUE(warn);
    EXPECT_EQ(warn->facility, 0);
    EXPECT_EQ(warn->level, 4);
    EXPECT_EQ(warn->seq, 902u);
    EXPECT_EQ(warn->text, "WARNING: CPU: 1 PID: 42 at x.c:1 f");
    auto with_caller = uc::parse_kmsg_record("6,339,5140900,-,caller=T1;text; with semicolon");
    ASSERT_TRUE(with_caller);
    EXPECT_EQ(with_caller->text, "text; with semicolon");
    auto user = uc::parse_kmsg_record("12,10,20,-;BUG: from userspace");
    ASSERT_TRUE(user);
    EXPECT_EQ(user->facility, 1);
    EXPECT_FALSE(uc::parse_kmsg_record(" SUBSYSTEM=usb"));
    EXPECT_FALSE(uc::parse_kmsg_record("no prefix at all"));
    EXPECT_FALSE(uc::parse_kmsg_record("x,1,2,-;text"));
}

TEST(KernelLog, TaintLettersFollowTheKernelTable) {
    EXPECT_EQ(uc::taint_letters(0), "");
    EXPECT_EQ(uc::taint_letters(512), "W");
    EXPECT_EQ(uc::taint_letters(1 | 512 | 4096), "PWO");
    EXPECT_EQ(uc::taint_letters(1u << 19), "J");
}

TEST(KernelLog, WatchReportsOnlyWhatIsNewAndSaysWhatItCannotRead) {
    TempDir dir;
    std::ofstream(dir / "kmsg") << "4,1,1,-;WARNING: CPU: 0 PID: 1 at old.c:1 from_before\n";
    std::ofstream(dir / "tainted") << "0\n";
    uc::KernelWatch watch(dir / "kmsg", dir / "tainted");
    EXPECT_TRUE(watch.notes().empty());
    EXPECT_FALSE(watch.collect().splat());

    std::ofstream(dir / "kmsg", std::ios::app) << "6,2,2,-;ordinary\n4,3,3,-;BUG: KASAN: use-after-free in f\n4,4,";
    auto found = watch.collect();
    EXPECT_EQ(found.first_splat, "BUG: KASAN: use-after-free in f");
    EXPECT_EQ(found.log, std::vector<std::string>{"BUG: KASAN: use-after-free in f"});
    // The record cut short above is completed by a later write, not lost.
    std::ofstream(dir / "kmsg", std::ios::app) << "4,-;Call Trace:\n";
    EXPECT_EQ(watch.collect().first_splat, "Call Trace:");

    std::ofstream(dir / "tainted") << "512\n";
    auto tainted = watch.collect();
    EXPECT_TRUE(tainted.taint_changed());
    EXPECT_FALSE(watch.collect().taint_changed());

    uc::KernelWatch blind(dir / "missing-kmsg", dir / "missing-tainted");
    ASSERT_EQ(blind.notes().size(), 2u);
    EXPECT_NE(blind.notes()[0].find("kernel log check skipped"), std::string::npos);
    EXPECT_FALSE(blind.collect().splat());
}

Json with_findings(const Json& result, const uc::KernelFindings& findings) {
    uc::Result r = uc::Result::from_json(result);
    uc::attach_kernel_findings(r, findings);
    return r.to_json();
}

TEST(KernelLog, FindingsFailTheScenarioButKeepHangsAndCrashes) {
    uc::KernelFindings splat;
    splat.first_splat = "WARNING: CPU: 0 PID: 1 at x.c:1 f";
    splat.log = {"------------[ cut here ]------------", splat.first_splat};

    Json passed = result("a/b[none]", "pass", "");
    passed = with_findings(passed, splat);
    EXPECT_EQ(passed["verdict"], "fail");
    EXPECT_EQ(passed["reason"], "kernel log: " + splat.first_splat);
    EXPECT_EQ(passed["evidence"]["kernel_log"].size(), 2u);

    Json skipped = result("a/b[none]", "skip", "no buffer ring");
    skipped = with_findings(skipped, splat);
    EXPECT_EQ(skipped["verdict"], "fail");
    EXPECT_EQ(skipped["evidence"]["notes"][0], "before the kernel check: skip: no buffer ring");

    Json failed = result("a/b[none]", "fail", "rule broken");
    failed = with_findings(failed, splat);
    EXPECT_EQ(failed["reason"], "rule broken");
    EXPECT_EQ(failed["evidence"]["failures"].back(), "kernel log: " + splat.first_splat);

    Json hung = result("a/b[none]", "hang", "watchdog");
    hung = with_findings(hung, splat);
    EXPECT_EQ(hung["verdict"], "hang");
    EXPECT_EQ(hung["evidence"]["kernel_log"].size(), 2u);

    Json quiet = result("a/b[none]", "pass", "");
    quiet = with_findings(quiet, uc::KernelFindings{});
    EXPECT_EQ(quiet["verdict"], "pass");
    EXPECT_FALSE(quiet["evidence"].contains("kernel_log"));
}

// --- KTAP ---

std::string write_ktap(const TempDir& dir, const std::vector<Json>& results) {
    std::string path = dir / "out.ktap";
    uc::KtapWriter ktap(path);
    std::vector<uc::KtapFamily> families;
    for (const Json& r : results) {
        if (families.empty() || families.back().name != r["family"]) families.push_back({r["family"], 0});
        ++families.back().planned;
    }
    ktap.begin({"uring-conform test header", "note: line\nwith newline"}, families);
    for (const Json& r : results) ktap.result(r);
    return read_file(path);
}

TEST(Ktap, NestsFamiliesWithPlansDirectivesAndDiagnostics) {
    TempDir dir;
    std::string text = write_ktap(dir, nasty_results());
    EXPECT_EQ(text.rfind("KTAP version 1\n# uring-conform test header\n# note: line with newline\n1..2\n", 0), 0u) << text;
    EXPECT_NE(text.find("  KTAP version 1\n  # Subtest: alpha\n  1..4\n  ok 1 alpha/passes[none,cq=8]\n"), std::string::npos);
    EXPECT_NE(text.find("  ok 2 alpha/skips[sqpoll] # SKIP kernel lacks IORING_OP_X # not # a directive really\n"),
              std::string::npos);
    EXPECT_NE(text.find("  # failure: final CQE res -ECANCELED, expected 0 second line\n"), std::string::npos);
    EXPECT_NE(text.find("  # kernel: WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1\n"), std::string::npos);
    EXPECT_NE(text.find("  not ok 3 alpha/fails[none]\n"), std::string::npos);
    EXPECT_NE(text.find("  not ok 4 alpha/hangs[none] # TIMEOUT watchdog: no verdict within 1 s\n"), std::string::npos);
    EXPECT_NE(text.find("not ok 1 alpha\n"), std::string::npos);
    EXPECT_NE(text.find("  # signal: SIGSEGV\n  not ok 1 beta/crashes[none]\n"), std::string::npos);
    EXPECT_NE(text.find("  not ok 2 beta/errors[none] # ERROR socket: EMFILE\n"), std::string::npos);
    EXPECT_NE(text.find("  # resumed: result carried over from the interrupted run\n  ok 3 beta/carried[none]\n"),
              std::string::npos);
    EXPECT_TRUE(text.ends_with("not ok 2 beta\n")) << text;
    for (char c : text) EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t');
}

TEST(Ktap, AllSkippedFamilyIsOkWithSkip) {
    TempDir dir;
    std::string text = write_ktap(dir, {result("gamma/a[none]", "skip", "x"), result("gamma/b[none]", "skip", "y")});
    EXPECT_TRUE(text.ends_with("ok 1 gamma # SKIP every variant skipped\n")) << text;
}

TEST(Ktap, ParsesWithTheStrictToolsParser) {
    auto tools = tools_dir();
    if (!tools || access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "tools/ or /usr/bin/python3 not found";
    TempDir dir;
    write_ktap(dir, nasty_results());
    auto [status, output] = run_command("PYTHONPATH=" + tools->string() +
                                        " PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m uring_conform ktap-parse --require-plan --reject-unknown " +
                                        (dir / "out.ktap"));
    EXPECT_EQ(status, 0) << output;
    EXPECT_NE(output.find("not ok 3 alpha/fails[none] [fail]"), std::string::npos) << output;
}

// --- JUnit ---

Json report_of(const std::vector<Json>& results) {
    return {{"schema_version", 1},
            {"tool", {{"name", "uring-conform"}, {"version", "test"}}},
            {"kernel", {{"release", "6.1.0-<test>&"}, {"version", "#1"}, {"machine", "x86_64"}}},
            {"liburing", {{"compile", "2.3"}, {"runtime", "2.3"}}},
            {"run", {{"profile", "quick"}, {"seed", 7}, {"filter", "*"}, {"started", "2024-01-01T00:00:00Z"},
                     {"notes", {"kernel log check skipped: \"quoted\""}}}},
            {"results", results}};
}

TEST(Junit, EscapesMarkupControlsAndBrokenUtf8) {
    EXPECT_EQ(uc::xml_escape("a<b>&\"c\"'d'"), "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;");
    EXPECT_EQ(uc::xml_escape("line\nnext\ttab"), "line&#10;next&#9;tab");
    EXPECT_EQ(uc::xml_escape(std::string("nul\x00" "bell\x07", 9)), "nul?bell?");
    EXPECT_EQ(uc::xml_escape("\xff"), "\xEF\xBF\xBD");
    EXPECT_EQ(uc::xml_escape("caf\xC3\xA9"), "caf\xC3\xA9");
}

TEST(Junit, OneTestcasePerVariantWithSkippedFailureAndError) {
    std::string xml = uc::junit_xml(report_of(nasty_results()));
    EXPECT_NE(xml.find("<testsuites name=\"uring-conform\" tests=\"7\" failures=\"3\" errors=\"1\" skipped=\"1\""),
              std::string::npos) << xml;
    EXPECT_NE(xml.find("<testsuite name=\"alpha\" tests=\"4\" failures=\"2\" errors=\"0\" skipped=\"1\""),
              std::string::npos);
    EXPECT_NE(xml.find("<testcase name=\"alpha/passes[none,cq=8]\" classname=\"alpha\" time=\"0.013\"/>"),
              std::string::npos);
    EXPECT_NE(xml.find("<skipped message=\"kernel lacks IORING_OP_X # not # a directive&#10;really\"/>"),
              std::string::npos);
    EXPECT_NE(xml.find("<failure message=\"watchdog: no verdict within 1 s\" type=\"hang\">"), std::string::npos);
    EXPECT_NE(xml.find("<failure message=\"scenario child killed by SIGSEGV\" type=\"crash\">signal: SIGSEGV"),
              std::string::npos);
    EXPECT_NE(xml.find("<error message=\"socket: EMFILE\" type=\"error\">"), std::string::npos);
    EXPECT_NE(xml.find("kernel: WARNING: CPU: 0 PID: 1"), std::string::npos);
    EXPECT_EQ(xml.find("]]>"), std::string::npos);
}

TEST(Junit, IsWellFormedXml) {
    if (access("/usr/bin/xmllint", X_OK) != 0) GTEST_SKIP() << "xmllint (libxml2-utils) not installed";
    TempDir dir;
    uc::write_junit(uc::check_output("--junit", dir / "junit.xml", {}), report_of(nasty_results()));
    auto [status, output] = run_command("/usr/bin/xmllint --noout " + (dir / "junit.xml"));
    EXPECT_EQ(status, 0) << output;
}

// --- resume ---

std::string header_line(const std::string& release = "6.1.0-test") {
    Json header = {{"type", "header"},
                   {"schema_version", 1},
                   {"tool", {{"name", "uring-conform"}, {"version", "t"}}},
                   {"kernel", {{"release", release}, {"version", "#1"}, {"machine", "x86_64"}}},
                   {"liburing", {{"compile", "2.3"}, {"runtime", "2.3"}}},
                   {"probe", Json::object()},
                   {"run", {{"profile", "quick"}, {"seed", 7}, {"filter", "*"}, {"started", "x"}, {"environment", "host"}}},
                   {"planned", 3}};
    return header.dump() + "\n";
}

std::string result_line(const std::string& id, const std::string& verdict) {
    Json line = {{"type", "result"}};
    line.update(result(id, verdict, ""));
    return line.dump() + "\n";
}

TEST(Resume, ReadsCompleteLinesAndIgnoresATornLastOne) {
    TempDir dir;
    std::string complete = header_line() + result_line("a/one[none]", "pass") + result_line("a/two[none]", "fail") +
                           result_line("a/one[none]", "hang");
    std::ofstream(dir / "run.json.jsonl") << complete << "{\"type\":\"result\",\"id\":\"a/thr";
    auto previous = uc::read_previous_run(dir / "run.json.jsonl");
    EXPECT_EQ(previous.header["kernel"]["release"], "6.1.0-test");
    EXPECT_FALSE(previous.header.contains("type"));
    ASSERT_EQ(previous.results.size(), 2u);
    EXPECT_EQ(previous.results[0].id, "a/one[none]");
    EXPECT_EQ(previous.results[0].verdict, uc::Verdict::hang) << "the later line on an id wins";
    EXPECT_EQ(previous.complete_bytes, complete.size());
    EXPECT_FALSE(previous.ended);
}

TEST(Resume, RefusesWhatIsNotARunRecord) {
    TempDir dir;
    auto message_for = [&](const std::string& text) -> std::string {
        std::ofstream(dir / "bad.jsonl", std::ios::trunc) << text;
        try {
            uc::read_previous_run(dir / "bad.jsonl");
        } catch (const std::runtime_error& e) {
            return e.what();
        }
        return "";
    };
    EXPECT_NE(message_for("").find("no complete header line"), std::string::npos);
    EXPECT_NE(message_for(result_line("a/b[none]", "pass")).find(":1: the first line is not a uring-conform run header"),
              std::string::npos);
    EXPECT_NE(message_for(header_line() + "garbage\n" + result_line("a/b[none]", "pass")).find(":2: not a uring-conform JSON line"),
              std::string::npos);
    EXPECT_NE(message_for(header_line() + "{\"type\":\"result\"}\n").find("without id"), std::string::npos);
    EXPECT_NE(message_for(header_line() + "{\"type\":\"weird\"}\n").find("unexpected line of type 'weird'"), std::string::npos);
    try {
        uc::read_previous_run(dir / "missing.jsonl");
        ADD_FAILURE() << "a missing file was read";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos);
    }
}

TEST(Resume, WriterAppendsAfterTheTornLineAndMarksCarriedResults) {
    TempDir dir;
    std::string jsonl = dir / "run.json.jsonl";
    std::ofstream(jsonl) << header_line() << result_line("a/one[none]", "pass") << "{\"type\":\"res";
    std::ofstream(dir / "stream");  // --stream names an existing file or device
    auto previous = uc::read_previous_run(jsonl);
    {
        uc::ReportWriter writer(dir / "run.json", dir / "stream", previous);
        Json header = previous.header;
        writer.header(header);
        writer.carried_over(previous.results[0]);
        writer.result(uc::Result::from_json(result("a/two[none]", "pass", "")));
        // Killed here: the file holds the old lines plus the new result, whole.
        auto again = uc::read_previous_run(jsonl);
        ASSERT_EQ(again.results.size(), 2u);
        EXPECT_EQ(again.results[1].id, "a/two[none]");
        writer.finish(1.0);
        const Json& report = writer.final_report();
        EXPECT_EQ(report["run"]["resumed"], true);
        ASSERT_EQ(report["results"].size(), 2u);
        EXPECT_EQ(report["results"][0]["resumed"], true);
        EXPECT_FALSE(report["results"][1].contains("resumed"));
    }
    EXPECT_FALSE(fs::exists(jsonl));
    EXPECT_TRUE(fs::exists(dir / "run.json"));
    // The stream gets everything a host needs to rebuild the report: header, carried and new results, end.
    std::string stream = read_file(dir / "stream");
    EXPECT_NE(stream.find("\"type\":\"header\""), std::string::npos);
    EXPECT_NE(stream.find("\"resumed\":true"), std::string::npos);
    EXPECT_NE(stream.find("\"type\":\"end\""), std::string::npos);
}

TEST(Resume, SecondWriterOnTheSameFileIsRefused) {
    TempDir dir;
    uc::ReportWriter first(dir / "run.json", "");
    try {
        uc::ReportWriter second(dir / "run.json", "");
        ADD_FAILURE() << "two runs wrote the same .jsonl";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("being written by another uring-conform run"), std::string::npos);
    }
}

TEST(Report, DumpLineReplacesBytesThatAreNotUtf8) {
    Json value = {{"output_tail", std::string("ok \xff\xfe end")}};
    EXPECT_EQ(uc::dump_line(value), "{\"output_tail\":\"ok \xEF\xBF\xBD\xEF\xBF\xBD end\"}");
    EXPECT_EQ(uc::to_valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
    EXPECT_EQ(uc::to_valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD") << "overlong";
    EXPECT_EQ(uc::to_valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD") << "surrogate";
    EXPECT_EQ(uc::to_valid_utf8("cut \xE2\x82"), "cut \xEF\xBF\xBD\xEF\xBF\xBD");
}

}  // namespace
