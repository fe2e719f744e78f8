//! Phase 1: the most pairs, by Dinic's blocking flows on the implicit network
//! source → left (capacity) → right (one per edge) → sink (capacity), and the
//! source side of its minimum cut.

use super::{ByRight, Graph};

const UNSEEN: u32 = u32::MAX;

/// A maximum flow: which edges carry a pair, and each node's load.
pub(super) struct Flow {
    pub used: Vec<bool>,
    pub left_load: Vec<u32>,
    pub right_load: Vec<u32>,
}

/// Which nodes are on the source side of the minimum cut.
pub(super) struct Cut {
    pub left: Vec<bool>,
    pub right: Vec<bool>,
}

/// The state of one blocking-flow phase.
struct Phase<'a, 'g> {
    graph: &'a Graph<'g>,
    by_right: &'a ByRight,
    edge_left: &'a [u32],
    flow: Flow,
    /// BFS level of each left node (even) and right node (odd); UNSEEN if none
    /// or dead.
    left_level: Vec<u32>,
    right_level: Vec<u32>,
    /// Current-arc pointers: the next edge to try from each node.
    left_next: Vec<u32>,
    right_next: Vec<u32>,
    /// The augmenting path so far: (edge taken forward, edge taken backward).
    path: Vec<(u32, u32)>,
}

/// A maximum flow, started from a greedy assignment.
pub(super) fn max_flow(graph: &Graph<'_>, by_right: &ByRight, edge_left: &[u32]) -> Flow {
    let mut flow = Flow {
        used: vec![false; graph.right.len()],
        left_load: vec![0; graph.lefts()],
        right_load: vec![0; graph.rights()],
    };
    // Most pairs come from this pass; the phases only repair the rest.
    for left in 0..graph.lefts() {
        for e in graph.edges(left) {
            if flow.left_load[left] == graph.left_cap[left] {
                break;
            }
            let right = graph.right[e] as usize;
            if flow.right_load[right] < graph.right_cap[right] {
                flow.used[e] = true;
                flow.left_load[left] += 1;
                flow.right_load[right] += 1;
            }
        }
    }
    let mut phase = Phase {
        graph,
        by_right,
        edge_left,
        flow,
        left_level: vec![UNSEEN; graph.lefts()],
        right_level: vec![UNSEEN; graph.rights()],
        left_next: vec![0; graph.lefts()],
        right_next: vec![0; graph.rights()],
        path: Vec::new(),
    };
    while phase.levels() {
        phase.blocking_flow();
    }
    phase.flow
}

impl Phase<'_, '_> {
    fn has_room_left(&self, left: usize) -> bool {
        self.flow.left_load[left] < self.graph.left_cap[left]
    }

    fn has_room_right(&self, right: usize) -> bool {
        self.flow.right_load[right] < self.graph.right_cap[right]
    }

    /// Levels by BFS from the left nodes with room; false when no right node
    /// with room can be reached (the flow is maximum).
    fn levels(&mut self) -> bool {
        let g = self.graph;
        self.left_level.fill(UNSEEN);
        self.right_level.fill(UNSEEN);
        let mut queue: Vec<u32> = Vec::new();
        for left in 0..g.lefts() {
            if self.has_room_left(left) && !g.edges(left).is_empty() {
                self.left_level[left] = 0;
                queue.push(left as u32);
            }
        }
        let mut found = UNSEEN;
        let mut head = 0;
        while head < queue.len() {
            let left = queue[head] as usize;
            head += 1;
            if self.left_level[left] >= found {
                break;
            }
            let level = self.left_level[left] + 1;
            for e in g.edges(left) {
                let right = g.right[e] as usize;
                if self.flow.used[e] || self.right_level[right] != UNSEEN {
                    continue;
                }
                self.right_level[right] = level;
                if self.has_room_right(right) {
                    found = found.min(level);
                    continue;
                }
                for &back in self.by_right.edges(right) {
                    let other = self.edge_left[back as usize] as usize;
                    if self.flow.used[back as usize] && self.left_level[other] == UNSEEN {
                        self.left_level[other] = level + 1;
                        queue.push(other as u32);
                    }
                }
            }
        }
        found != UNSEEN
    }

