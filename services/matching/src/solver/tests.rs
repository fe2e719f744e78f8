//! The solver against exhaustive search on small random graphs: the most pairs,
//! then the greatest weight, within every capacity, the same answer each time.

use proptest::prelude::*;

use super::{Graph, exact, greedy, optimal};

/// A small random graph: per left node its capacity and its edges (right
/// node, weight), each right node at most once.
#[derive(Debug, Clone)]
struct Small {
    left_cap: Vec<u32>,
    right_cap: Vec<u32>,
    start: Vec<u32>,
    right: Vec<u32>,
    weight: Vec<u16>,
}

impl Small {
    fn graph(&self) -> Graph<'_> {
        Graph {
            left_cap: self.left_cap.clone(),
            right_cap: self.right_cap.clone(),
            start: &self.start,
            right: &self.right,
            weight: &self.weight,
        }
    }
}

fn small(
    lefts: usize,
    rights: usize,
    left_cap: u32,
    max_weight: u16,
) -> impl Strategy<Value = Small> {
    let left = (1..=left_cap, prop::collection::vec(prop::option::of(0..=max_weight), rights));
    (prop::collection::vec(left, 0..=lefts), prop::collection::vec(0..=3u32, 1..=rights)).prop_map(
        |(lefts, right_cap)| {
            let mut g = Small {
                left_cap: Vec::new(),
                right_cap: right_cap.clone(),
                start: vec![0],
                right: Vec::new(),
                weight: Vec::new(),
            };
            for (cap, edges) in lefts {
                g.left_cap.push(cap);
                for (right, weight) in edges.into_iter().enumerate().take(right_cap.len()) {
                    if let Some(weight) = weight {
                        g.right.push(right as u32);
                        g.weight.push(weight);
                    }
                }
                g.start.push(g.right.len() as u32);
            }
            g
        },
    )
}

/// The best (pairs, weight) by trying every choice of edges per left node.
fn exhaustive(g: &Graph<'_>) -> (usize, u64) {
    fn go(
        g: &Graph<'_>,
        left: usize,
        room: &mut Vec<u32>,
        pairs: usize,
        weight: u64,
        best: &mut (usize, u64),
    ) {
        if left == g.lefts() {
            *best = (*best).max((pairs, weight));
            return;
        }
        let edges: Vec<usize> = g.edges(left).collect();
        // Every subset of the left node's edges up to its capacity.
        for mask in 0u32..(1 << edges.len()) {
            if mask.count_ones() > g.left_cap[left] {
                continue;
            }
            let chosen: Vec<usize> =
                (0..edges.len()).filter(|&k| mask & (1 << k) != 0).map(|k| edges[k]).collect();
            if chosen.iter().any(|&e| room[g.right[e] as usize] == 0) {
                continue;
            }
            for &e in &chosen {
                room[g.right[e] as usize] -= 1;
            }
            let gained: u64 = chosen.iter().map(|&e| u64::from(g.weight[e])).sum();
            go(g, left + 1, room, pairs + chosen.len(), weight + gained, best);
            for &e in &chosen {
                room[g.right[e] as usize] += 1;
            }
        }
    }
    let mut best = (0, 0);
    go(g, 0, &mut g.right_cap.clone(), 0, 0, &mut best);
    best
}

/// Checks capacities and returns (pairs, weight).
fn feasible(g: &Graph<'_>, chosen: &[u32]) -> (usize, u64) {
    let mut left_load = vec![0u32; g.lefts()];
    let mut right_load = vec![0u32; g.rights()];
    let edge_left = g.edge_lefts();
    assert!(chosen.windows(2).all(|w| w[0] < w[1]), "each edge at most once, sorted");
    for &e in chosen {
        left_load[edge_left[e as usize] as usize] += 1;
        right_load[g.right[e as usize] as usize] += 1;
    }
    assert!(left_load.iter().zip(&g.left_cap).all(|(l, c)| l <= c), "left capacity exceeded");
    assert!(right_load.iter().zip(&g.right_cap).all(|(l, c)| l <= c), "right capacity exceeded");
    (chosen.len(), chosen.iter().map(|&e| u64::from(g.weight[e as usize])).sum())
}

