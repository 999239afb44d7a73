"""`hkjit configs`: the kernel configurations of each arch, as specs.CONFIGS lists them (tile, defines, the
selection rules that pick each, what it is for), and the form of the names that spell others by their parameters
(specs.find_config), so a user can see what `warmup --config`, `tune --configs` and `bench --configs` take."""
from __future__ import annotations

import argparse

from ._common import KNOWN_ARCHS, ARCHS, add_arch_option, emit_json, parents, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("configs", parents=parents(), help="list the kernel configurations of each arch",
                       description="List each arch's kernel configurations (default first): tile, compile-time "
                       "defines, the selection-table rules that pick it, what it is for; and the form of the names "
                       "that spell any other configuration by its parameters (warmup --config, tune / bench "
                       "--configs take both). Builds nothing.")
    add_arch_option(c, f"only this arch, repeatable ({ARCHS}); default: all", repeat=True)
    c.set_defaults(func=cmd_configs)


def listing(archs: list[str]) -> list[dict]:
    """Per arch: its configurations (name, tile, defines, rules, why) and the spelled-name form (or None)."""
    from ..policy import SELECTION
    from ..specs import configs_for, get_spec, spelled_form
    out = []
    for arch in archs:
        table_ = SELECTION.get(arch)
        rules = [(r.name, r.config) for r in table_.rules] if table_ else []
        base = get_spec(arch)
        configs = []
        for i, cfg in enumerate(configs_for(arch)):
            c = cfg.constraints or base.constraints
            configs.append({"name": cfg.name, "default": i == 0, "tile": [c.block_m, c.block_n, c.block_k],
                            "defines": list(cfg.defines), "rules": [n for n, picked in rules if picked == cfg.name],
                            "why": cfg.why})
        out.append({"arch": arch, "kernel": base.name, "configs": configs, "spelled": spelled_form(arch)})
    return out


def cmd_configs(args: argparse.Namespace) -> int:
    doc = listing(list(dict.fromkeys(args.arch or KNOWN_ARCHS)))
    if args.json:
        emit_json({"archs": doc})
    else:
        print(format_listing(doc))
    return 0


def format_listing(doc: list[dict]) -> str:
    blocks = []
    for a in doc:
        rows = [[c["name"] + (" (default)" if c["default"] else ""), "x".join(map(str, c["tile"][:2])),
                 " ".join(d.split("_", 2)[-1] if d.startswith("-DHKJIT_") else d for d in c["defines"]) or "-",
                 ", ".join(c["rules"] + (["no rule matching"] if c["default"] else [])) or "-", c["why"]]
                for c in a["configs"]]
        blocks.append(f"{a['arch']} ({a['kernel']}):\n" + table(["name", "tile", "defines", "selected by", "for"], rows)
                      + ("\nother names: " + a["spelled"] if a["spelled"] else "\nother names: none (listed only)"))
    return "\n\n".join(blocks)
