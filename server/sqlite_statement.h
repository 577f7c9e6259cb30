#pragma once

// The job store's thin layer over SQLite's C API: errors as absl::Status, one prepared statement
// as an RAII object, and transactions (server/job_store.cc is their one user).

#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ferry::server {

// INTERNAL with `what` and SQLite's message (which names tables and constraints, never bound
// values).
absl::Status SqliteError(sqlite3* db, absl::string_view what);

// A prepared statement; columns and parameters are 1-based for Bind, 0-based for reads.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  Statement& Bind(int i, int64_t v);
  Statement& BindText(int i, absl::string_view v);
  Statement& BindBlob(int i, absl::string_view v);
  // True when a row is available; false when done.
  absl::StatusOr<bool> Step();
  absl::Status Run() { return Step().status(); }
  // Ready to run again, with no parameter bound (a statement kept for many runs).
  void Reset();
  int64_t Int(int col);
  std::string Bytes(int col);

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Runs `body` between BEGIN IMMEDIATE and COMMIT, rolling back when it fails. Inside a
// transaction that is already open (`nested`: a batch, JobStore::BeginBatch), `body` runs in a
// savepoint instead: a failure undoes only its own writes, and its success commits nothing yet.
// Callers hold the mutex `body` requires; clang's analysis cannot carry that through the
// template parameter.
template <typename Body>
absl::Status InTransaction(sqlite3* db, bool nested, Body body) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  const char* begin = nested ? "SAVEPOINT ferry_write" : "BEGIN IMMEDIATE";
  const char* commit = nested ? "RELEASE ferry_write" : "COMMIT";
  const char* rollback = nested ? "ROLLBACK TO ferry_write; RELEASE ferry_write" : "ROLLBACK";
  if (sqlite3_exec(db, begin, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteError(db, "begin");
  }
  absl::Status status = body();
  if (status.ok() && sqlite3_exec(db, commit, nullptr, nullptr, nullptr) != SQLITE_OK) {
    status = SqliteError(db, "commit");
  }
  if (!status.ok()) sqlite3_exec(db, rollback, nullptr, nullptr, nullptr);
  return status;
}

}  // namespace ferry::server