/// An independent exact solver for graphs too large to search exhaustively:
/// textbook min-cost max-flow, successive shortest paths by Bellman–Ford
/// (queue-based) on an explicit network with cost `-weight`. A maximum flow
/// of minimum cost is the most pairs with the greatest weight.
fn reference(g: &Graph<'_>) -> (usize, u64) {
    struct Arc {
        to: usize,
        cap: i64,
        cost: i64,
    }
    let (source, sink) = (g.lefts() + g.rights(), g.lefts() + g.rights() + 1);
    let mut arcs: Vec<Arc> = Vec::new();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); sink + 1];
    let mut add = |from: usize, to: usize, cap: u32, cost: i64| {
        out[from].push(arcs.len());
        arcs.push(Arc { to, cap: i64::from(cap), cost });
        out[to].push(arcs.len());
        arcs.push(Arc { to: from, cap: 0, cost: -cost });
    };
    for left in 0..g.lefts() {
        add(source, left, g.left_cap[left], 0);
        for e in g.edges(left) {
            add(left, g.lefts() + g.right[e] as usize, 1, -i64::from(g.weight[e]));
        }
    }
    for right in 0..g.rights() {
        add(g.lefts() + right, sink, g.right_cap[right], 0);
    }
    let (mut pairs, mut cost) = (0usize, 0i64);
    loop {
        let mut dist = vec![i64::MAX; sink + 1];
        let mut via = vec![usize::MAX; sink + 1];
        let mut queued = vec![false; sink + 1];
        let mut queue = std::collections::VecDeque::from([source]);
        dist[source] = 0;
        while let Some(node) = queue.pop_front() {
            queued[node] = false;
            for &a in &out[node] {
                let arc = &arcs[a];
                if arc.cap > 0 && dist[node] + arc.cost < dist[arc.to] {
                    dist[arc.to] = dist[node] + arc.cost;
                    via[arc.to] = a;
                    if !queued[arc.to] {
                        queued[arc.to] = true;
                        queue.push_back(arc.to);
                    }
                }
            }
        }
        if dist[sink] == i64::MAX {
            break;
        }
        let mut node = sink;
        while node != source {
            let a = via[node];
            arcs[a].cap -= 1;
            arcs[a ^ 1].cap += 1;
            node = arcs[a ^ 1].to;
        }
        pairs += 1;
        cost += dist[sink];
    }
    (pairs, u64::try_from(-cost).unwrap_or(0))
}

