//! Where each node of a definition goes in a picture, top to bottom.
//!
//! Definitions are structured (a list of nodes; a node's branches are lists too,
//! and the walk goes on after a node once its branch is done), so a layered
//! layout is a recursion: a list stacks its nodes; a node with branches puts them
//! side by side below it, and they join again before the next node. Widths are
//! measured bottom-up first, then everything is placed top-down.

use crate::engine::{Branch, NodeRegistry};
use crate::model::NodeDefinition;

pub const NODE_WIDTH: f64 = 188.0;
pub const NODE_HEIGHT: f64 = 50.0;
/// Between branches side by side.
const GAP_X: f64 = 28.0;
/// Between a node and what follows it (room for an edge's label).
const GAP_Y: f64 = 40.0;
/// An empty branch still takes a lane, so its edge can be drawn.
const EMPTY_LANE: f64 = 72.0;
const MARGIN: f64 = 16.0;

/// A node's place: `x` is its centre, `y` its top.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed<'a> {
    pub node: &'a NodeDefinition,
    pub x: f64,
    pub y: f64,
}

/// An arrow. `from` and `to` are node keys; `to` is `None` when the arrow ends
/// the picture (a branch's end with nothing after its node). `joins` marks the
/// arrow leaving a branching node's join point: a Mermaid chart draws branches'
/// ends straight to the next node instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: String,
    pub to: Option<String>,
    pub label: Option<String>,
    pub points: Vec<(f64, f64)>,
    pub joins: bool,
    /// For an empty branch's arrow: the first nodes of its sibling branches. The
    /// arrow was taken only if none of them was reached.
    pub alternatives: Vec<String>,
    /// Whether it ends at a node's top (and gets an arrowhead), rather than at a
    /// join line.
    pub arrow: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layout<'a> {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<Placed<'a>>,
    pub edges: Vec<Edge>,
}

/// The branches of a node in reading order, with their labels, as its type
/// describes them (a condition's "true" first, a multi-condition's cases in order
/// and "otherwise" last). A branch its type leaves implied (a condition's missing
/// side) is an empty lane: the walk goes straight on to the next node that way.
/// A branch of a type the registry does not know reads as its index.
pub fn branches<'a>(
    types: &NodeRegistry,
    node: &'a NodeDefinition,
) -> Vec<(&'a str, &'a [NodeDefinition], String)> {
    let kind = types.get(&node.kind);
    let mut found: Vec<(&str, &[NodeDefinition])> = node
        .branches
        .iter()
        .map(|(index, nodes)| (index.as_str(), nodes.as_slice()))
        .collect();
    if !found.is_empty()
        && let Some(kind) = kind
    {
        for index in kind.implied_branches() {
            if !node.branches.contains_key(*index) {
                found.push((index, &[]));
            }
        }
    }
    let mut described: Vec<(u64, &str, &[NodeDefinition], String)> = found
        .into_iter()
        .map(|(index, nodes)| {
            let branch = kind
                .and_then(|k| k.branch(node, index))
                .unwrap_or_else(|| Branch::new(index, index.parse().unwrap_or(u64::MAX)));
            (branch.order, index, nodes, branch.label)
        })
        .collect();
    described.sort_by_key(|(order, ..)| *order);
    described
        .into_iter()
        .map(|(_, index, nodes, label)| (index, nodes, label))
        .collect()
}

/// Lays out a definition's nodes.
pub fn layout<'a>(types: &NodeRegistry, nodes: &'a [NodeDefinition]) -> Layout<'a> {
    let (width, height) = match measure(types, nodes) {
        // Room for the picture's "no nodes" line.
        (_, 0.0) => (2.0 * NODE_WIDTH, NODE_HEIGHT),
        size => size,
    };
    let mut out = Layout {
        width: width + 2.0 * MARGIN,
        height: height + 2.0 * MARGIN,
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    place(types, nodes, MARGIN + width / 2.0, MARGIN, None, &mut out);
    out
}

/// The width and height a list of nodes takes.
fn measure(types: &NodeRegistry, nodes: &[NodeDefinition]) -> (f64, f64) {
    if nodes.is_empty() {
        return (EMPTY_LANE, 0.0);
    }
    nodes
        .iter()
        .map(|node| measure_one(types, node))
        .fold((0.0, 0.0), |(w, h), (nw, nh)| {
            (w.max(nw), if h == 0.0 { nh } else { h + GAP_Y + nh })
        })
}

