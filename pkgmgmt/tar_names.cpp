// Tar header parsing (see tar_names.h). Layout of a 512-byte header
// (POSIX ustar): name 0..99, size 124..135, checksum 148..155, type 156,
// magic "ustar" at 257, prefix 345..499. Numbers are octal text, or
// base-256 when the first byte has its high bit set (GNU).
#include "pkgmgmt/tar_names.h"

#include <algorithm>
#include <cstring>

namespace vu {

namespace {

constexpr size_t k_block = 512;

Result<uint64_t> parse_number(const unsigned char* field, size_t len, const char* what) {
  uint64_t v = 0;
  if (field[0] & 0x80) {
    v = field[0] & 0x7f;
    for (size_t i = 1; i < len; ++i) {
      if (v >> 55)
        return described_error(EOVERFLOW, std::string("tar header: ") + what + " too large");
      v = (v << 8) | field[i];
    }
    return v;
  }
  size_t i = 0;
  while (i < len && (field[i] == ' ' || field[i] == 0)) ++i;
  for (; i < len && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (v >> 60)
      return described_error(EOVERFLOW, std::string("tar header: ") + what + " too large");
    v = v * 8 + static_cast<uint64_t>(field[i] - '0');
  }
  for (; i < len; ++i)
    if (field[i] != ' ' && field[i] != 0)
      return described_error(EINVAL, std::string("tar header: bad ") + what);
  return v;
}

bool checksum_matches(const unsigned char* b, uint64_t stored) {
  uint64_t plain = 0;
  int64_t sign = 0;
  for (size_t i = 0; i < k_block; ++i) {
    unsigned char c = (i >= 148 && i < 156) ? ' ' : b[i];
    plain += c;
    sign += static_cast<signed char>(c);
  }
  return plain == stored || static_cast<uint64_t>(sign) == stored;
}

std::string field_text(const unsigned char* f, size_t len) {
  const auto* end = std::find(f, f + len, 0);
  return std::string(reinterpret_cast<const char*>(f), static_cast<size_t>(end - f));
}

// Member types without data after the header: hard link, symlink,
// character and block device, directory, FIFO.
bool has_no_data(char type) {
  return type >= '1' && type <= '6';
}

bool is_member(char type) {
  return type == 0 || (type >= '0' && type <= '7');
}

} // namespace

Status TarNameReader::feed(std::string_view bytes) {
  if (failed_) return error_;
  auto fail = [&](Error e) -> Status {
    failed_ = true;
    error_ = std::move(e);
    return error_;
  };
  total_ += bytes.size();
  if (total_ > limits_.max_stream_bytes)
    return fail(described_error(EFBIG, "tar stream larger than " +
                                           std::to_string(limits_.max_stream_bytes) + " bytes"));
  while (!bytes.empty()) {
    if (skip_ > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(skip_, bytes.size()));
      skip_ -= n;
      bytes.remove_prefix(n);
    } else if (meta_left_ > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(meta_left_, bytes.size()));
      meta_.append(bytes.substr(0, n));
      meta_left_ -= n;
      bytes.remove_prefix(n);
      if (meta_left_ == 0) {
        skip_ = meta_padding_;
        if (auto r = meta_done(); !r.ok()) return fail(r.error());
      }
    } else {
      size_t n = std::min(k_block - block_.size(), bytes.size());
      block_.append(bytes.substr(0, n));
      bytes.remove_prefix(n);
      if (block_.size() < k_block) break;
      auto r = header(reinterpret_cast<const unsigned char*>(block_.data()));
      block_.clear();
      if (!r.ok()) return fail(r.error());
    }
  }
  return {};
}

Status TarNameReader::finish() {
  if (failed_) return error_;
  if (skip_ > 0 || meta_left_ > 0 || !block_.empty() || !next_name_.empty()) {
    failed_ = true;
    error_ = described_error(EINVAL, "tar stream ends inside a member");
    return error_;
  }
  return {};
}

