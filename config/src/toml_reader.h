// Schema-checked reading of one TOML table. Every getter marks its key as part
// of the schema, so CheckNoUnknownKeys() can reject typos instead of letting
// them fall back to defaults. Errors read "<source>: <dotted.key>: <reason>".
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace config {

// Parses TOML text; a syntax error names source, line and column
// ("host.toml:3:7: expected '=' ..."). kInvalidArgument.
base::Result<toml::table> ParseToml(std::string_view text, std::string_view source);

// Short TOML rendering of a value for messages: strings quoted, tables and
// long arrays abbreviated.
std::string Describe(const toml::node& node);
// A string as a TOML basic string literal (quoted, escaped).
std::string QuoteToml(std::string_view s);

// The error every schema violation produces.
base::Error InvalidValue(std::string_view source, std::string_view key, std::string_view reason);

class TableReader {
 public:
  // `table` must outlive the reader. `prefix` is the dotted path of the table
  // ("" for the root, "migration", "disks[0]").
  TableReader(const toml::table& table, std::string_view source, std::string prefix);

  // The node under key, or nullptr if absent. Marks key as known.
  const toml::node* Get(std::string_view key);

  // Typed getters: absent -> nullopt; wrong type or out of range -> an error
  // saying what was expected and what was found.
  base::Result<std::optional<std::string>> String(std::string_view key);
  base::Result<std::optional<bool>> Bool(std::string_view key);
  base::Result<std::optional<int64_t>> Integer(std::string_view key, int64_t min, int64_t max);
  // One of a fixed set of words; returns its index in `choices`.
  base::Result<std::optional<size_t>> Choice(std::string_view key,
                                             std::initializer_list<std::string_view> choices);
  // An array whose elements are all strings.
  base::Result<std::optional<std::vector<std::string>>> StringArray(std::string_view key);

  // "<source>: <prefix.key>: <reason>, got <value>".
  base::Error Invalid(std::string_view key, std::string_view reason, const toml::node& got) const;
  base::Error Invalid(std::string_view key, std::string_view reason) const;
  std::string KeyPath(std::string_view key) const;

  // Fails on the first key (in file order of the table's sorted keys) that no
  // getter asked for, suggesting the closest known key.
  base::Status CheckNoUnknownKeys() const;

 private:
  const toml::table& table_;
  std::string source_;
  std::string prefix_;
  std::vector<std::string> known_;
};

}  // namespace config
