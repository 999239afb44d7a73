"""Kernel configurations (specs.CONFIGS), per-shape selection (policy.SELECTION), ahead-of-time tuning records
(tuning.py, `python -m hkjit tune`), on the CPU reference kernel, with real builds and real processes.

One extra CPU build in this file: the module fixture `two_configs` copies built_cache (the default configuration)
and builds the second CPU configuration with `warmup --config all -j 2`. Every other test reads records and keys
(no build) or reuses that root.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from helpers import TOL, child_env, copy_cache, read_only

from hkjit import tuning
from hkjit.keys import key_inputs, key_of
from hkjit.policy import SELECTION, select_by_table
from hkjit.specs import CONFIGS, config_spec, configs_for, get_spec
from hkjit.warmup import warmup_specs

OTHER = "n128k128"       # the CPU's second configuration


def hk(*args: str, cache: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hkjit", *args], env=child_env(cache, **env), capture_output=True,
                          text=True, timeout=timeout)


def child(code: str, cache: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=child_env(cache), capture_output=True,
                          text=True, timeout=timeout)


def last_json(p: subprocess.CompletedProcess) -> dict:
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ data, no build
def test_configurations_are_data_with_their_own_keys():
    for arch, configs in CONFIGS.items():
        base = get_spec(arch)
        assert configs[0].name == base.config and config_spec(arch) is base and config_spec(arch, base.config) is base
        for cfg in configs[1:]:
            spec = config_spec(arch, cfg.name)
            flags = spec.device_cflags if base.device_sources else spec.cflags
            assert flags[-len(cfg.defines):] == cfg.defines and spec.config == cfg.name
            assert spec.constraints == cfg.constraints
    assert "-DHKJIT_SM90A_SPLITK=1" in config_spec("sm_90a", "64x256-splitk").device_cflags
    assert config_spec("sm_90a", "64x256-splitk").constraints.block_m == 64
    default, other = key_inputs(get_spec("cpu")), key_inputs(config_spec("cpu", OTHER))
    assert "config" not in default                       # the default's key is the key of before configurations
    assert other["config"] == OTHER and "-DHKJIT_REF_BLOCK_N=128" in other["flags"]["cflags"]
    assert key_of(default) != key_of(other)
    with pytest.raises(Exception, match="no configuration 'nope' for cpu: not of the form nNkK .*; configurations: "
                                        "n64k256, n128k128"):
        config_spec("cpu", "nope")


SPELLED = {   # name -> (defines, (block_m, block_n)) of configurations outside CONFIGS that their names spell
    "128x96": (("-DHKJIT_SM90A_BM=128", "-DHKJIT_SM90A_BN=96"), (128, 96)),
    "64x96-pingpong-st6": (("-DHKJIT_SM90A_BM=64", "-DHKJIT_SM90A_BN=96", "-DHKJIT_SM90A_PINGPONG=1",
                            "-DHKJIT_SM90A_STAGES=6"), (64, 96)),
    "64x80-csplit": (("-DHKJIT_SM90A_BM=64", "-DHKJIT_SM90A_BN=80", "-DHKJIT_SM90A_SPLITK=2"), (64, 80)),
    "128x256-g8": (("-DHKJIT_SM90A_GROUP_M=8",), (128, 256)),          # the default tile needs no tile defines
    "32x128-swap-pdl": (("-DHKJIT_SM90A_BM=128", "-DHKJIT_SM90A_BN=32", "-DHKJIT_SM90A_SWAP=1",
                         "-DHKJIT_SM90A_SPLITK=2", "-DHKJIT_SM90A_PDL=1"), (32, 128)),   # C's tile: M side x Bt rows
}
REFUSED = {   # name -> what the refusal says
    "128x100": "BN 100 is not a multiple of 16 from 64 to 256", "96x128": "BM 96 is not 64, 128 or 256",
    "64x96-st6-pingpong": "out of order", "64x96-splitk-splitk": "out of order or repeated",
    "64x96-fast": "unknown part -fast", "128x96-st1": "2..16 stages", "128x96-g0": "at least 1 tile row",
    "256x144": "at most 128 columns", "128x160-pingpong": "at most 128 columns",
    "256x64-pingpong": "ping-pong needs BM 64 or 128", "64x96-splitk-csplit": "take one",
    "128x128-csplit": "BM x BN <= 8192", "16x64-swap-splitk": "out of order",
    "16x64-swap-pdl": "that is the configuration 16x64-swap", "64x128-splitk-st8": "",   # st8 is not its default
    "128x16": "BN 16 is not a multiple of 16 from 64 to 256", "16x64-pdl-swap": "out of order",
    "48x128-swap": "M side 48", "16x64-swap-cluster2": "out of order", "128x256-repack-cluster2": "",
    "1x2x3": "not of the form", "": "not of the form",
}


def test_configurations_named_by_their_parameters():
    """A name that spells a configuration's parameters is one (tune can time tiles no one listed); the grammar
    agrees with every listed name; a name with a listed configuration's defines is refused (one name each)."""
    from hkjit.errors import UnsupportedTargetError
    from hkjit.specs import find_config, resolve_configs
    for name, (defines, tile) in SPELLED.items():
        cfg = find_config("sm_90a", name)
        assert (cfg.name, cfg.defines, (cfg.constraints.block_m, cfg.constraints.block_n)) == (name, defines, tile)
        spec = config_spec("sm_90a", name)
        assert spec.device_cflags[-len(defines):] == defines and spec.config == name
    for name, says in REFUSED.items():
        if not says:                                   # spelled and fine (the check of the refusals can fail)
            assert find_config("sm_90a", name).name == name
            continue
        with pytest.raises(UnsupportedTargetError, match=f"no configuration '{name}' for sm_90a: .*{says}"):
            find_config("sm_90a", name)
    from hkjit import specs
    for cfg in configs_for("sm_90a")[1:]:              # the listed names mean what the grammar says ...
        got = specs._parse_sm90a(cfg.name + ("-pdl" if cfg.name == "16x64-swap" else ""))   # ... this one has PDL
        assert set(got.defines) == set(cfg.defines) and got.constraints == cfg.constraints, cfg.name
    assert resolve_configs("sm_90a", ["128x96", "all", "128x96"]) == ["128x96"] + [
        c.name for c in configs_for("sm_90a")]
    assert key_of(key_inputs(config_spec("sm_90a", "128x96"))) != key_of(key_inputs(config_spec("sm_90a", "128x192")))
    with pytest.raises(UnsupportedTargetError, match="at most a 64 MiB fp32 panel"):
        find_config("cpu", "n2048k128")
    cpu = find_config("cpu", "n32k128")
    assert cpu.defines == ("-DHKJIT_REF_BLOCK_N=32", "-DHKJIT_REF_BLOCK_K=128") and cpu.constraints.block_n == 32
    with pytest.raises(UnsupportedTargetError, match="'128x96' for gfx950: this arch takes only the listed names"):
        find_config("gfx950", "128x96")


