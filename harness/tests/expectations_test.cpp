// Known-issue files: parsed strictly, matched by id glob, kernel glob and
// probe fact; an expected verdict is xfail (not a failure), any other xpass.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "expectations.h"

namespace {

struct TomlFile {
    std::string path;
    explicit TomlFile(const std::string& text) {
        char name[] = "/tmp/uc-expect-XXXXXX";
        int fd = mkstemp(name);
        close(fd);
        path = name;
        std::ofstream(path) << text;
    }
    ~TomlFile() { unlink(path.c_str()); }
};

const char* kKnown = R"(
[[expect]]
ids = "cancel/running-request-ealready[*]"
kernels = ["6.18.*"]
verdict = "fail"
reason = "canceled io-wq work completes with -ERESTARTSYS"
link = "https://example.org/fix"

[[expect]]
ids = "timeout/abs-deadline[*,ns=timens]"
probe = "setup_flags.SQPOLL=ok"
verdict = "fail"
reason = "ABS timeouts ignore the time namespace"
)";

uc::Result result(const std::string& id, uc::Verdict verdict) {
    uc::Result r;
    r.id = id;
    r.verdict = verdict;
    return r;
}

uc::Probe probe_of(const std::string& release, const std::string& sqpoll) {
    uc::Probe p;
    p.kernel_release = release;
    p.setup_flags["SQPOLL"] = sqpoll;
    return p;
}

TEST(Expectations, ExpectedVerdictIsXfailAndNotAFailure) {
    TomlFile file(kKnown);
    auto entries = uc::load_expectations({file.path});
    ASSERT_EQ(entries.size(), 2u);
    uc::Result r = result("cancel/running-request-ealready[none,op=splice]", uc::Verdict::fail);
    uc::apply_expectations(r, entries);
    ASSERT_TRUE(r.expectation.is_object());
    EXPECT_EQ(r.expectation["status"], "xfail");
    EXPECT_EQ(r.verdict, uc::Verdict::fail) << "the raw verdict stays";
    EXPECT_FALSE(uc::counts_as_failure(r));
    EXPECT_NE(r.expectation["source"].get<std::string>().find(file.path + ":"), std::string::npos);
}

TEST(Expectations, AnotherVerdictIsXpassAndAnUnknownFailureStillFails) {
    TomlFile file(kKnown);
    auto entries = uc::load_expectations({file.path});
    uc::Result fixed = result("cancel/running-request-ealready[none,op=splice]", uc::Verdict::pass);
    uc::apply_expectations(fixed, entries);
    EXPECT_EQ(fixed.expectation["status"], "xpass");
    uc::Result hung = result("cancel/running-request-ealready[none,op=splice]", uc::Verdict::hang);
    uc::apply_expectations(hung, entries);
    EXPECT_EQ(hung.expectation["status"], "xpass");
    EXPECT_TRUE(uc::counts_as_failure(hung)) << "a hang where a fail was expected is new";
    uc::Result other = result("multishot/recv-enobufs[none,cq=8]", uc::Verdict::fail);
    uc::apply_expectations(other, entries);
    EXPECT_TRUE(other.expectation.is_null());
    EXPECT_TRUE(uc::counts_as_failure(other));
}

TEST(Expectations, AnIntermittentEntryLeavesAPassUnmarkedAndStillKnowsItsFail) {
    TomlFile file(R"(
[[expect]]
ids = "cancel/eventfd-race-every-request-completes[*]"
verdict = "fail"
reason = "a rare race"
intermittent = true
)");
    auto entries = uc::load_expectations({file.path});
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_TRUE(entries[0].intermittent);
    uc::Result quiet = result("cancel/eventfd-race-every-request-completes[none,threads=2,value=0,cancel=fd]",
                              uc::Verdict::pass);
    uc::apply_expectations(quiet, entries);
    EXPECT_TRUE(quiet.expectation.is_null()) << "the race not reproduced this run is not an xpass";
    uc::Result caught = quiet;
    caught.verdict = uc::Verdict::fail;
    uc::apply_expectations(caught, entries);
    EXPECT_EQ(caught.expectation["status"], "xfail");
    uc::Result hung = quiet;
    hung.verdict = uc::Verdict::hang;
    uc::apply_expectations(hung, entries);
    EXPECT_EQ(hung.expectation["status"], "xpass");
    EXPECT_TRUE(uc::counts_as_failure(hung)) << "a hang is not the known race";
}

TEST(Expectations, KernelGlobAndProbeFactDecideWhereAnEntryApplies) {
    TomlFile file(kKnown);
    auto entries = uc::load_expectations({file.path});
    EXPECT_TRUE(uc::applies_to(entries[0], probe_of("6.18.44-fc-v1045", "ok")));
    EXPECT_FALSE(uc::applies_to(entries[0], probe_of("6.12.117+deb12-amd64", "ok")));
    EXPECT_TRUE(uc::applies_to(entries[1], probe_of("6.1.0-57-amd64", "ok")));
    EXPECT_FALSE(uc::applies_to(entries[1], probe_of("6.1.0-57-amd64", "EPERM")));
}

std::string load_error(const std::string& text) {
    TomlFile file(text);
    try {
        uc::load_expectations({file.path});
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

TEST(Expectations, BadFilesAreOneLineErrorsNamingTheLine) {
    std::string missing = load_error("[[expect]]\nids = \"a/*\"\nverdict = \"fail\"\n");
    EXPECT_NE(missing.find(": entry needs reason"), std::string::npos) << missing;
    EXPECT_EQ(missing.rfind("/tmp/uc-expect-", 0), 0u) << "names the file: " << missing;
    EXPECT_NE(load_error("[[expect]]\nids = \"a/*\"\nverdict = \"broken\"\nreason = \"r\"\n").find("verdict 'broken'"),
              std::string::npos);
    EXPECT_NE(load_error("[[expect]]\nids = \"a/*\"\nverdict = \"fail\"\nreason = \"r\"\nkernel = \"6.1*\"\n")
                  .find("unknown key 'kernel'"),
              std::string::npos);
    EXPECT_NE(load_error("ids = [\n").find(":"), std::string::npos);
    EXPECT_NE(load_error("").find("no [[expect]] entries"), std::string::npos);
    try {
        uc::load_expectations({"/nonexistent/known.toml"});
        ADD_FAILURE() << "a missing file was read";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/known.toml"), std::string::npos);
    }
}

}  // namespace
