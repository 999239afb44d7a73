// hkjit_gemm.h - the C ABI every hkjit GEMM kernel exports (CPU reference, gfx950, sm_90a).
//
// Kept free of torch and of any GPU runtime header so that the kernel translation units never see torch and
// the torch binding (gemm_binding.cpp) never sees HIP/CUDA. Every kernel computes, in bf16 with fp32
// accumulation,
//
//     C[m, n] = sum_k A[m, k] * Bt[n, k]        0 <= m < M, 0 <= n < N, 0 <= k < K
//
// with row-major operands whose last dimension is contiguous: A is M x K with row stride lda (elements),
// Bt is N x K (B transposed, the nn.Linear weight layout) with row stride ldb, C is M x N with row stride ldc.
// Every element of C is written (no zero fill is needed and none is done). K == 0 writes zeros.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Launches (GPU) or runs (CPU) the product on `stream` (a hipStream_t / cudaStream_t, or NULL on the CPU).
// Returns 0 on success, otherwise a runtime error code that hkjit_gemm_bf16_error() turns into text.
// Bad arguments (negative sizes, strides smaller than the row, misaligned pointers the kernel cannot load)
// return a non-zero code: no launch is ever made with them.
int hkjit_gemm_bf16(const void* A, int64_t lda, const void* Bt, int64_t ldb, void* C, int64_t ldc,
                    int64_t M, int64_t N, int64_t K, void* stream);

// A human-readable message for a code returned by hkjit_gemm_bf16 (never NULL).
const char* hkjit_gemm_bf16_error(int code);

#ifdef __cplusplus
}
#endif
