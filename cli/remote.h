#pragma once

#include <atomic>
#include <string>
#include <vector>

namespace ferry::cli {

// True for the commands that talk to a controller: submit, status, watch, cutover, list,
// cancel, pause, resume, agents.
bool IsRemoteCommand(const std::string& command);

// Runs one of them with its arguments; returns the exit code. `stop` (Ctrl-C) ends a watch.
int RunRemoteCommand(const std::string& command, const std::vector<std::string>& argv,
                     std::atomic<bool>* stop);

}  // namespace ferry::cli
