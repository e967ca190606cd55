// Errors as values: every function that can fail at a module boundary returns a Status or a
// Result<T>. The message carries its context ("reading data/lake/t/_delta_log/...: ...") so the
// CLI can print it as the one line an operator sees.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace lakevault {

class Error {
 public:
  Error() = default;
  explicit Error(std::string message) : message_(std::move(message)) {}
  const std::string& message() const { return message_; }
  // Prefixes context, e.g. Error("disk full").Context("writing backup_x.tar.gz").
  Error Context(const std::string& what) const { return Error(what + ": " + message_); }

 private:
  std::string message_;
};

class Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design
  static Status Ok() { return Status(); }
  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const {
    assert(error_);
    return *error_;
  }
  const std::string& message() const { return error().message(); }

 private:
  std::optional<Error> error_;
};

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : value_(std::move(error)) {}  // NOLINT
  Result(Status status) : value_(status.error()) {}  // NOLINT: only from a failed Status
  bool ok() const { return std::holds_alternative<T>(value_); }
  explicit operator bool() const { return ok(); }
  T& value() & {
    assert(ok());
    return std::get<T>(value_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(value_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(value_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const {
    assert(!ok());
    return std::get<Error>(value_);
  }
  const std::string& message() const { return error().message(); }
  Status status() const { return ok() ? Status::Ok() : Status(error()); }

 private:
  std::variant<T, Error> value_;
};

}  // namespace lakevault

// Returns early from the enclosing function when `expr` (a Status or Result) failed.
#define LV_RETURN_IF_ERROR(expr)                             \
  do {                                                       \
    auto lv_status_ = (expr);                                \
    if (!lv_status_.ok()) return Status(lv_status_.error()); \
  } while (0)

#define LV_CONCAT_INNER(a, b) a##b
#define LV_CONCAT(a, b) LV_CONCAT_INNER(a, b)
// `LV_ASSIGN_OR_RETURN(auto x, Foo());` binds the value or returns the error.
#define LV_ASSIGN_OR_RETURN(decl, expr) \
  LV_ASSIGN_OR_RETURN_IMPL(LV_CONCAT(lv_result_, __LINE__), decl, expr)
#define LV_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.error();              \
  decl = std::move(tmp).value()
