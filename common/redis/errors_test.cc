#include "common/redis/errors.h"

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace ferry::redis {
namespace {

struct Case {
  const char* reply;
  absl::StatusCode code;
  ErrorClass error_class;
};

class ReplyErrorTableTest : public testing::TestWithParam<Case> {};

TEST_P(ReplyErrorTableTest, MapsCodeAndClassAndKeepsTheText) {
  const Case& c = GetParam();
  const absl::Status status = StatusFromReplyError(c.reply);
  EXPECT_EQ(status.code(), c.code) << c.reply;
  EXPECT_EQ(status.message(), c.reply);
  EXPECT_EQ(Classify(status), c.error_class) << c.reply;
}

using absl::StatusCode;
constexpr ErrorClass kTransient = ErrorClass::kTransient;
constexpr ErrorClass kRedirect = ErrorClass::kRedirect;
constexpr ErrorClass kVersion = ErrorClass::kVersion;
constexpr ErrorClass kPerKey = ErrorClass::kPerKey;
constexpr ErrorClass kFatal = ErrorClass::kFatal;

INSTANTIATE_TEST_SUITE_P(
    RedisReplies, ReplyErrorTableTest,
    testing::Values(
        Case{"NOAUTH Authentication required.", StatusCode::kUnauthenticated, kFatal},
        Case{"WRONGPASS invalid username-password pair or user is disabled.",
             StatusCode::kUnauthenticated, kFatal},
        Case{"ERR invalid password", StatusCode::kUnauthenticated, kFatal},
        Case{"ERR AUTH <password> called without any password configured for the default user. "
             "Are you sure your configuration is correct?",
             StatusCode::kUnauthenticated, kFatal},
        Case{"ERR Client sent AUTH, but no password is set", StatusCode::kUnauthenticated, kFatal},
        Case{"NOPERM this user has no permissions to run the 'restore' command",
             StatusCode::kPermissionDenied, kFatal},
        Case{"ERR unknown command 'RESTORE', with args beginning with: 'k' '0' ",
             StatusCode::kPermissionDenied, kFatal},
        Case{"ERR unknown command `CONFIG`, with args beginning with: `GET`, ",
             StatusCode::kPermissionDenied, kFatal},
        Case{"OOM command not allowed when used memory > 'maxmemory'.",
             StatusCode::kResourceExhausted, kFatal},
        Case{"LOADING Redis is loading the dataset in memory", StatusCode::kUnavailable,
             kTransient},
        Case{"BUSY Redis is busy running a script. You can only call SCRIPT KILL or "
             "SHUTDOWN NOSAVE.",
             StatusCode::kUnavailable, kTransient},
        Case{"TRYAGAIN Multiple keys request during rehashing of slot", StatusCode::kUnavailable,
             kTransient},
        Case{"CLUSTERDOWN The cluster is down", StatusCode::kUnavailable, kTransient},
        Case{"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
             StatusCode::kUnavailable, kTransient},
        Case{"READONLY You can't write against a read only replica.", StatusCode::kUnavailable,
             kTransient},
        Case{"MOVED 3999 127.0.0.1:6381", StatusCode::kAborted, kRedirect},
        Case{"ASK 3999 127.0.0.1:6381", StatusCode::kAborted, kRedirect},
        Case{"BUSYKEY Target key name already exists.", StatusCode::kAlreadyExists, kPerKey},
        Case{"ERR DUMP payload version or checksum are wrong", StatusCode::kUnimplemented,
             kVersion},
        Case{"ERR Bad data format", StatusCode::kUnimplemented, kVersion},
        Case{"WRONGTYPE Operation against a key holding the wrong kind of value",
             StatusCode::kInvalidArgument, kPerKey},
        Case{"ERR string exceeds maximum allowed size (proto-max-bulk-len)",
             StatusCode::kInvalidArgument, kPerKey},
        Case{"ERR syntax error", StatusCode::kInvalidArgument, kPerKey}));

TEST(ReplyErrorKindTest, ReadsTheFirstWordOrTheKnownTexts) {
  EXPECT_EQ(Kind("MOVED 3999 127.0.0.1:6381"), ReplyErrorKind::kMoved);
  EXPECT_EQ(Kind("ASK 3999 127.0.0.1:6381"), ReplyErrorKind::kAsk);
  EXPECT_EQ(Kind("TRYAGAIN Multiple keys request during rehashing of slot"),
            ReplyErrorKind::kTryAgain);
  EXPECT_EQ(Kind("CLUSTERDOWN The cluster is down"), ReplyErrorKind::kClusterDown);
  EXPECT_EQ(Kind("ERR invalid password"), ReplyErrorKind::kAuth);
  EXPECT_EQ(Kind("ERR unknown command 'X'"), ReplyErrorKind::kUnknownCommand);
  EXPECT_EQ(Kind("ERR Bad data format"), ReplyErrorKind::kPayloadVersion);
  EXPECT_EQ(Kind("ERR This instance has cluster support disabled"), ReplyErrorKind::kNoCluster);
  EXPECT_EQ(Kind("CLUSTER: ERR This instance has cluster support disabled"),
            ReplyErrorKind::kNoCluster);
  EXPECT_EQ(Kind("WRONGTYPE Operation against a key holding the wrong kind of value"),
            ReplyErrorKind::kOther);
  EXPECT_EQ(Kind(""), ReplyErrorKind::kOther);
}

TEST(ReplyErrorKindTest, RouterResendsOnlyWhatPassesByItself) {
  for (const char* reply : {"TRYAGAIN x", "CLUSTERDOWN x", "LOADING x", "MASTERDOWN x"}) {
    EXPECT_TRUE(RouterResends(Kind(reply))) << reply;
  }
  // Transient for the caller, but not for a router's few seconds of retries.
  for (const char* reply : {"BUSY x", "READONLY x", "NOREPLICAS x", "MOVED 1 a:1", "ASK 1 a:1",
                            "OOM x", "ERR syntax error"}) {
    EXPECT_FALSE(RouterResends(Kind(reply))) << reply;
  }
}

TEST(RedirectTest, ParsesMovedAndAsk) {
  std::optional<Redirect> moved = ParseRedirect("MOVED 3999 10.0.0.1:6381", "seed");
  ASSERT_TRUE(moved.has_value());
  EXPECT_FALSE(moved->ask);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->host, "10.0.0.1");
  EXPECT_EQ(moved->port, 6381);
  std::optional<Redirect> ask = ParseRedirect("ASK 0 [::1]:7000", "seed");
  ASSERT_TRUE(ask.has_value());
  EXPECT_TRUE(ask->ask);
  EXPECT_EQ(ask->slot, 0);
  EXPECT_EQ(ask->host, "::1");
  EXPECT_EQ(ask->port, 7000);
}

TEST(RedirectTest, UnknownEndpointMeansTheSameHost) {
  EXPECT_EQ(ParseRedirect("MOVED 1 :6381", "seed")->host, "seed");
  EXPECT_EQ(ParseRedirect("MOVED 1 ?:6381", "seed")->host, "seed");
}

TEST(RedirectTest, RefusesAnythingElse) {
  EXPECT_FALSE(ParseRedirect("MOVED 16384 a:1", "s").has_value());  // No such slot.
  EXPECT_FALSE(ParseRedirect("MOVED -1 a:1", "s").has_value());
  EXPECT_FALSE(ParseRedirect("MOVED 1 a", "s").has_value());  // No port.
  EXPECT_FALSE(ParseRedirect("MOVED 1", "s").has_value());
  EXPECT_FALSE(ParseRedirect("MOVEDX 1 a:1", "s").has_value());
  EXPECT_FALSE(ParseRedirect("TRYAGAIN 1 a:1", "s").has_value());
}

TEST(RetryLaterTest, TransientAndRedirectOnly) {
  EXPECT_TRUE(MayRetryLater(StatusCode::kUnavailable));
  EXPECT_TRUE(MayRetryLater(StatusCode::kDeadlineExceeded));
  EXPECT_TRUE(MayRetryLater(StatusCode::kAborted));
  for (StatusCode code :
       {StatusCode::kUnimplemented, StatusCode::kFailedPrecondition, StatusCode::kDataLoss,
        StatusCode::kPermissionDenied, StatusCode::kResourceExhausted, StatusCode::kInvalidArgument,
        StatusCode::kInternal}) {
    EXPECT_FALSE(MayRetryLater(code)) << code;
  }
}

TEST(ReplyErrorTest, BusyKeyIsNotBusy) {
  // BUSY is transient, BUSYKEY is about one key; a prefix match would confuse them.
  EXPECT_EQ(StatusFromReplyError("BUSYKEY x").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(StatusFromReplyError("BUSYGROUP Consumer Group name already exists").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusFromReplyError("BUSY").code(), StatusCode::kUnavailable);
}

TEST(ReplyErrorTest, PrefixesAreWholeWords) {
  EXPECT_EQ(StatusFromReplyError("MOVEDX 1 a:1").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusFromReplyError("ASKING is not allowed").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusFromReplyError("ERR unknown subcommand 'SHARDS'").code(),
            StatusCode::kInvalidArgument);
}

TEST(ReplyErrorTest, EmptyReplyIsStillAnError) {
  const absl::Status status = StatusFromReplyError("");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(Classify(status), kPerKey);
}

TEST(PayloadVersionTest, RecognisesBothTexts) {
  EXPECT_TRUE(IsPayloadVersionError("ERR DUMP payload version or checksum are wrong"));
  EXPECT_TRUE(IsPayloadVersionError("ERR Bad data format"));
  EXPECT_FALSE(IsPayloadVersionError("ERR syntax error"));
  EXPECT_FALSE(IsPayloadVersionError("BUSYKEY Target key name already exists."));
}

TEST(RefusalTest, TellsKeyAndChannelPatternsFromCommands) {
  // Redis 6.2 / 7.0 texts.
  EXPECT_EQ(ClassifyRefusal("NOPERM this user has no permissions to access one of the keys used "
                            "as arguments"),
            Refusal::kKey);
  EXPECT_EQ(ClassifyRefusal("NOPERM this user has no permissions to access one of the channels "
                            "used as arguments"),
            Refusal::kChannel);
  EXPECT_EQ(ClassifyRefusal("NOPERM this user has no permissions to run the 'pttl' command"),
            Refusal::kCommand);
  EXPECT_EQ(ClassifyRefusal("NOPERM this user has no permissions to run the 'config|get' command "
                            "or its subcommand"),
            Refusal::kCommand);
  // Redis 7.2+ texts, as a status message prefixed with the command.
  EXPECT_EQ(ClassifyRefusal("PTTL: NOPERM No permissions to access a key"), Refusal::kKey);
  EXPECT_EQ(ClassifyRefusal("NOPERM No permissions to access a channel"), Refusal::kChannel);
  EXPECT_EQ(ClassifyRefusal("NOPERM User reader has no permissions to run the 'set' command"),
            Refusal::kCommand);
  // A renamed command reads as unknown: the command is what is missing.
  EXPECT_EQ(ClassifyRefusal("ERR unknown command 'SET', with args beginning with: "),
            Refusal::kCommand);
}

TEST(ClassifyTest, MapsIoStatuses) {
  EXPECT_EQ(Classify(absl::UnavailableError("connection reset")), kTransient);
  EXPECT_EQ(Classify(absl::DeadlineExceededError("read timed out")), kTransient);
  EXPECT_EQ(Classify(absl::AbortedError("MOVED 1 a:1")), kRedirect);
  EXPECT_EQ(Classify(absl::UnimplementedError("payload")), kVersion);
  // A stale lease or a changed cursor scheme: not a payload problem, nothing a retry fixes.
  EXPECT_EQ(Classify(absl::FailedPreconditionError("scheme changed")), kFatal);
  EXPECT_EQ(Classify(absl::DataLossError("target restarted")), kFatal);
  EXPECT_EQ(Classify(absl::UnauthenticatedError("auth")), kFatal);
  EXPECT_EQ(Classify(absl::PermissionDeniedError("noperm")), kFatal);
  EXPECT_EQ(Classify(absl::ResourceExhaustedError("oom")), kFatal);
  EXPECT_EQ(Classify(absl::AlreadyExistsError("busykey")), kPerKey);
  EXPECT_EQ(Classify(absl::InvalidArgumentError("wrongtype")), kPerKey);
  EXPECT_EQ(Classify(absl::InternalError("other")), kPerKey);
}

}  // namespace
}  // namespace ferry::redis
