// ferry-restore-dump: the RESTORE commands that rebuild a server's keys, for the benchmark's
// RESTORE write limit (bench/run.sh): SCAN of one database, pipelined PTTL and DUMP per batch,
// and on stdout one `RESTORE key ttl payload REPLACE` per key in RESP, for `redis-cli --pipe`.
// Keys that vanish between SCAN and DUMP are left out. Prints the count on stderr.
// Benchmark support only.

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/redis/connection.h"
#include "common/redis/endpoint.h"

namespace {

using ferry::redis::Connection;
using ferry::redis::Reply;

// One command in RESP, as redis-cli --pipe reads it.
void WriteCommand(const std::vector<std::string>& argv, std::FILE* out) {
  std::string text = absl::StrCat("*", argv.size(), "\r\n");
  for (const std::string& arg : argv) absl::StrAppend(&text, "$", arg.size(), "\r\n", arg, "\r\n");
  std::fwrite(text.data(), 1, text.size(), out);
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "ferry-restore-dump: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ferry-restore-dump redis://host:port[/db] > restores.resp\n");
    return 2;
  }
  absl::StatusOr<ferry::redis::Endpoint> endpoint = ferry::redis::ParseEndpointUri(argv[1], "");
  if (!endpoint.ok()) return Fail(std::string(endpoint.status().message()));
  absl::StatusOr<Connection> conn = Connection::Open(*endpoint);
  if (!conn.ok()) return Fail(std::string(conn.status().message()));
  uint64_t written = 0;
  std::string cursor = "0";
  do {
    absl::StatusOr<Reply> scan = conn->Command({"SCAN", cursor, "COUNT", "1000"});
    if (!scan.ok()) return Fail(std::string(scan.status().message()));
    cursor = std::string(scan->element(0).str());
    const ferry::redis::ReplyView keys = scan->element(1);
    for (size_t i = 0; i < keys.size(); ++i) {
      conn->Append({"PTTL", keys.element(i).str()});
      conn->Append({"DUMP", keys.element(i).str()});
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      absl::StatusOr<Reply> pttl = conn->ReadReply();
      absl::StatusOr<Reply> dump = conn->ReadReply();
      if (!pttl.ok() || !dump.ok()) return Fail("connection lost");
      if (pttl->is_error() || dump->is_error() || dump->is_nil() || pttl->integer() == -2) continue;
      const int64_t ttl = pttl->integer() > 0 ? pttl->integer() : 0;
      WriteCommand({"RESTORE", std::string(keys.element(i).str()), absl::StrCat(ttl),
                    std::string(dump->str()), "REPLACE"},
                   stdout);
      ++written;
    }
  } while (cursor != "0");
  std::fflush(stdout);
  std::fprintf(stderr, "ferry-restore-dump: %llu keys\n", static_cast<unsigned long long>(written));
  return 0;
}
