// Kernel log and taint around scenarios. A WARN/BUG/Oops/KASAN/lockdep splat
// or a taint change while a scenario runs is a kernel bug the scenario hit
// even when every CQE looked right (liburing's runtests.sh greps dmesg for
// the same after each test).
//
// Cheap by design: /dev/kmsg is opened once, non-blocking, positioned at the
// end when the run starts; after each scenario the records that arrived are
// read (usually one read() answering EAGAIN) and the taint word is re-read
// with one pread(). Nothing is lost between scenarios: a record logged after
// one scenario's check (e.g. by a ring torn down in a workqueue after its
// process exited) lands on the next scenario, marked as such.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util.h"

namespace uc {

// One /dev/kmsg record (Documentation/ABI/testing/dev-kmsg):
// "<prio>,<seq>,<ts_usec>,<flags>[,...];<message>", continuation lines of
// the dictionary start with a space.
struct KmsgRecord {
    int facility = 0;  // 0 = kernel; userspace writes to /dev/kmsg are >= 1
    int level = 0;
    uint64_t seq = 0;
    uint64_t ts_usec = 0;
    std::string text;
};
std::optional<KmsgRecord> parse_kmsg_record(const std::string& line);

// What kind of splat a kernel message line starts, or "" when it is none:
// "warn", "bug", "oops", "kasan", "ubsan", "lockdep", "gpf", "call-trace",
// "hung-task", "rcu-stall", "cut-here".
std::string classify_kernel_line(const std::string& text);

// The patterns behind it: a line is of `kind` when it starts with `prefix`
// and holds every string of `contains`; the first matching pattern wins.
struct SplatPattern {
    std::string kind, prefix;
    std::vector<std::string> contains;
};
const std::vector<SplatPattern>& kernel_splat_patterns();

// Taint letters for a /proc/sys/kernel/tainted word, as the kernel prints
// them (Documentation/admin-guide/tainted-kernels.rst): 512 -> "W".
std::string taint_letters(uint64_t taint);

// What one scenario left in the kernel log and taint word.
struct KernelFindings {
    std::vector<std::string> log;   // records from the first splat on (bounded)
    std::string first_splat;        // its first telling line (a WARNING: rather than the "cut here" before it)
    std::optional<uint64_t> taint_before, taint_after;
    bool lost_records = false;      // the log buffer wrapped while we were not reading
    bool splat() const { return !first_splat.empty(); }
    bool taint_changed() const { return taint_before && taint_after && *taint_before != *taint_after; }
};

class KernelWatch {
  public:
    // Opens both sources; one that cannot be read is left out and named in
    // notes() (e.g. /dev/kmsg under kernel.dmesg_restrict=1 for non-root).
    KernelWatch(const std::string& kmsg_path = "/dev/kmsg",
                const std::string& taint_path = "/proc/sys/kernel/tainted");

    const std::vector<std::string>& notes() const { return notes_; }
    // Everything logged and the taint change since the previous collect()
    // (or since construction).
    KernelFindings collect();

  private:
    std::optional<uint64_t> read_taint();

    Fd kmsg_, taint_;
    std::optional<uint64_t> last_taint_;
    std::vector<std::string> notes_;
    std::string partial_;  // a regular file (tests) may end mid-line
};

}  // namespace uc
