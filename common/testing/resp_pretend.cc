// PretendServer (resp_proxy.h): what each server version lacks that Redis 7.0 has, and the
// replies it gives instead, as read in redis/redis at that version (t_stream.c, t_string.c,
// db.c, cluster.c, networking.c's addReplySubcommandSyntaxError, server.c's arity check).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/testing/resp_proxy.h"

namespace ferry::testing {
namespace {

using Version = std::pair<int, int>;

constexpr absl::string_view kSyntaxError = "ERR syntax error";
constexpr absl::string_view kInvalidStreamId =
    "ERR Invalid stream ID specified as stream command argument";

// addReplySubcommandSyntaxError of Redis 5.0 ... 6.2 (7.0 says "unknown subcommand '%s'").
std::string SubcommandError(absl::string_view command) {
  return absl::StrCat("ERR Unknown subcommand or wrong number of arguments for '$1'. Try ", command,
                      " HELP.");
}

// The arity check of Redis < 7.0, for an option that made a fixed-arity command variadic.
std::string ArityError(absl::string_view lower_command) {
  return absl::StrCat("ERR wrong number of arguments for '", lower_command, "' command");
}

// Commands Redis 7.0 has, by the version that added them.
struct CommandsSince {
  Version since;
  std::vector<const char*> names;
};

const std::vector<CommandsSince>& NewCommands() {
  static const auto* table = new std::vector<CommandsSince>{
      {{5, 0},
       {"XADD", "XRANGE", "XREVRANGE", "XLEN", "XREAD", "XREADGROUP", "XGROUP", "XACK", "XCLAIM",
        "XPENDING", "XINFO", "XDEL", "XTRIM", "XSETID", "ZPOPMIN", "ZPOPMAX", "BZPOPMIN",
        "BZPOPMAX", "LOLWUT"}},
      {{6, 0}, {"ACL", "HELLO", "LPOS"}},
      {{6, 2},
       {"GETDEL", "GETEX", "COPY", "LMOVE", "BLMOVE", "ZRANGESTORE", "ZUNION", "ZINTER", "ZDIFF",
        "ZDIFFSTORE", "ZRANDMEMBER", "HRANDFIELD", "SMISMEMBER", "GEOSEARCH", "GEOSEARCHSTORE",
        "XAUTOCLAIM", "FAILOVER", "RESET"}},
      {{7, 0},
       {"PEXPIRETIME", "EXPIRETIME", "FUNCTION", "FCALL", "FCALL_RO", "SINTERCARD", "LMPOP",
        "BLMPOP", "ZMPOP", "BZMPOP", "EVAL_RO", "EVALSHA_RO"}},
  };
  return *table;
}

// An option refused with `error` in argv[first..last].
RefusedArgument Option(absl::string_view command, absl::string_view token, size_t first,
                       absl::string_view error, size_t last = SIZE_MAX) {
  RefusedArgument rule;
  rule.command = std::string(command);
  rule.token = std::string(token);
  rule.first = first;
  rule.last = last;
  rule.error = std::string(error);
  return rule;
}

// A subcommand refused as a whole (empty `token`) or for an option of it.
RefusedArgument SubcommandOption(absl::string_view command, absl::string_view subcommand,
                                 absl::string_view token, size_t first) {
  RefusedArgument rule = Option(command, token, first, SubcommandError(command));
  rule.subcommand = std::string(subcommand);
  return rule;
}

// An exclusive range bound `(id` where the stream IDs sit.
RefusedArgument ExclusiveRange(absl::string_view command, size_t first) {
  RefusedArgument rule = Option(command, "(", first, kInvalidStreamId, first + 1);
  rule.prefix = true;
  return rule;
}

void AddRefusedOptions(Version version, std::vector<RefusedArgument>& out) {
  if (version < Version{5, 0}) {
    // RESTORE key ttl payload [REPLACE]: anything else after the payload.
    for (const char* option : {"ABSTTL", "IDLETIME", "FREQ"}) {
      out.push_back(Option("RESTORE", option, 4, kSyntaxError));
    }
  }
  if (version < Version{6, 0}) {
    RefusedArgument type = Option("SCAN", "TYPE", 2, kSyntaxError);
    type.step = 2;  // SCAN cursor [MATCH p] [COUNT n]: the values sit between the options.
    out.push_back(type);
    out.push_back(Option("SET", "KEEPTTL", 3, kSyntaxError));
    out.push_back(SubcommandOption("XINFO", "STREAM", "FULL", 3));
  }
  if (version < Version{6, 2}) {
    for (const char* option : {"PXAT", "EXAT", "GET"}) {
      out.push_back(Option("SET", option, 3, kSyntaxError));
    }
    out.push_back(SubcommandOption("XGROUP", "CREATECONSUMER", "", 0));
    // XPENDING key group [start end count [consumer]]: 3, 6 or 7 arguments only.
    out.push_back(Option("XPENDING", "IDLE", 3, kSyntaxError, 3));
    out.push_back(ExclusiveRange("XRANGE", 2));
    out.push_back(ExclusiveRange("XREVRANGE", 2));
    out.push_back(ExclusiveRange("XPENDING", 3));
  }
  if (version < Version{7, 0}) {
    for (const char* option : {"ENTRIESADDED", "MAXDELETEDID"}) {
      out.push_back(Option("XSETID", option, 3, ArityError("xsetid")));
    }
    out.push_back(SubcommandOption("XGROUP", "CREATE", "ENTRIESREAD", 5));
    out.push_back(SubcommandOption("XGROUP", "SETID", "ENTRIESREAD", 5));
    out.push_back(SubcommandOption("CLUSTER", "SHARDS", "", 0));
    for (const char* command : {"EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"}) {
      for (const char* option : {"NX", "XX", "GT", "LT"}) {
        out.push_back(Option(command, option, 3, ArityError(absl::AsciiStrToLower(command))));
      }
    }
  }
}

// A released patch version of each minor, for INFO.
std::string RedisVersionText(Version version) {
  static const auto* known = new std::vector<std::pair<Version, const char*>>{
      {{4, 0}, "4.0.14"}, {{5, 0}, "5.0.14"}, {{6, 0}, "6.0.20"}, {{6, 2}, "6.2.14"},
      {{7, 0}, "7.0.15"}, {{7, 2}, "7.2.5"},  {{7, 4}, "7.4.1"},  {{8, 0}, "8.0.0"}};
  for (const auto& [minor, text] : *known) {
    if (minor == version) return text;
  }
  return absl::StrCat(version.first, ".", version.second, ".0");
}

std::string ValkeyVersionText(Version version) {
  if (version == Version{7, 2}) return "7.2.5";
  if (version == Version{8, 0}) return "8.0.1";
  return absl::StrCat(version.first, ".", version.second, ".0");
}

}  // namespace

RespProxyOptions PretendServer(redis::Engine engine, std::pair<int, int> version) {
  RespProxyOptions options;
  const redis::Capabilities caps = engine == redis::Engine::kValkey
                                       ? redis::Capabilities::ForValkey(version)
                                       : redis::Capabilities::ForVersion(version);
  if (engine == redis::Engine::kValkey) {
    options.pretend_valkey_version = ValkeyVersionText(caps.valkey_version());
  } else {
    options.pretend_version = RedisVersionText(caps.version());
  }
  // What commands and options exist follows the Redis-compatible version.
  const Version compatible = caps.version();
  options.empty_info_everything = compatible < Version{6, 0};
  for (const CommandsSince& group : NewCommands()) {
    if (compatible >= group.since) continue;
    for (const char* name : group.names) options.unknown_commands.insert(name);
  }
  AddRefusedOptions(compatible, options.refused_arguments);
  options.dump_payload_version = caps.TablePayloadVersion();
  options.restore_max_payload_version = caps.TablePayloadVersion();
  options.emulate_hash_field_ttl_reads = caps.hash_field_ttl();
  return options;
}

}  // namespace ferry::testing
