#pragma once
// Compiler glue shared by every header.

// Formulas are callable from host code and, when compiled by nvcc, from device code:
// the GPU validator evaluates the very same closed forms as the library.
#if defined(__CUDACC__)
#define SIGPROP_HD __host__ __device__
#else
#define SIGPROP_HD
#endif

#define SIGPROP_VERSION_MAJOR 0
#define SIGPROP_VERSION_MINOR 1
#define SIGPROP_VERSION_PATCH 0
