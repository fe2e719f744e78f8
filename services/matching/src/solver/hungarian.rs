//! Phase 2: a minimum-cost assignment that fills one side completely, by
//! successive shortest paths with node potentials (the Hungarian method on a
//! sparse graph). The side to fill ("fill") has a demand per node; the other
//! side ("room") has a capacity per node. Each unit of demand is routed along
//! a shortest path, in reduced costs, to the nearest node with room; the
//! potentials keep every reduced cost non-negative, so Dijkstra applies, and
//! leave the assignment optimal for the units routed so far.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

const FAR: i64 = i64::MAX;
/// Heap tags: room nodes as their index, fill nodes with this bit set, so that
/// at equal distance a room node is taken first and the search ends sooner.
const FILL: u32 = 1 << 31;

/// A side-filling assignment problem, built node by node.
#[derive(Debug, Default)]
pub(super) struct Problem {
    demand: Vec<u32>,
    start: Vec<u32>,
    /// Per edge: its room node, cost, fill node and caller's edge id.
    to: Vec<u32>,
    cost: Vec<i64>,
    from: Vec<u32>,
    id: Vec<u32>,
    /// The capacity of each room node.
    pub(super) room: Vec<u32>,
}

impl Problem {
    /// Adds a fill node with its demand; its edges follow.
    pub(super) fn add_node(&mut self, demand: u32) {
        if self.start.is_empty() {
            self.start.push(0);
        }
        self.demand.push(demand);
        self.start.push(self.to.len() as u32);
    }

    /// Adds an edge from the last fill node (there must be one).
    pub(super) fn add_edge(&mut self, to: u32, cost: i64, id: u32) {
        self.to.push(to);
        self.cost.push(cost);
        self.from.push(self.demand.len() as u32 - 1);
        self.id.push(id);
        if let Some(end) = self.start.last_mut() {
            *end += 1;
        }
    }

    /// Orders each fill node's edges by cost (then room node), so a search can
    /// stop scanning a node once its cheapest remaining edge cannot beat the
    /// best path already found.
    fn sort_edges(&mut self) {
        let mut order: Vec<usize> = (0..self.to.len()).collect();
        for node in 0..self.demand.len() {
            order[self.edges(node)].sort_unstable_by_key(|&e| (self.cost[e], self.to[e]));
        }
        self.to = order.iter().map(|&e| self.to[e]).collect();
        self.cost = order.iter().map(|&e| self.cost[e]).collect();
        self.id = order.iter().map(|&e| self.id[e]).collect();
    }

    fn edges(&self, node: usize) -> std::ops::Range<usize> {
        self.start[node] as usize..self.start[node + 1] as usize
    }

    /// The caller's ids of the edges of a minimum-cost assignment that meets
    /// every demand (the caller guarantees one exists).
    pub(super) fn solve(mut self) -> Vec<u32> {
        self.sort_edges();
        let mut state = State::new(&self);
        state.tight_start(&self);

        for node in 0..self.demand.len() {
            while state.load[node] < self.demand[node] {
                if !state.augment_from(&self, node) {
                    debug_assert!(false, "a feasible assignment always has an augmenting path");
                    break;
                }
            }
        }
        let mut ids: Vec<u32> =
            (0..self.to.len()).filter(|&e| state.used[e]).map(|e| self.id[e]).collect();
        ids.sort_unstable();
        ids
    }
}

/// The assignment under way, the potentials and the search's scratch space.
struct State {
    used: Vec<bool>,
    /// Units assigned per fill node.
    load: Vec<u32>,
    /// Per room node, its assigned edges: `slot[room_at[r]..][..room_load[r]]`.
    room_at: Vec<u32>,
    room_load: Vec<u32>,
    slot: Vec<u32>,
    fill_pot: Vec<i64>,
    room_pot: Vec<i64>,
    fill_dist: Vec<i64>,
    room_dist: Vec<i64>,
    /// The edge a node was last reached by.
    fill_via: Vec<u32>,
    room_via: Vec<u32>,
    heap: BinaryHeap<Reverse<(i64, u32)>>,
    touched: Vec<u32>,
    settled: Vec<(u32, i64)>,
}

impl State {
    fn new(p: &Problem) -> Self {
        let mut room_at = Vec::with_capacity(p.room.len());
        let mut total = 0u32;
        for &room in &p.room {
            room_at.push(total);
            total += room;
        }
        let fills = p.demand.len();
        Self {
            used: vec![false; p.to.len()],
            load: vec![0; fills],
            room_at,
            room_load: vec![0; p.room.len()],
            slot: vec![0; total as usize],
            fill_pot: vec![0; fills],
            room_pot: vec![0; p.room.len()],
            fill_dist: vec![FAR; fills],
            room_dist: vec![FAR; p.room.len()],
            fill_via: vec![0; fills],
            room_via: vec![0; p.room.len()],
            heap: BinaryHeap::new(),
            touched: Vec::new(),
            settled: Vec::new(),
        }
    }