Status TarNameReader::header(const unsigned char* b) {
  if (std::all_of(b, b + k_block, [](unsigned char c) { return c == 0; })) return {};
  VU_TRY_ASSIGN(stored, parse_number(b + 148, 8, "checksum"));
  if (!checksum_matches(b, stored))
    return described_error(EINVAL, "tar header: checksum mismatch (not a tar stream)");
  VU_TRY_ASSIGN(size, parse_number(b + 124, 12, "size"));
  if (size > limits_.max_stream_bytes)
    return described_error(EFBIG, "tar header: member larger than the stream may be");
  const uint64_t padded = (size + k_block - 1) / k_block * k_block;
  const char type = static_cast<char>(b[156]);
  if (type == 'L' || type == 'x') {
    if (size > limits_.max_meta_bytes)
      return described_error(EFBIG, "tar header: long name or pax header too large");
    meta_type_ = type;
    meta_.clear();
    meta_left_ = size;
    meta_padding_ = padded - size;
    if (size == 0) return meta_done();
    return {};
  }
  if (!is_member(type)) { // pax global header, GNU long link name, ...
    skip_ = padded;
    return {};
  }
  std::string raw;
  if (!next_name_.empty()) {
    raw = std::move(next_name_);
    next_name_.clear();
  } else {
    raw = field_text(b, 100);
    const bool ustar = std::memcmp(b + 257, "ustar", 5) == 0;
    std::string prefix = ustar ? field_text(b + 345, 155) : std::string();
    if (!prefix.empty()) raw = prefix + "/" + raw;
  }
  skip_ = has_no_data(type) ? 0 : padded;
  return take_name(std::move(raw));
}

Status TarNameReader::meta_done() {
  const char type = meta_type_;
  meta_type_ = 0;
  if (type == 'L') {
    next_name_ = meta_.substr(0, meta_.find('\0'));
    if (next_name_.empty()) return described_error(EINVAL, "tar: empty long name");
    return {};
  }
  // pax records: "LEN key=value\n", LEN counting the whole record.
  std::string_view rest(meta_);
  while (!rest.empty()) {
    auto sp = rest.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 8)
      return described_error(EINVAL, "tar: bad pax record");
    size_t len = 0;
    for (char c : rest.substr(0, sp)) {
      if (c < '0' || c > '9') return described_error(EINVAL, "tar: bad pax record length");
      len = len * 10 + static_cast<size_t>(c - '0');
    }
    if (len <= sp + 1 || len > rest.size() || rest[len - 1] != '\n')
      return described_error(EINVAL, "tar: bad pax record length");
    std::string_view record = rest.substr(sp + 1, len - sp - 2);
    rest.remove_prefix(len);
    if (record.rfind("path=", 0) == 0) {
      next_name_ = std::string(record.substr(5));
      if (next_name_.empty() || next_name_.find('\0') != std::string::npos)
        return described_error(EINVAL, "tar: bad pax path");
    }
  }
  return {};
}

Status TarNameReader::take_name(std::string raw) {
  if (raw.size() > 4096) return described_error(ENAMETOOLONG, "tar: member name too long");
  std::string_view n(raw);
  while (n.rfind("./", 0) == 0 || n.rfind("/", 0) == 0) n.remove_prefix(n.front() == '.' ? 2 : 1);
  while (!n.empty() && n.back() == '/') n.remove_suffix(1);
  if (n.empty() || n == ".") return {};
  std::string path;
  for (size_t pos = 0; pos <= n.size();) {
    size_t end = std::min(n.find('/', pos), n.size());
    std::string_view part = n.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return described_error(EINVAL, "tar: member name with '..': " + raw);
    path += "/";
    path += part;
  }
  if (path.empty()) return {};
  if (names_.size() >= limits_.max_names)
    return described_error(E2BIG,
                           "tar: more than " + std::to_string(limits_.max_names) + " members");
  names_.push_back(std::move(path));
  return {};
}

} // namespace vu
