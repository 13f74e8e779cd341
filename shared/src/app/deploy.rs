//! Deploying definitions: files → validated definitions → new versions in a store,
//! only where something changed. Shared by `hookflow serve` and `hookflow deploy`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::engine::NodeRegistry;
use crate::model::{DeployedWorkflow, NodeDefinition, WorkflowDefinition};
use crate::ports::{Store, StoreError};
use crate::time::now_rfc3339;
use crate::validate::{self, Problem};

/// A definition file that could not be used, with every reason.
#[derive(Debug)]
pub struct FileProblems {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for FileProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.problems {
            writeln!(f, "{}: {p}", self.file.display())?;
        }
        Ok(())
    }
}

/// Reads and validates one definition file.
pub fn load_file(file: &Path, registry: &NodeRegistry) -> Result<WorkflowDefinition, FileProblems> {
    let fail = |message: String| FileProblems {
        file: file.to_path_buf(),
        problems: vec![Problem {
            path: String::new(),
            message,
        }],
    };
    let text = std::fs::read_to_string(file).map_err(|e| fail(format!("cannot read: {e}")))?;
    let mut doc: Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not valid JSON: {e}")))?;
    let problems = |problems| FileProblems {
        file: file.to_path_buf(),
        problems,
    };
    read_schema_beside(&mut doc, file).map_err(|p| problems(vec![p]))?;
    validate::validate(&doc, registry).map_err(problems)
}

/// A `trigger.schema` that is a path: the JSON file it names, relative to the
/// workflow file's directory, read in its place, so what is deployed holds the
/// schema itself (the webhook reads no file).
fn read_schema_beside(doc: &mut Value, file: &Path) -> Result<(), Problem> {
    let Some(slot) = doc.pointer_mut("/trigger/schema") else {
        return Ok(());
    };
    let Some(name) = slot.as_str() else {
        return Ok(());
    };
    let dir = file.parent().unwrap_or(Path::new(""));
    let path = dir.join(name);
    let problem = |message: String| Problem {
        path: "trigger.schema".into(),
        message,
    };
    // Only a regular file under the workflow file's directory (symbolic links
    // resolved), of bounded size: a definition from a less trusted contributor
    // must not publish any file the deploying machine can read.
    let inside = |p: &Path| -> std::io::Result<bool> {
        let dir = std::fs::canonicalize(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })?;
        Ok(std::fs::canonicalize(p)?.starts_with(dir))
    };
    match inside(&path) {
        Ok(true) => {}
        Ok(false) => {
            return Err(problem(format!(
                "{name:?} is outside the workflow file's directory: a schema file must be beside it or below"
            )));
        }
        Err(e) => return Err(problem(format!("cannot read {}: {e}", path.display()))),
    }
    let meta = std::fs::metadata(&path)
        .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() || meta.len() > MAX_SCHEMA_FILE_BYTES {
        return Err(problem(format!(
            "{} must be a file of at most {MAX_SCHEMA_FILE_BYTES} bytes",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
    *slot = serde_json::from_str(&text)
        .map_err(|e| problem(format!("{} is not valid JSON: {e}", path.display())))?;
    Ok(())
}

/// The largest schema file read beside a workflow.
const MAX_SCHEMA_FILE_BYTES: u64 = 1 << 20;

/// What a schema file beside workflows is named: a directory's `*.schema.json`
/// files are schemas, not workflows.
const SCHEMA_FILE_SUFFIX: &str = ".schema.json";

/// The `*.json` files of a directory (not its `*.schema.json`), or the file
/// itself, sorted by name.
pub fn definition_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let is_schema = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(SCHEMA_FILE_SUFFIX))
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json") && !is_schema(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads every definition under the given paths; on any problem, returns them all.
pub fn load_all(
    paths: &[PathBuf],
    registry: &NodeRegistry,
) -> Result<Vec<WorkflowDefinition>, Vec<FileProblems>> {
    let mut defs = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        let files = match definition_files(path) {
            Ok(files) => files,
            Err(e) => {
                problems.push(FileProblems {
                    file: path.clone(),
                    problems: vec![Problem {
                        path: String::new(),
                        message: format!("cannot read: {e}"),
                    }],
                });
                continue;
            }
        };
        for file in files {
            match load_file(&file, registry) {
                Ok(def) => defs.push((file, def)),
                Err(p) => problems.push(p),
            }
        }
    }
    // Two files with one key would overwrite each other's versions in turn.
    for (i, (file, def)) in defs.iter().enumerate() {
        if let Some((first, _)) = defs[..i].iter().find(|(_, d)| d.key == def.key) {
            problems.push(FileProblems {
                file: file.clone(),
                problems: vec![Problem {
                    path: "key".into(),
                    message: format!("{:?} is also the key of {}", def.key, first.display()),
                }],
            });
        }
    }
    if problems.is_empty() {
        Ok(defs.into_iter().map(|(_, d)| d).collect())
    } else {
        Err(problems)
    }
}

/// What deploying one definition did.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub workflow: Arc<DeployedWorkflow>,
    /// `false` when the definition equalled the current version.
    pub changed: bool,
}

