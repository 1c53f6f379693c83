// Real package data for the integration tests, built once and cached under
// $VU_TEST_CACHE (default /var/tmp/vunify-test-cache): a debootstrapped
// minbase bookworm tree (with sysv-rc and the webfs HTTP server, so that
// it also boots as a guest with a real daemon) and two small noarch RPMs
// built with rpmbuild.
// Each returns "" and sets `why` when this machine cannot provide it, so
// the test reports a skip.
#pragma once

#include <string>
#include <vector>

namespace vu::test {

std::string cache_dir();
// The first Debian mirror of the host's apt configuration.
std::string host_mirror();
// debootstrap's --cache-dir for every debootstrap of the tests: the .debs
// cached_minbase downloaded, so a later debootstrap fetches nothing.
std::string debootstrap_debs();
std::string cached_minbase(std::string& why);
std::string cached_deb(const std::string& pkg);
// Paths of vu-test-a and vu-test-b .rpm files. vu-test-a: %config
// /etc/vu-a.conf and /usr/share/vu-a/settings.ini, plain
// /usr/share/vu-a/data.bin; vu-test-b: %config(noreplace) /etc/vu-b.conf and
// /usr/lib/vu-b/defaults.cfg, plain /usr/lib/vu-b/lib.bin.
std::vector<std::string> cached_test_rpms(std::string& why);
// vu-test-c 1.0 and 1.1: a %pre that adds the system user vuc (and
// writes the host name and PID namespace it ran in to /var/tmp/vu-c.pre),
// %config(noreplace) /etc/vu-c.conf, /usr/share/vu-c/{README,data.bin}
// (data.bin differs between the versions), /var/lib/vu-c/state owned by
// vuc.
std::vector<std::string> cached_user_rpms(std::string& why);
// Installs rpms into root with its database in root/var/lib/rpm.
bool install_rpms(const std::string& root, const std::vector<std::string>& rpms);

} // namespace vu::test
