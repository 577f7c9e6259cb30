// The pure parts of the RESP proxy: framing a byte stream into messages, parsing commands,
// and the rewriting (INFO, refusals, DUMP payloads, hash field TTL reads) that makes a server
// answer as another version. resp_proxy.h.

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/redis/dump_payload.h"
#include "common/testing/resp_proxy.h"

namespace ferry::testing {
namespace {

// Redis refuses inline commands longer than this (PROTO_INLINE_MAX_SIZE).
constexpr size_t kMaxInlineBytes = 64 << 10;
// Far above proto-max-bulk-len (512 MB); only guards the offset arithmetic.
constexpr int64_t kMaxLength = int64_t{1} << 34;
// RESP2 and RESP3 type bytes, by what follows the first line: nothing (simple strings, errors,
// integers, null, booleans, doubles, big numbers), that many bytes (bulk strings, verbatim
// strings, bulk errors), that many elements (arrays, sets, pushes, maps, attributes).
constexpr absl::string_view kLineTypes = "+-:_#,(";
constexpr absl::string_view kBulkTypes = "$=!";
constexpr absl::string_view kAggregateTypes = "*~>%|";
// What Valkey 7.2+ reports as redis_version, for clients that compare it.
constexpr absl::string_view kValkeyRedisVersion = "7.2.4";
// 2 bytes of RDB version, then 8 of CRC64 (dump_payload.h).
constexpr size_t kPayloadFooterBytes = 10;
// Newer than any server: what a refused RESTORE payload is forwarded with, so that 7.0
// refuses it.
constexpr int kRefusedPayloadVersion = 0xffff;

absl::Status ProtocolError(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("RESP protocol error: ", what));
}

// `db0`, `db15`: the fields of INFO's keyspace section.
bool IsKeyspaceField(absl::string_view key) {
  return absl::ConsumePrefix(&key, "db") && !key.empty() &&
         std::all_of(key.begin(), key.end(), [](char c) { return absl::ascii_isdigit(c); });
}

// Redis < 6 knows `all` (every section) but not `everything`, which names no section there.
bool AsksForEverything(absl::Span<const std::string> sections) {
  return std::any_of(sections.begin(), sections.end(), [](const std::string& section) {
    return absl::EqualsIgnoreCase(section, "everything");
  });
}

// A command as RESP bytes: an array of bulk strings.
std::string EncodeCommand(absl::Span<const absl::string_view> argv) {
  std::string out = absl::StrCat("*", argv.size(), "\r\n");
  for (absl::string_view arg : argv) absl::StrAppend(&out, "$", arg.size(), "\r\n", arg, "\r\n");
  return out;
}

// Redis' string2l: an optional '-', then digits without a leading zero ("0" alone), fitting a
// long. absl::SimpleAtoi would also take "+1", " 1" and "01", which Redis refuses.
bool ParseRedisLong(absl::string_view text, int64_t* value) {
  absl::string_view digits = text;
  absl::ConsumePrefix(&digits, "-");
  if (digits.empty() || digits.size() > 19 || (digits[0] == '0' && text != "0") ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    return false;
  }
  return absl::SimpleAtoi(text, value);
}

// The first line of `reply` from `pos` (without CRLF), and `pos` moved past it.
absl::string_view TakeLine(absl::string_view reply, size_t* pos) {
  const size_t eol = reply.find("\r\n", *pos);
  const absl::string_view line = reply.substr(*pos, eol - *pos);
  *pos = eol == absl::string_view::npos ? reply.size() : eol + 2;
  return line;
}

}  // namespace

// ---------------------------------------------------------------- framing

void RespFramer::Append(absl::string_view bytes) {
  if (start_ > 0) {
    buf_.erase(0, start_);
    pos_ -= start_;
    start_ = 0;
  }
  buf_.append(bytes.data(), bytes.size());
}

absl::StatusOr<std::optional<absl::string_view>> RespFramer::Next() {
  absl::StatusOr<bool> complete = Scan();
  if (!complete.ok()) return complete.status();
  if (!*complete) return std::nullopt;
  absl::string_view message(buf_.data() + start_, pos_ - start_);
  start_ = pos_;
  return message;
}

absl::StatusOr<bool> RespFramer::ScanInline() {
  size_t eol = buf_.find('\n', pos_);
  if (eol == std::string::npos) {
    if (buf_.size() - start_ > kMaxInlineBytes) return ProtocolError("too big inline request");
    return false;
  }
  pos_ = eol + 1;
  return true;
}

