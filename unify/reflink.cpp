// vunify --reflink: identical files share their extents (FIDEDUPERANGE)
// instead of one inode. Every name keeps its own inode - owner, mode,
// times, xattrs, link count - so nothing is frozen and nothing needs
// undoing: a guest that writes such a file gets new blocks from the file
// system (copy on write) and the others keep theirs. The kernel compares
// the bytes itself, under both inodes' locks, and refuses a range that
// differs; a write racing the run, a kill at any instant, leave every
// file's content as it was.
//
// The passes are unify's (scan, inodes, group, prefix, hash) with three
// differences:
//   - groups are keyed by (device, size) only: metadata stays per name;
//   - before anything is read, each candidate's extent layout (FIEMAP) is
//     taken: files with the same layout read the same blocks, so one of
//     them is hashed for all, and a bucket that is one layout already is
//     done - a nightly re-run reads no content; files whose data lives
//     inline in the file system's metadata (btrfs's small files) share
//     nothing and are left alone;
//   - the last pass asks the kernel to share the canonical file's extents
//     with every other file of its group (dedupe_range, batches of files,
//     16 MiB at a time).
#include "unify/reflink.h"

#include "kernel/extents.h"
#include "kernel/path.h"
#include "unify/workers.h"

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_map>

namespace vu {

namespace {

// How much of a file one FIDEDUPERANGE call covers (btrfs's own limit per
// call; the kernel holds both inodes' locks meanwhile).
constexpr uint64_t k_dedupe_chunk = 16ull << 20;

void count_done(RunContext& rc, uint64_t names) {
  rc.files_linked.fetch_add(names, std::memory_order_relaxed);
  if (rc.options.progress)
    rc.options.progress->files_linked.fetch_add(names, std::memory_order_relaxed);
}

// What freeing the old blocks of the targets gives back: one copy per
// distinct layout among them (files with one layout hold the same blocks,
// freed once every one of them moved), every file without a layout alone.
// `done(i)` says whether target i moved.
template <typename Done>
uint64_t freed_bytes(const RunContext& rc, const Layouts& lay, const Group& g, Done done) {
  std::map<uint64_t, std::pair<uint64_t, bool>> by_layout; // layout -> (bytes, all moved)
  uint64_t freed = 0;
  for (size_t k = 1; k < g.inodes.size(); ++k) {
    uint32_t i = g.inodes[k];
    uint64_t bytes = allocated_bytes(*rc.inodes[i].st);
    if (lay.of[i] == 0) {
      if (done(k)) freed += bytes;
      continue;
    }
    auto [it, fresh] = by_layout.try_emplace(lay.of[i], bytes, true);
    it->second.second = it->second.second && done(k);
  }
  for (const auto& [l, v] : by_layout)
    if (v.second) freed += v.first;
  return freed;
}

void note_action(RunContext& rc, const char* verb, uint32_t inode, uint32_t canon) {
  if (!rc.options.log_actions) return;
  for (uint32_t n : rc.names_of(rc.inodes[inode]))
    rc.log.action(fmt::format("{} {} -> {}", verb, printable_path(rc.display(n)),
                              printable_path(rc.display(rc.names_of(rc.inodes[canon]).front()))));
}

// The targets of one batch, open; the kernel shares [0, size) with each.
void dedupe_batch(RunContext& rc, int src, uint64_t size, std::vector<DedupeDest>& dests,
                  const std::vector<uint32_t>& which, std::vector<bool>& moved,
                  const std::vector<size_t>& slot) {
  std::vector<bool> active(dests.size(), true);
  auto drop = [&](size_t d, Failure kind, const std::string& why) {
    active[d] = false;
    rc.log.add(kind, rc.display(rc.names_of(rc.inodes[which[d]]).front()), why);
  };
  // Whether file d stays in after a call's answer `r` for it. It drops out
  // when its range differs (a guest wrote one of the two files since they
  // were hashed, or the hashes collided: the kernel compared and refused)
  // or when the kernel refused it.
  auto keeps = [&](size_t d, const Status& call, const DedupeDest& r) {
    if (!call.ok()) {
      drop(d, Failure::dedupe, call.error().message());
      return false;
    }
    if (r.status == k_dedupe_differs) {
      active[d] = false;
      rc.log.skip(Skip::changed);
      return false;
    }
    if (r.status < 0) {
      drop(d, Failure::dedupe, fmt::format("FIDEDUPERANGE: {}", std::strerror(-r.status)));
      return false;
    }
    return true;
  };
  for (uint64_t off = 0; off < size;) {
    const uint64_t len = std::min(k_dedupe_chunk, size - off);
    std::vector<DedupeDest> now;
    std::vector<size_t> at;
    for (size_t d = 0; d < dests.size(); ++d)
      if (active[d]) {
        now.push_back({dests[d].fd, 0, 0});
        at.push_back(d);
      }
    if (now.empty()) return;
    if (auto s = dedupe_range(src, off, len, now); !s.ok()) {
      for (size_t d : at) drop(d, Failure::dedupe, s.error().message());
      return;
    }
    for (size_t k = 0; k < now.size(); ++k) {
      const size_t d = at[k];
      if (!keeps(d, Status{}, now[k])) continue;
      // A shorter answer: the rest of this chunk for this file alone.
      uint64_t got = now[k].bytes;
      while (got < len) {
        DedupeDest one{dests[d].fd, 0, 0};
        auto s = dedupe_range(src, off + got, len - got, std::span<DedupeDest>(&one, 1));
        if (!keeps(d, s, one)) break;
        if (one.bytes == 0) {
          drop(d, Failure::dedupe, "FIDEDUPERANGE: no progress");
          break;
        }
        got += one.bytes;
      }
    }
    off += len;
  }
  for (size_t d = 0; d < dests.size(); ++d)
    if (active[d]) moved[slot[d]] = true;
}

} // namespace

Layouts extents_pass(RunContext& rc, std::vector<std::vector<uint32_t>>& buckets) {
  PassTimer timer(rc, "extents");
  rc.stage(ProgressStage::hash);
  Layouts lay;
  lay.of.assign(rc.inodes.size(), 0);
  lay.place.assign(rc.inodes.size(), 0);
  std::vector<uint32_t> candidates;
  for (const auto& b : buckets) candidates.insert(candidates.end(), b.begin(), b.end());
  sort_by_path(rc, candidates);
  tbb::parallel_for(tbb::blocked_range<size_t>(0, candidates.size(), 16),
                    [&](const tbb::blocked_range<size_t>& r) {
                      InodeOpener opener(rc);
                      for (size_t k = r.begin(); k != r.end(); ++k) {
                        InodeRec& rec = rc.inodes[candidates[k]];
                        auto fd = opener.open(rec);
                        if (!fd.ok()) {
                          rec.failed = true;
                          continue;
                        }
                        // No layout (an error, or one that says nothing):
                        // the file is hashed like any other. Data kept
                        // inline cannot be shared: left alone, unread.
                        if (auto e = file_extents(fd->get()); e.ok()) {
                          lay.of[candidates[k]] = e->layout;
                          lay.place[candidates[k]] = e->first_physical;
                          if (e->inline_data) rec.failed = true;
                        }
                      }
                    });
  // Per bucket, one member per layout stays to be hashed for all.
  std::vector<std::vector<uint32_t>> out;
  for (auto& b : buckets) {
    std::unordered_map<uint64_t, uint32_t> first; // layout -> its representative
    std::vector<uint32_t> keep;
    std::vector<std::pair<uint32_t, uint32_t>> follow;
    for (uint32_t i : b) {
      if (rc.inodes[i].failed) continue;
      const uint64_t l = lay.of[i];
      if (l != 0) {
        auto [it, fresh] = first.try_emplace(l, i);
        if (!fresh) {
          follow.emplace_back(it->second, i);
          continue;
        }
      }
      keep.push_back(i);
    }
    if (keep.size() < 2) {
      // One layout (or one file beside it that failed): already one.
      if (keep.size() == 1 && !follow.empty()) {
        rc.report.files_already_shared += rc.names_of(rc.inodes[keep[0]]).size();
        for (const auto& [rep, f] : follow)
          rc.report.files_already_shared += rc.names_of(rc.inodes[f]).size();
      }
      continue;
    }
    lay.followers.insert(lay.followers.end(), follow.begin(), follow.end());
    out.push_back(std::move(keep));
  }
  buckets = std::move(out);
  return lay;
}

void reflink_plan_pass(RunContext& rc, const Layouts& lay,
                       std::vector<std::vector<uint32_t>>& buckets) {
  PassTimer timer(rc, "plan");
  auto& inodes = rc.inodes;
  // Followers join their representative's group with its hash: they hold
  // the same blocks (the kernel compares again before sharing anything).
  std::unordered_map<uint32_t, size_t> bucket_of;
  for (size_t b = 0; b < buckets.size(); ++b)
    for (uint32_t i : buckets[b]) bucket_of.emplace(i, b);
  std::unordered_map<uint32_t, bool> alone; // representatives without a group
  for (const auto& [rep, f] : lay.followers)
    if (auto it = bucket_of.find(rep); it != bucket_of.end()) {
      inodes[f].hash = inodes[rep].hash;
      buckets[it->second].push_back(f);
    } else { // no other content like theirs: they share already, nothing to do
      rc.report.files_already_shared += rc.names_of(inodes[f]).size();
      if (alone.emplace(rep, true).second)
        rc.report.files_already_shared += rc.names_of(inodes[rep]).size();
    }
  const auto& files = rc.scan.files;
  rc.groups.clear();
  for (auto& b : buckets) {
    std::unordered_map<uint64_t, uint32_t> count;
    for (uint32_t i : b)
      if (lay.of[i] != 0) ++count[lay.of[i]];
    auto sharers = [&](uint32_t i) { return lay.of[i] == 0 ? 1u : count[lay.of[i]]; };
    // The canonical file: an immutable one (the kernel changes no extents
    // of those), else the layout most members have already (least to
    // do), then guest order and path.
    std::sort(b.begin(), b.end(), [&](uint32_t x, uint32_t y) {
      if (inodes[x].st->immutable != inodes[y].st->immutable) return inodes[x].st->immutable;
      if (sharers(x) != sharers(y)) return sharers(x) > sharers(y);
      const FileRec& fx = files[rc.names_of(inodes[x]).front()];
      const FileRec& fy = files[rc.names_of(inodes[y]).front()];
      return std::pair(fx.guest(), fx.path) < std::pair(fy.guest(), fy.path);
    });
    Group g;
    const uint32_t canon = b.front();
    g.inodes.push_back(canon);
    if (sharers(canon) > 1) rc.report.files_already_shared += rc.names_of(inodes[canon]).size();
    for (size_t k = 1; k < b.size(); ++k) {
      const uint32_t i = b[k];
      if (lay.of[i] != 0 && lay.of[i] == lay.of[canon]) {
        rc.report.files_already_shared += rc.names_of(inodes[i]).size();
        continue;
      }
      if (!inodes[i].member_only) continue; // reference guests are never changed
      if (inodes[i].st->immutable) {
        rc.log.skip(Skip::immutable);
        if (rc.options.log_skips)
          for (uint32_t n : rc.names_of(inodes[i]))
            rc.log.action("left alone " + printable_path(rc.display(n)) +
                          ": immutable (its extents cannot change; vunify -R gives it back)");
        continue;
      }
      g.inodes.push_back(i);
    }
    if (g.inodes.size() >= 2) rc.groups.push_back(std::move(g));
  }
  rc.report.duplicate_groups = rc.groups.size();
}

void count_planned_reflink(RunContext& rc, const Layouts& lay) {
  auto& r = rc.report;
  r.bytes_saved_by_guest.assign(rc.guests.size(), 0);
  for (const auto& g : rc.groups) {
    r.bytes_saved += freed_bytes(rc, lay, g, [](size_t) { return true; });
    for (size_t k = 1; k < g.inodes.size(); ++k) {
      const InodeRec& rec = rc.inodes[g.inodes[k]];
      r.files_linked += rc.names_of(rec).size();
      r.bytes_saved_by_guest[rc.scan.files[rc.names_of(rec).front()].guest()] +=
          allocated_bytes(*rec.st);
      note_action(rc, "would share extents of", g.inodes[k], g.inodes[0]);
    }
  }
}

void reflink_pass(RunContext& rc, const Layouts& lay) {
  PassTimer timer(rc, "reflink");
  if (rc.options.hooks.before_link) rc.options.hooks.before_link();
  rc.stage(ProgressStage::link);
  const size_t batch = std::max<size_t>(1, std::min(rc.budget.names_per_batch, k_dedupe_dests));
  for_each_on_cores(rc.options.threads, rc.groups.begin(), rc.groups.end(), [&](const Group& g) {
    auto src = open_inode(rc, rc.inodes[g.inodes[0]]);
    if (!src.ok()) return;
    const uint64_t size = rc.inodes[g.inodes[0]].st->size;
    std::vector<bool> moved(g.inodes.size(), false);
    for (size_t first = 1; first < g.inodes.size(); first += batch) {
      std::vector<UniqueFd> fds;
      std::vector<DedupeDest> dests;
      std::vector<uint32_t> which;
      std::vector<size_t> slot;
      for (size_t k = first; k < std::min(g.inodes.size(), first + batch); ++k) {
        auto fd = open_inode(rc, rc.inodes[g.inodes[k]]);
        if (!fd.ok()) continue; // changed or gone: open_inode counted it
        dests.push_back({fd->get(), 0, 0});
        fds.push_back(std::move(*fd));
        which.push_back(g.inodes[k]);
        slot.push_back(k);
      }
      rc.files_compared.fetch_add(dests.size(), std::memory_order_relaxed);
      dedupe_batch(rc, src->get(), size, dests, which, moved, slot);
    }
    for (size_t k = 1; k < g.inodes.size(); ++k)
      if (moved[k]) {
        count_done(rc, rc.names_of(rc.inodes[g.inodes[k]]).size());
        note_action(rc, "shared extents of", g.inodes[k], g.inodes[0]);
      }
    rc.bytes_saved.fetch_add(freed_bytes(rc, lay, g, [&](size_t k) { return bool(moved[k]); }),
                             std::memory_order_relaxed);
  });
}

Status check_reflink_roots(const RunContext& rc) {
  for (size_t g = 0; g < rc.roots.size(); ++g)
    if (!shares_extents(rc.roots[g].get()))
      return described_error(
          EOPNOTSUPP, fmt::format("--reflink: {}'s root is not on btrfs or XFS, whose files can "
                                  "share extents (run without --reflink to link the files)",
                                  printable_path(rc.guests[g].guest.name)));
  return {};
}

} // namespace vu
