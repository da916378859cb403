// Read-only memory mapping of a whole file. Model weights are used in place
// from the mapping, so a warm page cache makes loading nearly free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "frugal/status.h"

namespace frugal {

class MappedFile {
 public:
  static Expected<std::unique_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Reads a whole (small) file into a string.
Expected<std::string> read_file_to_string(const std::string& path);

}  // namespace frugal
