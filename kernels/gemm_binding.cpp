// gemm_binding.cpp - the torch side of every hkjit GEMM kernel: checks, allocation, stream, errors.
//
// The kernel itself sits behind the C ABI of hkjit_gemm.h in its own translation unit (gemm_reference.cpp,
// gemm_gfx950.hip, gemm_sm90a.cu); this file is the only one that sees torch. Built with -DHKJIT_GPU for the GPU
// kernels: then the launch goes on the current CUDA/HIP stream of A's device (on ROCm, torch's hipify maps the
// at::cuda names below to their HIP twins).
// ATen and torch's Python bindings only, not <torch/extension.h> (which adds torch/all.h: nn, optim, data...):
// the same code, ~20% less compile time for every kernel build.
#include <ATen/ATen.h>
#include <torch/python.h>
#include "hkjit_gemm.h"
#ifdef HKJIT_GPU
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace {

void check_operand(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 2, "hkjit: ", name, " must be 2-D, got ", t.dim(), "-D");
  TORCH_CHECK(t.scalar_type() == torch::kBFloat16, "hkjit: ", name, " must be bfloat16, got ", t.scalar_type());
  TORCH_CHECK(t.size(1) <= 1 || t.stride(1) == 1, "hkjit: ", name, " must have a unit stride in its last dim");
}

}  // namespace

// C (M x N, row stride C.stride(0)) = A (M x K) * Bt (N x K)^T; every element of C is written.
void gemm_out(torch::Tensor A, torch::Tensor Bt, torch::Tensor C) {
  check_operand(A, "A");
  check_operand(Bt, "Bt");
  check_operand(C, "C");
  const int64_t M = A.size(0), K = A.size(1), N = Bt.size(0);
  TORCH_CHECK(Bt.size(1) == K, "hkjit: A is ", M, "x", K, " but Bt is ", N, "x", Bt.size(1), " (inner dims differ)");
  TORCH_CHECK(C.size(0) == M && C.size(1) == N, "hkjit: C must be ", M, "x", N, ", got ", C.sizes());
  TORCH_CHECK(A.device() == Bt.device() && A.device() == C.device(), "hkjit: A, Bt and C must be on one device");
  if (M == 0 || N == 0) return;
  void* stream = nullptr;
#ifdef HKJIT_GPU
  TORCH_CHECK(A.is_cuda(), "hkjit: this module runs GPU tensors, got ", A.device());
  const c10::cuda::CUDAGuard guard(A.device());
  stream = static_cast<void*>(at::cuda::getCurrentCUDAStream(A.device().index()).stream());
#else
  TORCH_CHECK(A.is_cpu(), "hkjit: this module runs CPU tensors, got ", A.device());
#endif
  // A single row's stride never addresses memory, and torch may report anything for it: pass the row length
  // rounded up to 8 elements, which every kernel's alignment rule (16-byte rows) accepts.
  auto ld = [](const torch::Tensor& t, int64_t row) { return t.size(0) > 1 ? t.stride(0) : (row + 7) / 8 * 8; };
  const int64_t lda = ld(A, K), ldb = ld(Bt, K), ldc = ld(C, N);
  const int err = hkjit_gemm_bf16(A.data_ptr(), lda, Bt.data_ptr(), ldb, C.data_ptr(), ldc, M, N, K, stream);
  TORCH_CHECK(err == 0, "hkjit: kernel launch failed for M=", M, " N=", N, " K=", K, ": ",
              hkjit_gemm_bf16_error(err), " (error ", err, ")");
}

torch::Tensor gemm_forward(torch::Tensor A, torch::Tensor Bt) {
  check_operand(A, "A");
  check_operand(Bt, "Bt");
  auto C = torch::empty({A.size(0), Bt.size(0)}, A.options());
  gemm_out(A, Bt, C);
  return C;
}
