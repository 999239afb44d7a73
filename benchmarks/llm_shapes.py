"""The LLM benchmark set of issue #16, as plain data: (label, M, N, K) for C[M, N] = A[M, K] . Bt[N, K]^T.

A literal list, no imports, no code (`ast.literal_eval` reads it too): the Python side (`python -m hkjit bench
--shapes llm`) and the standalone sm90a harness (benchmarks/sm90a_standalone/check.py) both read SHAPES. Labels
are unique; a shape that belongs to several groups appears once, under its first label. M is tokens (prefill) or
batch (decode), N the output features, K the input features of an nn.Linear (weight = Bt, N x K).

Groups, in order:
  issue   - the shapes the issue measured (cubes, ragged 3000x5000x7000, skinny 128x8192x8192, big-N / big-K).
  8b-*    - Llama-3 8B projections: hidden 4096; qkv N = 6144 (32 q + 2 x 8 kv heads of 128); o N = 4096;
            mlp gate+up fused N = 28672 (2 x 14336); down K = 14336.
  70b-*   - Llama-3 70B: hidden 8192; qkv N = 10240 (64 q + 2 x 8 kv heads of 128); o N = 8192;
            mlp up N = 28672 (gate and up each; fused would be 57344, the issue's 4096x57344x8192); down K = 28672.
  prefill M = 2048, 4096, 8192, 16384 tokens; decode M = 16, 64, 128, 256.
"""

SHAPES = [
    ("cube-4096", 4096, 4096, 4096),
    ("cube-8192", 8192, 8192, 8192),
    ("issue-8192x6144x4096", 8192, 6144, 4096),
    ("issue-8192x28672x4096", 8192, 28672, 4096),
    ("issue-8192x4096x14336", 8192, 4096, 14336),
    ("issue-4096x57344x8192", 4096, 57344, 8192),
    ("issue-8192x8192x28672", 8192, 8192, 28672),
    ("issue-2048x4096x4096", 2048, 4096, 4096),
    ("ragged-3000x5000x7000", 3000, 5000, 7000),
    ("skinny-128x8192x8192", 128, 8192, 8192),
    ("8b-qkv-prefill2048", 2048, 6144, 4096),
    ("8b-gateup-prefill2048", 2048, 28672, 4096),
    ("8b-down-prefill2048", 2048, 4096, 14336),
    ("70b-qkv-prefill2048", 2048, 10240, 8192),
    ("70b-o-prefill2048", 2048, 8192, 8192),
    ("70b-up-prefill2048", 2048, 28672, 8192),
    ("70b-down-prefill2048", 2048, 8192, 28672),
    ("8b-qkv-prefill4096", 4096, 6144, 4096),
    ("8b-gateup-prefill4096", 4096, 28672, 4096),
    ("8b-down-prefill4096", 4096, 4096, 14336),
    ("70b-qkv-prefill4096", 4096, 10240, 8192),
    ("70b-o-prefill4096", 4096, 8192, 8192),
    ("70b-up-prefill4096", 4096, 28672, 8192),
    ("70b-down-prefill4096", 4096, 8192, 28672),
    ("8b-o-prefill8192", 8192, 4096, 4096),
    ("70b-qkv-prefill8192", 8192, 10240, 8192),
    ("70b-up-prefill8192", 8192, 28672, 8192),
    ("8b-qkv-prefill16384", 16384, 6144, 4096),
    ("8b-o-prefill16384", 16384, 4096, 4096),
    ("8b-gateup-prefill16384", 16384, 28672, 4096),
    ("8b-down-prefill16384", 16384, 4096, 14336),
    ("70b-qkv-prefill16384", 16384, 10240, 8192),
    ("70b-o-prefill16384", 16384, 8192, 8192),
    ("70b-up-prefill16384", 16384, 28672, 8192),
    ("70b-down-prefill16384", 16384, 8192, 28672),
    ("8b-qkv-decode16", 16, 6144, 4096),
    ("8b-o-decode16", 16, 4096, 4096),
    ("8b-gateup-decode16", 16, 28672, 4096),
    ("8b-down-decode16", 16, 4096, 14336),
    ("70b-qkv-decode16", 16, 10240, 8192),
    ("70b-o-decode16", 16, 8192, 8192),
    ("70b-up-decode16", 16, 28672, 8192),
    ("70b-down-decode16", 16, 8192, 28672),
    ("8b-qkv-decode64", 64, 6144, 4096),
    ("8b-o-decode64", 64, 4096, 4096),
    ("8b-gateup-decode64", 64, 28672, 4096),
    ("8b-down-decode64", 64, 4096, 14336),
    ("70b-qkv-decode64", 64, 10240, 8192),
    ("70b-o-decode64", 64, 8192, 8192),
    ("70b-up-decode64", 64, 28672, 8192),
    ("70b-down-decode64", 64, 8192, 28672),
    ("8b-qkv-decode128", 128, 6144, 4096),
    ("8b-o-decode128", 128, 4096, 4096),
    ("8b-gateup-decode128", 128, 28672, 4096),
    ("8b-down-decode128", 128, 4096, 14336),
    ("70b-qkv-decode128", 128, 10240, 8192),
    ("70b-up-decode128", 128, 28672, 8192),
    ("70b-down-decode128", 128, 8192, 28672),
    ("8b-qkv-decode256", 256, 6144, 4096),
    ("8b-o-decode256", 256, 4096, 4096),
    ("8b-gateup-decode256", 256, 28672, 4096),
    ("8b-down-decode256", 256, 4096, 14336),
    ("70b-qkv-decode256", 256, 10240, 8192),
    ("70b-o-decode256", 256, 8192, 8192),
    ("70b-up-decode256", 256, 28672, 8192),
    ("70b-down-decode256", 256, 8192, 28672),
]
