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

import re
from dataclasses import dataclass, field

import numpy as np

Key = tuple  # ("frame",), ("sample", g, s, phi, mosaic), ("pixel",), ("last",), ...


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
    values: np.ndarray
    component: int | None = None
    rtol: float = 0.0
    atol: float = 0.0


@dataclass
class Trace:
    """A parsed trace: its kind ("torchbragg", "TRACE_C" or "printout") and quantities."""

    kind: str
    quantities: list[Quantity] = field(default_factory=list)
    pixel: tuple[int, int] | None = None  # (slow, fast) where the trace says


_BOOLS = {"True": 1.0, "False": 0.0}


def _numbers(text: str) -> np.ndarray:
    return np.array([_BOOLS[w] if w in _BOOLS else float(w) for w in text.split()])


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
    for line in lines:
        title = re.match(r"trace of pixel slow=(\d+) fast=(\d+)", line)
        if title:
            trace.pixel, inside = (int(title.group(1)), int(title.group(2))), True
            continue
        m = _OUR_LINE.match(line.strip()) if inside else None
        if m is None:
            continue
        scope = m.group("scope")
        trace.quantities.append(Quantity(_our_key(scope, samples), scope, m.group("name"),
                                         _numbers(m.group("values"))))
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


def _phi_quantities(fields: dict, block: int) -> list[Quantity]:
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
    for line in lines:
        config = re.search(r"spixel=(\d+), fpixel=(\d+)", line)
        if line.startswith("TRACE_CONFIG") and config:
            trace.pixel = (int(config.group(1)), int(config.group(2)))
        if line.startswith("TRACE_C_PHI"):
            fields = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
            found = _phi_quantities(fields, max(block, 0))
        else:
            m = re.match(r"TRACE_C: (\S+) (.*)", line)
            if not m or m.group(1) not in _C_NAMES:
                continue
            level, name = _C_NAMES[m.group(1)]
            if name == "position_m":
                block += 1
            key, label = _c_key(level, max(block, 0))
            found = [Quantity(key, label, name, _numbers(m.group(2)))]
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
        row = re.match(r"^([XYZ]): (\S+) (\S+) (\S+)$", line)
        if row:
            rows.append(np.array([float(v) for v in row.groups()[1:]]))
            if len(rows) == 3:
                trace.quantities += _cell_rows(rows)
            continue
        for pattern, targets in _PRINTOUT:
            m = re.match(pattern, line)
            for key, name, groups, (rtol, atol) in targets if m else ():
                label = "last step" if key == ("last",) else "pixel"
                values = np.array([float(m.group(g)) for g in groups])
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
    rel: float
    beyond: bool

    def line(self) -> str:
        """``scope: name  reference ... | other ...  rel x``."""
        ref, oth = (" ".join(f"{v:.10g}" for v in x) for x in (self.reference, self.other))
        return f"{self.label}: {self.name}  {ref} | {oth}  (rel {self.rel:.3g})"


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
        """The scale factors of the pixel, and the first step's F_cell and F_latt."""
        wanted = ("intensity_sum", "steps", "intensity_per_step", "r_e_sqr_m2",
                  "fluence_per_m2", "capture_fraction", "polar", "omega_sr", "photons",
                  "photons_float32")
        pixel = {d.name: d for d in self.differences if d.label in ("pixel",)}
        steps = [d for d in self.differences if d.name in ("F_cell", "F_latt")]
        firsts = {d.name: d for d in reversed(steps)}
        return [firsts[n] for n in ("F_cell", "F_latt") if n in firsts] + \
            [pixel[n] for n in wanted if n in pixel]

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
        out += [f"  {d.name:<20} {_short(d.reference):>22} {_short(d.other):>22}  {d.rel:.3g}"
                for d in self.factors()]
        return out

    def as_dict(self) -> dict:
        """JSON-ready summary."""
        first = self.first
        return {"compared": len(self.differences), "unmatched": self.unmatched,
                "rtol": self.rtol,
                "first_divergence": None if first is None else _diff_dict(first),
                "factors": [_diff_dict(d) for d in self.factors()]}


def _short(values: np.ndarray) -> str:
    return " ".join(f"{v:.10g}" for v in values)


def _diff_dict(d: Difference) -> dict:
    return {"scope": d.label, "name": d.name, "reference": d.reference.tolist(),
            "other": d.other.tolist(), "rel": d.rel}


def _index(trace: Trace) -> tuple[dict, dict]:
    """(key, name) -> quantity, and name -> last quantity of that name in a sample scope."""
    exact, last = {}, {}
    for q in trace.quantities:
        known = exact.get((q.key, q.name))
        if known is None or (known.component is not None and q.component is None):
            exact[(q.key, q.name)] = q  # a whole vector rather than one component
        if q.key[0] in ("sample", "orientation"):
            last[q.name] = q
    return exact, last


def _counterpart(q: Quantity, exact: dict, last: dict) -> Quantity | None:
    if q.key == ("last",):
        return last.get(q.name)
    return exact.get((q.key, q.name))


def _difference(ref: Quantity, other: Quantity, rtol: float) -> Difference:
    a = np.asarray(other.values, dtype=np.float64)
    b = np.asarray(ref.values, dtype=np.float64)
    if ref.component is not None and a.size == 3:
        a = a[ref.component:ref.component + 1]
    if other.component is not None and b.size == 3:
        b = b[other.component:other.component + 1]
    if a.shape != b.shape:
        return Difference(ref.label, ref.name, b, a, float("inf"), True)
    scale = max(float(np.max(np.abs(b), initial=0.0)), float(np.max(np.abs(a), initial=0.0)))
    err = float(np.max(np.abs(a - b), initial=0.0))
    allowed = max(rtol, ref.rtol, other.rtol) * scale + max(ref.atol, other.atol)
    rel = err / scale if scale > 0 else 0.0
    beyond = not err <= allowed  # NaN is beyond
    return Difference(ref.label, ref.name, b, a, rel, beyond)


def compare_traces(reference: Trace, other: Trace, rtol: float = 1e-6) -> TraceComparison:
    """Match ``other``'s quantities to ``reference``'s and measure each difference.

    A quantity differs beyond the tolerance when max |other - reference| exceeds ``rtol``
    times the larger magnitude of the two (vectors: the largest component), widened to the
    precision either trace printed it with.
    """
    if reference.pixel is not None and other.pixel is not None \
            and reference.pixel != other.pixel:
        raise ValueError(f"the traces are of different pixels: slow, fast {reference.pixel} "
                         f"and {other.pixel}")
    exact, last = _index(other)
    differences, unmatched = [], 0
    for q in reference.quantities:
        counterpart = _counterpart(q, exact, last)
        if counterpart is None:
            unmatched += 1
            continue
        differences.append(_difference(q, counterpart, rtol))
    return TraceComparison((reference.kind, other.kind), differences, unmatched, rtol)
