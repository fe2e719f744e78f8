//! The graph's connected components, each solved on its own, spread over
//! threads.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Graph;

/// Disjoint sets over nodes, with path halving and union by size.
struct Sets {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl Sets {
    fn new(n: usize) -> Self {
        Self { parent: (0..n as u32).collect(), size: vec![1; n] }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
    }
}

/// One component: its left and right nodes in index order.
#[derive(Default)]
struct Part {
    lefts: Vec<u32>,
    rights: Vec<u32>,
    edges: usize,
}

/// The components with at least one edge, numbered in order of their first
/// left node, and each node's index within its component.
fn parts(graph: &Graph<'_>) -> (Vec<Part>, Vec<u32>) {
    let lefts = graph.lefts();
    let mut sets = Sets::new(lefts + graph.rights());
    for left in 0..lefts {
        for e in graph.edges(left) {
            sets.union(left as u32, (lefts + graph.right[e] as usize) as u32);
        }
    }
    let mut part_of_root = vec![u32::MAX; lefts + graph.rights()];
    let mut parts: Vec<Part> = Vec::new();
    let mut local = vec![0u32; graph.rights()];
    for left in 0..lefts {
        if graph.edges(left).is_empty() {
            continue;
        }
        let root = sets.find(left as u32) as usize;
        if part_of_root[root] == u32::MAX {
            part_of_root[root] = parts.len() as u32;
            parts.push(Part::default());
        }
        let part = &mut parts[part_of_root[root] as usize];
        part.lefts.push(left as u32);
        part.edges += graph.edges(left).len();
    }
    for (right, local) in local.iter_mut().enumerate() {
        let root = sets.find((lefts + right) as u32) as usize;
        // A right node without edges is in no part and never chosen.
        if let Some(part) = parts.get_mut(part_of_root[root] as usize) {
            *local = part.rights.len() as u32;
            part.rights.push(right as u32);
        }
    }
    (parts, local)
}

/// Solves one component with `solve` and maps its edges back.
fn solve_part(
    graph: &Graph<'_>,
    part: &Part,
    local_right: &[u32],
    solve: fn(&Graph<'_>) -> Vec<u32>,
) -> Vec<u32> {
    let mut start = Vec::with_capacity(part.lefts.len() + 1);
    let mut right = Vec::with_capacity(part.edges);
    let mut weight = Vec::with_capacity(part.edges);
    let mut global = Vec::with_capacity(part.edges);
    start.push(0);
    for &left in &part.lefts {
        for e in graph.edges(left as usize) {
            right.push(local_right[graph.right[e] as usize]);
            weight.push(graph.weight[e]);
            global.push(e as u32);
        }
        start.push(right.len() as u32);
    }
    let sub = Graph {
        left_cap: part.lefts.iter().map(|&l| graph.left_cap[l as usize]).collect(),
        right_cap: part.rights.iter().map(|&r| graph.right_cap[r as usize]).collect(),
        start: &start,
        right: &right,
        weight: &weight,
    };
    solve(&sub).into_iter().map(|e| global[e as usize]).collect()
}

/// Solves every component with `solve`, on up to `threads` threads; the
/// chosen edges, sorted.
pub(super) fn solve_each(
    graph: &Graph<'_>,
    threads: usize,
    solve: fn(&Graph<'_>) -> Vec<u32>,
) -> Vec<u32> {
    let (parts, local_right) = parts(graph);
    // Largest first, so that no thread is left with a big one at the end.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&p| (std::cmp::Reverse(parts[p].edges), p));
    let next = AtomicUsize::new(0);
    let chosen = Mutex::new(Vec::new());
    let work = || {
        let mut mine = Vec::new();
        loop {
            let at = next.fetch_add(1, Ordering::Relaxed);
            let Some(&part) = order.get(at) else { break };
            mine.extend(solve_part(graph, &parts[part], &local_right, solve));
        }
        // A poisoned lock means another worker panicked; the scope re-raises that.
        if let Ok(mut all) = chosen.lock() {
            all.extend(mine);
        }
    };
    let threads = threads.clamp(1, parts.len().max(1));
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(work);
            }
            work();
        });
    }
    let mut chosen = chosen.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    chosen.sort_unstable();
    chosen
}