absl::StatusOr<bool> RespFramer::Scan() {
  while (pos_ < buf_.size()) {
    const char type = buf_[pos_];
    if (inline_commands_ && pos_ == start_ && type != '*') return ScanInline();
    const size_t eol = buf_.find("\r\n", pos_);
    if (eol == std::string::npos) return false;
    const absl::string_view header(buf_.data() + pos_ + 1, eol - pos_ - 1);
    const bool bulk = absl::StrContains(kBulkTypes, type);
    const bool aggregate = absl::StrContains(kAggregateTypes, type);
    if (!bulk && !aggregate && !absl::StrContains(kLineTypes, type)) {
      return ProtocolError(absl::StrCat("unexpected type byte ", static_cast<int>(type)));
    }
    int64_t n = 0;  // Bytes of a bulk, elements of an aggregate; -1 is nil.
    if ((bulk || aggregate) && (!absl::SimpleAtoi(header, &n) || n < -1 || n > kMaxLength)) {
      return ProtocolError(absl::StrCat("bad length '", header, "'"));
    }
    size_t next = eol + 2;
    if (bulk && n >= 0) {
      if (buf_.size() < next + static_cast<size_t>(n) + 2) return false;
      next += static_cast<size_t>(n);
      if (buf_.compare(next, 2, "\r\n") != 0) return ProtocolError("bulk without CRLF");
      next += 2;
    }
    pos_ = next;
    // A map holds a key and a value per entry; an attribute its entries, then the reply it
    // annotates.
    if (type == '%' && n > 0) n *= 2;
    if (type == '|') n = n * 2 + 1;
    if (aggregate && n > 0) {
      open_.push_back(n);
      continue;
    }
    // One element is complete; so is every aggregate it was the last element of.
    while (!open_.empty() && --open_.back() == 0) open_.pop_back();
    if (open_.empty()) return true;
  }
  return false;
}

absl::StatusOr<std::vector<absl::string_view>> ParseCommand(absl::string_view message) {
  std::vector<absl::string_view> argv;
  if (message.empty()) return argv;
  if (message[0] != '*') {
    for (absl::string_view arg : absl::StrSplit(message, absl::ByAnyChar(" \t\r\n"))) {
      if (!arg.empty()) argv.push_back(arg);
    }
    return argv;
  }
  size_t eol = message.find("\r\n");
  int64_t argc = 0;
  if (eol == absl::string_view::npos || !absl::SimpleAtoi(message.substr(1, eol - 1), &argc)) {
    return ProtocolError("bad multibulk header");
  }
  size_t pos = eol + 2;
  for (int64_t i = 0; i < argc; ++i) {
    // RespFramer has checked the lengths and CRLFs; only the element types remain to check.
    if (pos >= message.size() || message[pos] != '$') {
      return ProtocolError("command array holds something other than bulk strings");
    }
    eol = message.find("\r\n", pos);
    int64_t len = 0;
    if (!absl::SimpleAtoi(message.substr(pos + 1, eol - pos - 1), &len) || len < 0) {
      return ProtocolError("bad bulk length in a command");
    }
    argv.push_back(message.substr(eol + 2, static_cast<size_t>(len)));
    pos = eol + 2 + static_cast<size_t>(len) + 2;
  }
  return argv;
}

// ---------------------------------------------------------------- rewriting

std::string UnknownCommandReply(absl::Span<const absl::string_view> argv) {
  // The exact text of Redis 7's processCommand: each argument quoted and cut at 128 bytes.
  std::string args;
  for (size_t i = 1; i < argv.size() && args.size() < 128; ++i) {
    absl::StrAppend(&args, "'", argv[i].substr(0, 128 - args.size()), "' ");
  }
  const absl::string_view name = argv.empty() ? "" : argv[0].substr(0, 128);
  // Error replies are one line: CR and LF in echoed arguments become spaces, as in Redis.
  const std::string text =
      absl::StrCat("ERR unknown command '", name, "', with args beginning with: ", args);
  return absl::StrCat("-", absl::StrReplaceAll(text, {{"\r", " "}, {"\n", " "}}), "\r\n");
}

bool RewritesInfo(const RespProxyOptions& options) {
  return !options.pretend_version.empty() || !options.pretend_valkey_version.empty() ||
         options.empty_info_everything || options.strip_info_keyspace;
}