def test_selection_table_names_known_configs_and_routes_the_issue_shapes():
    for arch, table in SELECTION.items():
        known = {c.name for c in configs_for(arch)}
        assert all(r.config in known for r in table.rules), arch
    pick = {shape: select_by_table("sm_90a", *shape)[:2] for shape in (
        (16, 4096, 4096), (16, 10240, 8192), (32, 4096, 4096), (16, 28672, 8192), (64, 4096, 4096), (64, 10240, 8192),
        (64, 8192, 8192), (48, 8448, 4096), (64, 8456, 8192), (128, 28672, 8192),
        (256, 10240, 8192), (256, 28672, 4096), (128, 10240, 8192), (64, 28672, 8192), (256, 16384, 8192),
        (128, 32768, 8192), (256, 30720, 4096), (64, 14336, 8192), (256, 12288, 8192), (256, 14336, 8192), (128, 8192, 8192), (1024, 1024, 8192), (3000, 5000, 7000), (8192, 8192, 8192))}
    assert pick == {
        (16, 4096, 4096): ("16x64-swap", "decode-16-swap"), (16, 10240, 8192): ("16x128-swap", "decode-16-swap-wide"),
        (32, 4096, 4096): ("64x128-splitk", "decode-16"), (16, 28672, 8192): ("64x256-pingpong", "decode-widest"),
        (64, 4096, 4096): ("64x64-splitk", "decode-64"), (64, 10240, 8192): ("64x80-pingpong", "decode-64-wide"),
        (64, 8192, 8192): ("64x64-splitk", "decode-64-8k"), (48, 8448, 4096): ("64x64-splitk", "decode-64-8k"),
        (64, 8456, 8192): ("64x80-pingpong", "decode-64-wide"),
        (128, 28672, 8192): ("128x224", "decode-wide"), (256, 10240, 8192): ("128x160", "decode-10k-256"),
        (256, 28672, 4096): ("128x224", "decode-wide-256"), (128, 10240, 8192): ("64x160-splitk", "decode-10k"),
        (256, 16384, 8192): ("128x256", "decode-wider"), (128, 32768, 8192): ("128x256", "decode-wider"),
        (256, 30720, 4096): ("128x256", "decode-wider"), (64, 14336, 8192): ("64x128-pingpong", "decode-64-wider"),
        (256, 12288, 8192): ("128x192", "decode-11k-256"), (256, 14336, 8192): ("128x160", "decode-10k-256"),
        (64, 28672, 8192): ("64x256-pingpong", "decode-widest"),
        (128, 8192, 8192): ("64x128-splitk", "decode"), (1024, 1024, 8192): ("64x128-splitk", "few-tiles"),
        (3000, 5000, 7000): ("128x256-cluster2", "row-pitch"), (8192, 8192, 8192): ("128x192", "deep-square")}
    for shape in ((4096, 4096, 4096), (8192, 28672, 4096), (2048, 4096, 4096), (8192, 10240, 8192)):
        assert select_by_table("sm_90a", *shape)[:2] == ("128x256", "default"), shape
    assert select_by_table("cpu", 3000, 5000, 7000)[0] == "n64k256"


