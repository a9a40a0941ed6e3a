// Precompiled header of the GoogleTest targets: the external headers of
// external.h plus gtest, which every *_test.cpp includes.

#include "external.h"

#include <gtest/gtest.h>
