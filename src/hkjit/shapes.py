"""Named shape sets for `bench` and `tune` (``--shapes llm``), as data, and the parser of a --shapes value.

The one copy of the LLM set: tools/sm90a_standalone/check.py executes this file on its own (no hkjit import),
so the module keeps no imports at its top.
"""
from __future__ import annotations

#: (N, K) of the projections of Llama-3 8B (hidden 4096) and 70B (hidden 8192): fused q/k/v, attention output,
#: fused MLP up+gate (8B: 2 x 14336; 70B: the 28672-wide one), MLP down.
LLAMA3_PROJECTIONS: tuple[tuple[str, int, int], ...] = (
    ("llama3-8b qkv", 6144, 4096), ("llama3-8b o", 4096, 4096), ("llama3-8b up+gate", 28672, 4096),
    ("llama3-8b down", 4096, 14336),
    ("llama3-70b qkv", 10240, 8192), ("llama3-70b o", 8192, 8192), ("llama3-70b up", 28672, 8192),
    ("llama3-70b down", 8192, 28672),
)
PREFILL_M = (2048, 4096, 8192, 16384)     # tokens per prefill batch
DECODE_M = (16, 64, 128, 256)             # sequences per decode step


def _llm() -> tuple[tuple[str, tuple[int, int, int]], ...]:
    named = [("cube", (4096, 4096, 4096)), ("cube", (8192, 8192, 8192)), ("issue-16", (8192, 6144, 4096)),
             ("issue-16", (8192, 28672, 4096)), ("issue-16", (8192, 4096, 14336)), ("issue-16", (4096, 57344, 8192)),
             ("issue-16", (8192, 8192, 28672)), ("issue-16", (2048, 4096, 4096)),
             ("ragged", (3000, 5000, 7000)), ("skinny-m", (128, 8192, 8192))]
    named += [(f"{label} prefill", (m, n, k)) for label, n, k in LLAMA3_PROJECTIONS for m in PREFILL_M]
    named += [(f"{label} decode", (m, n, k)) for label, n, k in LLAMA3_PROJECTIONS for m in DECODE_M]
    seen, out = set(), []
    for label, shape in named:
        if shape not in seen:
            seen.add(shape)
            out.append((label, shape))
    return tuple(out)


#: label and (M, N, K) of every shape of the LLM set (issue #16): the issue's shapes, then Llama-3 8B/70B
#: projections at prefill (M = 2048..16384) and decode (M = 16..256) sizes; duplicates dropped.
LLM_SHAPES: tuple[tuple[str, tuple[int, int, int]], ...] = _llm()

#: Named sets: the LLM set, and its two halves by the M of the Llama-3 projections (prefill: M >= 2048 tokens;
#: decode: M <= 256 sequences), so `tune --shapes decode` tunes the half that the small-M configurations serve.
SHAPE_SETS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "llm": tuple(s for _label, s in LLM_SHAPES),
    "prefill": tuple((m, n, k) for _label, n, k in LLAMA3_PROJECTIONS for m in PREFILL_M),
    "decode": tuple((m, n, k) for _label, n, k in LLAMA3_PROJECTIONS for m in DECODE_M),
}


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    """A --shapes value: comma-separated MxNxK shapes and set names (llm, prefill, decode), e.g.
    ``decode,3000x5000x7000``."""
    from .selftest import parse_shape
    out: list[tuple[int, int, int]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.lower() in SHAPE_SETS:
            out += SHAPE_SETS[part.lower()]
        else:
            try:
                out.append(parse_shape(part))
            except ValueError as e:
                raise ValueError(f"{e}, or a named set ({', '.join(SHAPE_SETS)})") from None
    if not out:
        raise ValueError(f"no shapes in {text!r}: give MxNxK shapes or a named set ({', '.join(SHAPE_SETS)})")
    return out
