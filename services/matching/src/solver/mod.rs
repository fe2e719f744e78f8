//! The assignment itself, on a bipartite graph of students (left) and offers
//! (right) with capacities: the exact solver and the greedy baseline.
//!
//! The exact solver works in two phases, lexicographically:
//!
//! 1. **Cardinality.** A maximum flow (Dinic's blocking flows, which on this unit
//!    network is Hopcroft–Karp generalised to capacities) gives the most
//!    students that can be placed. Its minimum cut splits the graph: every
//!    maximum placement uses the cut's left-to-right pairs, never its
//!    right-to-left ones, fills every offer on the source side and places every
//!    student on the sink side. So among maximum placements only two smaller
//!    problems are left, each with one side that must be filled completely.
//! 2. **Fit.** Each side-filling problem is solved exactly by successive
//!    shortest paths with node potentials (the Hungarian method, one
//!    Dijkstra per unit on the sparse graph), augmenting from the side that must
//!    be filled to the nearest node with room. Because that side has to be
//!    filled anyway, no big-M cost is needed, and searches end at the first
//!    node with room, which is usually near.
//!
//! Pairs exist only within a qualification and a travel distance, so the graph
//! falls apart into many connected components; each is solved on its own,
//! which keeps the searches and the flow's phases local, and spreads the
//! components over threads, largest first.
//!
//! Everything is deterministic: nodes and pairs are visited in index order
//! (students and offers are sorted by id), the shortest-path heap breaks equal
//! distances by node index, and a component's result does not depend on which
//! thread solved it or when.

mod components;
mod greedy;
mod hungarian;
mod maxflow;
#[cfg(test)]
mod tests;

pub(crate) use greedy::greedy;

/// A bipartite graph with capacities; pairs (edges) are listed by left node.
#[derive(Debug, Clone)]
pub(crate) struct Graph<'a> {
    /// How many pairs each left node (student) may be part of.
    pub left_cap: Vec<u32>,
    /// How many pairs each right node (offer) may be part of.
    pub right_cap: Vec<u32>,
    /// Where each left node's edges start; one more entry than left nodes.
    pub start: &'a [u32],
    /// The right node of each edge.
    pub right: &'a [u32],
    /// The weight (fit) of each edge; higher is better.
    pub weight: &'a [u16],
}

impl Graph<'_> {
    fn lefts(&self) -> usize {
        self.left_cap.len()
    }

    fn rights(&self) -> usize {
        self.right_cap.len()
    }

    fn edges(&self, left: usize) -> std::ops::Range<usize> {
        self.start[left] as usize..self.start[left + 1] as usize
    }

    /// The left node of every edge.
    fn edge_lefts(&self) -> Vec<u32> {
        let mut lefts = Vec::with_capacity(self.right.len());
        for left in 0..self.lefts() {
            lefts.extend(self.edges(left).map(|_| left as u32));
        }
        lefts
    }
}

/// The edges of a graph by right node: a transposed adjacency.
struct ByRight {
    start: Vec<u32>,
    edge: Vec<u32>,
}

impl ByRight {
    fn new(graph: &Graph<'_>) -> Self {
        let mut start = vec![0u32; graph.rights() + 1];
        for &right in graph.right {
            start[right as usize + 1] += 1;
        }
        for at in 1..start.len() {
            start[at] += start[at - 1];
        }
        let mut next = start.clone();
        let mut edge = vec![0u32; graph.right.len()];
        for (e, &right) in graph.right.iter().enumerate() {
            edge[next[right as usize] as usize] = e as u32;
            next[right as usize] += 1;
        }
        Self { start, edge }
    }

    fn edges(&self, right: usize) -> &[u32] {
        &self.edge[self.start[right] as usize..self.start[right + 1] as usize]
    }
}

/// The edges of an optimal assignment, sorted: as many pairs as possible, and
/// among those the greatest total weight; components solved on up to
/// `threads` threads.
pub(crate) fn optimal(graph: &Graph<'_>, threads: usize) -> Vec<u32> {
    components::solve_each(graph, threads, exact)
}

/// The optimal assignment of one graph (any graph; used per component).
fn exact(graph: &Graph<'_>) -> Vec<u32> {
    let by_right = ByRight::new(graph);
    let edge_left = graph.edge_lefts();
    let flow = maxflow::max_flow(graph, &by_right, &edge_left);
    let cut = maxflow::source_side(graph, &by_right, &edge_left, &flow);
    let max_weight = graph.weight.iter().copied().max().unwrap_or(0);
    let cost = |e: usize| i64::from(max_weight - graph.weight[e]);

    let mut chosen = Vec::new();
    let mut left_room = graph.left_cap.clone();
    let mut right_room = graph.right_cap.clone();
    // Pairs across the cut are in every maximum assignment.
    for left in (0..graph.lefts()).filter(|&l| cut.left[l]) {
        for e in graph.edges(left) {
            let right = graph.right[e] as usize;
            if !cut.right[right] {
                debug_assert!(flow.used[e], "a source-to-sink pair is always saturated");
                chosen.push(e as u32);
                left_room[left] -= 1;
                right_room[right] -= 1;
            }
        }
    }

    // Sink side: every student there is placed; offers keep what room is left.
    let mut sink = hungarian::Problem::default();
    let sink_right: Vec<u32> = local_index(&cut.right, false);
    for left in (0..graph.lefts()).filter(|&l| !cut.left[l]) {
        sink.add_node(left_room[left]);
        for e in graph.edges(left) {
            let right = graph.right[e] as usize;
            if !cut.right[right] {
                sink.add_edge(sink_right[right], cost(e), e as u32);
            }
        }
    }
    sink.room = (0..graph.rights()).filter(|&r| !cut.right[r]).map(|r| right_room[r]).collect();
    chosen.extend(sink.solve());

    // Source side: every offer there is filled; students keep what room is left.
    let mut source = hungarian::Problem::default();
    let source_left: Vec<u32> = local_index(&cut.left, true);
    for right in (0..graph.rights()).filter(|&r| cut.right[r]) {
        source.add_node(right_room[right]);
        for &e in by_right.edges(right) {
            let left = edge_left[e as usize] as usize;
            if cut.left[left] {
                source.add_edge(source_left[left], cost(e as usize), e);
            }
        }
    }
    source.room = (0..graph.lefts()).filter(|&l| cut.left[l]).map(|l| left_room[l]).collect();
    chosen.extend(source.solve());

    chosen.sort_unstable();
    chosen
}

/// For each node of one side, its index among the nodes with `side == keep`.
fn local_index(side: &[bool], keep: bool) -> Vec<u32> {
    let mut next = 0u32;
    side.iter()
        .map(|&s| {
            let at = next;
            if s == keep {
                next += 1;
            }
            at
        })
        .collect()
}
