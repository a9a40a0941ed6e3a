// Lists that C++ and the Python tools both use, kept in one file each under
// reports/: the verdict enum of the report schema and the kernel splat
// patterns. The harness compiles its own copy in; these tests keep the two
// from drifting apart.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "kmsg.h"
#include "result.h"

namespace {

nlohmann::json read_json(const std::string& relative) {
    std::ifstream in(std::string(UC_SOURCE_ROOT) + "/" + relative);
    EXPECT_TRUE(in.good()) << relative;
    return nlohmann::json::parse(in);
}

TEST(SharedLists, VerdictsAreTheReportSchemasEnumInOrder) {
    nlohmann::json schema = read_json("reports/report.schema.json");
    std::vector<std::string> from_schema = schema["$defs"]["verdict"]["enum"];
    std::vector<std::string> ours;
    for (uc::Verdict v : uc::all_verdicts()) ours.push_back(uc::verdict_name(v));
    EXPECT_EQ(ours, from_schema);
    for (const std::string& name : from_schema) EXPECT_EQ(uc::verdict_name(*uc::parse_verdict(name)), name);
    EXPECT_FALSE(uc::parse_verdict("xfail").has_value());
}

TEST(SharedLists, KernelSplatPatternsAreReportsKernelSplatsJsonInOrder) {
    nlohmann::json shared = read_json("reports/kernel-splats.json");
    const auto& ours = uc::kernel_splat_patterns();
    ASSERT_EQ(shared.size(), ours.size());
    for (size_t i = 0; i < ours.size(); ++i) {
        EXPECT_EQ(shared[i]["kind"], ours[i].kind) << i;
        EXPECT_EQ(shared[i]["prefix"], ours[i].prefix) << i;
        EXPECT_EQ(shared[i].value("contains", std::vector<std::string>{}), ours[i].contains) << i;
    }
}

}  // namespace
