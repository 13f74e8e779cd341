//! `hookflow graph FILE [--execution ID]`: a workflow as a Mermaid flowchart, for
//! READMEs, pull requests and docs (GitHub draws `mermaid` code blocks).

use std::path::PathBuf;
use std::process::ExitCode;

use hookflow::app::deploy;
use hookflow::view::mermaid::flowchart;
use hookflow::view::status::NodeRuns;

use crate::source::{Source, open};

#[derive(clap::Args)]
pub struct GraphArgs {
    /// A workflow definition file.
    file: PathBuf,
    /// Mark the path this execution took (read from --data or --table). The
    /// version that ran is drawn, as stored.
    #[arg(long)]
    execution: Option<String>,
    /// Wrap the chart in a ```mermaid code block, ready to paste into Markdown.
    #[arg(long)]
    markdown: bool,
    #[command(flatten)]
    source: Source,
}

pub fn run(args: GraphArgs) -> anyhow::Result<ExitCode> {
    let registry = hookflow::nodes::builtin();
    let definition = match deploy::load_file(&args.file, &registry) {
        Ok(definition) => definition,
        Err(problems) => {
            eprint!("{problems}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let chart = match &args.execution {
        None => flowchart(&registry, &definition.nodes, None),
        Some(id) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (execution, ran) = runtime.block_on(async {
                let (store, _db) = open(&args.source).await?;
                let execution = store
                    .execution(id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no execution has the id {id:?}"))?;
                let ran = store
                    .workflow_version(&execution.workflow_key, execution.workflow_version)
                    .await?;
                anyhow::Ok((execution, ran))
            })?;
            anyhow::ensure!(
                execution.workflow_key == definition.key,
                "execution {id} ran workflow {:?}, not {:?} ({})",
                execution.workflow_key,
                definition.key,
                args.file.display()
            );
            let nodes = match &ran {
                Some(ran) => {
                    if ran.definition.nodes != definition.nodes {
                        eprintln!(
                            "note: drawing v{} as it ran; {} has changed since",
                            ran.version,
                            args.file.display()
                        );
                    }
                    &ran.definition.nodes
                }
                None => &definition.nodes,
            };
            flowchart(&registry, nodes, Some(&NodeRuns::of(&execution)))
        }
    };
    if args.markdown {
        println!("```mermaid\n{chart}```");
    } else {
        print!("{chart}");
    }
    Ok(ExitCode::SUCCESS)
}
