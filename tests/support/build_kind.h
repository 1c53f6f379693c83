// What kind of build the tests run in, for the few tests whose subject the
// sanitizers change (address-space limits, the programs' link).
#pragma once

namespace vu::test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool k_under_asan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool k_under_asan = true;
#else
inline constexpr bool k_under_asan = false;
#endif
#else
inline constexpr bool k_under_asan = false;
#endif

} // namespace vu::test
