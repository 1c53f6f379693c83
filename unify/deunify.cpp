// De-unification.
//
// For one shared inode S with names n1..nk in the guest:
//  1. open S beneath the guest root and check it is the scanned inode;
//  2. make a private copy C: O_TMPFILE in n1's directory (same file
//     system), data copied extent by extent (SEEK_DATA/SEEK_HOLE keep
//     holes), then owner, xattrs (ACLs, capabilities: after chown, which
//     would drop them), mode, times; compare C with S byte for byte;
//  3. thaw S if it is immutable (rename(2) refuses names of immutable
//     inodes, as in link.cpp), link C to a temporary name beside each ni and
//     RENAME_EXCHANGE the two, checking the old inode is S;
//  4. unlink the temporaries (S's old names), freeze S again if it still has
//     more than one link, and check nothing wrote to S meanwhile (lease,
//     size, mtime, content equal to C) - the others still share it.
// A kill -9 leaves names with either S or C (same content) and temporaries
// that vunify's next run removes.
#include "unify/deunify.h"
#include "unify/workers.h"

#include "unify/plan.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <tbb/parallel_for_each.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

namespace vu {

// Copies S's data into C keeping holes.
Status copy_data(int from, int to, uint64_t size, uint64_t& copied) {
  off_t pos = 0;
  while (static_cast<uint64_t>(pos) < size) {
    off_t data = ::lseek(from, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break; // only a hole is left
      return errno_error("lseek SEEK_DATA");
    }
    off_t hole = ::lseek(from, data, SEEK_HOLE);
    if (hole < 0) return errno_error("lseek SEEK_HOLE");
    off_t in = data, out = data;
    while (in < hole) {
      ssize_t n = ::copy_file_range(from, &in, to, &out, static_cast<size_t>(hole - in), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_error("copy_file_range");
      }
      if (n == 0) break;
      copied += static_cast<uint64_t>(n);
    }
    pos = hole;
  }
  if (::ftruncate(to, static_cast<off_t>(size)) != 0) return errno_error("ftruncate");
  return {};
}

Status copy_metadata(int from, int to) {
  struct stat st {};
  if (::fstat(from, &st) != 0) return errno_error("fstat");
  if (::fchown(to, st.st_uid, st.st_gid) != 0) return errno_error("fchown");
  VU_TRY_ASSIGN(names, list_xattrs(from));
  for (const auto& n : names) {
    VU_TRY_ASSIGN(value, get_xattr(from, n));
    VU_TRY(set_xattr(to, n, value));
  }
  if (::fchmod(to, st.st_mode & 07777) != 0) return errno_error("fchmod");
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::futimens(to, times) != 0) return errno_error("futimens");
  return {};
}

namespace {

struct Target {
  std::vector<uint32_t> names; // indices into files
  FileStat st;
};

} // namespace

