"""Neighbour tables of the super-resolution network (Park et al. 2024 §3.1–3.2).

- ``lr_geodesic_knn``: the first EdgeConv graph, each LR vertex's k nearest other LR
  vertices by shortest-path distance along the rest LR mesh's edges.
- ``surface_lr_neighbours``: every LR vertex is mapped to a distinct vertex of a surface by
  linear assignment (minimum total Euclidean distance, Crouse 2016), then every surface
  vertex gets its k nearest mapped LR vertices by Dijkstra distance along the surface's
  edges, plus each LR vertex's depth below the vertex it is mapped to. The paper uses the
  surface distance alone; without the depth, an LR vertex deep in the tissue that the
  one-to-one assignment pushed several cm from its place (around the eye sockets on a
  coarse lattice) ranked as a surface vertex's nearest neighbour. With it, a row's
  distance bounds the straight distance to that LR vertex.
- ``hr_skin_lr_neighbours``: the upsampler's neighbourhoods, as the paper builds them: the
  surface is the HR mesh's boundary (many more vertices than the LR lattice at every
  preset), and each embedded skin vertex takes the row of its nearest HR surface vertex.

Distances are in cm. Dijkstra runs in chunks of sources with a ``limit`` radius, so memory
stays bounded (scipy returns a dense row per source).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra, min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

from .tetmesh import boundary_faces, unique_edges

_CHUNK_ENTRIES = 1 << 23  # dense Dijkstra rows per chunk × vertices: 64 MB of float64


def edge_graph(positions: np.ndarray, edges: np.ndarray) -> csr_matrix:
    """Symmetric sparse graph (V, V) of edges (K, 2) weighted by their length (cm)."""
    p = positions.astype(np.float64)
    length = np.linalg.norm(p[edges[:, 0]] - p[edges[:, 1]], axis=1)
    length = np.maximum(length, 1e-9)  # an explicit zero would read as "no edge"
    n = len(positions)
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    return coo_matrix((np.concatenate([length, length]), (rows, cols)), shape=(n, n)).tocsr()


def triangle_edges(triangles: np.ndarray) -> np.ndarray:
    """Undirected edges (K, 2) int32 of a triangle mesh, smaller index first."""
    pairs = triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    return np.unique(np.sort(pairs, axis=1), axis=0).astype(np.int32)


def _smallest_k(distances: np.ndarray, ids: np.ndarray, k: int):
    """Per row the k smallest finite distances (R, k) and their ids, ascending (equal
    distances in id order among those picked). Rows with fewer than k finite entries are
    padded with inf / -1."""
    k_eff = min(k, distances.shape[1])
    part = np.argpartition(distances, k_eff - 1, axis=1)[:, :k_eff]
    d = np.take_along_axis(distances, part, axis=1)
    i = np.take_along_axis(ids, part, axis=1) if ids.ndim == 2 else ids[part]
    order = np.lexsort((i, d), axis=1)
    d, i = np.take_along_axis(d, order, axis=1), np.take_along_axis(i, order, axis=1)
    i = np.where(np.isfinite(d), i, -1)
    if k_eff < k:
        d = np.pad(d, ((0, 0), (0, k - k_eff)), constant_values=np.inf)
        i = np.pad(i, ((0, 0), (0, k - k_eff)), constant_values=-1)
    return d, i


def lr_geodesic_knn(lr, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """For every LR vertex its k nearest other LR vertices along the rest mesh's edges.

    Returns (indices (N, k) int32, distances (N, k) float32 cm), ascending per row.
    """
    positions = lr.rest_positions
    n = len(positions)
    if n <= k:
        raise ValueError(f"The LR mesh has {n} vertices; {k} neighbours need at least {k + 1}.")
    edges = unique_edges(lr.tets)
    graph = edge_graph(positions, edges)
    lengths = graph.data
    radius = 2.0 * float(np.median(lengths)) if len(lengths) else 1.0
    indices = np.full((n, k), -1, dtype=np.int64)
    distances = np.full((n, k), np.inf)
    todo = np.arange(n)
    chunk = max(1, _CHUNK_ENTRIES // n)
    while len(todo):
        for start in range(0, len(todo), chunk):
            sources = todo[start : start + chunk]
            d = dijkstra(graph, indices=sources, limit=radius)
            d[np.arange(len(sources)), sources] = np.inf  # not its own neighbour
            d, i = _smallest_k(d, np.arange(n), k)
            indices[sources], distances[sources] = i, d
        missing = ~np.isfinite(distances[todo, -1])
        if missing.any() and not np.isfinite(radius):
            raise ValueError(
                f"{int(missing.sum())} LR vertices have fewer than {k} connected vertices."
            )
        todo = todo[missing]
        radius = np.inf if radius > 1e3 else 2.0 * radius
    return indices.astype(np.int32), distances.astype(np.float32)


def assign_lr_to_surface(
    surface_positions: np.ndarray,
    lr_positions: np.ndarray,
    candidates: int = 32,
    max_candidates: int = 512,
) -> np.ndarray:
    """One distinct surface vertex per LR vertex minimising the total Euclidean distance.

    A minimum-weight full bipartite matching (LAPJVsp) on a sparse candidate graph: each
    LR vertex's ``candidates`` nearest surface vertices plus its vertex in a greedy
    nearest-free assignment, which guarantees that a full matching exists. The candidate
    count doubles until doubling no longer lowers the total (at most ``max_candidates``;
    on the default preset this reaches the dense optimum at 128). Deep LR vertices end up
    at the nearest surface vertex still free. Returns (N,) int32 surface vertex indices,
    all distinct. Raises ValueError when N > M (more LR than surface vertices).
    """
    n, m = len(lr_positions), len(surface_positions)
    if n > m:
        raise ValueError(
            f"Cannot map {n} LR vertices one-to-one onto {m} surface vertices: the LR mesh "
            "has more vertices than the surface. Use a denser surface (the HR mesh's)."
        )
    tree = cKDTree(surface_positions.astype(np.float64))
    points = lr_positions.astype(np.float64)
    greedy = _greedy_assignment(tree, points, m)
    best = greedy
    best_cost = float(np.linalg.norm(surface_positions[greedy] - points, axis=1).sum())
    count = min(candidates, m)
    while True:
        distance, nearest = tree.query(points, k=count)
        distance, nearest = distance.reshape(n, count), nearest.reshape(n, count)
        extra = np.flatnonzero((nearest != greedy[:, None]).all(axis=1))
        rows = np.concatenate([np.repeat(np.arange(n), count), extra])
        cols = np.concatenate([nearest.ravel(), greedy[extra]])
        weights = np.linalg.norm(points[rows] - surface_positions[cols], axis=1)
        # + 1e-6 keeps exact hits as edges and shifts every full matching's cost equally.
        cost = coo_matrix((weights + 1e-6, (rows, cols)), shape=(n, m)).tocsr()
        matched_rows, matched_cols = min_weight_full_bipartite_matching(cost)
        mapping = np.empty(n, dtype=np.int32)
        mapping[matched_rows] = matched_cols
        total = float(np.linalg.norm(surface_positions[mapping] - points, axis=1).sum())
        improved = total < best_cost - 1e-9 * max(best_cost, 1.0)
        if improved:
            best, best_cost = mapping, total
        if not improved or count >= min(m, max_candidates):
            return best
        count = min(2 * count, m)


def _greedy_assignment(tree: cKDTree, points: np.ndarray, m: int) -> np.ndarray:
    """Each point (N, 3), nearest to the surface first, takes its nearest surface vertex
    still free (N,) int32."""
    n = len(points)
    count = min(16, m)
    distance, nearest = tree.query(points, k=count)
    nearest = nearest.reshape(n, count)
    taken = np.zeros(m, dtype=bool)
    mapping = np.empty(n, dtype=np.int32)
    for i in np.argsort(distance.reshape(n, count)[:, 0], kind="stable"):
        row = nearest[i]
        free = row[~taken[row]]
        wider = count
        while not len(free):
            wider = min(2 * wider, m)
            row = np.atleast_1d(tree.query(points[i], k=wider)[1])
            free = row[~taken[row]]
        taken[free[0]] = True
        mapping[i] = free[0]
    return mapping


def surface_lr_neighbours(
    surface_positions: np.ndarray,
    surface_triangles: np.ndarray,
    lr_positions: np.ndarray,
    k: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """For every surface vertex its k nearest LR vertices: Dijkstra distance along the
    surface's edges to the vertex each LR vertex is assigned to (``assign_lr_to_surface``)
    plus the LR vertex's straight distance to it (its depth).

    surface_positions (M, 3), surface_triangles (F, 3), lr_positions (N, 3) cm, N ≤ M.
    Returns (indices (M, k) int32 into the LR vertices, distances (M, k) float32 cm),
    ascending per row.
    """
    m, n = len(surface_positions), len(lr_positions)
    if n < k:
        raise ValueError(f"{k} neighbours need at least {k} LR vertices, got {n}.")
    mapping = assign_lr_to_surface(surface_positions, lr_positions)
    depth = np.linalg.norm(
        surface_positions[mapping].astype(np.float64) - lr_positions.astype(np.float64), axis=1
    )
    graph = edge_graph(surface_positions, triangle_edges(surface_triangles))

    # A first radius that holds k sources where the LR vertices reach the surface.
    edge_length = float(np.median(graph.data))
    spacing = float(np.median(cKDTree(lr_positions).query(lr_positions, k=2)[0][:, 1]))
    radius = max(1.5 * np.sqrt(k) * spacing, 4.0 * edge_length)
    best_d = np.full((m, k), np.inf)
    best_i = np.full((m, k), -1, dtype=np.int64)

    # Pass 1: grow discs of the radius from the sources, merge each chunk into the running
    # top k. A source beyond the radius along the surface is farther than the radius in
    # total, so a row whose k-th distance is within the radius is exact.
    chunk = max(1, _CHUNK_ENTRIES // m)
    for start in range(0, n, chunk):
        sources = mapping[start : start + chunk]
        d = dijkstra(graph, indices=sources, limit=radius).T + depth[start : start + chunk]
        ids = np.broadcast_to(np.arange(start, start + len(sources)), d.shape)
        best_d, best_i = _smallest_k(
            np.concatenate([best_d, d], axis=1), np.concatenate([best_i, ids], axis=1), k
        )
    # Pass 2: the other rows (far from the simulated region, or near deep LR vertices)
    # search from their own side with a growing radius (the graph is undirected).
    todo = np.flatnonzero(~(best_d[:, -1] <= radius))
    while len(todo):
        radius *= 2.0
        limit = radius if radius < 1e3 else np.inf
        for start in range(0, len(todo), chunk):
            rows = todo[start : start + chunk]
            d = dijkstra(graph, indices=rows, limit=limit)[:, mapping] + depth  # (R, N)
            best_d[rows], best_i[rows] = _smallest_k(d, np.arange(n), k)
        if np.isfinite(limit):
            todo = todo[~(best_d[todo, -1] <= limit)]
            continue
        short = ~np.isfinite(best_d[todo, -1])
        if short.any():
            raise ValueError(
                f"{int(short.sum())} surface vertices reach fewer than {k} LR vertices along "
                "the surface; is it connected?"
            )
        break
    return best_i.astype(np.int32), best_d.astype(np.float32)


def _largest_component(triangles: np.ndarray) -> np.ndarray:
    """The triangles (T', 3) of the largest edge-connected part of a triangle soup: the
    tissue's outer surface, without the closed shells of small voids the mesher can leave
    inside a fine mesh (seen at ``paper``), which no LR vertex could be reached from."""
    from scipy.sparse.csgraph import connected_components

    edges = triangle_edges(triangles)
    n = int(triangles.max()) + 1
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, part = connected_components(graph, directed=False)
    used = np.unique(triangles)
    largest = np.bincount(part[used]).argmax()
    return triangles[part[triangles[:, 0]] == largest]


def hr_skin_lr_neighbours(
    hr_positions: np.ndarray,
    hr_tets: np.ndarray,
    skin_positions: np.ndarray,
    skin_elements: np.ndarray,
    lr_positions: np.ndarray,
    k: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """For every embedded skin vertex its k nearest LR vertices along the HR surface.

    hr_positions (H, 3) cm and hr_tets (E, 4): the HR mesh, whose boundary is the surface;
    skin_positions (P, 3) cm and skin_elements (P,) the skin's HR embedding elements;
    lr_positions (N, 3) cm. The surface is the boundary's largest connected part. A skin
    vertex takes the row of the nearest surface node of its own element (so a lip vertex
    never takes the other lip's row), or of the nearest surface node when its element has
    none; its distances add the offset to that node.
    Returns (indices (P, k) int32 into the LR vertices, distances (P, k) float32 cm).
    """
    faces = _largest_component(boundary_faces(hr_tets))
    surface_nodes, triangles = np.unique(faces, return_inverse=True)
    triangles = triangles.reshape(-1, 3)
    surface = hr_positions[surface_nodes]
    indices, distances = surface_lr_neighbours(surface, triangles, lr_positions, k)

    local = np.full(len(hr_positions), -1, dtype=np.int64)
    local[surface_nodes] = np.arange(len(surface_nodes))
    corners = local[hr_tets[skin_elements]]  # (P, 4), -1 for interior nodes
    offset = np.linalg.norm(
        surface[np.maximum(corners, 0)] - skin_positions[:, None].astype(np.float64), axis=2
    )
    offset[corners < 0] = np.inf
    host = corners[np.arange(len(corners)), np.argmin(offset, axis=1)]
    orphan = ~np.isfinite(offset.min(axis=1))
    if orphan.any():
        host[orphan] = cKDTree(surface).query(skin_positions[orphan])[1]
    gap = np.linalg.norm(surface[host] - skin_positions.astype(np.float64), axis=1)
    return indices[host], (distances[host] + gap[:, None]).astype(np.float32)
