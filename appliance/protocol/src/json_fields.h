// Typed field readers for the live-move JSON messages (move_protocol.cc,
// live_move_types.cc). Every failure is kInvalidArgument naming the message
// and the dotted field ("prepare: disks[1].top: missing"), so a peer that
// sends something wrong is told exactly what.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace appliance::json_fields {

// Names the message ("prepare") and the path to the object being read
// ("disks[1]"); field names are appended per read.
class Reader {
 public:
  Reader(const nlohmann::json& j, std::string what, std::string path = "")
      : j_(j), what_(std::move(what)), path_(std::move(path)) {}

  base::Error Bad(std::string_view field, std::string_view why) const {
    return base::Error(base::Code::kInvalidArgument,
                       what_ + ": " + Name(field) + ": " + std::string(why));
  }
  std::string Name(std::string_view field) const {
    return path_.empty() ? std::string(field) : path_ + "." + std::string(field);
  }
  const std::string& what() const { return what_; }

  bool Has(const char* field) const {
    return j_.is_object() && j_.contains(field) && !j_[field].is_null();
  }

  base::Result<std::string> String(const char* field, bool required = true,
                                   std::string fallback = "") const {
    if (!Has(field)) {
      if (required) return Bad(field, "missing");
      return fallback;
    }
    const auto& v = j_[field];
    if (!v.is_string()) return Bad(field, "must be a string");
    return v.get<std::string>();
  }

  base::Result<uint64_t> U64(const char* field, bool required = true, uint64_t fallback = 0,
                             uint64_t max = std::numeric_limits<uint64_t>::max()) const {
    if (!Has(field)) {
      if (required) return Bad(field, "missing");
      return fallback;
    }
    const auto& v = j_[field];
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
      return Bad(field, "must be a non-negative integer");
    uint64_t x = v.get<uint64_t>();
    if (x > max) return Bad(field, "must be at most " + std::to_string(max));
    return x;
  }

  base::Result<int64_t> I64(const char* field, bool required = true, int64_t fallback = 0) const {
    if (!Has(field)) {
      if (required) return Bad(field, "missing");
      return fallback;
    }
    const auto& v = j_[field];
    if (!v.is_number_integer()) return Bad(field, "must be an integer");
    return v.get<int64_t>();
  }

  base::Result<double> Double(const char* field, bool required = true, double fallback = 0) const {
    if (!Has(field)) {
      if (required) return Bad(field, "missing");
      return fallback;
    }
    const auto& v = j_[field];
    if (!v.is_number()) return Bad(field, "must be a number");
    return v.get<double>();
  }

  base::Result<bool> Bool(const char* field, bool required = true, bool fallback = false) const {
    if (!Has(field)) {
      if (required) return Bad(field, "missing");
      return fallback;
    }
    const auto& v = j_[field];
    if (!v.is_boolean()) return Bad(field, "must be true or false");
    return v.get<bool>();
  }

  // An array field (empty array if optional and absent).
  base::Result<const nlohmann::json*> Array(const char* field, bool required = true) const {
    static const nlohmann::json kEmpty = nlohmann::json::array();
    if (!Has(field)) {
      if (required) return Bad(field, "missing");
      return &kEmpty;
    }
    const auto& v = j_[field];
    if (!v.is_array()) return Bad(field, "must be an array");
    return &v;
  }

  // A reader for element i of array `field` (an object).
  base::Result<Reader> Element(const char* field, const nlohmann::json& element, size_t i) const {
    std::string name = Name(field) + "[" + std::to_string(i) + "]";
    if (!element.is_object())
      return base::Error(base::Code::kInvalidArgument, what_ + ": " + name + ": must be an object");
    return Reader(element, what_, name);
  }

 private:
  const nlohmann::json& j_;
  std::string what_;
  std::string path_;
};

// Checks that j is an object before any field is read.
inline base::Status RequireObject(const nlohmann::json& j, std::string_view what) {
  if (!j.is_object())
    return base::Error(base::Code::kInvalidArgument, std::string(what) + ": not a JSON object");
  return base::Ok();
}

}  // namespace appliance::json_fields
