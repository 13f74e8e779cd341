//! `delay`: waits `duration` × `unit` milliseconds, then resolves (`endStatus` 1, the
//! default) or fails (-1). Async workflows only. While it waits nothing runs and
//! nothing is held in memory: the execution pauses, is recorded with this node's
//! job pending and the time it waits for, and a durable wake-up resumes it.

use async_trait::async_trait;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Mode, NodeType};
use crate::engine::{NodeStop, RunContext};
use crate::model::{NodeDefinition, Wait};
use crate::validate::Checker;

/// A wait longer than this is surely a mistake in the definition.
const MAX_WAIT_MS: f64 = 366.0 * 24.0 * 3_600_000.0;

pub struct Delay;

#[async_trait]
impl NodeType for Delay {
    fn name(&self) -> &'static str {
        "delay"
    }

    fn mode(&self) -> Mode {
        Mode::AsyncOnly
    }

    fn validate(&self, config: &Value, at: &str, check: &mut Checker) {
        match config.get("duration") {
            Some(Value::Number(n)) if n.as_f64().is_some_and(|d| d >= 0.0) => {}
            Some(Value::String(s)) if s.contains("{{") => {}
            _ => check.error(
                format!("{at}.duration"),
                "is required: a number of units, 0 or more (or a {{variable}})",
            ),
        }
        match config.get("unit") {
            None => {}
            Some(u) if u.as_u64().is_some_and(|u| u > 0) => {}
            Some(_) => check.error(
                format!("{at}.unit"),
                "must be a whole number of milliseconds: 1000 (seconds), 60000 (minutes), \
                 3600000 (hours), 86400000 (days) or 604800000 (weeks)",
            ),
        }
        match config.get("endStatus") {
            None => {}
            Some(v) if matches!(v.as_i64(), Some(1 | -1)) => {}
            Some(_) => check.error(
                format!("{at}.endStatus"),
                "must be 1 (resolved) or -1 (failed)",
            ),
        }
    }

    async fn run(&self, node: &NodeDefinition, cx: &mut RunContext<'_>) -> Result<Value, NodeStop> {
        let duration = cx.render(node.config.get("duration").unwrap_or(&Value::Null));
        let duration = match &duration {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|d| d.is_finite() && *d >= 0.0)
        .ok_or_else(|| {
            NodeStop::Fail(json!({
                "message": format!("the duration {duration} is not a number of units, 0 or more")
            }))
        })?;
        let unit = node
            .config
            .get("unit")
            .and_then(Value::as_u64)
            .unwrap_or(1000);
        let wait_ms = duration * unit as f64;
        if wait_ms > MAX_WAIT_MS {
            return Err(NodeStop::Fail(json!({
                "message": format!("a delay of {wait_ms} ms is longer than a year")
            })));
        }
        // Whole milliseconds: the record's clock resolution.
        let until = Utc::now() + Duration::milliseconds(wait_ms.ceil() as i64);
        let until = until.to_rfc3339_opts(SecondsFormat::Millis, true);
        cx.set_result(json!({ "until": until }));
        self.wait_or_end(node, until)
    }

    async fn resume(
        &self,
        node: &NodeDefinition,
        _cx: &mut RunContext<'_>,
        frame: Value,
    ) -> Result<Value, NodeStop> {
        let until = frame
            .get("until")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        self.wait_or_end(node, until)
    }
}

impl Delay {
    /// Ends the node once `until` has come (resolved or failed, as configured);
    /// before that (a first run, or a wake-up that came early) it waits.
    fn wait_or_end(&self, node: &NodeDefinition, until: String) -> Result<Value, NodeStop> {
        let due = DateTime::parse_from_rfc3339(&until).map_or(true, |t| t <= Utc::now());
        if !due {
            return Err(NodeStop::Pause {
                frame: json!({ "until": until }),
                waits: vec![Wait::Until {
                    node_key: node.key.clone(),
                    until,
                }],
            });
        }
        let result = json!({ "until": until });
        if node.config.get("endStatus").and_then(Value::as_i64) == Some(-1) {
            Err(NodeStop::Fail(result))
        } else {
            Ok(result)
        }
    }
}
