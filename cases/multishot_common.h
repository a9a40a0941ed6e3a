// Shared by the multishot family's files (cases/multishot*.cpp): the family
// itself, so every file's ids share the "multishot/" prefix.
#pragma once

#include "scenario.h"

namespace uc::multishots {

inline const Family family{"multishot"};

}  // namespace uc::multishots
