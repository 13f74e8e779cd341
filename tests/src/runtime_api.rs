//! A built Lambda bootstrap run as Lambda runs it: the process started with the
//! environment Lambda gives it, polling a stand-in of the Lambda Runtime API on
//! loopback (`/2018-06-01/runtime/...`) that hands it one event per invocation and
//! takes its answer back.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Killed;

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function made of an invocation, as the Runtime API received it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST .../invocation/{id}/response`: the handler's result.
    Response(String),
    /// `POST .../invocation/{id}/error`: the handler failed.
    Error(String),
    /// `POST .../init/error`: the process failed before its first poll.
    InitError(String),
}

#[derive(Default)]
struct State {
    /// Events waiting for the function's next poll, with their request ids.
    events: VecDeque<(String, String)>,
    outcomes: HashMap<String, Outcome>,
    init_error: Option<String>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap());
        self.changed.notify_all();
    }
}

/// A bootstrap process and the Runtime API it polls; killed when dropped.
pub struct Bootstrap {
    shared: Arc<Shared>,
    process: Killed,
    log: tempfile::NamedTempFile,
    path: PathBuf,
    invocations: usize,
}

impl Bootstrap {
    /// Starts `path` as Lambda does, with `envs` (the function's environment
    /// variables) on top of this process's environment (the AWS endpoint and
    /// credentials the tests use).
    pub fn start(path: &Path, envs: &[(&str, &str)]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let api = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared::default());
        let serving = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let shared = Arc::clone(&serving);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        let log = tempfile::NamedTempFile::new().expect("log file");
        let name = path
            .parent()
            .and_then(Path::file_name)
            .map_or("function".into(), |n| n.to_string_lossy().into_owned());
        let process = Command::new(path)
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", &name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("LAMBDA_TASK_ROOT", path.parent().unwrap_or(path))
            .envs(envs.iter().copied())
            .stdout(Stdio::from(log.reopen().unwrap()))
            .stderr(Stdio::from(log.reopen().unwrap()))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", path.display()));
        Self {
            shared,
            process: Killed(process),
            log,
            path: path.to_owned(),
            invocations: 0,
        }
    }

    /// Invokes the function with `event` (JSON text) and waits for what it answers.
    pub fn invoke(&mut self, event: &str) -> Outcome {
        self.invocations += 1;
        let id = format!("invocation-{}", self.invocations);
        self.shared
            .update(|s| s.events.push_back((id.clone(), event.to_string())));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut state = self.shared.state.lock().unwrap();
        loop {
            if let Some(outcome) = state.outcomes.remove(&id) {
                return outcome;
            }
            if let Some(error) = &state.init_error {
                return Outcome::InitError(error.clone());
            }
            let exited = self.process.0.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{} answered no invocation ({}); its output:\n{}",
                self.path.display(),
                exited.map_or("60 s passed".into(), |s| format!("it exited: {s}")),
                std::fs::read_to_string(self.log.path()).unwrap_or_default()
            );
            state = self
                .shared
                .changed
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap()
                .0;
        }
    }
}

/// Answers one connection's requests (the runtime client keeps connections alive).
fn serve(stream: TcpStream, shared: &Shared) {
    let mut writer = stream.try_clone().expect("clone the stream");
    let mut reader = BufReader::new(stream);
    while let Some((method, path, body)) = read_request(&mut reader) {
        let route = path.strip_prefix(PREFIX).unwrap_or(&path);
        let answer = match (method.as_str(), route) {
            ("GET", "/invocation/next") => next_event(shared),
            ("POST", "/init/error") => {
                shared.update(|s| s.init_error = Some(body));
                accepted()
            }
            ("POST", route) => match route
                .strip_prefix("/invocation/")
                .and_then(|r| r.rsplit_once('/'))
            {
                Some((id, kind @ ("response" | "error"))) => {
                    let outcome = if kind == "response" {
                        Outcome::Response(body)
                    } else {
                        Outcome::Error(body)
                    };
                    shared.update(|s| {
                        s.outcomes.insert(id.to_string(), outcome);
                    });
                    accepted()
                }
                _ => not_found(&path),
            },
            _ => not_found(&path),
        };
        if writer.write_all(&answer).is_err() {
            return;
        }
    }
}

/// The next event, held until there is one (Lambda's long poll).
fn next_event(shared: &Shared) -> Vec<u8> {
    let mut state = shared.state.lock().unwrap();
    let (id, event) = loop {
        if let Some(next) = state.events.pop_front() {
            break next;
        }
        state = shared.changed.wait(state).unwrap();
    };
    drop(state);
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(60);
    let headers = format!(
        "lambda-runtime-aws-request-id: {id}\r\nlambda-runtime-deadline-ms: {}\r\n\
         lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:test\r\n\
         lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n",
        deadline.as_millis()
    );
    answer(200, &headers, &event)
}

fn accepted() -> Vec<u8> {
    answer(202, "", r#"{"status":"OK"}"#)
}

fn not_found(path: &str) -> Vec<u8> {
    answer(404, "", &format!(r#"{{"errorMessage":"no route {path}"}}"#))
}

fn answer(status: u16, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One HTTP/1.1 request: its method, path and body (by content-length or chunked);
/// `None` once the client closed the connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, String)> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let (mut length, mut chunked) = (0, false);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok().filter(|&n| n > 0)?;
        let header = header.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        chunked |= header.starts_with("transfer-encoding:") && header.ends_with("chunked");
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some((method, path, String::from_utf8_lossy(&body).into_owned()))
}
