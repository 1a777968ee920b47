import ast
import pathlib

import pytest
import torch
from hypothesis import given
from test_gtn_helpers import graphs

import gtn

GTN_DIR = pathlib.Path(gtn.__file__).parent


@given(graphs(transducer=True))
def test_text_round_trip(g):
    h = gtn.Graph.from_str(g.to_str(), dtype=torch.float64)
    assert h.to_str() == g.to_str()


def test_builders_and_properties():
    g = gtn.Graph.from_arcs(3, [0], [2], [(0, 1, 0), (1, 2, 1, 1, 0.5)], payload=[7, -1])
    assert g.is_acceptor and g.num_arcs == 2 and g.payload.tolist() == [7, -1]
    t = gtn.Graph.from_arcs(2, [0], [1], [(0, 1, 0, 1, 0.0)])
    assert not t.is_acceptor
    lin = gtn.linear_graph([3, 0, 2], torch.tensor([1.0, 2.0, 3.0]))
    assert float(gtn.forward_score(lin)) == 6.0
    assert lin.state_levels().tolist() == [0, 1, 2, 3]
    p = torch.nn.Parameter(torch.zeros(2))
    v = gtn.Graph.from_tensors(3, torch.tensor([0]), torch.tensor([2]), torch.tensor([0, 1]),
                               torch.tensor([1, 2]), torch.tensor([0, 1]), None, p)
    assert v.weight is p


def test_symbol_table():
    t = gtn.SymbolTable(["0", "1", "$"])
    assert t.index("$") == 2 and t.symbol(1) == "1" and len(t) == 3
    assert t == gtn.SymbolTable(["0", "1", "$"]) and t != gtn.SymbolTable(["0"])
    with pytest.raises(ValueError, match="not in table"):
        t.index("x")


@pytest.mark.parametrize("make, err, msg", [
    (lambda: gtn.Graph.from_arcs(2, [0], [1], [(0, 5, 0)]), ValueError, "unknown state"),
    (lambda: gtn.Graph.from_arcs(2, [0], [3], []), ValueError, "unknown state"),
    (lambda: gtn.Graph.from_arcs(2, [0], [1], [(0, 1, 4)], isymbols=gtn.SymbolTable(["a"])),
     ValueError, "outside"),
    (lambda: gtn.Graph.from_arcs(2, [0], [1], [(0, 1, -7)]), ValueError, "outside"),
    (lambda: gtn.Graph.from_arcs(2, [0], [1], [(0, 1, 0, 0, float("nan"))]), ValueError, "NaN"),
    (lambda: gtn.Graph.from_arcs(2, [], [1], [(0, 1, 0)]), ValueError, "no start state"),
    (lambda: gtn.Graph.from_str("0\n"), ValueError, "accept line"),
    (lambda: gtn.Graph.from_tensors(2, torch.tensor([0]), torch.tensor([1]),
                                    torch.tensor([0.0]), torch.tensor([1]), torch.tensor([0]),
                                    None, torch.zeros(1)), TypeError, "src"),
    (lambda: gtn.Graph.from_tensors(2, torch.tensor([0]), torch.tensor([1]), torch.tensor([0]),
                                    torch.tensor([1]), torch.tensor([0]), None,
                                    torch.zeros(1, dtype=torch.long)), TypeError, "floating"),
    (lambda: gtn.forward_score(gtn.Graph.from_str("0\n0\n0 0 1\n")), ValueError, "cycle"),
    (lambda: gtn.viterbi_score(gtn.Graph.from_str("0\n1\n0 1 -1\n1 0 -1\n")), ValueError,
     "epsilon cycle"),
    (lambda: gtn.remove_epsilon(gtn.Graph.from_str("0\n1\n0 1 -1\n1 0 -1\n")), ValueError,
     "epsilon cycle"),
    (lambda: gtn.union([gtn.linear_graph([0], isymbols=gtn.SymbolTable(["a"])),
                        gtn.linear_graph([0], isymbols=gtn.SymbolTable(["b"]))]),
     ValueError, "disagree"),
    (lambda: gtn.forward_score("not a graph"), TypeError, "Graph"),
    (lambda: gtn.prune(gtn.linear_graph([0]), -1.0), ValueError, "beam"),
    (lambda: gtn.nbest(gtn.linear_graph([0]), 0), ValueError, "k must be"),
])
def test_bad_graphs_raise(make, err, msg):
    with pytest.raises(err, match=msg):
        make()


def test_gtn_never_imports_pipelines():
    for path in GTN_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            assert not any(n.split(".")[0] == "pipelines" for n in names), path
