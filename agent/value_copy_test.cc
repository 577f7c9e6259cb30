#include "agent/value_copy.h"
// Tests in progress (issue 9).