std::string RewriteInfoText(absl::string_view info, const RespProxyOptions& options) {
  const bool valkey = !options.pretend_valkey_version.empty();
  std::string version = options.pretend_version;
  if (version.empty() && valkey) version = std::string(kValkeyRedisVersion);
  std::string out;
  out.reserve(info.size() + 64);
  while (!info.empty()) {
    const size_t end = info.find('\n');
    const absl::string_view line = info.substr(0, end == absl::string_view::npos ? end : end + 1);
    info.remove_prefix(line.size());
    const absl::string_view key = line.substr(0, line.find(':'));
    if (options.strip_info_keyspace && IsKeyspaceField(key)) continue;
    // Written again below after redis_version, where Valkey has them.
    if (valkey && (key == "server_name" || key == "valkey_version")) continue;
    if (key == "redis_version" && !version.empty()) {
      absl::StrAppend(&out, "redis_version:", version, "\r\n");
      if (valkey) {
        absl::StrAppend(
            &out, "server_name:valkey\r\nvalkey_version:", options.pretend_valkey_version, "\r\n");
      }
      continue;
    }
    out.append(line.data(), line.size());
  }
  return out;
}

std::string RewriteInfoReply(absl::string_view reply, absl::Span<const std::string> sections,
                             const RespProxyOptions& options) {
  const size_t eol = reply.find("\r\n");
  int64_t len = 0;
  if (reply.empty() || (reply[0] != '$' && reply[0] != '=') || eol == absl::string_view::npos ||
      !absl::SimpleAtoi(reply.substr(1, eol - 1), &len) || len < 0 ||
      reply.size() < eol + 2 + static_cast<size_t>(len)) {
    return std::string(reply);  // An error (NOAUTH, ...) or not INFO's reply at all.
  }
  if (options.empty_info_everything && AsksForEverything(sections)) return "$0\r\n\r\n";
  absl::string_view body = reply.substr(eol + 2, static_cast<size_t>(len));
  // A RESP3 verbatim string starts with its format, "txt:".
  const absl::string_view format = reply[0] == '=' ? body.substr(0, 4) : "";
  body.remove_prefix(format.size());
  const std::string text = absl::StrCat(format, RewriteInfoText(body, options));
  return absl::StrCat(reply.substr(0, 1), text.size(), "\r\n", text, "\r\n");
}

// ---------------------------------------------------------------- refusals and payloads

std::optional<std::string> RefusalReply(absl::string_view upper_name,
                                        absl::Span<const absl::string_view> argv,
                                        absl::Span<const RefusedArgument> refused) {
  for (const RefusedArgument& rule : refused) {
    if (!absl::EqualsIgnoreCase(rule.command, upper_name)) continue;
    if (!rule.subcommand.empty() &&
        (argv.size() < 2 || !absl::EqualsIgnoreCase(argv[1], rule.subcommand))) {
      continue;
    }
    bool matches = rule.token.empty();
    for (size_t i = rule.first; !matches && i < argv.size() && i <= rule.last; i += rule.step) {
      matches = rule.prefix ? absl::StartsWithIgnoreCase(argv[i], rule.token)
                            : absl::EqualsIgnoreCase(argv[i], rule.token);
    }
    if (!matches) continue;
    const absl::string_view sub = argv.size() > 1 ? argv[1] : "";
    const std::string text = absl::StrReplaceAll(rule.error, {{"$1", sub}});
    return absl::StrCat("-", absl::StrReplaceAll(text, {{"\r", " "}, {"\n", " "}}), "\r\n");
  }
  return std::nullopt;
}

std::optional<int> RestoreForwardVersion(absl::string_view payload,
                                         const RespProxyOptions& options) {
  if (options.restore_max_payload_version <= 0) return std::nullopt;
  const std::optional<int> version = redis::PayloadVersion(payload);
  if (!version.has_value()) return std::nullopt;  // Too short: refused as it is.
  const redis::Engine engine =
      options.pretend_valkey_version.empty() ? redis::Engine::kRedis : redis::Engine::kValkey;
  const bool reads =
      redis::Capabilities::ReadsPayload(engine, options.restore_max_payload_version, *version);
  // 7.0 already answers as the pretended server would (and the CRC is left unread).
  if (reads == (*version <= kUpstreamPayloadVersion)) return std::nullopt;
  // A corrupt payload is refused as it is; a new CRC must not make it valid.
  if (!redis::PayloadChecksumValid(payload)) return std::nullopt;
  return reads ? kUpstreamPayloadVersion : kRefusedPayloadVersion;
}

