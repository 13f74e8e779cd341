//! A definition drawn as inline SVG, with one execution's statuses when given.
//!
//! Every node is a group carrying `data-node="<key>"` (and, for an execution,
//! `data-status="<its job's status>"` or `skipped`), wrapped in a link to its jobs
//! on the same page. The styles live in the page's CSS, keyed on those attributes.

use maud::{Markup, html};

use super::layout::{Edge, NODE_HEIGHT, NODE_WIDTH, layout};
use super::status::{NodeRuns, icon};
use crate::engine::NodeRegistry;
use crate::model::NodeDefinition;

/// Characters of a title that fit a box; longer ones end with "…" (the whole
/// title is the box's tooltip).
const TITLE_CHARS: usize = 24;

/// The id of the element listing a node's jobs, which the node links to.
pub fn anchor(key: &str) -> String {
    format!("node-{key}")
}

pub fn graph(
    types: &NodeRegistry,
    nodes: &[NodeDefinition],
    runs: Option<&NodeRuns<'_>>,
) -> Markup {
    let picture = layout(types, nodes);
    let (w, h) = (picture.width.ceil(), picture.height.ceil());
    html! {
        svg.graph xmlns="http://www.w3.org/2000/svg" role="img" aria-label="workflow graph"
            viewBox=(format!("0 0 {w} {h}")) width=(w) height=(h) {
            defs {
                marker #arrow viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9"
                    markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" {}
                }
            }
            @if nodes.is_empty() {
                text x="16" y="32" class="empty" { "no nodes: the trigger's answer only" }
            }
            g.edges {
                @for edge in &picture.edges {
                    (draw_edge(edge, runs))
                }
            }
            @for placed in &picture.nodes {
                @let node = placed.node;
                @let status = runs.map(|r| r.status(&node.key));
                @let title = node.title.as_deref().unwrap_or(&node.key);
                @let count = runs.map_or(0, |r| r.jobs(&node.key).len());
                a href=(format!("#{}", anchor(&node.key))) {
                    g.node data-node=(node.key) data-status=[status]
                        transform=(format!("translate({} {})", placed.x - NODE_WIDTH / 2.0, placed.y)) {
                        title {
                            (title) " (" (node.kind) ")"
                            @if let Some(status) = status { ": " (status) }
                        }
                        rect width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="9" {}
                        @if let Some(status) = status {
                            text.icon x="16" y="31" text-anchor="middle" { (icon(status)) }
                        }
                        text.title x="30" y="22" { (shorten(title)) }
                        text.kind x="30" y="39" {
                            (node.kind)
                            @if count > 1 { " ×" (count) }
                        }
                    }
                }
            }
        }
    }
}

fn draw_edge(edge: &Edge, runs: Option<&NodeRuns<'_>>) -> Markup {
    let taken = runs.is_some_and(|r| r.took(edge));
    let points: Vec<String> = edge
        .points
        .iter()
        .map(|(x, y)| format!("{x},{y}"))
        .collect();
    html! {
        polyline.edge.taken[taken] points=(points.join(" "))
            marker-end=[edge.arrow.then_some("url(#arrow)")] {}
        @if let (Some(label), Some((x, y))) = (&edge.label, edge.points.get(2)) {
            text.label x=(x + 6.0) y=(y + 14.0) { (label) }
        }
    }
}

fn shorten(title: &str) -> String {
    if title.chars().count() <= TITLE_CHARS {
        return title.to_string();
    }
    let mut short: String = title.chars().take(TITLE_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nodes_carry_their_key_and_values_are_escaped() {
        let nodes: Vec<NodeDefinition> = serde_json::from_value(json!([
            {"key": "a", "type": "output", "title": "<script>alert(1)</script>"},
            {"key": "b", "type": "output", "title": "a title far longer than any box can hold"}
        ]))
        .unwrap();
        let svg = graph(&crate::nodes::builtin(), &nodes, None).into_string();
        assert!(svg.contains(r#"data-node="a""#), "{svg}");
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        assert!(svg.contains("a title far longer than…"), "{svg}");
        assert!(!svg.contains("data-status"), "{svg}");
    }
}
