#include "agent/value_copy.h"
// Implementation in progress (issue 9).
