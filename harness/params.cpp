#include "params.h"

#include "compat/uapi.h"

namespace uc {

const std::vector<Setup>& all_setups() {
    static const std::vector<Setup> setups{Setup::none, Setup::coop_taskrun, Setup::defer_taskrun, Setup::sqpoll};
    return setups;
}

std::string setup_name(Setup setup) {
    switch (setup) {
        case Setup::none: return "none";
        case Setup::coop_taskrun: return "coop_taskrun";
        case Setup::defer_taskrun: return "defer_taskrun";
        case Setup::sqpoll: return "sqpoll";
    }
    return "?";
}

unsigned setup_flags(Setup setup) {
    switch (setup) {
        case Setup::none: return 0;
        case Setup::coop_taskrun: return IORING_SETUP_COOP_TASKRUN;
        case Setup::defer_taskrun: return IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
        case Setup::sqpoll: return IORING_SETUP_SQPOLL;
    }
    return 0;
}

std::string setup_probe_key(Setup setup) {
    switch (setup) {
        case Setup::none: return "";
        case Setup::coop_taskrun: return "COOP_TASKRUN";
        case Setup::defer_taskrun: return "DEFER_TASKRUN";
        case Setup::sqpoll: return "SQPOLL";
    }
    return "";
}

}  // namespace uc
