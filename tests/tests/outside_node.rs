//! A node type written outside the library, in this one file, and registered with
//! one line: `switch`, which runs the branch of the first case equal to a value,
//! or its `"0"` ("otherwise") branch. Everything else hookflow knows of it comes
//! from its `Node` impl: the editor schema gets its config, validation reads its
//! config and judges its branches, the viewer draws its branches in its order
//! with its labels, and a request runs it.

use std::sync::Arc;

use async_trait::async_trait;
use hookflow::engine::{Branch, Checker, Node, NodeRegistry, NodeStop, RunContext};
use hookflow::model::NodeDefinition;
use hookflow::nodes::NodeSettings;
use hookflow::view::Viewer;
use hookflow::wiring::Settings;
use hookflow_tests::inproc;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

struct Switch;

/// `value` (templated), and `cases`: case n (1-based) runs branch `"n"` when it
/// equals the value.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SwitchConfig {
    value: Value,
    #[serde(default)]
    cases: Vec<Value>,
}

#[async_trait]
impl Node for Switch {
    type Config = SwitchConfig;

    fn name(&self) -> &'static str {
        "switch"
    }

    fn check(&self, c: &SwitchConfig, at: &str, check: &mut Checker) {
        if c.cases.is_empty() {
            check.error(format!("{at}.cases"), "is required: the values to match");
        }
    }

    /// The cases in order, labelled by what they match; "otherwise" last.
    fn branch(&self, c: &SwitchConfig, index: &str) -> Option<Branch> {
        let n: usize = index.parse().ok()?;
        match n {
            0 => Some(Branch::new("otherwise", u64::MAX)),
            n => {
                let case = c.cases.get(n - 1)?;
                let text = case
                    .as_str()
                    .map_or_else(|| case.to_string(), str::to_string);
                Some(Branch::new(format!("is {text}"), n as u64))
            }
        }
    }

    fn implied_branches(&self) -> &'static [&'static str] {
        &["0"]
    }

    async fn run(
        &self,
        c: &SwitchConfig,
        node: &NodeDefinition,
        cx: &mut RunContext<'_>,
    ) -> Result<Value, NodeStop> {
        let value = cx.render(&c.value);
        let taken = c
            .cases
            .iter()
            .position(|case| *case == value)
            .map_or(0, |i| i + 1);
        cx.set_result(json!(taken));
        cx.run_branch(node, &taken.to_string()).await?;
        Ok(json!(taken))
    }
}

/// The built-in types and `switch`: the app's `Settings::node_types`.
fn with_switch(settings: &NodeSettings) -> NodeRegistry {
    let mut registry = hookflow::nodes::builtin_with(settings);
    registry.register(Switch);
    registry
}

fn types() -> NodeRegistry {
    with_switch(&NodeSettings::default())
}

fn answer(key: &str, text: &str) -> Value {
    json!({"key": key, "type": "response", "config": {"body": {"tier": text, "n": "{{$jobsMapByNodeKey.tier}}"}}})
}

/// A sync workflow: gold and silver answer, anything else goes on to `after`.
fn tiers() -> Value {
    json!({
        "key": "tiers", "sync": true,
        "trigger": {"type": "webhook", "hookId": "tiers"},
        "nodes": [
            {"key": "tier", "type": "switch", "config": {"value": "{{$context.body.tier}}", "cases": ["gold", "silver"]},
             "branches": {"2": [answer("silver-answer", "silver")], "1": [answer("gold-answer", "gold")]}},
            {"key": "after", "type": "response", "config": {"statusCode": 202, "body": {"n": "{{$jobsMapByNodeKey.tier}}"}}}
        ]
    })
}