def _waves(config: str, m: int, n: int) -> int:
    """Waves of a plain (unsplit) configuration's tiles on the H100/H200's 132 SMs."""
    c = config_spec("sm_90a", config).constraints
    return -(-(-(-m // c.block_m) * -(-n // c.block_n)) // 132)


def test_width_rules_never_need_more_waves_than_the_tile_they_replace():
    """The tiles off the 64 grid are selected for their tile count: wherever a width rule picks one (or keeps the
    older tile at its edges), the pick needs no more waves than the other would. Guards the N bounds of the rules,
    which come from this arithmetic, not from measurements at every N."""
    groups = {(65, 257, 16384, 40000): ("128x224", "128x256"), (129, 257, 10240, 16384): ("128x160", "128x192"),
              (33, 65, 5000, 16384): ("64x80-pingpong", "64x128-pingpong", "64x64-splitk")}
    for (m_lo, m_hi, n_lo, n_hi), tiles in groups.items():
        seen = set()
        for m in (m_lo, (m_lo + m_hi) // 2, m_hi - 1):
            for n in range(n_lo, n_hi, 8):
                pick = select_by_table("sm_90a", m, n, 4096)[0]
                assert pick in tiles, (m, n, pick)
                assert _waves(pick, m, n) <= min(_waves(t, m, n) for t in tiles), (m, n, pick)
                seen.add(pick)
        assert seen == set(tiles), (tiles, seen)


def test_warmup_builds_one_cpu_configuration_by_default():
    assert [(s.arch, s.config) for s in warmup_specs("cpu")] == [("cpu", "n64k256")]
    assert [s.config for s in warmup_specs("cpu", config="all")] == ["n64k256", OTHER]
    assert [s.config for s in warmup_specs("sm_90a")] == ["128x256", "16x64-swap", "16x128-swap", "64x128-splitk",
                                                          "64x256-pingpong", "64x256-splitk", "64x64-splitk",
                                                          "64x80-pingpong", "64x128-pingpong", "128x224", "64x160-splitk",
                                                          "128x192", "128x160", "64x192-pingpong", "128x256-cluster2"]
    with pytest.raises(Exception, match="no configuration 'bogus' for cpu"):
        warmup_specs("cpu", config="bogus")


# ------------------------------------------------------------------------------------------ records, no build
def _explain(m: int, n: int, k: int):
    import hkjit
    return hkjit.explain(torch.zeros(m, k, dtype=torch.bfloat16), torch.zeros(k, n, dtype=torch.bfloat16))


@pytest.fixture
def records_root(tmp_path, monkeypatch):
    """An empty writable root as HKJIT_CACHE_DIR, with this process's tuning memo dropped before and after."""
    root = tmp_path / "cache"
    monkeypatch.setenv("HKJIT_CACHE_DIR", str(root))
    tuning.forget()
    yield root
    tuning.forget()


def test_recorded_winner_wins_over_the_table_for_its_exact_shape(records_root):
    path = tuning.write_winners("cpu", "cpu", {"40x50x60": {"config": OTHER, "ms": {OTHER: 1.0}}})
    assert path.parent == records_root / "v1" / "tuning" / "cpu"
    plan = _explain(40, 50, 60)
    assert (plan.config, plan.config_rule) == (OTHER, "tuned") and plan.spec.config == OTHER
    assert f"configuration {OTHER}: tuned (recorded " in str(plan)
    other = _explain(40, 50, 61)                          # not the recorded shape: the table
    assert (other.config, other.config_rule) == ("n64k256", "default") and "table rule default" in str(other)


@pytest.mark.parametrize("damage", ["corrupt", "foreign-device", "other-key", "unknown-config"])
def test_unusable_record_is_ignored_with_one_warning(records_root, damage, caplog):
    path = tuning.write_winners("cpu", "cpu", {"40x50x60": {"config": OTHER, "ms": {}}})
    rec = json.loads(path.read_text())
    if damage == "corrupt":
        path.write_text(path.read_text()[:40])
    elif damage == "foreign-device":
        rec["device"] = "NVIDIA H200 sm_90"
        path.write_text(json.dumps(rec))
    elif damage == "other-key":                          # another torch/compiler/source: filed under its own key
        rec["toolchain_key"] = "0" * 32
        path.rename(path.with_name(f"gemm_bf16-cpu-{'0' * 32}.json"))
        path.with_name(f"gemm_bf16-cpu-{'0' * 32}.json").write_text(json.dumps(rec))
    else:
        rec["winners"]["40x50x60"]["config"] = "from-a-newer-hkjit"
        path.write_text(json.dumps(rec))
    tuning.forget()
    with caplog.at_level(logging.WARNING, logger="hkjit"):
        first, again = _explain(40, 50, 60), _explain(40, 50, 60)
    assert (first.config, first.config_rule) == ("n64k256", "default") and again.config == "n64k256"
    warnings = [r.getMessage() for r in caplog.records if "tuning record" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert ("another toolchain" if damage == "other-key" else "ignoring the tuning record") in warnings[0]


def test_tune_into_a_read_only_cache_fails_with_a_clear_error(tmp_path):
    root = tmp_path / "ro"
    (root / "v1").mkdir(parents=True)
    with read_only(root):
        p = hk("tune", "--shapes", "32x32x32", cache=root)
    assert p.returncode == 2, p.stderr
    assert "not writable" in p.stderr and "HKJIT_CACHE_DIR" in p.stderr and "Traceback" not in p.stderr
    assert not (root / "v1" / "cpu").exists()             # refused before building or timing anything


def test_named_shape_sets():
    from hkjit.shapes import LLM_SHAPES, parse_shapes
    llm = parse_shapes("llm")
    assert len(llm) == len(set(llm)) == len(LLM_SHAPES) and (3000, 5000, 7000) in llm and (16, 6144, 4096) in llm
    assert parse_shapes("64x64x64,llm")[0] == (64, 64, 64)
    prefill, decode = parse_shapes("prefill"), parse_shapes("DECODE")
    assert len(prefill) == len(decode) == 32                     # 8 Llama-3 projections x 4 batch sizes each
    assert {m for m, _n, _k in prefill} == {2048, 4096, 8192, 16384} and {m for m, _n, _k in decode} == {16, 64, 128, 256}
    assert set(prefill) | set(decode) < set(llm) and (3000, 5000, 7000) not in prefill + decode
    with pytest.raises(ValueError, match="named set"):
        parse_shapes("gpt")


# ------------------------------------------------------------------------------------------ real builds
@pytest.fixture(scope="module")
def two_configs(built_cache, tmp_path_factory) -> Path:
    """built_cache plus the second CPU configuration, built by `warmup --config all -j 2` (the default: a hit)."""
    root = copy_cache(built_cache, tmp_path_factory.mktemp("two-configs") / "cache")
    doc = last_json_doc(hk("warmup", "--arch", "cpu", "--config", "all", "-j", "2", "--json", cache=root))
    assert [(r["config"], r["status"]) for r in doc["results"]] == [("n64k256", "hit"), (OTHER, "built")]
    assert doc["results"][0]["key"] != doc["results"][1]["key"]
    return root


def last_json_doc(p: subprocess.CompletedProcess) -> dict:
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return json.loads(p.stdout)


def test_both_configurations_compute_correct_products(two_configs):
    out = last_json(child("""
        import json, torch, hkjit
        from hkjit import loader
        from hkjit.tuning import force_config
        res = {}
        g = torch.Generator().manual_seed(int(torch.seed()) % 2**31)
        for cfg in ("n64k256", "n128k128"):
            errs = []
            # K across 128- and 256-deep panels, N across 64/128-wide ones, ragged edges, M = 1
            for m, n, k in ((1, 7, 5), (33, 130, 257), (65, 200, 520), (129, 64, 128)):
                a = torch.randn(m, k, generator=g).bfloat16(); b = torch.randn(k, n, generator=g).bfloat16()
                out = torch.full((m, n), float("nan"), dtype=torch.bfloat16)      # poisoned
                with hkjit.dispatch("kernel"), force_config(cfg):
                    plan = hkjit.explain(a, b)
                    hkjit.gemm(a, b, out=out)
                ref = a.double() @ b.double()
                errs.append(((out.double() - ref).norm() / ref.norm()).item() if torch.isfinite(out).all() else 9.0)
            res[cfg] = {"errs": errs, "config": plan.config, "tile": plan.tile}
        res["entries"] = sorted(str(v.path) for v in loader._loaded.values())
        print(json.dumps(res))
    """, two_configs))
    assert max(out["n64k256"]["errs"]) < TOL and max(out[OTHER]["errs"]) < TOL, out
    assert out[OTHER]["config"] == OTHER and out[OTHER]["tile"] == [1, 128, 128]
    assert len(out["entries"]) == 2 and len(set(out["entries"])) == 2      # one module per configuration


def test_tune_records_a_winner_that_a_new_process_uses(two_configs, tmp_path):
    root = copy_cache(two_configs, tmp_path / "cache")
    p = hk("tune", "--shapes", "48x200x300,24x64x64", "--configs", "all", "--repeat", "3", "--json", cache=root)
    rep = last_json_doc(p)
    assert rep["candidates"] == ["n64k256", OTHER] and Path(rep["record"]).is_file()
    winners = {r["shape"]: r["winner"] for r in rep["results"]}
    assert set(winners) == {"48x200x300", "24x64x64"} and all(w in ("n64k256", OTHER) for w in winners.values())
    assert all(max(r["errors"].values()) < TOL for r in rep["results"])
    # a fresh process: the record decides, for exactly those shapes
    code = """
        import json, torch, hkjit
        a = torch.randn(48, 300).bfloat16(); b = torch.randn(300, 200).bfloat16()
        plan = hkjit.explain(a, b); c = hkjit.gemm(a, b)
        ref = a.double() @ b.double()
        other = hkjit.explain(torch.randn(48, 301).bfloat16(), torch.randn(301, 200).bfloat16())
        print(json.dumps({"config": plan.config, "rule": plan.config_rule, "text": str(plan),
                          "err": ((c.double() - ref).norm() / ref.norm()).item(), "other_rule": other.config_rule}))
    """
    used = last_json(child(code, root))
    assert used["config"] == winners["48x200x300"] and used["rule"] == "tuned", used
    assert "tuned (recorded" in used["text"] and used["err"] < TOL and used["other_rule"] == "default"
    # cache ls shows the record, cache clear removes it
    ls = last_json_doc(hk("cache", "ls", "--json", cache=root))
    assert [t["status"] for t in ls["tuning"]] == ["ok"] and ls["tuning"][0]["winners"] == winners
    assert sorted(e["config"] for e in ls["entries"]) == sorted(["n64k256", OTHER])
    assert all(e["current"] for e in ls["entries"])
    assert "tuning records" in hk("cache", "ls", cache=root).stdout
    cleared = last_json_doc(hk("cache", "clear", "--json", cache=root))
    assert cleared["tuning"] == [rep["record"]] and not Path(rep["record"]).exists()


def test_a_recorded_configuration_is_built_by_warmup_and_its_module_runs(two_configs, tmp_path):
    """A record naming the second configuration: warmup's configured set includes it (a hit here), and the call
    for that shape runs that configuration's module."""
    root = copy_cache(two_configs, tmp_path / "cache")
    out = last_json(child(f"""
        import json, torch, hkjit
        from hkjit import loader, tuning
        from hkjit.warmup import warmup_specs
        tuning.write_winners("cpu", "cpu", {{"50x70x90": {{"config": "{OTHER}", "ms": {{}}}}}})
        a = torch.randn(50, 90).bfloat16(); b = torch.randn(90, 70).bfloat16()
        c = hkjit.gemm(a, b); ref = a.double() @ b.double()
        print(json.dumps({{"configs": [s.config for s in warmup_specs("cpu")],
                          "loaded": [k[3] for k in loader._loaded],
                          "err": ((c.double() - ref).norm() / ref.norm()).item()}}))
    """, root))
    assert out["configs"] == ["n64k256", OTHER] and out["loaded"] == [OTHER] and out["err"] < TOL, out


def test_a_configuration_named_by_its_parameters_is_recorded_built_timed_and_used(two_configs, tmp_path):
    """n32k128 is in no list: a tuning record naming it makes warmup build it, the call for that shape runs it
    (correct numbers), tune takes it as a candidate, and cache ls shows its entry as current."""
    spelled = "n32k128"
    root = copy_cache(two_configs, tmp_path / "cache")
    assert last_json(child(f"""
        import json
        from hkjit import tuning
        print(json.dumps(str(tuning.write_winners("cpu", "cpu", {{"50x70x90": {{"config": "{spelled}", "ms": {{}}}}}}))))
    """, root))
    doc = last_json_doc(hk("warmup", "--arch", "cpu", "--json", cache=root))
    assert [(r["config"], r["status"]) for r in doc["results"]] == [("n64k256", "hit"), (spelled, "built")]
    out = last_json(child("""
        import json, torch, hkjit
        from hkjit import loader
        a = torch.randn(50, 90).bfloat16(); b = torch.randn(90, 70).bfloat16()
        out = torch.full((50, 70), float("nan"), dtype=torch.bfloat16)         # poisoned
        plan = hkjit.explain(a, b); hkjit.gemm(a, b, out=out); ref = a.double() @ b.double()
        print(json.dumps({"config": plan.config, "rule": plan.config_rule, "tile": plan.tile,
                          "loaded": [k[3] for k in loader._loaded],
                          "err": ((out.double() - ref).norm() / ref.norm()).item() if torch.isfinite(out).all() else 9}))
    """, root))
    assert out == {**out, "config": spelled, "rule": "tuned", "tile": [1, 32, 128], "loaded": [spelled]}, out
    assert out["err"] < TOL, out
    rep = last_json_doc(hk("tune", "--shapes", "24x64x64", "--configs", f"n64k256,{spelled}", "--repeat", "2",
                           "--json", "--no-record", cache=root))
    assert rep["candidates"] == ["n64k256", spelled] and max(rep["results"][0]["errors"].values()) < TOL, rep
    ls = last_json_doc(hk("cache", "ls", "--json", cache=root))
    assert sorted((e["config"], e["current"]) for e in ls["entries"]) == sorted(
        [("n64k256", True), (OTHER, True), (spelled, True)]), ls["entries"]


def test_tune_builds_missing_candidates_in_parallel_and_drops_one_that_cannot_be_built(built_cache, tmp_path):
    """Two candidates not in the cache, built by tune two at a time: one builds; the other's build lock is held by
    this process (another builder, as far as tune can tell) past HKJIT_LOCK_TIMEOUT, so that build fails and the
    configuration is not a candidate (the report says why); with no candidate left, tune exits 2 naming why."""
    from hkjit.cache.layout import lock_name
    from hkjit.cache.lock import BuildLock
    from hkjit.keys import entry_key
    root = copy_cache(built_cache, tmp_path / "cache")
    held = entry_key(config_spec("cpu", "n48k64"))[0]
    with BuildLock(root, lock_name("cpu", "gemm_bf16", held), timeout=10):
        p = hk("tune", "--shapes", "24x64x64", "--configs", "n64k256,n48k64,n32k64", "-j", "2", "--repeat", "2",
               "--no-record", "--json", cache=root, HKJIT_LOCK_TIMEOUT="3")
        rep = last_json_doc(p)
        assert rep["builds"]["n64k256"] == "hit" and rep["builds"]["n32k64"] == "built", rep["builds"]
        assert rep["builds"]["n48k64"].startswith("failed: gave up after 3 s waiting"), rep["builds"]
        assert rep["candidates"] == ["n64k256", "n32k64"] and rep["results"][0]["winner"] in rep["candidates"]
        assert "n48k64 failed to build: not a candidate" in p.stderr
        text = hk("tune", "--shapes", "24x64x64", "--configs", "n64k256,n48k64", "--repeat", "2", "--no-record",
                  cache=root, HKJIT_LOCK_TIMEOUT="3")
        assert text.returncode == 0 and "n48k64: failed: gave up" in text.stdout, text.stdout + text.stderr
        none = hk("tune", "--shapes", "24x64x64", "--configs", "n48k64", "--no-record", cache=root,
                  HKJIT_LOCK_TIMEOUT="3")
    assert none.returncode == 2 and "no candidate configuration could be built: n48k64: gave up" in none.stderr, \
        none.stderr
    assert "Traceback" not in none.stderr
