// The passes that turn guests into inode records: config, scan, inodes;
// and opening an inode again, safely, for the passes that read content.
//
// An inode is "fully seen" when the walk found every one of its links
// (leftover temporaries count: they are about to go). Only then does
// replacing its names free it, and only then does the run know everyone
// that would see a change to it - the rule behind every decision to
// replace, thaw or flag an inode.
#include "unify/passes.h"

#include "kernel/path.h"
#include "unify/swap.h"

#include <fcntl.h>
#include <tbb/parallel_sort.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <map>
#include <numeric>

namespace vu {

ConfigFiles resolve_config_files(RunContext& rc) {
  PassTimer timer(rc, "config");
  // Each listed path is resolved inside its guest (symlinks followed, but
  // only within the guest root, e.g. /lib -> usr/lib): the inode is
  // excluded wherever it is linked, and the resolved path by name too.
  ConfigFiles out;
  out.paths.assign(rc.guests.size(), {});
  for (uint32_t g = 0; g < rc.guests.size(); ++g) {
    auto& paths = out.paths[g];
    paths = rc.guests[g].config_files;
    const std::string& root = rc.guests[g].guest.root;
    const std::string prefix = root == "/" ? "" : root;
    for (const auto& p : rc.guests[g].config_files) {
      auto fd = open_in_root(rc.roots[g].get(), p);
      if (!fd.ok()) continue; // listed but not present: nothing to keep private
      auto st = stat_fd(fd->get());
      if (st.ok() && st->is_regular()) out.inodes.insert({st->dev, st->ino});
      auto real = fd_path(fd->get());
      if (real.ok() && real->size() > prefix.size() &&
          real->compare(0, prefix.size(), prefix) == 0 && (*real)[prefix.size()] == '/')
        paths.push_back(real->substr(prefix.size()));
    }
    std::sort(paths.begin(), paths.end());
    paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  }
  return out;
}

ScanOptions content_scan_options(const RunOptions& o) {
  ScanOptions scan;
  scan.min_size = o.min_size;
  scan.max_size = o.max_size;
  scan.range_lo = o.range_lo;
  scan.range_hi = o.range_hi;
  scan.histogram = o.histogram;
  scan.budget = o.budget;
  scan.log_skips = o.log_skips;
  scan.one_file_system = o.one_file_system;
  scan.skip_secrets = true;
  return scan;
}

void scan_pass(RunContext& rc, const ConfigFiles& config, const ScanOptions& options) {
  PassTimer timer(rc, "scan");
  rc.stage(ProgressStage::scan);
  ScanOptions o = options;
  o.temp_names = &rc.temps;
  o.progress = rc.options.progress;
  rc.scan = scan_guests(rc.guests, rc.roots, config.paths, o, rc.report, rc.log);
}

void inodes_pass(RunContext& rc, const ConfigFiles& config) {
  PassTimer timer(rc, "inodes");
  // The records point into rc.scan.files from here on; a run may append
  // up to one record per inode later (vhashify's new store names), and
  // the vector must not move then (address space only).
  rc.scan.files.reserve(2 * rc.scan.files.size());
  const ScanResult& scan = rc.scan;
  auto& order = rc.inode_names;
  order.assign(scan.files.size(), 0);
  std::iota(order.begin(), order.end(), 0);
  tbb::parallel_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const auto& x = scan.files[a].st;
    const auto& y = scan.files[b].st;
    return std::tie(x.dev, x.ino, a) < std::tie(y.dev, y.ino, b);
  });
  // Leftover temporaries are removed before linking: not a reason to
  // think an inode has links elsewhere.
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> temp_links;
  for (const auto& tr : scan.temporaries) ++temp_links[{tr.st.dev, tr.st.ino}];
  auto same_inode = [&](size_t i, size_t j) {
    const FileStat& a = scan.files[order[i]].st;
    const FileStat& b = scan.files[order[j]].st;
    return a.dev == b.dev && a.ino == b.ino;
  };
  size_t count = 0; // reserve exactly: a doubling vector of records is most of a run's memory
  for (size_t i = 0; i < order.size(); ++i)
    if (i == 0 || !same_inode(i - 1, i)) ++count;
  auto& inodes = rc.inodes;
  inodes.clear();
  inodes.reserve(count);
  for (size_t i = 0; i < order.size();) {
    InodeRec rec;
    rec.st = &rc.scan.files[order[i]].st;
    size_t j = i;
    while (j < order.size() && same_inode(i, j)) {
      if (rc.guests[scan.files[order[j]].guest()].role != GuestRole::member)
        rec.member_only = false;
      ++j;
    }
    rec.names_begin = static_cast<uint32_t>(i); // order is rc.inode_names
    // The count has 27 bits: an inode with more names (134 million links)
    // keeps the first of them and is left alone.
    rec.names_count = static_cast<uint32_t>(std::min<size_t>(j - i, k_max_inode_names));
    if (j - i > k_max_inode_names) rec.failed = true;
    auto tl = temp_links.find({rec.st->dev, rec.st->ino});
    rec.fully_seen =
        rc.names_of(rec).size() + (tl == temp_links.end() ? 0 : tl->second) >= rec.st->nlink;
    rec.frozen = rc.attrs->looks_protected(*rec.st);
    if (rc.names_of(rec).size() >= 2) rc.report.files_already_shared += rc.names_of(rec).size();
    if (config.inodes.count({rec.st->dev, rec.st->ino})) {
      rec.config = true;
      rc.report.files_config += rc.names_of(rec).size();
    }
    inodes.push_back(std::move(rec));
    i = j;
  }
}