#[test]
fn the_editor_schema_has_its_config() {
    let schema = hookflow::validate::definition_schema(&types());
    let node = &schema["$defs"]["NodeDefinition"];
    assert!(
        node["properties"]["type"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("switch"))
    );
    let validator = jsonschema::draft202012::new(&schema).expect("a valid 2020-12 schema");
    let mut doc = tiers();
    assert!(
        validator.is_valid(&doc),
        "{:?}",
        validator
            .iter_errors(&doc)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    doc["nodes"][0]["config"]["casse"] = json!(["gold"]);
    assert!(!validator.is_valid(&doc), "a misspelt config field");
    let builtin = hookflow::validate::definition_schema(&hookflow::nodes::builtin());
    assert!(!builtin.to_string().contains("\"switch\""));
}

#[test]
fn validation_reads_its_config_and_judges_its_branches() {
    let types = types();
    assert!(hookflow::validate::validate(&tiers(), &types).is_ok());
    let problems = |doc: &Value| -> Vec<String> {
        hookflow::validate::validate(doc, &types)
            .expect_err("refused")
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let mut doc = tiers();
    doc["nodes"][0]["config"]["cases"] = json!([]);
    doc["nodes"][0]["branches"] = json!({"0": [], "1": [], "3": []});
    assert_eq!(
        problems(&doc),
        [
            "nodes[0].config.cases: is required: the values to match",
            "nodes[0].branches.1: \"switch\" nodes have no branch \"1\"",
            "nodes[0].branches.3: \"switch\" nodes have no branch \"3\"",
        ]
    );
    let mut doc = tiers();
    doc["nodes"][0]["config"]
        .as_object_mut()
        .unwrap()
        .remove("value");
    doc["nodes"][0]["config"]["valeu"] = json!(1);
    let found = problems(&doc);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("nodes[0].config.valeu: unknown field")),
        "{found:?}"
    );
    // Without its line in the registry, the type is unknown.
    let unknown =
        hookflow::validate::validate(&tiers(), &hookflow::nodes::builtin()).expect_err("refused");
    assert!(
        unknown[0]
            .to_string()
            .starts_with("nodes[0].type: unknown node type \"switch\"")
    );
}

/// The labels of a page's SVG edges, left to right.
fn labels_left_to_right(html: &str) -> Vec<String> {
    let mut labels: Vec<(f64, String)> = html
        .split("<text class=\"label\" x=\"")
        .skip(1)
        .map(|rest| {
            let x: f64 = rest[..rest.find('"').unwrap()].parse().unwrap();
            let text = &rest[rest.find('>').unwrap() + 1..rest.find("</text>").unwrap()];
            (x, text.to_string())
        })
        .collect();
    labels.sort_by(|a, b| a.0.total_cmp(&b.0));
    labels.into_iter().map(|(_, label)| label).collect()
}

#[tokio::test]
async fn the_viewer_draws_its_branches_and_a_request_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        node_types: with_switch,
        ..Settings::default()
    };
    let app = inproc::app(dir.path(), &[tiers()], &settings, None).await;

    // Its cases left to right in case order (the definition lists "2" first), and
    // the "otherwise" it leaves out drawn last, an empty lane to `after`.
    let viewer = Viewer::new(
        Arc::clone(&app.store),
        Arc::clone(&app.node_types),
        "http://h",
    );
    let uri: http::Uri = "/ui/workflows/tiers".parse().unwrap();
    let page = viewer.answer(&http::Method::GET, &uri).await;
    assert_eq!(page.status(), 200);
    let html = String::from_utf8(page.body().to_vec()).unwrap();
    assert_eq!(
        labels_left_to_right(&html),
        ["is gold", "is silver", "otherwise"]
    );
    let chart = hookflow::view::mermaid::flowchart(&app.node_types, &tiers_nodes(), None);
    assert!(chart.contains("n0 -->|is gold| n1\n"), "{chart}");
    assert!(chart.contains("n0 -->|is silver| n2\n"), "{chart}");
    assert!(chart.contains("n0 -->|otherwise| n3\n"), "{chart}");

    let cases = [
        ("gold", 200, json!({"tier": "gold", "n": 1})),
        ("silver", 200, json!({"tier": "silver", "n": 2})),
        ("bronze", 202, json!({"n": 0})),
    ];
    for (tier, status, body) in cases {
        let answered = inproc::post_json(&app, "tiers", &json!({"tier": tier})).await;
        assert_eq!(answered, (status, body), "{tier}");
    }
}

fn tiers_nodes() -> Vec<NodeDefinition> {
    serde_json::from_value(tiers()["nodes"].clone()).unwrap()
}