void SetPayloadVersionInPlace(char* payload, size_t size, int version) {
  char* footer = payload + size - kPayloadFooterBytes;
  footer[0] = static_cast<char>(version & 0xff);
  footer[1] = static_cast<char>((version >> 8) & 0xff);
  uint64_t crc = redis::Crc64(0, absl::string_view(payload, size - 8));
  for (int i = 0; i < 8; ++i) {
    footer[2 + i] = static_cast<char>(crc & 0xff);
    crc >>= 8;
  }
}

bool IsHashFieldTtlRead(absl::string_view upper_name) {
  return upper_name == "HTTL" || upper_name == "HPTTL" || upper_name == "HEXPIRETIME" ||
         upper_name == "HPEXPIRETIME";
}

FieldTtlRead RewriteFieldTtlRead(absl::Span<const absl::string_view> argv) {
  FieldTtlRead read;
  // The arity check of processCommand (arity -5: key FIELDS numfields field...).
  if (argv.size() < 5) {
    read.reply = absl::StrCat("-ERR wrong number of arguments for '",
                              absl::AsciiStrToLower(argv[0]), "' command\r\n");
    return read;
  }
  // Then httlGenericCommand's checks, in its order, after the key's type.
  int64_t num_fields = 0;
  if (!absl::EqualsIgnoreCase(argv[2], "FIELDS")) {
    read.argument_error =
        "-ERR Mandatory argument FIELDS is missing or not at the right position\r\n";
  } else if (!ParseRedisLong(argv[3], &num_fields) || num_fields < 1) {
    read.argument_error = "-ERR Number of fields must be a positive integer\r\n";
  } else if (num_fields != static_cast<int64_t>(argv.size()) - 4) {
    read.argument_error = "-ERR The `numfields` parameter must match the number of arguments\r\n";
  }
  std::vector<absl::string_view> hmget = {"HMGET", argv[1]};
  if (read.argument_error.empty()) {
    hmget.insert(hmget.end(), argv.begin() + 4, argv.end());
  } else {
    hmget.push_back(argv[4]);  // Only for its WRONGTYPE, which comes first.
  }
  read.forward = EncodeCommand(hmget);
  return read;
}

std::string FieldTtlReply(absl::string_view hmget_reply, absl::string_view argument_error) {
  if (hmget_reply.empty() || hmget_reply[0] != '*') {
    return std::string(hmget_reply);  // WRONGTYPE, NOAUTH..., or +QUEUED inside MULTI.
  }
  if (!argument_error.empty()) return std::string(argument_error);
  size_t pos = 0;
  int64_t count = 0;
  if (!absl::SimpleAtoi(TakeLine(hmget_reply, &pos).substr(1), &count) || count < 0) {
    return std::string(hmget_reply);
  }
  std::string out = absl::StrCat("*", count, "\r\n");
  for (int64_t i = 0; i < count && pos < hmget_reply.size(); ++i) {
    // HMGET's elements: a bulk string (the field exists), or nil: `$-1` in RESP2, `_` in RESP3.
    const absl::string_view line = TakeLine(hmget_reply, &pos);
    int64_t len = -1;
    if (!line.empty() && line[0] == '$' && absl::SimpleAtoi(line.substr(1), &len) && len >= 0) {
      pos += static_cast<size_t>(len) + 2;
    }
    // Data on 7.0 has no field TTLs: an existing field answers -1, a missing one -2.
    out.append(len >= 0 ? ":-1\r\n" : ":-2\r\n");
  }
  return out;
}

void AppendDumpReply(absl::string_view reply, int version, std::string* out) {
  const size_t start = out->size();
  out->append(reply.data(), reply.size());
  const size_t eol = reply.find("\r\n");
  int64_t len = 0;
  if (reply.empty() || reply[0] != '$' || eol == absl::string_view::npos ||
      !absl::SimpleAtoi(reply.substr(1, eol - 1), &len) ||
      len < static_cast<int64_t>(kPayloadFooterBytes) ||
      reply.size() < eol + 2 + static_cast<size_t>(len)) {
    return;  // Nil (no such key), an error, or not a payload.
  }
  const absl::string_view payload = reply.substr(eol + 2, static_cast<size_t>(len));
  if (redis::PayloadVersion(payload) == version) return;
  SetPayloadVersionInPlace(out->data() + start + eol + 2, static_cast<size_t>(len), version);
}

}  // namespace ferry::testing