/// Deploys a definition as a new version when it differs from the current one.
/// A definition without a hook id keeps the one its key already has, or gets a new
/// random one (128 bits). `types` says which nodes call other workflows.
pub async fn deploy(
    store: &dyn Store,
    types: &NodeRegistry,
    mut definition: WorkflowDefinition,
) -> Result<Deployed, StoreError> {
    let current = store.current_workflow(&definition.key).await?;
    let hook_id = definition
        .trigger
        .hook_id
        .clone()
        .or_else(|| current.as_ref().map(|c| c.hook_id.clone()))
        .unwrap_or_else(new_hook_id);
    definition.trigger.hook_id = Some(hook_id.clone());
    if definition.sync {
        check_sync_subflows(store, types, &definition.nodes, "nodes").await?;
    }
    // The file as it is, or as it was when an operator switched the workflow on or
    // off: the switch holds until the file itself changes.
    let unchanged = |c: &DeployedWorkflow| {
        c.definition == definition
            || (c.switched_by.is_some()
                && c.definition
                    == WorkflowDefinition {
                        enabled: c.definition.enabled,
                        ..definition.clone()
                    })
    };
    if let Some(current) = current.as_ref().filter(|c| unchanged(c)) {
        return Ok(Deployed {
            workflow: Arc::clone(current),
            changed: false,
        });
    }
    let workflow = DeployedWorkflow {
        key: definition.key.clone(),
        version: current.map_or(1, |c| c.version + 1),
        hook_id,
        definition,
        deployed_at: now_rfc3339(),
        switched_by: None,
    };
    store.publish(&workflow).await?;
    Ok(Deployed {
        workflow: Arc::new(workflow),
        changed: true,
    })
}

/// Turns a workflow on or off: a new version, equal to the current one but for
/// `enabled`, recorded with who switched it, so its history shows which version ran
/// when. The webhook sees it within its hook cache's TTL. `None` for an unknown
/// key; `changed: false` when it was so already.
pub async fn switch(
    store: &dyn Store,
    key: &str,
    enabled: bool,
    by: &str,
) -> Result<Option<Deployed>, StoreError> {
    let Some(current) = store.current_workflow(key).await? else {
        return Ok(None);
    };
    if current.definition.enabled == enabled {
        return Ok(Some(Deployed {
            workflow: current,
            changed: false,
        }));
    }
    let mut workflow = DeployedWorkflow::clone(&current);
    workflow.version += 1;
    workflow.definition.enabled = enabled;
    workflow.deployed_at = now_rfc3339();
    workflow.switched_by = Some(by.to_string());
    store.publish(&workflow).await?;
    Ok(Some(Deployed {
        workflow: Arc::new(workflow),
        changed: true,
    }))
}

/// A sync workflow may call only sync workflows: checked here for targets that are
/// deployed already (the rest is checked when the call runs).
async fn check_sync_subflows(
    store: &dyn Store,
    types: &NodeRegistry,
    nodes: &[NodeDefinition],
    at: &str,
) -> Result<(), StoreError> {
    for (i, node) in nodes.iter().enumerate() {
        let here = format!("{at}[{i}]");
        if let Some(call) = types.calls(node)
            && let Some(child) = store.current_workflow(&call.workflow).await?
            && !child.definition.sync
        {
            return Err(StoreError::InvalidDefinition(format!(
                "{here}.config.{}: {:?} is async; a sync workflow may call only sync workflows",
                call.field, call.workflow
            )));
        }
        for (index, branch) in &node.branches {
            Box::pin(check_sync_subflows(
                store,
                types,
                branch,
                &format!("{here}.branches.{index}"),
            ))
            .await?;
        }
    }
    Ok(())
}

/// 128 random bits as 32 lowercase hex characters: URL-safe and unguessable.
pub fn new_hook_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The path a hook answers on.
pub fn webhook_path(hook_id: &str) -> String {
    format!("/api/webhook:trigger/{hook_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_schema_path_may_not_leave_the_workflows_directory_nor_name_a_device() {
        let root = tempfile::tempdir().unwrap();
        let flows = root.path().join("flows");
        std::fs::create_dir(&flows).unwrap();
        std::fs::write(root.path().join("secret.json"), r#"{"private_key": "x"}"#).unwrap();
        std::os::unix::fs::symlink(root.path().join("secret.json"), flows.join("link.json"))
            .unwrap();
        let registry = crate::nodes::builtin();
        for (name, said) in [
            ("../secret.json", "outside the workflow file's directory"),
            ("link.json", "outside the workflow file's directory"),
            ("/dev/zero", "outside the workflow file's directory"),
        ] {
            let file = flows.join("w.json");
            let doc = json!({"key": "k", "trigger": {"type": "webhook", "schema": name}});
            std::fs::write(&file, doc.to_string()).unwrap();
            let problems = load_file(&file, &registry).unwrap_err().problems;
            assert!(
                problems[0].message.contains(said),
                "{name}: {}",
                problems[0].message
            );
        }
    }

    #[test]
    fn a_schema_path_is_read_beside_the_file_and_its_file_is_no_workflow() {
        let dir = tempfile::tempdir().unwrap();
        let schema = json!({"type": "object", "required": ["id"]});
        std::fs::create_dir(dir.path().join("schemas")).unwrap();
        std::fs::write(dir.path().join("schemas/order.json"), schema.to_string()).unwrap();
        std::fs::write(dir.path().join("order.schema.json"), schema.to_string()).unwrap();
        let workflow =
            |schema: &str| json!({"key": "k", "trigger": {"type": "webhook", "schema": schema}});
        std::fs::write(
            dir.path().join("a.json"),
            workflow("schemas/order.json").to_string(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.json"),
            workflow("order.schema.json").to_string(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("c.json"),
            workflow("missing.json").to_string(),
        )
        .unwrap();
        let files = definition_files(dir.path()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.json", "b.json", "c.json"]);
        let registry = crate::nodes::builtin();
        for file in &files[..2] {
            let loaded = load_file(file, &registry).unwrap();
            assert_eq!(loaded.trigger.schema.unwrap().document(), &schema);
        }
        let missing = load_file(&files[2], &registry).unwrap_err();
        assert_eq!(missing.problems[0].path, "trigger.schema");
        assert!(
            missing.problems[0].message.contains("cannot read"),
            "{missing}"
        );
    }
}
