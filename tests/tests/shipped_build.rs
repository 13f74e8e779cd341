//! What ships is built without test code and without the SQLite store. SAM's Rust
//! builder runs `cargo lambda build --release --bin webhook` (and `--bin worker`) at
//! the workspace root, with no `-p`: cargo then selects the workspace's default
//! members and unifies the library's features over all of them, so a feature the
//! cli or the test crate turns on would reach the Lambdas.
//!
//! `cargo tree` at the root selects the same packages as that build and resolves
//! their features the same way; with `-e normal` it leaves dev-dependencies out,
//! as a build of the binaries does. (The unit graph, `cargo build --unit-graph`,
//! needs a nightly cargo.)

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Features a deployed Lambda must not be built with (`aws-profiles`: the CLI's
/// aws-config provider chain; `authoring`: the validator, schemas, deploys and
/// viewer, about 0.3 MB of each bootstrap).
const FORBIDDEN_FEATURES: &[&str] = &[
    "default",
    "embedded",
    "testing",
    "aws-profiles",
    "authoring",
];
/// Crates that are test code, SQLite or the test crate itself, and the AWS SDK
/// stack: the Lambdas sign their DynamoDB and SQS calls themselves and read their
/// configuration from the environment (issue 25: each SDK crate, aws-config with
/// STS, and the smithy runtime cost ~0.2-0.5 MB of every binary).
const FORBIDDEN_CRATES: &[&str] = &[
    "rusqlite",
    "libsqlite3-sys",
    "proptest",
    "hookflow-tests",
    "hookflow-cli",
    "aws-config",
    "aws-sdk-dynamodb",
    "aws-sdk-sqs",
    "aws-sdk-sts",
    "aws-sdk-sso",
    "aws-sdk-ssooidc",
    "aws-smithy-runtime",
    "aws-runtime",
    "serde_dynamo",
    "regex-lite",
    "maud",
];

/// Each package `cargo tree` lists, by name, with its enabled features.
fn resolved(selection: &[&str]) -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(cargo)
        .current_dir(&root)
        .args([
            "tree", "--target", "all", "-e", "normal", "--prefix", "none",
        ])
        .args(["-f", "{p}|{f}"])
        .args(selection)
        .output()
        .expect("run cargo tree");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut packages = BTreeMap::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let (package, features) = line.trim_end_matches(" (*)").split_once('|').unwrap();
        let name = package.split_whitespace().next().unwrap().to_string();
        let features = features
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
        packages.insert(name, features);
    }
    packages
}

#[test]
fn a_root_build_of_the_lambdas_resolves_only_what_they_ask_for() {
    let root_build = resolved(&[]);
    for lambda in ["hookflow-webhook", "hookflow-worker"] {
        assert!(
            root_build.contains_key(lambda),
            "a root build selects {lambda}, whose binary SAM builds: {:?}",
            root_build.keys()
        );
    }
    let library = &root_build["hookflow-shared"];
    let leaked: Vec<_> = FORBIDDEN_FEATURES
        .iter()
        .filter(|f| library.iter().any(|on| on == *f))
        .collect();
    assert!(
        leaked.is_empty(),
        "a root `cargo build --release --bin webhook` builds hookflow-shared with {leaked:?} (all: {library:?})"
    );
    let crates: Vec<_> = FORBIDDEN_CRATES
        .iter()
        .filter(|c| root_build.contains_key(**c))
        .collect();
    assert!(
        crates.is_empty(),
        "a root build of the Lambdas compiles {crates:?}"
    );
    // Exactly the Lambdas' own resolution: nothing another member asks for.
    let lambdas_alone = resolved(&["-p", "hookflow-webhook", "-p", "hookflow-worker"]);
    assert_eq!(root_build, lambdas_alone);
}
