// Keeps the library loadable on glibc 2.28, the oldest the wheels promise (manylinux_2_28).
//
// GCC 11+'s libstdc++ headers, on glibc 2.32+, read glibc's `__libc_single_threaded` to skip
// atomic reference counts (std::shared_ptr, std::locale) in a single-threaded process; that one
// reference is the library's only symbol newer than glibc 2.28. Defined here, hidden and always
// false, it binds inside the library: reference counts are always atomic, as on an older glibc.
// Correct with any glibc, and the cost (an atomic add where a plain one would do) is nanoseconds
// per op call. tests/test_build.py checks the library needs no newer glibc symbol.

extern "C" {
__attribute__((visibility("hidden"))) char __libc_single_threaded = 0;
}
