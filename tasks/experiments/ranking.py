"""Which row of a report table is best, and how a row's count and spread are written.

A row is a summary row (qtc.tasks.experiments.report.summarize): a model's or a variant's final
metric over seeds (n, failed, pending, median, q1, q3, min, max, mean, std). The summary and the
variants tables both mark their best rows by one rule (`best_rows`), so it lives here.
"""
from __future__ import annotations

from qtc.tasks.experiments.records import fmt_metric

MIN_SEEDS = 3     # fewer finished seeds than this: no row is marked best


def count_cell(s: dict) -> str:
    """The n cell: finished seeds, and the failed and unfinished ones."""
    return f"{s['n']}" + "".join([f", {s['failed']} failed" if s["failed"] else "",
                                  f", {s['pending']} unfinished" if s["pending"] else ""])


def spread_cells(s: dict, kind: str) -> str:
    """The IQR, min .. max and mean ± std cells; with fewer than two seeds there is no spread."""
    if s["n"] < 2:
        return "- | - | " + ("one seed: no spread" if s["n"] == 1 else "no finished seed")
    return (f"{fmt_metric(s['q1'], kind)} .. {fmt_metric(s['q3'], kind)} | {fmt_metric(s['min'], kind)} .. "
            f"{fmt_metric(s['max'], kind)} | {fmt_metric(s['mean'], kind)} ± {fmt_metric(s['std'], kind)}")


def best_rows(rows: list[dict], higher: bool, what: str = "model", name: str = "label") -> tuple[list[dict], str]:
    """The rows to mark best and a note saying why none is.

    The rule: a best median is claimed only when every row compared has at least MIN_SEEDS
    finished seeds and the best row's min .. max range over seeds lies wholly on the better
    side of every other row's (so no seed of another row did as well as any of its seeds).
    Rows that share the best median (tied candidates) are all marked. One row ranks nothing.
    `what` names the rows in the note (model, variant), `name` the key that labels one."""
    got = [s for s in rows if s["n"]]
    if len(got) < 2:
        return [], ""
    few = [s for s in got if s["n"] < MIN_SEEDS]
    if few:
        return [], (f"No {what} is marked best: fewer than {MIN_SEEDS} finished seeds for "
                    + ", ".join(f"{s[name]} ({s['n']})" for s in few) + ".")
    top = (max if higher else min)(s["median"] for s in got)
    best = [s for s in got if s["median"] == top]
    if len(best) == len(got):
        return [], f"All {len(got)} {what}s tie (median {top:.6g})."
    b = best[0]
    near = [s for s in got if s not in best and (s["max"] >= b["min"] if higher else s["min"] <= b["max"])]
    if near:
        return [], (f"No {what} is marked best: the best median's range over seeds ({b[name]}) "
                    "overlaps " + ", ".join(s[name] for s in near) + ".")
    if len(best) > 1:
        return best, "Tied for best: " + ", ".join(s[name] for s in best) + "."
    return best, ""
