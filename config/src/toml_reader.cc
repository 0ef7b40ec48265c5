#include "toml_reader.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace config {
namespace {

// Messages quote values; a huge array would drown the reason.
constexpr size_t kMaxDescribedChars = 60;

// Edit distance, for "did you mean" on unknown keys.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

base::Result<toml::table> ParseToml(std::string_view text, std::string_view source) {
  // The Debian toml++ library is built with exceptions, so its parser reports
  // syntax errors by throwing; they become values here and go no further.
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return base::Error(base::Code::kInvalidArgument,
                       std::string(source) + ": line " + std::to_string(where.line) + ", column " +
                           std::to_string(where.column) + ": " + std::string(e.description()));
  }
}

std::string QuoteToml(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string Describe(const toml::node& node) {
  std::string text;
  if (const auto* s = node.as_string()) {
    text = QuoteToml(s->get());
  } else if (node.is_table()) {
    return "a table";
  } else if (const auto* array = node.as_array()) {
    // Built here rather than by toml++, whose formatter may pick 'literal'
    // strings: messages quote strings one way.
    text = "[";
    for (size_t i = 0; i < array->size() && text.size() <= kMaxDescribedChars; ++i) {
      text += (i == 0 ? "" : ", ") + Describe(*array->get(i));
    }
    text += "]";
  } else {
    std::ostringstream os;
    node.visit([&os](const auto& n) { os << n; });
    text = os.str();
  }
  if (text.size() > kMaxDescribedChars) text = text.substr(0, kMaxDescribedChars - 3) + "...";
  return text;
}

base::Error InvalidValue(std::string_view source, std::string_view key, std::string_view reason) {
  std::string msg(source);
  msg += ": ";
  msg += key;
  msg += ": ";
  msg += reason;
  return base::Error(base::Code::kInvalidArgument, std::move(msg));
}

TableReader::TableReader(const toml::table& table, std::string_view source, std::string prefix)
    : table_(table), source_(source), prefix_(std::move(prefix)) {}

std::string TableReader::KeyPath(std::string_view key) const {
  if (prefix_.empty()) return std::string(key);
  return prefix_ + "." + std::string(key);
}

base::Error TableReader::Invalid(std::string_view key, std::string_view reason) const {
  return InvalidValue(source_, KeyPath(key), reason);
}

base::Error TableReader::Invalid(std::string_view key, std::string_view reason,
                                 const toml::node& got) const {
  return Invalid(key, std::string(reason) + ", got " + Describe(got));
}

const toml::node* TableReader::Get(std::string_view key) {
  known_.emplace_back(key);
  return table_.get(key);
}

base::Result<std::optional<std::string>> TableReader::String(std::string_view key) {
  const toml::node* node = Get(key);
  if (node == nullptr) return std::optional<std::string>();
  if (const auto* s = node->as_string()) return std::optional<std::string>(s->get());
  return Invalid(key, "must be a string", *node);
}

base::Result<std::optional<bool>> TableReader::Bool(std::string_view key) {
  const toml::node* node = Get(key);
  if (node == nullptr) return std::optional<bool>();
  if (const auto* b = node->as_boolean()) return std::optional<bool>(b->get());
  return Invalid(key, "must be true or false", *node);
}

base::Result<std::optional<int64_t>> TableReader::Integer(std::string_view key, int64_t min,
                                                          int64_t max) {
  const toml::node* node = Get(key);
  if (node == nullptr) return std::optional<int64_t>();
  const auto* i = node->as_integer();
  if (i == nullptr || i->get() < min || i->get() > max) {
    return Invalid(key,
                   "must be an integer from " + std::to_string(min) + " to " + std::to_string(max),
                   *node);
  }
  return std::optional<int64_t>(i->get());
}

base::Result<std::optional<size_t>> TableReader::Choice(
    std::string_view key, std::initializer_list<std::string_view> choices) {
  const toml::node* node = Get(key);
  if (node == nullptr) return std::optional<size_t>();
  if (const auto* s = node->as_string()) {
    size_t i = 0;
    for (auto choice : choices) {
      if (s->get() == choice) return std::optional<size_t>(i);
      ++i;
    }
  }
  std::string list;
  for (auto choice : choices) list += (list.empty() ? "" : ", ") + QuoteToml(choice);
  return Invalid(key, "must be one of " + list, *node);
}

base::Result<std::optional<std::vector<std::string>>> TableReader::StringArray(
    std::string_view key) {
  const toml::node* node = Get(key);
  if (node == nullptr) return std::optional<std::vector<std::string>>();
  const auto* array = node->as_array();
  if (array == nullptr) return Invalid(key, "must be an array of strings", *node);
  std::vector<std::string> out;
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const auto* s = element.as_string();
    if (s == nullptr) {
      return InvalidValue(source_, KeyPath(key) + "[" + std::to_string(i) + "]",
                          "must be a string, got " + Describe(element));
    }
    out.push_back(s->get());
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

base::Status TableReader::CheckNoUnknownKeys() const {
  // Report the unknown key that comes first in the file, not in map order.
  const toml::key* first = nullptr;
  for (const auto& [key, node] : table_) {
    if (std::find(known_.begin(), known_.end(), key.str()) != known_.end()) continue;
    if (first == nullptr || key.source().begin < first->source().begin) first = &key;
  }
  if (first == nullptr) return base::Ok();
  std::string reason = "unknown key";
  const std::string* best = nullptr;
  size_t best_distance = 3;  // further than two edits is not a typo
  for (const auto& candidate : known_) {
    size_t d = EditDistance(first->str(), candidate);
    if (d < best_distance) {
      best_distance = d;
      best = &candidate;
    }
  }
  if (best != nullptr) reason += " (did you mean \"" + *best + "\"?)";
  return Invalid(first->str(), reason);
}

}  // namespace config
