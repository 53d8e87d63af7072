"""Two traces of one pixel, quantity by quantity: the first quantity that differs.

Three kinds of trace are read into one form, a list of :class:`Quantity`:

* torchbragg's ``-trace_pixel`` lines (``<scope>: <name> <values>``, see
  :mod:`torchbragg.trace`);
* an instrumented C build's ``TRACE_C:`` and ``TRACE_C_PHI`` lines (blocks per layer and
  sub-pixel in loop order; the first source, phi step and mosaic domain in each block, the
  per-phi lines for the rest of the phi steps);
* a plain C build's ``-printout_pixel`` block (values of the last step, and the pixel's
  sums, at the precision they are printed with).

Quantities are matched by a key that does not depend on how a scope is spelled: the
(layer, sub-pixel) samples are numbered in loop order, so a C block and a torchbragg sample
pair up by position. :func:`compare_traces` walks the reference trace in its order (the
order of computation) and reports the first quantity that differs beyond a tolerance, and
a table of the scale factors that make up the pixel.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

# Where a quantity belongs: ("frame",), ("crystal",), ("orientation", phi, mosaic),
# ("source", s), ("sample", g), ("sample", g, s), ("sample", g, s, phi, mosaic), ("pixel",),
# or ("last",) for a printout's value of the last step; g numbers (layer, sub-pixel) samples
# in loop order.
Key = tuple


@dataclass(frozen=True)
class Quantity:
    """One traced value.

    ``key`` matches it across traces, ``label`` is its scope as the trace spelled it,
    ``component`` (0, 1, 2) marks a single component of a vector quantity, and ``rtol`` /
    ``atol`` are the precision it was printed with (0 for full precision).
    """

    key: Key
    label: str
    name: str
    values: np.ndarray  # (n,) in the unit its name says (SI where it says none)
    component: int | None = None
    rtol: float = 0.0
    atol: float = 0.0


@dataclass
class Trace:
    """A parsed trace: its kind ("torchbragg", "TRACE_C" or "printout") and quantities.

    ``unknown`` counts lines of the trace's format that name no quantity known here.
    """

    kind: str
    quantities: list[Quantity] = field(default_factory=list)
    pixel: tuple[int, int] | None = None  # (slow, fast) where the trace says
    unknown: int = 0

    def last_of_each(self) -> dict[str, Quantity]:
        """Name -> its last quantity in a sample or orientation scope: the last step's.

        Only a complete trace (torchbragg's: every sample, source, phi step and domain) has
        the last step; the C program's instrumented trace holds the first source and domain.
        """
        if self.kind != "torchbragg":
            return {}
        return {q.name: q for q in self.quantities if q.key[0] in ("sample", "orientation")}


_BOOLS = {"True": 1.0, "False": 0.0}


def _numbers(text: str, where: str = "") -> np.ndarray:
    """Whitespace-separated numbers (True/False as 1/0); ValueError names ``where``."""
    try:
        return np.array([_BOOLS[w] if w in _BOOLS else float(w) for w in text.split()])
    except ValueError:
        raise ValueError(f"{where}: not numbers: {text.strip()[:60]!r}") from None


# ---------------------------------------------------------------- torchbragg's -trace_pixel

_OUR_LINE = re.compile(r"^(?P<scope>[a-z][a-z0-9 -]*): (?P<name>[A-Za-z_0-9]+) (?P<values>.*)$")
_SAMPLE = re.compile(r"^layer (\d+) sub-pixel (\d+)")
_SOURCE = re.compile(r"source (\d+)")
_ORIENT = re.compile(r"phi (\d+) mosaic (\d+)")


def _our_key(scope: str, samples: dict) -> Key:
    """Matching key of a torchbragg scope; ``samples`` numbers (layer, sub-pixel) pairs."""
    sample = _SAMPLE.match(scope)
    source = _SOURCE.search(scope)
    orient = _ORIENT.search(scope)
    if sample is None:
        if source is not None:
            return ("source", int(source.group(1)))
        if orient is not None:
            return ("orientation", int(orient.group(1)), int(orient.group(2)))
        return (scope,)
    g = samples.setdefault(sample.groups(), len(samples))
    key: tuple = ("sample", g)
    if source is not None:
        key += (int(source.group(1)),)
    if orient is not None:
        key += (int(orient.group(1)), int(orient.group(2)))
    return key


def parse_torchbragg(lines: list[str]) -> Trace:
    """Quantities of torchbragg ``-trace_pixel`` output (other lines are skipped)."""
    trace, samples, inside = Trace("torchbragg"), {}, False
    for number, line in enumerate(lines, 1):
        title = re.match(r"trace of pixel slow=(\d+) fast=(\d+)", line)
        if title:
            if inside:
                break  # a second trace: read the first
            trace.pixel, inside = (int(title.group(1)), int(title.group(2))), True
            continue
        m = _OUR_LINE.match(line.strip()) if inside else None
        if m is None:
            continue
        scope = m.group("scope")
        values = _numbers(m.group("values"), f"line {number}")
        trace.quantities.append(Quantity(_our_key(scope, samples), scope, m.group("name"),
                                         values))
    return trace


# ---------------------------------------------------------------- instrumented C: TRACE_C

# C name -> (level, our name); levels place a value in its block (see _c_key)
_C_NAMES = {
    "pix0_vector_meters": ("frame", "pix0_m"), "fdet_vec": ("frame", "fdet"),
    "sdet_vec": ("frame", "sdet"), "close_distance_meters": ("frame", "close_distance_m"),
    "pixel_pos_meters": ("sample", "position_m"), "R_distance_meters": ("sample", "airpath_m"),
    "omega_pixel_sr": ("sample", "omega_sr"), "obliquity_factor": ("sample", "obliquity"),
    "diffracted_vec": ("sample", "diffracted"), "incident_vec": ("source", "incident"),
    "lambda_meters": ("source", "wavelength_m"),
    "scattering_vec_A_inv": ("sample source", "scattering_per_m"),  # per metre in fact
    "rot_a_angstroms": ("orientation", "a_A"), "rot_b_angstroms": ("orientation", "b_A"),
    "rot_c_angstroms": ("orientation", "c_A"),
    "rot_a_star_A_inv": ("crystal", "a_star_invA"), "rot_b_star_A_inv": ("crystal", "b_star_invA"),
    "rot_c_star_A_inv": ("crystal", "c_star_invA"),
    "hkl_frac": ("step", "hkl"), "hkl_rounded": ("step", "hkl0"), "F_latt_a": ("step", "F_latt_a"),
    "F_latt_b": ("step", "F_latt_b"), "F_latt_c": ("step", "F_latt_c"),
    "F_latt": ("step", "F_latt"), "F_cell": ("step", "F_cell"),
    "I_before_scaling": ("pixel", "intensity_sum"), "r_e_sqr": ("pixel", "r_e_sqr_m2"),
    "fluence_photons_per_m2": ("pixel", "fluence_per_m2"), "steps": ("pixel", "steps"),
    "oversample_thick": ("pixel", "oversample_thick"),
    "oversample_polar": ("pixel", "oversample_polar"),
    "oversample_omega": ("pixel", "oversample_omega"),
    "capture_fraction": ("pixel", "capture_fraction"), "polar": ("pixel", "polar"),
    "omega_pixel": ("pixel", "omega_sr"), "cos_2theta": ("pixel", "cos_2theta"),
    "I_pixel_final": ("pixel", "photons"), "floatimage_accumulated": ("pixel", "photons_float32"),
}


_C_SKIPPED = ("lambda_angstroms", "r_e_meters")  # the same values in other units


def _c_key(level: str, block: int, phi: int = 0) -> tuple[Key, str]:
    """Key and label of a C value at ``level`` in ``block`` (first source, mosaic domain)."""
    return {
        "frame": (("frame",), "frame"), "crystal": (("crystal",), "crystal"),
        "pixel": (("pixel",), "pixel"), "source": (("source", 0), "source 0"),
        "orientation": (("orientation", phi, 0), f"phi {phi} mosaic 0"),
        "sample": (("sample", block), f"sample {block}"),
        "sample source": (("sample", block, 0), f"sample {block} source 0"),
        "step": (("sample", block, 0, phi, 0), f"sample {block} source 0 phi {phi} mosaic 0"),
    }[level]


_PHI_FIELDS = ("phi_tic", "phi_deg", "k_frac", "F_latt_b", "F_latt")


def _phi_fields(line: str, number: int) -> dict:
    """The key=value fields of a ``TRACE_C_PHI`` line, all present and numeric."""
    fields = {}
    for item in line.split()[1:]:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"line {number}: expected key=value, got {item[:40]!r}")
        fields[key] = float(_numbers(value, f"line {number}")[0]) if value else math.nan
    missing = [k for k in _PHI_FIELDS if k not in fields]
    if missing:
        raise ValueError(f"line {number}: TRACE_C_PHI without {', '.join(missing)}")
    return fields


def _phi_quantities(fields: dict, block: int) -> list[Quantity]:
    """A per-phi line's quantities: the angle, k, and the lattice factors of that step."""
    phi = int(fields["phi_tic"])
    key, label = _c_key("step", block, phi)
    okey, olabel = _c_key("orientation", block, phi)
    return [Quantity(okey, olabel, "phi_deg", np.array([fields["phi_deg"]])),
            Quantity(key, label, "hkl", np.array([fields["k_frac"]]), component=1),
            Quantity(key, label, "F_latt_b", np.array([fields["F_latt_b"]])),
            Quantity(key, label, "F_latt", np.array([fields["F_latt"]]))]


def parse_trace_c(lines: list[str]) -> Trace:
    """Quantities of an instrumented C build's ``TRACE_C:`` / ``TRACE_C_PHI`` lines."""
    trace, block, seen = Trace("TRACE_C"), -1, set()
    for number, line in enumerate(lines, 1):
        config = re.search(r"spixel=(\d+), fpixel=(\d+)", line)
        if line.startswith("TRACE_CONFIG") and config:
            trace.pixel = (int(config.group(1)), int(config.group(2)))
        if line.startswith("TRACE_C_PHI"):
            found = _phi_quantities(_phi_fields(line, number), max(block, 0))
        else:
            m = re.match(r"TRACE_C: (\S+) ?(.*)", line)
            if not m:
                continue
            if m.group(1) not in _C_NAMES:
                trace.unknown += m.group(1) not in _C_SKIPPED
                continue
            level, name = _C_NAMES[m.group(1)]
            if name == "position_m":
                block += 1
            key, label = _c_key(level, max(block, 0))
            found = [Quantity(key, label, name, _numbers(m.group(2), f"line {number}"))]
        for q in found:
            ident = (q.key, q.name, q.component)
            if ident not in seen and (q.component is None or (q.key, q.name, None) not in seen):
                seen.add(ident)
                trace.quantities.append(q)
    return _once_per_pixel_omega(trace)


def _once_per_pixel_omega(trace: Trace) -> Trace:
    """Without -oversample_omega the C program keeps the first sample's solid angle.

    Every later block then prints that value again; it is not the block's own.
    """
    per_step = any(q.name == "oversample_omega" and q.values[0] == 1 for q in trace.quantities)
    if not per_step:
        trace.quantities = [q for q in trace.quantities if not (
            q.name == "omega_sr" and q.key[0] == "sample" and q.key[1] > 0)]
    return trace


# ---------------------------------------------------------------- plain C: -printout_pixel

_G, _F6, _G10, _F8 = (5e-6, 0.0), (0.0, 5e-7), (5e-10, 0.0), (0.0, 5e-9)  # printed precision
_PRINTOUT = [  # (pattern, [(key, name, group(s), precision)])
    (r"^at (\S+) (\S+) (\S+)$", [(("last",), "position_m", (1, 2, 3), _G)]),
    (r"^hkl= (\S+) (\S+) (\S+)\s+hkl0= (\S+) (\S+) (\S+)",
     [(("last",), "hkl", (1, 2, 3), _F6), (("last",), "hkl0", (4, 5, 6), (0.0, 0.0))]),
    (r"^F_cell=(\S+)\s+F_latt=(\S+)\s+I = (\S+)",
     [(("last",), "F_cell", (1,), _G), (("last",), "F_latt", (2,), _G),
      (("pixel",), "intensity_sum", (3,), _G)]),
    (r"^I/steps\s+(\S+)", [(("pixel",), "intensity_per_step", (1,), _G10)]),
    (r"^polar\s+(\S+)", [(("pixel",), "polar", (1,), _G10)]),
    (r"^omega\s+(\S+)", [(("pixel",), "omega_sr", (1,), _G10)]),
    (r"^capfrac\s+(\S+)", [(("pixel",), "capture_fraction", (1,), _G10)]),
    (r"^pixel\s+(\S+)", [(("pixel",), "photons_float32", (1,), _G10)]),
]


def _cell_rows(rows: list[np.ndarray]) -> list[Quantity]:
    """The printout's X, Y, Z rows of (a, b, c) become the last orientation's a, b, c."""
    cols = np.array(rows).T
    return [Quantity(("last",), "last step", f"{axis}_A", cols[i], atol=5e-9)
            for i, axis in enumerate("abc")]


def parse_printout(lines: list[str]) -> Trace:
    """Quantities of a plain C build's ``-printout_pixel`` block (the first one printed)."""
    trace, rows = Trace("printout"), []
    for raw in lines:
        line = raw.strip()
        head = re.match(r"^(\d+)\s+(\d+) : stol = ", line)
        if head:
            if trace.pixel is not None:
                break
            trace.pixel = (int(head.group(2)), int(head.group(1)))
            continue
        if trace.pixel is None:
            continue
        row = re.match(r"^([XYZ]):\s+(\S+)\s+(\S+)\s+(\S+)$", line)
        if row:
            rows.append(_numbers(" ".join(row.groups()[1:]), f"printout row {row.group(1)}"))
            if len(rows) == 3:
                trace.quantities += _cell_rows(rows)
            continue
        for pattern, targets in _PRINTOUT:
            m = re.match(pattern, line)
            for key, name, groups, (rtol, atol) in targets if m else ():
                label = "last step" if key == ("last",) else "pixel"
                values = _numbers(" ".join(m.group(g) for g in groups), f"printout {name}")
                trace.quantities.append(Quantity(key, label, name, values, rtol=rtol,
                                                 atol=atol))
    return trace


def parse_trace(text: str) -> Trace:
    """Any of the three kinds, recognised by its lines."""
    lines = text.splitlines()
    if any(line.startswith("TRACE_C") for line in lines):
        return parse_trace_c(lines)
    if any(line.startswith("trace of pixel slow=") for line in lines):
        return parse_torchbragg(lines)
    if any(re.match(r"^\s*\d+\s+\d+ : stol = ", line) for line in lines):
        return parse_printout(lines)
    raise ValueError("no trace found: expected torchbragg -trace_pixel lines, TRACE_C: lines "
                     "or a -printout_pixel block")


# ---------------------------------------------------------------- comparing


@dataclass(frozen=True)
class Difference:
    """One quantity in both traces: where, values, and how far apart."""

    label: str
    name: str
    reference: np.ndarray
    other: np.ndarray
    rel: float  # max |other - reference| over the larger magnitude of the two
    beyond: bool  # beyond the tolerance (NaN and a shape mismatch are)

    def line(self) -> str:
        """``scope: name  reference ... | other ...  (rel x)``."""
        return (f"{self.label}: {self.name}  {_short(self.reference)} | {_short(self.other)}"
                f"  (rel {self.rel:.3g})")


FACTORS = ("intensity_sum", "steps", "intensity_per_step", "r_e_sqr_m2", "fluence_per_m2",
           "capture_fraction", "polar", "omega_sr", "photons", "photons_float32")


@dataclass
class TraceComparison:
    """Every matched quantity in the reference's order, and how many had no counterpart."""

    kinds: tuple[str, str]
    differences: list[Difference]
    unmatched: int
    rtol: float

    @property
    def first(self) -> Difference | None:
        """The first quantity beyond the tolerance, or None."""
        return next((d for d in self.differences if d.beyond), None)

    def factors(self) -> list[Difference]:
        """The first step's F_cell and F_latt, and the scale factors of the pixel."""
        pixel = {d.name: d for d in self.differences if d.label == "pixel"}
        steps = {}
        for d in self.differences:
            if d.name in ("F_cell", "F_latt"):
                steps.setdefault(d.name, d)
        return [steps[n] for n in ("F_cell", "F_latt") if n in steps] + \
            [pixel[n] for n in FACTORS if n in pixel]

    def lines(self) -> list[str]:
        """A readable report: the verdict, the first divergence, the factor table."""
        ref, other = self.kinds
        out = [f"compared {len(self.differences)} quantities ({ref} reference, {other} "
               f"other; {self.unmatched} without a counterpart), tolerance {self.rtol:g}"]
        first = self.first
        if first is None:
            out.append("no divergence")
        else:
            count = sum(d.beyond for d in self.differences)
            out.append(f"first divergence ({count} quantities beyond the tolerance):")
            out.append(f"  {first.line()}")
        out.append(f"scale factors ({ref} | {other}, relative difference):")
        for d in self.factors():
            name = d.name if d.label == "pixel" else f"{d.name} ({d.label})"
            out.append(f"  {name:<20} {_short(d.reference):>22} {_short(d.other):>22}  "
                       f"{d.rel:.3g}")
        return out

    def as_dict(self) -> dict:
        """JSON-ready summary (non-finite numbers as None)."""
        first = self.first
        return {"compared": len(self.differences), "unmatched": self.unmatched,
                "rtol": self.rtol,
                "first_divergence": None if first is None else _diff_dict(first),
                "factors": [_diff_dict(d) for d in self.factors()]}


def _short(values: np.ndarray) -> str:
    return " ".join(f"{v:.10g}" for v in values)


def _finite_or_none(values) -> list:
    return [float(v) if math.isfinite(v) else None for v in np.atleast_1d(values)]


def _diff_dict(d: Difference) -> dict:
    return {"scope": d.label, "name": d.name, "reference": _finite_or_none(d.reference),
            "other": _finite_or_none(d.other),
            "rel": d.rel if math.isfinite(d.rel) else None}


def _exact_index(trace: Trace) -> dict:
    """(key, name) -> quantity; a whole vector wins over a single component of it."""
    exact = {}
    for q in trace.quantities:
        known = exact.get((q.key, q.name))
        if known is None or (known.component is not None and q.component is None):
            exact[(q.key, q.name)] = q
    return exact


def _pairs(reference: Trace, other: Trace) -> list[tuple[Quantity, Quantity | None]]:
    """Each reference quantity with its counterpart in ``other`` (None: there is none).

    A printout's last-step value pairs with the last step of a complete trace, whichever
    of the two is the reference.
    """
    exact = _exact_index(other)
    other_last = other.last_of_each()
    printout_last = {q.name: q for q in other.quantities if q.key == ("last",)}
    reference_last = {id(q) for q in reference.last_of_each().values()}
    pairs = []
    for q in reference.quantities:
        if q.key == ("last",):
            match = other_last.get(q.name)
        elif id(q) in reference_last and q.name in printout_last:
            pairs.append((q, printout_last[q.name]))
            match = exact.get((q.key, q.name))
            if match is None:
                continue
        else:
            match = exact.get((q.key, q.name))
        pairs.append((q, match))
    return pairs


def _difference(ref: Quantity, other: Quantity, rtol: float) -> Difference:
    """How far ``other`` is from ``ref`` (one component where either is a component)."""
    ref_values = np.asarray(ref.values, dtype=np.float64)
    other_values = np.asarray(other.values, dtype=np.float64)
    if ref.component is not None and other_values.size == 3:
        other_values = other_values[ref.component:ref.component + 1]
    if other.component is not None and ref_values.size == 3:
        ref_values = ref_values[other.component:other.component + 1]
    if ref_values.shape != other_values.shape:
        return Difference(ref.label, ref.name, ref_values, other_values, math.inf, True)
    scale = max(float(np.max(np.abs(ref_values), initial=0.0)),
                float(np.max(np.abs(other_values), initial=0.0)))
    err = float(np.max(np.abs(other_values - ref_values), initial=0.0))
    allowed = max(rtol, ref.rtol, other.rtol) * scale + max(ref.atol, other.atol)
    rel = err / scale if scale > 0 else (0.0 if err == 0 else math.nan)
    beyond = not err <= allowed  # NaN is beyond
    return Difference(ref.label, ref.name, ref_values, other_values, rel, beyond)


def compare_traces(reference: Trace, other: Trace, rtol: float = 1e-6) -> TraceComparison:
    """Match ``other``'s quantities to ``reference``'s and measure each difference.

    A quantity differs beyond the tolerance when max |other - reference| exceeds ``rtol``
    times the larger magnitude of the two (vectors: the largest component), widened to the
    precision either trace printed it with. Raises ValueError when the traces are of
    different pixels or have no quantity in common.
    """
    if not rtol > 0:
        raise ValueError(f"the tolerance must be positive, got {rtol:g}")
    if reference.pixel is not None and other.pixel is not None \
            and reference.pixel != other.pixel:
        raise ValueError(f"the traces are of different pixels: slow, fast {reference.pixel} "
                         f"and {other.pixel}")
    differences, unmatched = [], reference.unknown
    for q, match in _pairs(reference, other):
        if match is None:
            unmatched += 1
        else:
            differences.append(_difference(q, match, rtol))
    if not differences:
        raise ValueError(f"the traces have no quantity in common ({reference.kind}: "
                         f"{len(reference.quantities)}, {other.kind}: "
                         f"{len(other.quantities)})")
    return TraceComparison((reference.kind, other.kind), differences, unmatched, rtol)