/// A random graph of medium size: `lefts × rights` with each edge present with
/// probability about `density`, weights from few distinct values (many ties).
fn medium(lefts: usize, rights: usize) -> impl Strategy<Value = Small> {
    let edges = prop::collection::vec(prop::option::weighted(0.08, 0..=8u16), lefts * rights);
    let caps = (prop::collection::vec(1..=2u32, lefts), prop::collection::vec(0..=3u32, rights));
    (edges, caps).prop_map(move |(edges, (left_cap, right_cap))| {
        let mut g =
            Small { left_cap, right_cap, start: vec![0], right: Vec::new(), weight: Vec::new() };
        for left in 0..lefts {
            for right in 0..rights {
                if let Some(w) = edges[left * rights + right] {
                    g.right.push(right as u32);
                    g.weight.push(w * 125);
                }
            }
            g.start.push(g.right.len() as u32);
        }
        g
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn optimal_matches_a_textbook_min_cost_flow_on_larger_graphs(g in medium(150, 60)) {
        let graph = g.graph();
        let best = reference(&graph);
        prop_assert_eq!(feasible(&graph, &exact(&graph)), best);
        prop_assert_eq!(feasible(&graph, &optimal(&graph, 2)), best);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn optimal_has_most_pairs_then_most_weight(g in small(7, 5, 1, 1000)) {
        let graph = g.graph();
        let best = exhaustive(&graph);
        prop_assert_eq!(reference(&graph), best, "the reference solver itself");
        prop_assert_eq!(feasible(&graph, &exact(&graph)), best, "the whole graph at once");
        prop_assert_eq!(feasible(&graph, &optimal(&graph, 2)), best, "component by component");
    }

    #[test]
    fn optimal_is_exact_with_many_ties(g in small(7, 4, 1, 3)) {
        let graph = g.graph();
        let chosen = optimal(&graph, 2);
        prop_assert_eq!(feasible(&graph, &chosen), exhaustive(&graph));
    }

    #[test]
    fn m4_optimal_is_exact_with_two_per_student(g in small(4, 4, 2, 50)) {
        let graph = g.graph();
        let chosen = optimal(&graph, 2);
        prop_assert_eq!(feasible(&graph, &chosen), exhaustive(&graph));
    }

    #[test]
    fn solvers_are_deterministic_on_any_number_of_threads(g in small(7, 5, 2, 20)) {
        let graph = g.graph();
        let once = optimal(&graph, 1);
        prop_assert_eq!(&once, &optimal(&graph, 1));
        prop_assert_eq!(&once, &optimal(&graph, 3));
        prop_assert_eq!(greedy(&graph), greedy(&graph));
    }

    #[test]
    fn greedy_is_feasible_and_never_beats_optimal(g in small(7, 5, 2, 1000)) {
        let graph = g.graph();
        let (pairs, weight) = feasible(&graph, &greedy(&graph));
        let best = feasible(&graph, &optimal(&graph, 2));
        prop_assert!((pairs, weight) <= best);
    }
}

#[test]
fn cardinality_comes_before_weight() {
    // Left 0 likes right 0 best (9) but can also take right 1 (1); left 1 can
    // only take right 0 (2). Two pairs (weight 3) beat one pair of weight 9.
    let g = Small {
        left_cap: vec![1, 1],
        right_cap: vec![1, 1],
        start: vec![0, 2, 3],
        right: vec![0, 1, 0],
        weight: vec![9, 1, 2],
    };
    assert_eq!(optimal(&g.graph(), 1), vec![1, 2]);
    assert_eq!(greedy(&g.graph()), vec![1, 2], "fewest options choose first");
}

#[test]
fn an_over_subscribed_offer_takes_the_best_fits() {
    // Three students want the one slot of right 0; the best fit gets it.
    let g = Small {
        left_cap: vec![1, 1, 1],
        right_cap: vec![1],
        start: vec![0, 1, 2, 3],
        right: vec![0, 0, 0],
        weight: vec![5, 8, 8],
    };
    // Equal fits: the lower id (edge 1, left 1) wins.
    assert_eq!(optimal(&g.graph(), 1), vec![1]);
}

#[test]
fn an_empty_graph_has_no_pairs() {
    let g = Small {
        left_cap: vec![],
        right_cap: vec![],
        start: vec![0],
        right: vec![],
        weight: vec![],
    };
    assert!(optimal(&g.graph(), 1).is_empty());
    assert!(greedy(&g.graph()).is_empty());
}

#[test]
fn optimal_matches_the_reference_on_synthetic_rounds() {
    use crate::synthetic::{Area, Scenario, generate};
    for (seed, variant) in [(1, crate::Variant::Single), (2, crate::Variant::TwoAndTwo)] {
        let mut input = generate(&Scenario {
            students: 400,
            offers: 250,
            slots: 420,
            area: Area::School,
            seed,
        });
        input.settings.variant = variant;
        let instance = crate::Instance::with_threads(&input, 2).expect("a valid round");
        let graph = instance.graph();
        assert_eq!(feasible(&graph, &optimal(&graph, 2)), reference(&graph), "seed {seed}");
    }
}
