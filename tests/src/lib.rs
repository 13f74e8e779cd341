//! Test harness: starts the real `hookflow` binary on a free loopback port with
//! fixture workflows, and reads its store through `hookflow executions`.

pub mod browser;
pub mod generators;
pub mod inproc;
pub mod on_moto;
pub mod runtime_api;
pub mod test_nodes;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The `hookflow` binary that `cargo test --workspace` built beside the tests (the
/// cli package's own integration tests make cargo build it, with the same features).
pub fn hookflow_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test-exe> → target/<profile>/hookflow
        let exe = std::env::current_exe().expect("test executable path");
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .expect("target profile dir")
            .join("hookflow");
        assert!(
            bin.exists(),
            "{} is missing: run `cargo test --workspace` (or ./scripts/test), which builds it",
            bin.display()
        );
        bin
    })
}

/// Runs `hookflow ARGS...` and returns (exit success, stdout, stderr).
pub fn hookflow(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(hookflow_bin())
        .args(args)
        .output()
        .expect("run hookflow");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `hookflow serve` with its own workflows and data directories.
pub struct Server {
    dir: TempDir,
    child: Option<Child>,
    pub base: String,
    /// The lines it printed at start.
    pub banner: Vec<String>,
    extra_args: Vec<String>,
    envs: Vec<(String, String)>,
    /// Where its stderr (the log) goes, when a test reads it.
    log: Option<PathBuf>,
}

impl Server {
    /// Writes each definition to `<key>.json` and starts a server on them.
    pub fn start(workflows: &[Value]) -> Self {
        Self::start_with(workflows, &[])
    }

    pub fn start_with(workflows: &[Value], extra_args: &[&str]) -> Self {
        Self::start_with_env(workflows, extra_args, &[])
    }

    /// Also sets environment variables of the server process.
    pub fn start_with_env(workflows: &[Value], extra_args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::start_inner(workflows, extra_args, envs, false)
    }

    fn start_inner(
        workflows: &[Value],
        extra_args: &[&str],
        envs: &[(&str, &str)],
        logged: bool,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("workflows")).unwrap();
        for w in workflows {
            let key = w["key"].as_str().expect("fixture has a key");
            let file = dir.path().join("workflows").join(format!("{key}.json"));
            std::fs::write(file, serde_json::to_vec_pretty(w).unwrap()).unwrap();
        }
        let mut server = Self {
            dir,
            child: None,
            base: String::new(),
            banner: Vec::new(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log: None,
        };
        if logged {
            server.log = Some(server.dir.path().join("serve.log"));
        }
        server.launch();
        server
    }

    /// Like [`Server::start_with_env`], with the log (stderr, at debug level) kept
    /// in a file for [`Server::log`].
    pub fn start_logged(workflows: &[Value], extra_args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut envs = envs.to_vec();
        envs.push(("RUST_LOG", "debug"));
        Self::start_inner(workflows, extra_args, &envs, true)
    }

    /// Everything the server logged so far (see [`Server::start_logged`]).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn launch(&mut self) {
        let mut child = Command::new(hookflow_bin())
            .arg("serve")
            .arg("--workflows")
            .arg(self.dir.path().join("workflows"))
            .arg("--data")
            .arg(self.data_dir())
            // Loopback on a free port, unless the test names its own address.
            .args(if self.extra_args.iter().any(|a| a == "--addr") {
                &[][..]
            } else {
                &["--addr", "127.0.0.1:0"][..]
            })
            .args(&self.extra_args)
            // The test command sets AWS_ENDPOINT_URL for the AWS tests; a server uses
            // AWS adapters only when its test asks for them.
            .env_remove("AWS_ENDPOINT_URL")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(match &self.log {
                Some(path) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .expect("open the server log"),
                ),
                None => Stdio::inherit(),
            })
            .spawn()
            .expect("start hookflow serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next()
            .expect("hookflow serve printed nothing")
            .expect("read banner");
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::sleep(Duration::from_millis(50));
        self.banner = std::iter::once(first).chain(rx.try_iter()).collect();
        self.base = base;
        self.child = Some(child);
    }

    /// Writes (or rewrites) a definition file; a restart deploys it.
    pub fn write_workflow(&self, workflow: &Value) {
        let key = workflow["key"].as_str().expect("fixture has a key");
        let file = self
            .dir
            .path()
            .join("workflows")
            .join(format!("{key}.json"));
        std::fs::write(file, serde_json::to_vec_pretty(workflow).unwrap()).unwrap();
    }

    /// The full URL of a hook id.
    pub fn hook_url(&self, hook_id: &str) -> String {
        format!("{}/api/webhook:trigger/{hook_id}", self.base)
    }

    /// The peak resident memory of the running process so far (`VmHWM`), in
    /// bytes; `None` once it stopped or where /proc does not say.
    pub fn peak_rss(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Stops gracefully (SIGINT, as Ctrl-C) and waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(status.success(), "hookflow serve exited with {status}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            panic!("hookflow serve did not stop within 20 s of SIGINT");
        }
    }

    /// Kills the process outright, as a crash would.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same data, optionally with other arguments.
    pub fn restart_with(&mut self, extra_args: &[&str]) {
        self.stop();
        self.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        self.launch();
    }

    /// `hookflow executions show ID --json` on this server's data.
    pub fn execution(&self, id: &str) -> Option<Value> {
        let data = self.data_dir();
        let (ok, out, _) = hookflow(&[
            "executions",
            "show",
            id,
            "--json",
            "--data",
            data.to_str().unwrap(),
        ]);
        ok.then(|| serde_json::from_str(&out).expect("executions show prints JSON"))
    }

    /// `hookflow executions list --json` on this server's data.
    pub fn executions(&self, workflow: Option<&str>) -> Vec<Value> {
        let data = self.data_dir();
        let mut args = vec![
            "executions",
            "list",
            "--json",
            "--limit",
            "100000",
            "--data",
            data.to_str().unwrap(),
        ];
        if let Some(w) = workflow {
            args.extend(["--workflow", w]);
        }
        let (ok, out, err) = hookflow(&args);
        assert!(ok, "executions list failed: {err}");
        serde_json::from_str::<Vec<Value>>(&out).expect("executions list prints a JSON array")
    }

    /// Polls until the execution has `status`, and returns it.
    pub fn wait_for_execution(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found = self.execution(id);
            if found.as_ref().is_some_and(|e| e["status"] == status) {
                return found.unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "execution {id} never became {status}: {found:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.crash();
    }
}

/// An execution record's jobs as `(nodeKey, status)`, in order.
pub fn job_trail(execution: &Value) -> Vec<(&str, &str)> {
    execution["jobs"]
        .as_array()
        .expect("an execution record has jobs")
        .iter()
        .map(|j| {
            (
                j["nodeKey"].as_str().unwrap(),
                j["status"].as_str().unwrap(),
            )
        })
        .collect()
}

/// The new execution ids `hookflow executions replay` printed (`replayed OLD as
/// NEW (...)`).
pub fn replayed_ids(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("replayed "))
        .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
        .collect()
}

