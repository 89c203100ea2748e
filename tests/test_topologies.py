from __future__ import annotations

import networkx as nx
import pytest

from raympl import topologies
from raympl.topologies import TopologyError


def test_ring_and_neighbours():
    graph = topologies.build("ring", 5)
    assert topologies.neighbours(graph)[0] == [1, 4]
    assert graph.number_of_edges() == 5


def test_er_is_connected_and_deterministic_by_seed():
    a = topologies.build("er", 30, p=0.15, seed=4)
    b = topologies.build("er", 30, p=0.15, seed=4)
    c = topologies.build("er", 30, p=0.15, seed=5)
    assert nx.is_connected(a)
    assert sorted(a.edges) == sorted(b.edges) != sorted(c.edges)


def test_paper20_graph_matches_the_reference_adjacency():
    graph = topologies.build("paper20", 20)
    assert graph.number_of_edges() == 104
    assert [d for _, d in sorted(graph.degree())] == [11, 9, 12, 7, 10, 13, 14, 12, 8, 10, 2, 12, 14, 10,
                                                      10, 9, 7, 14, 12, 12]
    assert topologies.neighbours(graph)[10] == [12, 14]


def test_edge_list_file_round_trip(tmp_path):
    path = tmp_path / "g.edgelist"
    topologies.write_edgelist(topologies.ring(4), path)
    assert sorted(topologies.build(str(path), 4).edges) == [(0, 1), (0, 3), (1, 2), (2, 3)]


@pytest.mark.parametrize("content, n, message", [
    ("0 1\n2 3\n", 4, "disconnected"),
    ("0 1\n1 2\n", 4, "nodes must be 0..3"),
    ("0 1\n1 1\n", 2, "self-loop"),
    ("0 x\n", 2, "invalid topology file"),
])
def test_bad_graphs_are_rejected_with_a_clear_message(tmp_path, content, n, message):
    path = tmp_path / "bad.edgelist"
    path.write_text(content)
    with pytest.raises(TopologyError, match=message):
        topologies.build(str(path), n)


def test_er_that_cannot_connect_is_rejected():
    with pytest.raises(TopologyError, match="no connected"):
        topologies.erdos_renyi(50, 0.001, seed=0)
