// Human-readable output of the ferry CLI, built from the API's JSON. Pure, so
// the formats are unit-tested; --json bypasses all of this.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace appliance {

// GET /v1/vms -> a table: NAME STATE VCPUS MEMORY PROGRAM, then LAST ERROR
// lines for VMs that have one.
std::string FormatVmList(const nlohmann::json& list);
// GET /v1/vms/{name} -> "key: value" lines.
std::string FormatVm(const nlohmann::json& vm);
// The one line printed after an action ("vm web1: running").
std::string FormatActionResult(const std::string& action, const nlohmann::json& vm);
// GET /v1/host -> "key: value" lines; a setting accepted but not built yet
// (migration.authentication) says so next to its value.
std::string FormatHost(const nlohmann::json& host);
// `ferry host certificate show`: this host's certificate, its fingerprint
// (what peers pin in [tls] trusted_fingerprints) and whom it trusts.
std::string FormatHostCertificate(const nlohmann::json& host);
// The message of an API error body, or the raw body when it is not one.
std::string ErrorMessage(long http_status, const std::string& body);

}  // namespace appliance
