import gtn

G = gtn.Graph.from_arcs(3, [0], [2], [(0, 1, 0, 1, 0.5), (1, 2, -1, 0, 1.0), (0, 1, 1, 1, 2.0)],
                        payload=[3, -1, 4])


def test_to_networkx_has_the_arc_data():
    nx_g = G.to_networkx() if hasattr(G, "to_networkx") else gtn.to_networkx(G)
    assert nx_g.number_of_nodes() == 3 and nx_g.number_of_edges() == 3
    data = [d for _, _, d in nx_g.edges(data=True)]
    assert sorted(d["payload"] for d in data) == [-1, 3, 4]
    assert {d["olabel"] for d in data} == {0, 1}
    assert nx_g.nodes[0]["start"] and nx_g.nodes[2]["accept"]


def test_to_dot_and_draw(tmp_path):
    dot = gtn.to_dot(G)
    assert dot.startswith("digraph") and "doublecircle" in dot and "ε:0" in dot
    out = gtn.draw(G, tmp_path / "g.png")
    assert out.stat().st_size > 1000
    gtn.draw(gtn.closure(G), tmp_path / "c.png")
