//! A real headless Chromium (Debian's `chromium` package; `scripts/test` installs
//! it through apt when it is missing) loading pages the way a user's browser does:
//! the DOM after parsing, what the page wrote to its console (script errors and
//! refused loads included), and screenshots.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The browser binary: `HOOKFLOW_CHROMIUM`, else the first of the usual names.
pub fn chromium() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(path) = std::env::var("HOOKFLOW_CHROMIUM") {
            return PathBuf::from(path);
        }
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|name| {
                std::env::var_os("PATH").and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|dir| dir.join(name))
                        .find(|p| p.is_file())
                })
            })
            .expect(
                "no chromium found: the viewer's tests need a real browser \
                 (`apt-get install chromium`; ./scripts/test installs it)",
            )
    })
}

/// A page as the browser rendered it.
pub struct Loaded {
    pub dom: String,
    /// Every message the page wrote to its console (`console.*`, uncaught errors,
    /// loads refused by its Content-Security-Policy).
    pub console: Vec<String>,
}

fn run(args: &[String]) -> (String, String) {
    let profile = tempfile::tempdir().expect("browser profile dir");
    let mut command = Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args);
    let output = run_bounded(command, Duration::from_secs(90));
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs the browser, killed if it outlives `limit` (a test must not hang on it).
fn run_bounded(mut command: Command, limit: Duration) -> std::process::Output {
    use std::process::Stdio;
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let id = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
        }
    });
    let output = child.wait_with_output().expect("wait for chromium");
    let _ = done_tx.send(());
    let _ = watchdog.join();
    output
}

/// Loads `url` and returns its DOM once the page has loaded.
pub fn load(url: &str) -> Loaded {
    let (dom, log) = run(&["--dump-dom".to_string(), url.to_string()]);
    assert!(
        dom.contains("<html"),
        "chromium printed no DOM for {url}; its log:\n{log}"
    );
    let console = log
        .lines()
        .filter(|line| line.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    Loaded { dom, console }
}

/// Saves a PNG of `url` at `width`×`height` to `path`, and returns its bytes.
pub fn screenshot(url: &str, path: &Path, width: u32, height: u32) -> Vec<u8> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("screenshot dir");
    }
    let (_, log) = run(&[
        format!("--window-size={width},{height}"),
        format!("--screenshot={}", path.display()),
        url.to_string(),
    ]);
    std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "no screenshot of {url} at {}: {e}; chromium's log:\n{log}",
            path.display()
        )
    })
}

/// A PNG's width and height, read from its header.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let read = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    Some((read(16), read(20)))
}
