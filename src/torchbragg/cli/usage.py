"""Usage text, generated from the declared options."""

from __future__ import annotations

import os

from torchbragg.cli.options import INPUT_OPTIONS, OUTPUT_OPTIONS, RULES, CState


def usage_text() -> str:
    """Options grouped by topic, one line each."""
    lines = ["usage: torchbragg -mat auto.mat -hkl Fs.hkl [options]   (or -cell ... -default_F)",
             "  (nanoBragg's command line; options match by substring as in nanoBragg)"]
    groups: dict[str, list] = {}
    for rule in RULES:
        groups.setdefault(rule.group, []).append(rule)
    for group, rules in groups.items():
        lines.append(f"{group}:")
        spellings: dict[str, list[str]] = {}  # help text -> every spelling that has it
        for rule in rules:
            spellings.setdefault(rule.help, []).append(rule.pattern)
        for text, names in spellings.items():
            names_text = ", ".join(names)
            gap = "\n" + " " * 25 if len(names_text) > 22 else " " * (23 - len(names_text))
            lines.append(f"  {names_text}{gap}{text}")
    lines.append("torchbragg's own options (--name value or --name=value):")
    lines.append("  --dtype float64|float32   precision (default float64)")
    lines.append("  --device cpu|cuda         where to render")
    lines.append("  --memory-budget-mb N      working memory per chunk in MiB (default "
                 "$TORCHBRAGG_MEMORY_MB, else 64 on CPU, 2048 on CUDA)")
    lines.append("  --kernel auto|fused|reference  how pixels are computed: the compiled fused "
                 "kernel (built once per machine, then cached), the reference PyTorch path, "
                 "or auto (default: fused where it applies and pays)")
    lines.append("  --compile                 same as --kernel fused")
    lines.append("  --stale-phi0              reproduce the released nanoBragg at phi = 0 "
                 "(the step reuses the previous rotated cell)")
    lines.append("  --allow-unknown           warn about options nanoBragg ignores instead "
                 "of stopping")
    lines += [option.usage_line() for option in OUTPUT_OPTIONS + INPUT_OPTIONS]
    lines.append("  -h, -help, --help         print this text and exit")
    lines.append("  --version                 print torchbragg's version and exit")
    return "\n".join(lines)


def usage_needed(st: CState) -> bool:
    """True when nanoBragg prints its usage: no structure factors or no orientation."""
    return bool(usage_reason(st))


def usage_reason(st: CState) -> str:
    """What is missing for a run ('' when nothing is)."""
    reasons = []
    if st.hkl_path is None and not os.path.exists(st.dump_path) and st.default_F == 0.0:
        reasons.append(f"no structure factors (-hkl, a {st.dump_path} from an earlier run, "
                       "or -default_F)")
    if st.mat_path is None and st.cell[0] == 0.0:
        reasons.append("no unit cell (-cell or -mat)")
    return " and ".join(reasons)
