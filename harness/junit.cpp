#include "junit.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>
#include <vector>

namespace uc {
namespace {

std::string attribute(const char* name, const std::string& value) {
    return str(" ", name, "=\"", xml_escape(value), "\"");
}

std::string seconds(const Json& duration_ms) {
    double ms = duration_ms.is_number() ? duration_ms.get<double>() : 0.0;
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.3f", ms / 1000.0);
    return buf;
}

struct Counts {
    size_t tests = 0, failures = 0, errors = 0, skipped = 0;
    double ms = 0;
    void add(const Json& r) {
        std::string v = r.value("verdict", "");
        ++tests;
        failures += v == "fail" || v == "hang" || v == "crash";
        errors += v == "error";
        skipped += v == "skip";
        ms += r.value("duration_ms", 0.0);
    }
    std::string attributes() const {
        return attribute("tests", std::to_string(tests)) + attribute("failures", std::to_string(failures)) +
               attribute("errors", std::to_string(errors)) + attribute("skipped", std::to_string(skipped)) +
               attribute("time", seconds(ms));
    }
};

std::string testcase(const Json& r) {
    std::string verdict = r.value("verdict", "");
    std::string reason = r.value("reason", "");
    std::string out = "    <testcase" + attribute("name", r.value("id", "")) +
                      attribute("classname", r.value("family", "")) + attribute("time", seconds(r.value("duration_ms", Json(0))));
    if (verdict == "pass") return out + "/>\n";
    out += ">\n";
    if (verdict == "skip") {
        out += "      <skipped" + attribute("message", reason) + "/>\n";
    } else {
        std::string element = verdict == "error" ? "error" : "failure";
        std::string text;
        for (const std::string& line : evidence_lines(r.value("evidence", Json::object()), 100)) text += line + "\n";
        out += "      <" + element + attribute("message", reason) + attribute("type", verdict) + ">" + xml_escape(text) +
               "</" + element + ">\n";
    }
    if (r.value("resumed", false)) out += "      <system-out>resumed: result carried over from the interrupted run</system-out>\n";
    return out + "    </testcase>\n";
}

}  // namespace

std::string xml_escape(const std::string& text) {
    std::string valid = to_valid_utf8(text);
    std::string out;
    out.reserve(valid.size());
    for (size_t i = 0; i < valid.size(); ++i) {
        char c = valid[i];
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            // Kept as character references so attribute values keep them too.
            case '\n': out += "&#10;"; break;
            case '\r': out += "&#13;"; break;
            case '\t': out += "&#9;"; break;
            default:
                // XML 1.0 Char excludes C0 controls other than tab/LF/CR, and U+FFFE/U+FFFF.
                if (static_cast<unsigned char>(c) < 0x20) {
                    out += '?';
                } else if (valid.compare(i, 3, "\xEF\xBF\xBE") == 0 || valid.compare(i, 3, "\xEF\xBF\xBF") == 0) {
                    out += '?';
                    i += 2;
                } else {
                    out += c;
                }
        }
    }
    return out;
}

std::string junit_xml(const Json& report) {
    std::vector<std::string> family_order;
    std::map<std::string, std::vector<const Json*>> by_family;
    Counts total;
    static const Json kNoResults = Json::array();
    const Json& results = report.contains("results") ? report["results"] : kNoResults;
    for (const Json& r : results) {
        std::string family = r.value("family", "");
        if (!by_family.count(family)) family_order.push_back(family);
        by_family[family].push_back(&r);
        total.add(r);
    }
    const Json run = report.value("run", Json::object());
    const Json kernel = report.value("kernel", Json::object());
    std::vector<std::pair<std::string, std::string>> properties = {
        {"kernel.release", kernel.value("release", "")},
        {"kernel.version", kernel.value("version", "")},
        {"kernel.machine", kernel.value("machine", "")},
        {"liburing.runtime", report.value("liburing", Json::object()).value("runtime", "")},
        {"tool.version", report.value("tool", Json::object()).value("version", "")},
        {"run.profile", run.value("profile", "")},
        {"run.seed", run.contains("seed") ? dump_line(run["seed"]) : ""},
        {"run.filter", run.value("filter", "")},
        {"run.environment", run.value("environment", "")},
        {"run.resumed", run.value("resumed", false) ? "true" : "false"},
    };
    for (const Json& note : run.value("notes", Json::array())) properties.push_back({"run.note", note.is_string() ? note.get<std::string>() : dump_line(note)});

    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    out += "<testsuites" + attribute("name", "uring-conform") + total.attributes() + ">\n";
    for (const std::string& family : family_order) {
        Counts counts;
        for (const Json* r : by_family[family]) counts.add(*r);
        out += "  <testsuite" + attribute("name", family) + counts.attributes() +
               attribute("timestamp", run.value("started", "")) + ">\n";
        out += "    <properties>\n";
        for (const auto& [name, value] : properties)
            out += "      <property" + attribute("name", name) + attribute("value", value) + "/>\n";
        out += "    </properties>\n";
        for (const Json* r : by_family[family]) out += testcase(*r);
        out += "  </testsuite>\n";
    }
    out += "</testsuites>\n";
    return out;
}

void write_junit(const OutputTarget& target, const Json& report) { write_output(target, junit_xml(report)); }

}  // namespace uc