/// A node with its branches below it, down to where they join.
fn measure_one(types: &NodeRegistry, node: &NodeDefinition) -> (f64, f64) {
    let lanes: Vec<(f64, f64)> = branches(types, node)
        .iter()
        .map(|(_, nodes, _)| measure(types, nodes))
        .collect();
    if lanes.is_empty() {
        return (NODE_WIDTH, NODE_HEIGHT);
    }
    let width = lanes.iter().map(|(w, _)| w).sum::<f64>() + GAP_X * (lanes.len() - 1) as f64;
    let tallest = lanes.iter().map(|(_, h)| *h).fold(0.0, f64::max);
    (
        width.max(NODE_WIDTH),
        NODE_HEIGHT + GAP_Y + tallest + GAP_Y / 2.0,
    )
}

/// Places a list centred on `x` from `y` down; `then` is the node the walk goes on
/// with after the list (the key after the enclosing branching node).
fn place<'a>(
    types: &NodeRegistry,
    nodes: &'a [NodeDefinition],
    x: f64,
    mut y: f64,
    then: Option<&'a str>,
    out: &mut Layout<'a>,
) {
    for (i, node) in nodes.iter().enumerate() {
        let next = nodes.get(i + 1).map(|n| n.key.as_str()).or(then);
        out.nodes.push(Placed { node, x, y });
        let (_, height) = measure_one(types, node);
        let bottom = y + height;
        let lanes = branches(types, node);
        if !lanes.is_empty() {
            place_branches(types, node, &lanes, x, (y, bottom), next, out);
        }
        // The arrow to the next node of this list; a list's last node leaves that
        // to the enclosing branching node's join.
        if i + 1 < nodes.len() {
            let next_top = bottom + GAP_Y;
            out.edges.push(Edge {
                from: node.key.clone(),
                to: next.map(str::to_string),
                label: None,
                points: vec![(x, bottom), (x, next_top)],
                joins: !lanes.is_empty(),
                alternatives: Vec::new(),
                arrow: true,
            });
            y = next_top;
        }
    }
}

