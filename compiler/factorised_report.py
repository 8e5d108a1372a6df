"""What `qtc compile` says about a per-position space: the form chosen, why, and its program."""
from __future__ import annotations

from qtc.compiler.ir import Program


def factorised_report(prog: Program) -> str:
    """A per-position space's form chosen, candidate count, both costs, and the positions with
    their choices."""
    w = prog.weights
    c = w.costs
    rows = [f"space {prog.name}: {prog.qubits} qubits, depth {prog.depth}, weights "
            f"{w.norm} per position ({len(w.positions)} positions)",
            f"form: {prog.form} ({_why(prog)})",
            f"candidates: {c.candidates:,} = "
            + (" x ".join(str(len(p.alts)) for p in w.positions) or "1"),
            f"cost enumeration: {c.enumeration:.4g} gate-amplitude updates (C x 2^{prog.qubits} x "
            f"gates per candidate; limit {c.limit:,} candidates)",
            f"cost channel:     {c.channel:.4g} gate-amplitude updates (4^{prog.qubits} x gates of "
            f"every alternative; {c.channel_bytes / 2 ** 20:.4g} MiB of density matrices, budget "
            f"{c.budget / 2 ** 20:.4g} MiB)",
            f"structural weights: {w.shape[0]} x {w.shape[1]} "
            "(positions x most alternatives)", "", "positions:"]
    rows += [f"  {p.position:3d} {p.name:12s} {' | '.join(p.labels)}" for p in w.positions]
    return "\n".join(rows) + "\n"


def _why(prog: Program) -> str:
    c = prog.weights.costs
    if prog.form == "sampled":
        return ("asked for by 'search sampled K': K architectures drawn per step, one statevector "
                "each; it trains the expected loss over architectures, not the loss of the mixture")
    other = "channel" if prog.form == "enumeration" else "enumeration"
    if not getattr(c, f"{other}_fits"):
        return f"the {other} form does not fit"
    return f"cheaper or equal: {getattr(c, prog.form):.4g} against {getattr(c, other):.4g}"