    /// Augments along shortest paths until none is left at this length.
    fn blocking_flow(&mut self) {
        let g = self.graph;
        for left in 0..g.lefts() {
            self.left_next[left] = g.start[left];
        }
        for right in 0..g.rights() {
            self.right_next[right] = self.by_right.start[right];
        }
        for source in 0..g.lefts() {
            while self.left_level[source] == 0 && self.has_room_left(source) {
                if !self.augment_from(source) {
                    self.left_level[source] = UNSEEN;
                }
            }
        }
    }

    /// Finds one augmenting path in the level graph from `source` and applies
    /// it; false if `source` reaches no right node with room.
    fn augment_from(&mut self, source: usize) -> bool {
        let g = self.graph;
        self.path.clear();
        let mut at = source;
        loop {
            let mut descended = false;
            while self.left_next[at] < g.start[at + 1] {
                let e = self.left_next[at] as usize;
                let right = g.right[e] as usize;
                if self.flow.used[e] || self.right_level[right] != self.left_level[at] + 1 {
                    self.left_next[at] += 1;
                    continue;
                }
                if self.has_room_right(right) {
                    self.flow.used[e] = true;
                    for &(forward, backward) in &self.path {
                        self.flow.used[forward as usize] = true;
                        self.flow.used[backward as usize] = false;
                    }
                    self.flow.left_load[source] += 1;
                    self.flow.right_load[right] += 1;
                    return true;
                }
                // Full: continue through one of the right node's pairs.
                let end = self.by_right.start[right + 1];
                let mut next = None;
                while self.right_next[right] < end {
                    let back = self.by_right.edge[self.right_next[right] as usize];
                    let other = self.edge_left[back as usize] as usize;
                    if self.flow.used[back as usize]
                        && self.left_level[other] == self.right_level[right] + 1
                    {
                        next = Some((back, other));
                        break;
                    }
                    self.right_next[right] += 1;
                }
                match next {
                    Some((back, other)) => {
                        self.path.push((e as u32, back));
                        at = other;
                        descended = true;
                        break;
                    }
                    None => {
                        self.right_level[right] = UNSEEN;
                        self.left_next[at] += 1;
                    }
                }
            }
            if !descended {
                // A dead end: never try this node again in this phase.
                self.left_level[at] = UNSEEN;
                match self.path.pop() {
                    Some((forward, _)) => at = self.edge_left[forward as usize] as usize,
                    None => return false,
                }
            }
        }
    }
}

/// The nodes reachable from the source in the residual network of a maximum
/// flow: the source side of a minimum cut.
pub(super) fn source_side(
    graph: &Graph<'_>,
    by_right: &ByRight,
    edge_left: &[u32],
    flow: &Flow,
) -> Cut {
    let mut cut = Cut { left: vec![false; graph.lefts()], right: vec![false; graph.rights()] };
    let mut queue: Vec<u32> = Vec::new();
    for left in 0..graph.lefts() {
        if flow.left_load[left] < graph.left_cap[left] {
            cut.left[left] = true;
            queue.push(left as u32);
        }
    }
    while let Some(left) = queue.pop() {
        for e in graph.edges(left as usize) {
            let right = graph.right[e] as usize;
            if flow.used[e] || cut.right[right] {
                continue;
            }
            cut.right[right] = true;
            debug_assert!(
                flow.right_load[right] == graph.right_cap[right],
                "a maximum flow leaves no augmenting path"
            );
            for &back in by_right.edges(right) {
                let other = edge_left[back as usize] as usize;
                if flow.used[back as usize] && !cut.left[other] {
                    cut.left[other] = true;
                    queue.push(other as u32);
                }
            }
        }
    }
    cut
}
