// File attributes in util-vserver's terms (immutable, iunlink, barrier, and
// the Linux-VServer flags admin/watch/hide/write/cow), with back ends chosen
// at run time:
//
//  - mainline: immutable = FS_IMMUTABLE_FL through FS_IOC_GETFLAGS/SETFLAGS
//    (regular files and directories on ext4, xfs, btrfs, tmpfs, ...);
//    barrier = mode 000 on a directory (clearing it sets 0755); iunlink and
//    the other VServer flags do not exist and are reported as unsupported.
//  - Linux-VServer: the `vserver` system call (VCMD_get_iattr/set_iattr),
//    detected when it answers VCMD_get_version. No machine here runs such a
//    kernel: this back end is tested at the ABI level only (encodings and
//    struct layout), see tests/unit/test_kernel_attr.cpp.
//
// Attributes are addressed as (directory descriptor, name) and never
// through a symlink: the mainline back end opens only regular files and
// directories (O_NOFOLLOW, beneath the directory); other file types report
// no supported attribute and are never opened.
#pragma once

#include "kernel/fs.h"
#include "kernel/result.h"

#include <cstdint>
#include <memory>
#include <string>

namespace vu {

// Bit values are util-vserver's VC_IATTR_* so --flags N means the same.
enum AttrBit : uint32_t {
  k_attr_admin = 0x00000001,
  k_attr_watch = 0x00000002,
  k_attr_hide = 0x00000004,
  k_attr_write = 0x00000008,
  k_attr_barrier = 0x00010000,
  k_attr_iunlink = 0x00020000,
  k_attr_immutable = 0x00040000,
  k_attr_cow = 0x00080000,
  k_attr_xid = 0x01000000,
};

// showattr's nine columns, in order, with their letters: a w h m b u i c x.
struct AttrColumn {
  uint32_t bit;
  char letter;
  const char* name; // long option name
};
inline constexpr AttrColumn k_attr_columns[] = {
    {k_attr_admin, 'a', "admin"},
    {k_attr_watch, 'w', "watch"},
    {k_attr_hide, 'h', "hide"},
    {k_attr_write, 'm', "write"},
    {k_attr_barrier, 'b', "barrier"},
    {k_attr_iunlink, 'u', "iunlink"},
    {k_attr_immutable, 'i', "immutable"},
    {k_attr_cow, 'c', "cow"},
    {k_attr_xid, 'x', "xid"},
};

struct AttrState {
  uint32_t flags = 0;     // set bits
  uint32_t supported = 0; // bits this back end can report for this file
};

// "---bUI---"-style rendering: upper case set, lower case supported but
// clear, '-' unsupported.
std::string render_attrs(const AttrState& s);

class AttrBackend {
public:
  virtual ~AttrBackend() = default;
  virtual const char* name() const = 0;
  // `st` is the entry's lstat (from stat_at), used to pick what applies.
  virtual Result<AttrState> get(int dirfd, const std::string& name, const FileStat& st) = 0;
  // Sets `set` and clears `clear`. Fails with EOPNOTSUPP (naming the flag)
  // when a bit is not supported for this file; nothing is changed then.
  virtual Status set(int dirfd, const std::string& name, const FileStat& st, uint32_t set,
                     uint32_t clear) = 0;

  // Protection of a shared inode: the strongest "no guest may change this"
  // the kernel offers - immutable on mainline, immutable + iunlink on
  // Linux-VServer (updates may still replace the name). `fd` is the open
  // regular file; back ends that address files by path also need its
  // directory and name (protect_needs_path()).
  virtual Status protect(int fd, int dirfd, const std::string& name, Protection p) = 0;
  virtual bool protect_needs_path() const { return false; }
  // Whether the open inode carries this back end's protection.
  virtual Result<bool> is_protected(int fd) = 0;
  // Whether a scan's statx says the inode is (probably) protected; acting
  // on it re-checks with is_protected.
  virtual bool looks_protected(const FileStat& st) const { return st.immutable; }
  // Whether link(2), rename(2) and unlink(2) work on a protected inode (so
  // adding names needs no thaw).
  virtual bool names_while_protected() const { return false; }
};

std::unique_ptr<AttrBackend> make_mainline_attr_backend();
std::unique_ptr<AttrBackend> make_vserver_attr_backend(long syscall_nr);
std::unique_ptr<AttrBackend> make_bpf_attr_backend();

// The back ends by name, for --attr-backend and the configuration.
inline constexpr const char* k_attr_backend_names[] = {"auto", "mainline", "bpf", "linux-vserver"};

// `wanted` is "auto" (or empty): the Linux-VServer back end when the kernel
// answers VCMD_get_version, else bpf when its program is loaded, else
// mainline. A named back end is used as it is, except "linux-vserver"
// where the kernel lacks it (mainline then, `notice` says why). "bpf"
// works without the program (marks are set, not enforced: `notice` says
// so). $VU_ATTR_BACKEND, when set, replaces "auto".
std::unique_ptr<AttrBackend> select_attr_backend(const std::string& wanted, std::string* notice);
std::unique_ptr<AttrBackend> detect_attr_backend();

// The Linux-VServer kernel ABI (util-vserver's lib/ and the kernel's
// include/linux/vserver/*.h).
namespace vserver_abi {

constexpr uint32_t vc_cmd(uint32_t category, uint32_t id, uint32_t version) {
  return ((category & 0x3F) << 24) | ((id & 0xFF) << 16) | (version & 0xFFF);
}
inline constexpr uint32_t k_cat_version = 0;
inline constexpr uint32_t k_cat_inode = 38;
inline constexpr uint32_t k_get_version = vc_cmd(k_cat_version, 0, 0);
inline constexpr uint32_t k_get_iattr = vc_cmd(k_cat_inode, 1, 1); // 0x26010001
inline constexpr uint32_t k_set_iattr = vc_cmd(k_cat_inode, 2, 1); // 0x26020001

// struct vcmd_ctx_iattr_v1: the file is named by a path (not followed at
// its last component by the kernel).
struct IattrV1 {
  const char* name;
  uint32_t tag; // xid
  uint32_t flags;
  uint32_t mask;
};

// __NR_vserver of the architecture this was compiled for (util-vserver's
// lib/syscall-fallback.h), or -1.
long syscall_number();

} // namespace vserver_abi

} // namespace vu