/// A reqwest client that does not follow redirects or keep state.
pub fn client() -> reqwest::Client {
    // reqwest is built with hookflow's TLS (rustls on ring, no default provider).
    hookflow::tls::install();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// POSTs `body` as JSON to `hook` on `server`: the status and the answer, as JSON
/// when it is JSON, else as a JSON string.
pub async fn post(server: &Server, hook: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(server.hook_url(hook))
        .json(&body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The moto endpoint the test command started (`AWS_ENDPOINT_URL`), with the SDK
/// environment checked. Tests that need AWS fail loudly without it rather than skip.
pub fn moto_endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("AWS_ENDPOINT_URL is not set: run ./scripts/test, which starts moto_server for these tests")
    });
    assert!(
        endpoint.contains("127.0.0.1") || endpoint.contains("localhost"),
        "tests talk to a loopback endpoint only, not {endpoint}"
    );
    endpoint
}

/// A name no other test uses, for tables and queues on the shared moto server.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// A tiny HTTP server on loopback that answers `{"ok":true}` to everything and hands
/// each raw request (head and body) to the test.
pub fn recording_server() -> (String, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let url = loopback_server(move |raw, _| {
        let _ = tx.send(raw);
        (200, "{\"ok\":true}".into())
    });
    (url, rx)
}

/// A loopback server that answers 503 to its first `failures` requests and 200
/// `{"ok":true,"request":N}` after; the counter tells how many it got.
pub fn flaky_server(failures: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&count);
    let url = loopback_server(move |_, n| {
        seen.store(n, Ordering::SeqCst);
        if n <= failures {
            (503, format!("{{\"busy\":{n}}}"))
        } else {
            (200, format!("{{\"ok\":true,\"request\":{n}}}"))
        }
    });
    (url, count)
}

