// JUnit XML for CI UIs (GitLab, Jenkins, GitHub test reporters): one
// <testsuite> per family, one <testcase> per scenario variant; a skip is
// <skipped message=reason/>, fail/hang/crash a <failure type=verdict> and an
// error an <error>, each with the reason as message and the evidence as text.
#pragma once

#include <string>

#include "output_path.h"

#include "report.h"

namespace uc {

// Text escaped for XML 1.0 content or attribute values: markup characters as
// entities, characters XML cannot carry (NUL and most C0 controls) as "?",
// invalid UTF-8 as U+FFFD.
std::string xml_escape(const std::string& text);

// The whole document for a final report (schema reports/report.schema.json).
std::string junit_xml(const Json& report);

// Writes it to path; throws std::runtime_error (one line) on failure.
void write_junit(const OutputTarget& target, const Json& report);

}  // namespace uc