static Result<Report> deunify_on_workers(const UnifyGuest& guest, const std::vector<std::string>& paths,
                           const DeunifyOptions& options) {
  auto start = std::chrono::steady_clock::now();
  Report report;
  report.dry_run = options.dry_run;
  report.guests.push_back({guest.guest.name, guest.guest.root, "member", "ignored", 0, {}});

  std::vector<UniqueFd> roots;
  VU_TRY_ASSIGN(root, open_directory(guest.guest.root));
  roots.push_back(std::move(root));
  std::vector<UnifyGuest> guests{guest};
  guests[0].excludes = ExcludeList{}; // every file, whatever the unify excludes say
  FailureLog log;

  // The names to consider: the whole guest, or the given paths.
  ScanResult scan;
  ScanOptions scan_opts;
  scan_opts.min_size = 1;
  scan_opts.progress = options.progress;
  std::vector<std::vector<std::string>> no_config(1);
  scan = scan_guests(guests, roots, no_config, scan_opts, report, log);
  if (!paths.empty()) {
    std::vector<std::string> wanted;
    for (auto p : paths) {
      while (!p.empty() && p.front() == '/') p.erase(0, 1);
      wanted.push_back(p);
    }
    std::sort(wanted.begin(), wanted.end());
    std::vector<FileRec> keep;
    for (auto& f : scan.files)
      if (std::binary_search(wanted.begin(), wanted.end(), std::string(f.path))) keep.push_back(f);
    scan.files = std::move(keep);
  }

  std::vector<InodeRec> no_inodes;
  auto attrs = detect_attr_backend();
  UnifyOptions unify_defaults;
  RunState rs{guests, roots, unify_defaults, scan, no_inodes, 0, log, *attrs};
  if (!options.dry_run) report.temporaries_removed = remove_temporaries(rs);

  // Inodes shared with something outside the guest, or frozen.
  std::map<std::pair<uint64_t, uint64_t>, Target> by_inode;
  for (uint32_t i = 0; i < scan.files.size(); ++i) {
    auto& t = by_inode[{scan.files[i].st.dev, scan.files[i].st.ino}];
    t.names.push_back(i);
    t.st = scan.files[i].st;
  }
  // In path mode, names of the guest that were not asked for count as
  // outside: they keep the shared inode.
  std::vector<Target> targets;
  for (auto& [id, t] : by_inode)
    if (t.st.nlink > t.names.size() || t.st.immutable) targets.push_back(std::move(t));

  std::atomic<uint64_t> names_done{0}, bytes{0};
  if (options.dry_run) {
    for (auto& t : targets) {
      names_done += t.names.size();
      bytes += t.st.size;
    }
  } else {
    // One worker per core: each target thaws a shared inode for a moment,
    // and fewer thawed at once means fewer left unprotected by a kill.
    for_each_on_cores(options.threads, targets.begin(), targets.end(), [&](Target& t) {
      const FileRec& first = scan.files[t.names.front()];
      const std::string where = guest.guest.name + ":/" + first.path;
      auto fd_s = open_file_for_read(roots[0].get(), first.path);
      if (!fd_s.ok()) return log.add(Failure::open, where, fd_s.error().message());
      auto s_st = stat_fd(fd_s->get());
      if (!s_st.ok() || !s_st->same_version(t.st)) return log.skip(Skip::changed);
      auto dir = open_beneath(roots[0].get(), parent_of(first.path), O_RDONLY | O_DIRECTORY);
      if (!dir.ok()) return log.add(Failure::open, where, dir.error().message());
      int cfd = ::openat(dir->get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
      if (cfd < 0) return log.add(Failure::open, where, std::string("O_TMPFILE: ") + std::strerror(errno));
      UniqueFd copy(cfd);
      uint64_t copied = 0;
      auto c1 = copy_data(fd_s->get(), cfd, t.st.size, copied);
      if (c1.ok()) c1 = copy_metadata(fd_s->get(), cfd);
      if (!c1.ok()) return log.add(Failure::read, where, c1.error().message());
      auto eq = same_content(fd_s->get(), cfd, t.st.size);
      auto s_again = stat_fd(fd_s->get());
      if (!eq.ok() || !*eq || !s_again.ok() || !s_again->same_version(t.st))
        return log.skip(Skip::changed);

      bool frozen = s_st->immutable;
      if (frozen) {
        auto r = protect_inode(rs, fd_s->get(), 0, first.path, false);
        if (!r.ok()) return log.add(Failure::attr, where, r.error().message());
      }
      // Swap every name of S in this guest for the copy.
      std::vector<std::pair<UniqueFd, std::string>> old_names; // (dir, temporary)
      for (uint32_t n : t.names) {
        const FileRec& f = scan.files[n];
        const std::string nwhere = guest.guest.name + ":/" + f.path;
        auto d = open_beneath(roots[0].get(), parent_of(f.path), O_RDONLY | O_DIRECTORY);
        if (!d.ok()) {
          log.add(Failure::open, nwhere, d.error().message());
          continue;
        }
        auto linked = link_to_temp(cfd, d->get());
        if (!linked.ok()) {
          log.add(Failure::link, nwhere, linked.error().message());
          continue;
        }
        const std::string tmp = *linked;
        std::string name = name_of(f.path);
        auto ex = rename_at(d->get(), tmp, d->get(), name, RENAME_EXCHANGE);
        if (!ex.ok()) {
          log.add(Failure::rename, nwhere, ex.error().message());
          (void)unlink_at(d->get(), tmp);
          continue;
        }
        auto old = stat_at(d->get(), tmp);
        if (!old.ok() || old->dev != t.st.dev || old->ino != t.st.ino) {
          // The name was replaced meanwhile: put it back, drop our link.
          (void)rename_at(d->get(), tmp, d->get(), name, RENAME_EXCHANGE);
          (void)unlink_at(d->get(), tmp);
          log.skip(Skip::changed);
          continue;
        }
        old_names.emplace_back(std::move(*d), tmp);
        names_done.fetch_add(1, std::memory_order_relaxed);
        if (options.log_actions) log.action("private copy " + printable_path(nwhere));
      }
      for (auto& [d, tmp] : old_names) {
        auto u = unlink_at(d.get(), tmp);
        if (!u.ok()) log.add(Failure::unlink, where, u.error().message());
      }
      bytes.fetch_add(copied, std::memory_order_relaxed);
      if (frozen) {
        auto now = stat_fd(fd_s->get());
        // The last other link gone: the inode is nobody's shared copy now.
        if (now.ok() && now->nlink > 1) {
          // S's names in this guest are gone; only its descriptor is left.
          auto r = attrs->protect_needs_path() ? Status(described_error(ENOTSUP, "re-protect by path"))
                                               : attrs->protect(fd_s->get(), -1, "", true);
          if (!r.ok()) log.add(Failure::attr, where, r.error().message());
          auto same = same_content(fd_s->get(), cfd, t.st.size);
          if (!no_writers(fd_s->get()) || !same.ok() || !*same || now->mtime_ns != t.st.mtime_ns)
            log.add(Failure::verify, where,
                    "shared inode changed while it was thawed; other guests may see the change");
        }
      }
    });
  }
  report.files_deunified = names_done.load();
  report.bytes_copied = bytes.load();
  log.drain_into(report);
  std::chrono::duration<double> d = std::chrono::steady_clock::now() - start;
  report.seconds = d.count();
  return report;
}


Result<Report> run_deunify(const UnifyGuest& guest, const std::vector<std::string>& paths,
                           const DeunifyOptions& options) {
  return with_workers(options.threads, [&]() -> Result<Report> {
    return deunify_on_workers(guest, paths, options);
  });
}

} // namespace vu
