//! A map of node key → value (`$jobsMapByNodeKey`, `$scopes`) that parallel
//! branches share instead of copying: what every branch sees sits behind one
//! `Arc`, and each branch keeps only what it wrote since it forked. 1,500 branches
//! over a 300 KB body held 1,500 copies of it (2.5 GB) when each had its own.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::lang::path::{self, Segment};

#[derive(Debug, Default)]
pub(super) struct Layered {
    /// What the state saw when it last forked (or was given whole).
    shared: Arc<Map<String, Value>>,
    /// Written since, in order; `None` removes a key.
    own: Map<String, Value>,
    removed: Vec<String>,
}

impl Layered {
    /// A whole map (a paused run's record, a branch resuming with its own view).
    pub(super) fn from_value(value: Value) -> Self {
        let map = match value {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Self {
            shared: Arc::new(map),
            ..Self::default()
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        match self.own.get(key) {
            Some(value) => Some(value),
            None if self.removed.iter().any(|k| k == key) => None,
            None => self.shared.get(key),
        }
    }

    pub(super) fn insert(&mut self, key: String, value: Value) {
        self.removed.retain(|k| *k != key);
        self.own.insert(key, value);
    }

    pub(super) fn remove(&mut self, key: &str) {
        self.own.shift_remove(key);
        if self.shared.contains_key(key) && !self.removed.iter().any(|k| k == key) {
            self.removed.push(key.to_string());
        }
    }

    /// The whole map as one value: for a record, never on a run's hot path.
    pub(super) fn to_value(&self) -> Value {
        let mut map = (*self.shared).clone();
        for key in &self.removed {
            map.shift_remove(key);
        }
        for (key, value) in &self.own {
            map.insert(key.clone(), value.clone());
        }
        Value::Object(map)
    }

    /// A variable path into the map (the first segment names the key).
    pub(super) fn lookup(&self, segments: &[Segment]) -> Option<Value> {
        let Some((first, rest)) = segments.split_first() else {
            return Some(self.to_value());
        };
        let key = match first {
            Segment::Key(k) => k.clone(),
            Segment::Index(i) => i.to_string(),
        };
        path::get(self.get(&key)?, rest).cloned()
    }

    /// A copy for a parallel branch, sharing everything seen so far. What this
    /// state wrote since its last fork is folded into the shared part first
    /// (once per parallel node, not once per branch).
    pub(super) fn fork(&mut self) -> Self {
        if !self.own.is_empty() || !self.removed.is_empty() {
            let Value::Object(map) = self.to_value() else {
                unreachable!("to_value makes an object");
            };
            *self = Self {
                shared: Arc::new(map),
                ..Self::default()
            };
        }
        Self {
            shared: Arc::clone(&self.shared),
            ..Self::default()
        }
    }

    /// What a branch wrote that differs from what it saw at its fork.
    pub(super) fn changes(self) -> impl Iterator<Item = (String, Value)> {
        let shared = self.shared;
        self.own
            .into_iter()
            .filter(move |(key, value)| shared.get(key) != Some(value))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn branches_share_what_they_saw_and_keep_what_they_wrote() {
        let big = json!("x".repeat(1000));
        let mut root = Layered::from_value(json!({"body": big, "a": 1}));
        root.insert("b".into(), json!(2));
        let mut left = root.fork();
        let right = root.fork();
        assert!(Arc::ptr_eq(&left.shared, &right.shared), "one copy for all");
        assert_eq!(left.get("b"), Some(&json!(2)));
        left.insert("a".into(), json!(1));
        left.insert("c".into(), json!(3));
        left.remove("b");
        assert_eq!(left.get("b"), None);
        assert_eq!(right.get("b"), Some(&json!(2)));
        assert_eq!(
            left.lookup(&[Segment::Key("c".into())]),
            Some(json!(3)),
            "a path's first key"
        );
        assert_eq!(
            left.to_value(),
            json!({"body": big, "a": 1, "c": 3}),
            "the whole map"
        );
        // A value written equal to what it saw is no change.
        let changes: Vec<_> = left.changes().collect();
        assert_eq!(changes, vec![("c".to_string(), json!(3))]);
    }
}