    /// Potentials that make each fill node's cheapest edges tight, and as many
    /// units as fit along tight edges (reduced cost 0): what the searches
    /// would have found first anyway.
    fn tight_start(&mut self, p: &Problem) {
        for node in 0..p.demand.len() {
            let edges = p.edges(node);
            let Some(cheapest) = p.cost[edges.clone()].iter().copied().min() else { continue };
            self.fill_pot[node] = -cheapest;
            for e in edges {
                if self.load[node] == p.demand[node] {
                    break;
                }
                let room = p.to[e] as usize;
                if p.cost[e] == cheapest && self.room_load[room] < p.room[room] {
                    self.assign(room, e);
                    self.load[node] += 1;
                }
            }
        }
    }

    fn assign(&mut self, room: usize, e: usize) {
        self.slot[(self.room_at[room] + self.room_load[room]) as usize] = e as u32;
        self.room_load[room] += 1;
        self.used[e] = true;
    }

    fn slots(&self, room: usize) -> std::ops::Range<usize> {
        let at = self.room_at[room] as usize;
        at..at + self.room_load[room] as usize
    }

    /// Routes one unit from `source` along a shortest path to a room node with
    /// room; false if there is none.
    fn augment_from(&mut self, p: &Problem, source: usize) -> bool {
        self.fill_dist[source] = 0;
        self.touched.push(source as u32 | FILL);
        self.heap.push(Reverse((0, source as u32 | FILL)));
        let mut end = None;
        // The shortest distance to a room node with room found so far: an
        // upper bound on the path's length.
        let mut bound = FAR;
        while let Some(Reverse((dist, tag))) = self.heap.pop() {
            if tag & FILL != 0 {
                let node = (tag & !FILL) as usize;
                if dist > self.fill_dist[node] {
                    continue;
                }
                self.settled.push((tag, dist));
                let base = dist + self.fill_pot[node];
                for e in p.edges(node) {
                    // Room potentials are never positive, so `base + cost` is a
                    // lower bound on what this and every later edge reaches.
                    if base + p.cost[e] >= bound {
                        break;
                    }
                    if self.used[e] {
                        continue;
                    }
                    let room = p.to[e] as usize;
                    let reached = base + p.cost[e] - self.room_pot[room];
                    if reached < self.room_dist[room] {
                        if self.room_load[room] < p.room[room] {
                            bound = bound.min(reached);
                        }
                        if self.room_dist[room] == FAR {
                            self.touched.push(room as u32);
                        }
                        self.room_dist[room] = reached;
                        self.room_via[room] = e as u32;
                        self.heap.push(Reverse((reached, room as u32)));
                    }
                }
            } else {
                let room = tag as usize;
                if dist > self.room_dist[room] {
                    continue;
                }
                if self.room_load[room] < p.room[room] {
                    end = Some((room, dist));
                    break;
                }
                self.settled.push((tag, dist));
                let base = dist + self.room_pot[room];
                for at in self.slots(room) {
                    let e = self.slot[at] as usize;
                    let node = p.from[e] as usize;
                    let reached = base - p.cost[e] - self.fill_pot[node];
                    if reached < self.fill_dist[node] {
                        if self.fill_dist[node] == FAR {
                            self.touched.push(node as u32 | FILL);
                        }
                        self.fill_dist[node] = reached;
                        self.fill_via[node] = e as u32;
                        self.heap.push(Reverse((reached, node as u32 | FILL)));
                    }
                }
            }
        }
        let found = end.is_some();
        if let Some((room, dist)) = end {
            // Settled nodes move by their distance, relative to the path's
            // length, which keeps every reduced cost non-negative and makes the
            // path tight; nodes beyond it keep theirs.
            for &(tag, settled) in &self.settled {
                let node = (tag & !FILL) as usize;
                if tag & FILL != 0 {
                    self.fill_pot[node] += settled - dist;
                } else {
                    self.room_pot[node] += settled - dist;
                }
            }
            self.flip_path(p, source, room);
        }
        for &tag in &self.touched {
            let node = (tag & !FILL) as usize;
            if tag & FILL != 0 {
                self.fill_dist[node] = FAR;
            } else {
                self.room_dist[node] = FAR;
            }
        }
        self.touched.clear();
        self.settled.clear();
        self.heap.clear();
        found
    }

    /// Applies the path found to `end`: its forward edges become assigned, its
    /// backward edges unassigned.
    fn flip_path(&mut self, p: &Problem, source: usize, end: usize) {
        let mut e = self.room_via[end] as usize;
        self.assign(end, e);
        let mut node = p.from[e] as usize;
        while node != source {
            let back = self.fill_via[node] as usize;
            let room = p.to[back] as usize;
            let forward = self.room_via[room] as usize;
            let slots = self.slots(room);
            if let Some(at) = slots.into_iter().find(|&at| self.slot[at] as usize == back) {
                self.slot[at] = forward as u32;
            }
            self.used[back] = false;
            self.used[forward] = true;
            e = forward;
            node = p.from[e] as usize;
        }
        self.load[source] += 1;
    }
}
