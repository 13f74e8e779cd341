//! A definition as a Mermaid flowchart (`hookflow graph`), for READMEs and pull
//! requests: GitHub and most editors draw it. With an execution, the nodes carry
//! their status's class and the path taken is drawn thick.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::layout::layout;
use super::status::{NodeRuns, SKIPPED};
use crate::engine::NodeRegistry;
use crate::model::NodeDefinition;

/// Colours per status, as in the viewer.
const CLASSES: [(&str, &str); 6] = [
    ("resolved", "fill:#dcfce7,stroke:#16a34a,color:#14532d"),
    ("failed", "fill:#fee2e2,stroke:#dc2626,color:#7f1d1d"),
    ("error", "fill:#fde2e2,stroke:#991b1b,color:#7f1d1d"),
    ("pending", "fill:#fef3c7,stroke:#d97706,color:#78350f"),
    ("aborted", "fill:#e5e7eb,stroke:#6b7280,color:#374151"),
    (
        SKIPPED,
        "fill:#f8fafc,stroke:#cbd5e1,color:#94a3b8,stroke-dasharray:4 3",
    ),
];

/// `flowchart TD` of `nodes`; with `runs`, the path one execution took.
pub fn flowchart(
    types: &NodeRegistry,
    nodes: &[NodeDefinition],
    runs: Option<&NodeRuns<'_>>,
) -> String {
    let picture = layout(types, nodes);
    let ids: HashMap<&str, String> = picture
        .nodes
        .iter()
        .enumerate()
        .map(|(i, placed)| (placed.node.key.as_str(), format!("n{i}")))
        .collect();
    let mut out = String::from("flowchart TD\n");
    for placed in &picture.nodes {
        let node = placed.node;
        let title = node.title.as_deref().unwrap_or(&node.key);
        let _ = writeln!(
            out,
            "  {}[\"{}<br/><small>{}</small>\"]",
            ids[node.key.as_str()],
            escape(title),
            escape(&node.kind)
        );
    }
    for edge in picture.edges.iter().filter(|e| !e.joins) {
        let Some(to) = edge.to.as_deref() else {
            continue;
        };
        let taken = runs.is_some_and(|r| r.took(edge));
        let arrow = if taken { "==>" } else { "-->" };
        let label = edge
            .label
            .as_deref()
            .map(|l| format!("|{}|", escape(l)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {arrow}{label} {}",
            ids[edge.from.as_str()],
            ids[to]
        );
    }
    if let Some(runs) = runs {
        let mut by_status: Vec<(&str, Vec<&str>)> = Vec::new();
        for placed in &picture.nodes {
            let status = class_of(runs.status(&placed.node.key));
            let id = ids[placed.node.key.as_str()].as_str();
            match by_status.iter_mut().find(|(s, _)| *s == status) {
                Some((_, members)) => members.push(id),
                None => by_status.push((status, vec![id])),
            }
        }
        for (status, style) in CLASSES {
            if by_status.iter().any(|(s, _)| *s == status) {
                let _ = writeln!(out, "  classDef {status} {style}");
            }
        }
        for (status, members) in by_status {
            let _ = writeln!(out, "  class {} {status}", members.join(","));
        }
    }
    out
}

/// Canceled reads like aborted in a picture.
fn class_of(status: &str) -> &str {
    if status == "canceled" {
        "aborted"
    } else {
        status
    }
}

/// Mermaid's entity codes for what would end a label or start markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '|' => out.push_str("#124;"),
            '#' => out.push_str("#35;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{Execution, NodeDefinition};

    fn nodes() -> Vec<NodeDefinition> {
        serde_json::from_value(json!([
            {"key": "check", "type": "condition", "title": "Paid \"now\"?", "branches": {
                "1": [{"key": "yes", "type": "output"}],
                "0": [{"key": "no", "type": "end"}]
            }},
            {"key": "after", "type": "output"}
        ]))
        .unwrap()
    }

    #[test]
    fn a_definition_reads_as_a_flowchart() {
        let chart = flowchart(&crate::nodes::builtin(), &nodes(), None);
        assert_eq!(
            chart,
            "flowchart TD\n  n0[\"Paid #quot;now#quot;?<br/><small>condition</small>\"]\n  \
             n1[\"yes<br/><small>output</small>\"]\n  n2[\"no<br/><small>end</small>\"]\n  \
             n3[\"after<br/><small>output</small>\"]\n  n0 -->|true| n1\n  n1 --> n3\n  \
             n0 -->|false| n2\n  n2 --> n3\n"
        );
    }

    #[test]
    fn an_execution_marks_the_path_taken() {
        let execution: Execution = serde_json::from_value(json!({
            "id": "e", "workflowKey": "w", "workflowVersion": 1, "status": "resolved",
            "context": {}, "output": null, "createdAt": "2026-01-01T00:00:00Z",
            "jobs": [
                {"nodeKey": "check", "nodeType": "condition", "status": "resolved", "result": true, "startedAt": "x"},
                {"nodeKey": "yes", "nodeType": "output", "status": "resolved", "result": 1, "startedAt": "x"},
                {"nodeKey": "after", "nodeType": "output", "status": "failed", "result": 1, "startedAt": "x"}
            ]
        }))
        .unwrap();
        let runs = NodeRuns::of(&execution);
        let chart = flowchart(&crate::nodes::builtin(), &nodes(), Some(&runs));
        assert!(chart.contains("n0 ==>|true| n1\n"), "{chart}");
        assert!(chart.contains("n1 ==> n3\n"), "{chart}");
        assert!(chart.contains("n0 -->|false| n2\n"), "{chart}");
        assert!(chart.contains("class n0,n1 resolved\n"), "{chart}");
        assert!(chart.contains("class n2 skipped\n"), "{chart}");
        assert!(chart.contains("class n3 failed\n"), "{chart}");
        assert!(chart.contains("classDef skipped "), "{chart}");
    }
}
