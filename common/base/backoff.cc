#include "common/base/backoff.h"

#include <algorithm>

#include "absl/random/distributions.h"

namespace ferry {

absl::Duration Backoff::Next(absl::BitGenRef random) {
  const absl::Duration wait = current_ * absl::Uniform(random, 0.8, 1.0);
  current_ = std::min(current_ * 2, max_);
  return wait;
}

}  // namespace ferry
