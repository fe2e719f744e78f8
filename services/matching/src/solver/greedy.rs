//! The greedy baseline the exact solver is measured against: students with the
//! fewest options choose first (then by id), each taking their best offer with a
//! free slot (then the lowest offer id).

use super::Graph;

/// The edges of the greedy assignment, sorted.
pub(crate) fn greedy(graph: &Graph<'_>) -> Vec<u32> {
    let mut order: Vec<u32> = (0..graph.lefts() as u32).collect();
    order.sort_by_key(|&left| (graph.edges(left as usize).len(), left));
    let mut right_load = vec![0u32; graph.rights()];
    let mut chosen = Vec::new();
    let mut options: Vec<u32> = Vec::new();
    for left in order {
        let left = left as usize;
        options.clear();
        options.extend(graph.edges(left).map(|e| e as u32));
        // Best fit first; equal fits by offer, which is edge order.
        options.sort_by_key(|&e| (u16::MAX - graph.weight[e as usize], e));
        let mut load = 0;
        for &e in &options {
            if load == graph.left_cap[left] {
                break;
            }
            let right = graph.right[e as usize] as usize;
            if right_load[right] < graph.right_cap[right] {
                right_load[right] += 1;
                load += 1;
                chosen.push(e);
            }
        }
    }
    chosen.sort_unstable();
    chosen
}