/// Places a node's branches side by side below it; `y` is the node's top and
/// `bottom` where its branches join.
fn place_branches<'a>(
    types: &NodeRegistry,
    node: &'a NodeDefinition,
    lanes: &[(&'a str, &'a [NodeDefinition], String)],
    x: f64,
    (y, bottom): (f64, f64),
    next: Option<&'a str>,
    out: &mut Layout<'a>,
) {
    let widths: Vec<f64> = lanes
        .iter()
        .map(|(_, nodes, _)| measure(types, nodes).0)
        .collect();
    let total = widths.iter().sum::<f64>() + GAP_X * (lanes.len() - 1) as f64;
    let fork_y = y + NODE_HEIGHT + GAP_Y / 2.0;
    let lane_top = y + NODE_HEIGHT + GAP_Y;
    let join_y = bottom;
    let mut left = x - total / 2.0;
    let firsts: Vec<String> = lanes
        .iter()
        .filter_map(|(_, nodes, _)| nodes.first().map(|n| n.key.clone()))
        .collect();
    for ((_, nodes, label), width) in lanes.iter().zip(widths) {
        let lane_x = left + width / 2.0;
        left += width + GAP_X;
        let first = nodes.first().map(|n| n.key.clone());
        let end = if nodes.is_empty() {
            fork_y
        } else {
            lane_top + measure(types, nodes).1
        };
        out.edges.push(Edge {
            from: node.key.clone(),
            to: first.clone().or_else(|| next.map(str::to_string)),
            label: Some(label.clone()),
            points: if nodes.is_empty() {
                vec![
                    (x, y + NODE_HEIGHT),
                    (x, fork_y),
                    (lane_x, fork_y),
                    (lane_x, join_y),
                    (x, join_y),
                ]
            } else {
                vec![
                    (x, y + NODE_HEIGHT),
                    (x, fork_y),
                    (lane_x, fork_y),
                    (lane_x, lane_top),
                ]
            },
            joins: false,
            alternatives: if nodes.is_empty() {
                firsts.clone()
            } else {
                Vec::new()
            },
            arrow: !nodes.is_empty(),
        });
        if let Some(last) = nodes.last() {
            place(types, nodes, lane_x, lane_top, next, out);
            out.edges.push(Edge {
                from: last.key.clone(),
                to: next.map(str::to_string),
                label: None,
                points: vec![(lane_x, end), (lane_x, join_y), (x, join_y)],
                // A branching node ending its lane: its own branches lead on.
                joins: !branches(types, last).is_empty(),
                alternatives: Vec::new(),
                arrow: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::nodes::builtin;

    fn nodes(value: serde_json::Value) -> Vec<NodeDefinition> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_list_stacks_and_branches_sit_side_by_side() {
        let nodes = nodes(json!([
            {"key": "check", "type": "condition", "branches": {
                "1": [{"key": "yes", "type": "output"}, {"key": "yes2", "type": "output"}],
                "0": [{"key": "no", "type": "output"}]
            }},
            {"key": "after", "type": "output"}
        ]));
        let out = layout(&builtin(), &nodes);
        let at = |key: &str| {
            let p = out.nodes.iter().find(|p| p.node.key == key).unwrap();
            (p.x, p.y)
        };
        assert!(at("yes").0 < at("check").0 && at("check").0 < at("no").0);
        assert_eq!(at("yes").1, at("no").1);
        assert!(at("yes2").1 > at("yes").1);
        assert!(at("after").1 > at("yes2").1 + NODE_HEIGHT);
        assert_eq!(at("after").0, at("check").0);
        let labels: Vec<_> = out
            .edges
            .iter()
            .filter_map(|e| e.label.as_deref())
            .collect();
        assert_eq!(labels, ["true", "false"]);
        let to_after: Vec<_> = out
            .edges
            .iter()
            .filter(|e| e.to.as_deref() == Some("after"))
            .map(|e| (e.from.as_str(), e.joins))
            .collect();
        assert_eq!(to_after, [("yes2", false), ("no", false), ("check", true)]);
        assert!(out.width >= 2.0 * NODE_WIDTH + GAP_X);
        for p in &out.nodes {
            assert!(p.x - NODE_WIDTH / 2.0 >= 0.0 && p.x + NODE_WIDTH / 2.0 <= out.width);
            assert!(p.y + NODE_HEIGHT <= out.height);
        }
    }

    #[test]
    fn an_empty_branch_goes_straight_to_the_next_node() {
        let nodes = nodes(json!([
            {"key": "check", "type": "condition", "branches": {"1": [{"key": "yes", "type": "output"}]}},
            {"key": "after", "type": "output"}
        ]));
        let out = layout(&builtin(), &nodes);
        assert_eq!(out.nodes.len(), 3);
        let arrows: Vec<_> = out
            .edges
            .iter()
            .map(|e| {
                (
                    e.from.as_str(),
                    e.to.as_deref(),
                    e.label.as_deref(),
                    e.alternatives.clone(),
                )
            })
            .collect();
        assert_eq!(
            arrows,
            [
                ("check", Some("yes"), Some("true"), vec![]),
                ("yes", Some("after"), None, vec![]),
                (
                    "check",
                    Some("after"),
                    Some("false"),
                    vec!["yes".to_string()]
                ),
                ("check", Some("after"), None, vec![]),
            ]
        );
        // The empty lane runs from the fork down to the join, beside the other.
        let lane = &out.edges[2].points;
        assert_eq!(lane.len(), 5);
        assert!(lane[2].0 > out.nodes[1].x);
    }

    #[test]
    fn a_branching_node_at_the_end_of_a_branch_joins_through_its_own_branches() {
        let nodes = nodes(json!([
            {"key": "outer", "type": "parallel", "branches": {"0": [
                {"key": "inner", "type": "condition", "branches": {
                    "1": [{"key": "a", "type": "output"}], "0": [{"key": "b", "type": "output"}]}}
            ]}},
            {"key": "after", "type": "output"}
        ]));
        let out = layout(&builtin(), &nodes);
        let from_inner: Vec<_> = out
            .edges
            .iter()
            .filter(|e| e.from == "inner" && e.to.as_deref() == Some("after"))
            .map(|e| e.joins)
            .collect();
        assert_eq!(from_inner, [true]);
        let no_nodes = layout(&builtin(), &[]);
        assert!(no_nodes.width >= 2.0 * NODE_WIDTH && no_nodes.height > NODE_HEIGHT);
    }
}
