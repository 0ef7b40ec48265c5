#include "auth/secret.h"

#include <string.h>  // explicit_bzero

#include <utility>

namespace auth {

Secret::Secret(std::string_view bytes) {
  if (bytes.empty()) return;
  data_ = std::make_unique_for_overwrite<char[]>(bytes.size());
  memcpy(data_.get(), bytes.data(), bytes.size());
  size_ = bytes.size();
  capacity_ = bytes.size();
}

Secret::Secret(std::string&& bytes) : Secret(std::string_view(bytes)) {
  // The whole capacity, not just size(): an earlier, longer value may still
  // sit behind the terminator.
  explicit_bzero(bytes.data(), bytes.capacity());
  bytes.clear();
}

Secret::~Secret() { Release(); }

Secret::Secret(Secret&& other) noexcept
    : data_(std::move(other.data_)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)) {}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

void Secret::Clear() {
  if (data_ != nullptr) explicit_bzero(data_.get(), capacity_);
  size_ = 0;
}

void Secret::Release() {
  Clear();
  data_.reset();
  capacity_ = 0;
}

}  // namespace auth