namespace {

// The checks shared by open_inode and InodeOpener: logs a failure to open,
// and refuses an inode that is not the scanned one any more.
Result<UniqueFd> checked_open(RunContext& rc, const InodeRec& inode, Result<UniqueFd> fd) {
  if (!fd.ok()) {
    if (is_race(fd.code()))
      rc.log.skip(Skip::changed);
    else
      rc.log.add(Failure::open, rc.display(rc.names_of(inode).front()), fd.error().message());
    return fd;
  }
  auto st = stat_fd(fd->get());
  if (!st.ok()) {
    rc.log.add(Failure::stat, rc.display(rc.names_of(inode).front()), st.error().message());
    return st.error();
  }
  if (!st->same_version(*inode.st) || !st->is_regular()) {
    rc.log.skip(Skip::changed);
    return described_error(ESTALE, "changed since the scan");
  }
  return fd;
}

} // namespace

Result<UniqueFd> open_inode(RunContext& rc, const InodeRec& inode) {
  const FileRec& f = rc.scan.files[rc.names_of(inode).front()];
  return checked_open(rc, inode,
                      open_file_for_read(rc.roots[f.guest()].get(), std::string(f.path)));
}

Result<UniqueFd> InodeOpener::open(const InodeRec& inode) {
  const FileRec& f = m_rc.scan.files[m_rc.names_of(inode).front()];
  auto [dir, base] = split_path(f.path.view());
  if (base.empty() || base.size() > NAME_MAX) // not a name the walk can have produced
    return checked_open(m_rc, inode, described_error(EINVAL, "bad path " + std::string(f.path)));
  if (!m_dirfd.valid() || m_guest != f.guest() || m_dir != dir) {
    m_dirfd.reset();
    m_guest = UINT32_MAX;
    m_dir.assign(dir);
    auto d = open_beneath(m_rc.roots[f.guest()].get(), m_dir, O_PATH | O_DIRECTORY);
    if (!d.ok()) return checked_open(m_rc, inode, d.error());
    m_dirfd = std::move(*d);
    m_guest = f.guest();
  }
  // One component, opened beneath the directory: no symlink, no "..". The
  // directory may have moved since it was opened; the inode check below
  // (dev, ino, size, times) is what makes the result the scanned file.
  char name[NAME_MAX + 1];
  std::memcpy(name, base.data(), base.size());
  name[base.size()] = '\0';
  return checked_open(m_rc, inode, open_file_for_read(m_dirfd.get(), name));
}

void sort_by_path(const RunContext& rc, std::vector<uint32_t>& idx) {
  // A placement by first-name index, not a comparison sort: the sort's
  // scattered reads of records were 0.14 s of CPU at 40 guests.
  const auto& inodes = rc.inodes;
  std::vector<uint32_t> at(rc.scan.files.size(), UINT32_MAX);
  bool twice = false;
  for (uint32_t i : idx) {
    uint32_t& slot = at[rc.names_of(inodes[i]).front()];
    twice |= slot != UINT32_MAX;
    slot = i;
  }
  if (twice) { // an inode listed twice: sort instead
    std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) {
      return rc.names_of(inodes[a]).front() < rc.names_of(inodes[b]).front();
    });
    return;
  }
  size_t k = 0;
  for (uint32_t i : at)
    if (i != UINT32_MAX) idx[k++] = i;
}

} // namespace vu
