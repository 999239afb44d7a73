// gemm_reference.cpp - hkjit's portable C++ bf16 GEMM: the CPU kernel behind the same C ABI as the GPU ones.
//
// It exists so that the whole path (spec -> key -> lock -> build -> load -> call) runs on any machine, CI
// included, and as a readable statement of what every kernel computes: bf16 inputs, fp32 accumulation, bf16
// output rounded to nearest-even. Cache-blocked: a KC x NC panel of Bt is converted to fp32 once and reused by
// every row of A, and the inner loop is a contiguous dot product the compiler vectorizes. No torch headers.
#include <stdint.h>
#include <string.h>
#include <vector>
#include "hkjit_gemm.h"

namespace hkjit_ref {

inline float bf16_to_float(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint16_t float_to_bf16(float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);                                                   // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

// The blocking is compile-time configuration (hkjit's CPU configurations, src/hkjit/specs.py CONFIGS): no
// defines give the default "n64k256".
#ifndef HKJIT_REF_BLOCK_N
#define HKJIT_REF_BLOCK_N 64
#endif
#ifndef HKJIT_REF_BLOCK_K
#define HKJIT_REF_BLOCK_K 256
#endif
constexpr int64_t NC = HKJIT_REF_BLOCK_N;  // columns of C (rows of Bt) per panel
constexpr int64_t KC = HKJIT_REF_BLOCK_K;  // depth per panel: NC*KC*4 bytes (64 KiB of fp32 by default), L2-resident
static_assert(NC > 0 && KC > 0, "HKJIT_REF_BLOCK_N and HKJIT_REF_BLOCK_K must be positive");

enum : int { OK = 0, BAD_SIZE = 1, BAD_STRIDE = 2, NULL_POINTER = 3 };

}  // namespace hkjit_ref

extern "C" int hkjit_gemm_bf16(const void* A_, int64_t lda, const void* Bt_, int64_t ldb, void* C_, int64_t ldc,
                               int64_t M, int64_t N, int64_t K, void* /*stream: the CPU runs synchronously*/) {
  using namespace hkjit_ref;
  if (M < 0 || N < 0 || K < 0) return BAD_SIZE;
  if (M == 0 || N == 0) return OK;
  if (ldc < N || (K > 0 && (lda < K || ldb < K))) return BAD_STRIDE;
  if (!C_ || (K > 0 && (!A_ || !Bt_))) return NULL_POINTER;
  const uint16_t* A = static_cast<const uint16_t*>(A_);
  const uint16_t* Bt = static_cast<const uint16_t*>(Bt_);
  uint16_t* C = static_cast<uint16_t*>(C_);

  std::vector<float> acc(static_cast<size_t>(M) * NC);  // fp32 accumulators of one column panel
  std::vector<float> bpanel(NC * KC), arow(KC);
  for (int64_t n0 = 0; n0 < N; n0 += NC) {
    const int64_t nc = N - n0 < NC ? N - n0 : NC;
    for (auto& v : acc) v = 0.f;
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t kc = K - k0 < KC ? K - k0 : KC;
      for (int64_t j = 0; j < nc; ++j)
        for (int64_t k = 0; k < kc; ++k) bpanel[j * KC + k] = bf16_to_float(Bt[(n0 + j) * ldb + k0 + k]);
      for (int64_t i = 0; i < M; ++i) {
        const uint16_t* a = A + i * lda + k0;
        for (int64_t k = 0; k < kc; ++k) arow[k] = bf16_to_float(a[k]);
        float* c = &acc[i * NC];
        for (int64_t j = 0; j < nc; ++j) {
          const float* b = &bpanel[j * KC];
          float s[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};  // 8 independent sums: vectorizable
          int64_t k = 0;
          for (; k + 8 <= kc; k += 8)
            for (int u = 0; u < 8; ++u) s[u] += arow[k + u] * b[k + u];
          float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
          for (; k < kc; ++k) t += arow[k] * b[k];
          c[j] += t;
        }
      }
    }
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < nc; ++j) C[i * ldc + n0 + j] = float_to_bf16(acc[i * NC + j]);
  }
  return OK;
}

extern "C" const char* hkjit_gemm_bf16_error(int code) {
  switch (code) {
    case hkjit_ref::OK: return "no error";
    case hkjit_ref::BAD_SIZE: return "negative size";
    case hkjit_ref::BAD_STRIDE: return "row stride smaller than the row";
    case hkjit_ref::NULL_POINTER: return "null data pointer";
    default: return "unknown error";
  }
}