/// Serves one request per connection on loopback; `answer` gets each raw request
/// and its number (from 1) and gives the status and JSON body.
fn loopback_server(
    mut answer: impl FnMut(String, usize) -> (u16, String) + Send + 'static,
) -> String {
    stub_server(move |raw, n| {
        let (status, body) = answer(raw, n);
        (status, String::new(), body)
    })
}

/// A loopback server standing in for a service: `answer` gets each raw request
/// and its number (from 1) and gives the status, extra header lines (each ending
/// in `\r\n`) and the JSON body. It may sleep to play a slow service.
pub fn stub_server(
    mut answer: impl FnMut(String, usize) -> (u16, String, String) + Send + 'static,
) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if raw.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let (status, headers, body) = answer(String::from_utf8_lossy(&raw).to_string(), i + 1);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// `hookflow ui` over `source` (`["--data", dir]` or `["--table", name]`) with
/// `--webhook-base`, on a free loopback port: its base URL once it answers, and the
/// process (stopped when dropped).
pub async fn start_ui(source: &[&str], webhook_base: &str) -> (String, Killed) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let ui = Killed(
        std::process::Command::new(hookflow_bin())
            .arg("ui")
            .args(source)
            .args(["--addr", &addr, "--webhook-base", webhook_base])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start hookflow ui"),
    );
    let base = format!("http://{addr}");
    for _ in 0..100 {
        if client().get(format!("{base}/ui")).send().await.is_ok() {
            return (base, ui);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("hookflow ui did not start");
}

/// A child process killed when the test ends, passed or not.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request a [`timed_server`] took: its JSON body, and when it came and
/// was answered.
#[derive(Debug, Clone)]
pub struct Visit {
    pub body: Value,
    pub start: Instant,
    pub end: Instant,
}

/// A loopback service that takes `took` to answer each request, answering many
/// at once (a thread per connection), and keeps every [`Visit`]: what tells
/// how runs that call it overlapped, and in which order they came.
pub fn timed_server(took: Duration) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Visit>>>) {
    use std::io::{Read, Write};
    let visits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = std::sync::Arc::clone(&visits);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let kept = std::sync::Arc::clone(&kept);
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                let body = loop {
                    let n = stream.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    raw.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&raw).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if raw.len() >= end + 4 + length {
                        break serde_json::from_slice(&raw[end + 4..]).unwrap_or(Value::Null);
                    }
                };
                std::thread::sleep(took);
                let end = Instant::now();
                kept.lock().unwrap().push(Visit { body, start, end });
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{{\"ok\":true}}"
                );
            });
        }
    });
    (url, visits)
}

/// The most visits that were in progress at one time.
pub fn most_at_once(visits: &[Visit]) -> usize {
    visits
        .iter()
        .map(|v| {
            visits
                .iter()
                .filter(|o| o.start <= v.start && v.start < o.end)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// `GET /metrics` of `server`, as text.
pub async fn metrics_text(server: &Server) -> String {
    client()
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("the server answers")
        .text()
        .await
        .unwrap()
}

/// The `seq` a visit's body carried (a number, or a number as text).
pub fn seq(visit: &Visit) -> u64 {
    visit.body["seq"]
        .as_u64()
        .or_else(|| visit.body["seq"].as_str()?.parse().ok())
        .unwrap()
}

/// The visits of `customer`, by the time they came.
pub fn visits_of(visits: &[Visit], customer: &str) -> Vec<Visit> {
    let mut of: Vec<Visit> = visits
        .iter()
        .filter(|v| v.body["customer"] == customer)
        .cloned()
        .collect();
    of.sort_by_key(|v| v.start);
    of
}

/// A lane's promise, as a service saw it: `customer`'s calls came with `seq`
/// 1..=`n` in that order, each after the one before had ended.
pub fn assert_in_order_one_at_a_time(visits: &[Visit], customer: &str, n: u64) {
    let of = visits_of(visits, customer);
    let order: Vec<u64> = of.iter().map(seq).collect();
    assert_eq!(
        order,
        (1..=n).collect::<Vec<_>>(),
        "{customer}'s runs out of order"
    );
    for pair in of.windows(2) {
        assert!(pair[0].end <= pair[1].start, "{customer}'s runs overlapped");
    }
}
