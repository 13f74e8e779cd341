//! `hookflow validate FILE...`

use std::path::PathBuf;
use std::process::ExitCode;

use hookflow::app::deploy::{definition_files, load_file};

pub fn run(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let registry = hookflow::nodes::builtin();
    let mut failed = false;
    // Every valid definition with its file, for the checks across workflows.
    let mut valid = Vec::new();
    for path in paths {
        let files = definition_files(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        for file in files {
            match load_file(&file, &registry) {
                Ok(def) => {
                    let nodes = count_nodes(&def.nodes);
                    println!(
                        "{}: ok: {} ({}, hook {}, {} node{})",
                        file.display(),
                        def.key,
                        if def.sync { "sync" } else { "async" },
                        def.trigger
                            .hook_id
                            .as_deref()
                            .unwrap_or("generated at first deploy"),
                        nodes,
                        if nodes == 1 { "" } else { "s" }
                    );
                    for warning in hookflow::validate::warnings(&def) {
                        println!("{}: warning: {warning}", file.display());
                    }
                    valid.push((file, def));
                }
                Err(problems) => {
                    failed = true;
                    print!("{problems}");
                }
            }
        }
    }
    let (files, definitions): (Vec<_>, Vec<_>) = valid.into_iter().unzip();
    for (i, warning) in hookflow::validate::cycles(&definitions, &registry) {
        println!("{}: warning: {warning}", files[i].display());
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn count_nodes(nodes: &[hookflow::model::NodeDefinition]) -> usize {
    nodes
        .iter()
        .map(|n| 1 + n.branches.values().map(|b| count_nodes(b)).sum::<usize>())
        .sum()
}
