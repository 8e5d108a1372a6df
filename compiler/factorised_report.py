"""What `qtc compile` says about a per-position space: the form chosen, why, and its program."""
from __future__ import annotations

from qtc.compiler.factorised import Factorised, channel_memory

def factorised_report(prog: Factorised) -> str:
    """The form chosen, the candidate count, both costs, and the positions with their choices."""
    c = prog.costs
    rows = [f"space {prog.name}: {prog.qubits} qubits, depth {prog.depth}, weights "
            f"{prog.weights_norm} per position ({len(prog.positions)} positions)",
            f"form: {prog.form} ({_why(prog)})",
            f"candidates: {c.candidates:,} = "
            + (" x ".join(str(len(p.alts)) for p in prog.positions) or "1"),
            f"cost enumeration: {c.enumeration:.4g} gate-amplitude updates (C x 2^{prog.qubits} x "
            f"gates per candidate; limit {c.limit:,} candidates)",
            f"cost channel:     {c.channel:.4g} gate-amplitude updates (4^{prog.qubits} x gates of "
            f"every alternative; {c.channel_bytes / 2 ** 20:.4g} MiB of density matrices, budget "
            f"{channel_memory() / 2 ** 20:.4g} MiB)",
            f"structural weights: {prog.weights_shape[0]} x {prog.weights_shape[1]} "
            "(positions x most alternatives)", "", "positions:"]
    rows += [f"  {p.position:3d} {p.name:12s} {' | '.join(p.labels)}" for p in prog.positions]
    return "\n".join(rows) + "\n"


def _why(prog: Factorised) -> str:
    c = prog.costs
    other = "channel" if prog.form == "enumeration" else "enumeration"
    if not getattr(c, f"{other}_fits"):
        return f"the {other} form does not fit"
    return f"cheaper or equal: {getattr(c, prog.form):.4g} against {getattr(c, other):.4g}"


def pretty_channel(prog: Factorised) -> str:
    """Deterministic text of the channel program: every step, its alternatives and their ops."""
    lines = [f"channel {prog.name} qubits {prog.qubits} depth {prog.depth}"]
    for s in prog.steps:
        weight = f"position {s.position}" if s.position is not None else "fixed"
        lines.append(f"step {s.name} ({weight})")
        for label, ops in zip(s.labels, s.alts):
            lines.append(f"  alt {label} ({len(ops)} ops)")
            lines += [f"    {op}" for op in ops]
    return "\n".join(lines) + "\n"

