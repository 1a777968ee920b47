"""Views of a graph: networkx, Graphviz DOT text, and a PNG."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from .graph import EPSILON, Graph, SymbolTable


def _label(lab: int, table: SymbolTable | None) -> str:
    if lab == EPSILON:
        return "ε"
    return table.symbol(lab) if table is not None else str(lab)


def _arc_text(g: Graph, i: int, il: int, ol: int, w: float) -> str:
    text = _label(il, g.isymbols)
    if not g.is_acceptor:
        text += ":" + _label(ol, g.osymbols)
    return f"{text}/{w:.3g}"


def to_networkx(g: Graph) -> Any:
    """A ``networkx.MultiDiGraph``: nodes carry ``start``/``accept``; each arc's edge data holds
    ``index``, ``ilabel``, ``olabel``, ``weight``, ``payload`` and a display ``label``."""
    import networkx as nx

    G = nx.MultiDiGraph()
    for s, (st, ac) in enumerate(zip(g.start.tolist(), g.accept.tolist())):
        G.add_node(s, start=st, accept=ac)
    pay = g.payload_or_none().tolist()
    for i, (s, d, il, ol, w) in enumerate(g.arcs()):
        G.add_edge(s, d, key=i, index=i, ilabel=il, olabel=ol, weight=w, payload=pay[i],
                   label=_arc_text(g, i, il, ol, w))
    return G


def to_dot(g: Graph) -> str:
    """Graphviz DOT text: start states bold, accept states double circles."""
    lines = ["digraph G {", "  rankdir=LR;"]
    for s, (st, ac) in enumerate(zip(g.start.tolist(), g.accept.tolist())):
        shape = "doublecircle" if ac else "circle"
        style = ', style="bold"' if st else ""
        lines.append(f'  {s} [shape={shape}{style}];')
    for i, (s, d, il, ol, w) in enumerate(g.arcs()):
        lines.append(f'  {s} -> {d} [label="{_arc_text(g, i, il, ol, w)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(g: Graph, path: str | Path) -> Path:
    """Write a picture of ``g`` to ``path`` (format from the suffix, e.g. .png): Graphviz
    ``dot`` if it is on PATH, otherwise matplotlib + networkx. Returns the path."""
    path = Path(path)
    dot = shutil.which("dot")
    if dot is not None:
        fmt = path.suffix.lstrip(".") or "png"
        res = subprocess.run([dot, f"-T{fmt}", "-o", str(path)], input=to_dot(g), text=True,
                             capture_output=True, check=False)
        if res.returncode == 0:
            return path
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    G = to_networkx(g)
    levels = g.state_levels().tolist() if g.is_acyclic else None
    if levels is not None:
        pos = {s: (lv, -sum(1 for t in range(s) if levels[t] == lv)) for s, lv in
               enumerate(levels)}
    else:
        pos = nx.spring_layout(G, seed=0)
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * (max(levels) + 1 if levels else 6)), 4))
    colors = ["lightgreen" if g.start[s] else "white" for s in G.nodes]
    nx.draw_networkx_nodes(G, pos, ax=ax, node_color=colors, edgecolors="black",
                           linewidths=[3 if g.accept[s] else 1 for s in G.nodes])
    nx.draw_networkx_labels(G, pos, ax=ax)
    for k, (s, d, data) in enumerate(G.edges(data=True)):
        rad = 0.25 * ((k % 5) - 2)
        nx.draw_networkx_edges(G, pos, edgelist=[(s, d)], ax=ax,
                               connectionstyle=f"arc3,rad={rad}")
        (x0, y0), (x1, y1) = pos[s], pos[d]
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 - rad * max(abs(x1 - x0), 0.5) / 2, data["label"],
                fontsize=7,
                ha="center")
    ys = [y for _, y in pos.values()]
    ax.set_ylim(min(ys) - 1.0, max(ys) + 1.0)
    ax.set_axis_off()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
