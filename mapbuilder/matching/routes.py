"""Bounded shortest paths between road nodes: one table per chunk of HMM steps, searched by
scipy's Dijkstra with a distance limit. Small networks are searched whole; on large ones only the
box a route of the limit's length can reach is handed to the search."""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from mapbuilder.geo import FloatArray
from mapbuilder.roads.network import Graph, IntArray

NO_PREDECESSOR = -9999  # what scipy writes where a node has none
# Above this many nodes a table's rows (one float per node and source) cost more than cutting
# the graph down to the box around the chunk does.
WHOLE_GRAPH_NODES = 20_000


class Router:
    """The directed node graph of a network as scipy wants it, built once per network."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.size = len(graph.node_x)
        self.whole = self._matrix(np.arange(self.size), np.ones(len(graph.pair_from), bool))
        key = graph.pair_from * self.size + graph.pair_to
        self.key_order = np.argsort(key)
        self.sorted_key = key[self.key_order]

    def _matrix(self, nodes: IntArray, pairs: np.ndarray) -> csr_matrix:
        g = self.graph
        rows = np.searchsorted(nodes, g.pair_from[pairs])
        cols = np.searchsorted(nodes, g.pair_to[pairs])
        shape = (len(nodes), len(nodes))
        return csr_matrix((g.pair_length_m[pairs], (rows, cols)), shape=shape)

    def region(self, ends: IntArray, limit_m: float) -> tuple[IntArray, csr_matrix]:
        """Nodes (sorted) and matrix of the part of the graph routes from and to `ends` no longer
        than `limit_m` can use: all of it on a small network, else a box around the ends."""
        if self.size <= WHOLE_GRAPH_NODES:
            return np.arange(self.size), self.whole
        x, y = self.graph.node_x, self.graph.node_y
        inside = (
            (x >= x[ends].min() - limit_m)
            & (x <= x[ends].max() + limit_m)
            & (y >= y[ends].min() - limit_m)
            & (y <= y[ends].max() + limit_m)
        )
        keep = inside[self.graph.pair_from] & inside[self.graph.pair_to]
        nodes = np.flatnonzero(inside)
        return nodes, self._matrix(nodes, keep)

    def edges_between(self, nodes: IntArray) -> list[int]:
        """The directed edges (the shortest of parallel ones) along a sequence of nodes."""
        wanted = nodes[:-1] * self.size + nodes[1:]
        found = self.key_order[np.searchsorted(self.sorted_key, wanted)]
        return [int(e) for e in self.graph.pair_edge[found]]


class RouteTable:
    """Shortest route lengths (metres) from each of `sources` to every node within `limit_m`."""

    def __init__(
        self,
        router: Router,
        sources: IntArray,
        targets: IntArray,
        limit_m: float,
        *,
        with_paths: bool = False,
    ) -> None:
        self.router = router
        self.nodes, matrix = router.region(np.concatenate([sources, targets]), limit_m)
        self.sources = np.unique(sources)
        result = dijkstra(
            matrix,
            directed=True,
            indices=self._local(self.sources),
            limit=limit_m,
            return_predecessors=with_paths,
        )
        self.pred: np.ndarray | None
        self.dist, self.pred = result if with_paths else (result, None)

    def _local(self, nodes: IntArray) -> IntArray:
        if len(self.nodes) == self.router.size:
            return nodes  # the whole graph: local and global numbers agree
        return np.searchsorted(self.nodes, nodes)

    def distance(self, source: IntArray, target: IntArray) -> FloatArray:
        """Route length from each source node to its target node (inf beyond the limit)."""
        rows = np.searchsorted(self.sources, source)
        return np.asarray(self.dist[rows, self._local(target)])

    def path(self, source: int, target: int) -> list[int]:
        """The directed edges of the shortest route from `source` to `target` (nodes)."""
        if self.pred is None:
            msg = "this route table was built without paths"
            raise ValueError(msg)
        row = int(np.searchsorted(self.sources, source))
        start, node = (int(v) for v in self._local(np.array([source, target])))
        local_nodes = [node]
        while node != start:
            node = int(self.pred[row, node])
            if node == NO_PREDECESSOR:
                return []
            local_nodes.append(node)
        return self.router.edges_between(self.nodes[np.array(local_nodes[::-1])])
