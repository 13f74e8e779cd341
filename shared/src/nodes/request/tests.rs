//! The HTTP node against a small server on loopback (the only address tests use).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::engine::{Limits, NodeRegistry};
use crate::model::{ExecutionStatus, Job};
use crate::nodes::NodeSettings;
use crate::nodes::request::guard::NetworkPolicy;
use crate::nodes::test_support::run_on;

/// Answers by path: /echo, /status/404, /slow, /big, /stream-big, /text, /to-metadata.
async fn server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut raw = Vec::new();
                let mut buf = [0u8; 8192];
                let (head, body) = loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    raw.extend_from_slice(&buf[..n]);
                    if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&raw[..end]).to_string();
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        while raw.len() < end + 4 + length {
                            let n = socket.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                break;
                            }
                            raw.extend_from_slice(&buf[..n]);
                        }
                        break (head, String::from_utf8_lossy(&raw[end + 4..]).to_string());
                    }
                };
                let request_line = head.lines().next().unwrap_or("").to_string();
                let mut parts = request_line.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let target = parts.next().unwrap_or("").to_string();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            l.split_once(':')
                                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                                .map(|(_, v)| v.trim().to_string())
                        })
                        .unwrap_or_default()
                };
                let reply = |status: &str, content_type: &str, body: &str| {
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let response = match target.split('?').next().unwrap_or("") {
                    "/echo" => {
                        let echoed = json!({"method": method, "target": target, "contentType": header("content-type"),
                            "custom": header("x-custom"), "body": body});
                        reply("200 OK", "application/json; charset=utf-8", &echoed.to_string())
                    }
                    "/status/404" => reply("404 Not Found", "application/json", r#"{"error":"nope"}"#),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        reply("200 OK", "text/plain", "late")
                    }
                    "/big" => reply("200 OK", "text/plain", &"x".repeat(6 << 20)),
                    "/stream-big" => {
                        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n").await;
                        let chunk = vec![b'y'; 64 << 10];
                        for _ in 0..100 {
                            if socket.write_all(&chunk).await.is_err() {
                                return;
                            }
                        }
                        return;
                    }
                    "/text" => reply("200 OK", "text/plain", "hello"),
                    "/to-metadata" => "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/latest/meta-data/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string(),
                    _ => reply("404 Not Found", "text/plain", "unknown"),
                };
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

fn loopback_registry() -> NodeRegistry {
    crate::nodes::builtin_with(&NodeSettings {
        network: NetworkPolicy {
            allow_loopback: true,
            allow_private: false,
        },
        ..NodeSettings::default()
    })
}

async fn request(config: Value) -> (ExecutionStatus, Job, Value) {
    let nodes = json!([
        {"key": "call", "type": "request", "config": config},
        {"key": "out", "type": "output", "config": {"value": "{{$jobsMapByNodeKey.call}}"}}
    ]);
    let (outcome, jobs, output) = run_on(
        loopback_registry(),
        nodes,
        json!({"id": 42, "name": "Ann"}),
        Limits::default(),
    )
    .await;
    (outcome.status, jobs[0].clone(), output)
}

#[tokio::test]
async fn json_post_with_headers_params_and_templates() {
    let addr = server().await;
    let (status, job, output) = request(json!({
        "url": format!("http://{addr}/echo"), "method": "POST",
        "headers": [{"name": "X-Custom", "value": "id-{{$context.id}}"}],
        "params": [{"name": "q", "value": "a b"}, {"name": "n", "value": "{{$context.id}}"}],
        "data": {"name": "{{$context.name}}", "id": "{{$context.id}}"}
    }))
    .await;
    assert_eq!(status, ExecutionStatus::Resolved);
    let data = &job.result["data"];
    assert_eq!(job.result["status"], 200);
    assert_eq!(data["method"], "POST");
    assert_eq!(data["target"], "/echo?q=a+b&n=42");
    assert_eq!(data["custom"], "id-42");
    assert_eq!(data["contentType"], "application/json");
    assert_eq!(
        serde_json::from_str::<Value>(data["body"].as_str().unwrap()).unwrap(),
        json!({"name": "Ann", "id": 42})
    );
    assert_eq!(
        output["data"]["custom"], "id-42",
        "the result flows into later nodes"
    );
}

#[tokio::test]
async fn methods_and_content_types() {
    let addr = server().await;
    let (_, job, _) = request(
        json!({"url": format!("http://{addr}/echo"), "method": "PUT",
        "contentType": "application/x-www-form-urlencoded", "data": {"a": "1 2", "b": 3}}),
    )
    .await;
    assert_eq!(job.result["data"]["method"], "PUT");
    assert_eq!(
        job.result["data"]["contentType"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(job.result["data"]["body"], "a=1+2&b=3");
    let (_, job, _) = request(json!({"url": format!("http://{addr}/echo"), "method": "patch", "contentType": "text/plain", "data": "plain {{$context.id}}"})).await;
    assert_eq!(job.result["data"]["method"], "PATCH");
    assert_eq!(job.result["data"]["body"], "plain 42");
    let (_, job, _) = request(
        json!({"url": format!("http://{addr}/echo"), "method": "GET", "data": {"ignored": true}}),
    )
    .await;
    assert_eq!(job.result["data"]["method"], "GET");
    assert_eq!(job.result["data"]["body"], "");
    let (_, job, _) =
        request(json!({"url": format!("http://{addr}/echo"), "method": "DELETE"})).await;
    assert_eq!(job.result["data"]["method"], "DELETE");
    let (_, job, _) =
        request(json!({"url": format!("http://{addr}/text"), "method": "GET", "onlyData": true}))
            .await;
    assert_eq!(job.result, json!("hello"));
}

#[tokio::test]
async fn non_2xx_fails_unless_ignored() {
    let addr = server().await;
    let url = format!("http://{addr}/status/404");
    let (status, job, _) = request(json!({"url": url, "method": "GET"})).await;
    assert_eq!(status, ExecutionStatus::Failed);
    assert_eq!(job.result["status"], 404);
    assert_eq!(job.result["data"], json!({"error": "nope"}));
    assert!(job.result["message"].as_str().unwrap().contains("404"));
    let (status, job, _) = request(json!({"url": url, "method": "GET", "ignoreFail": true})).await;
    assert_eq!(status, ExecutionStatus::Resolved);
    assert_eq!(job.result["status"], 404);
}

#[tokio::test]
async fn timeouts_and_connection_errors_fail() {
    let addr = server().await;
    let started = std::time::Instant::now();
    let (status, job, _) =
        request(json!({"url": format!("http://{addr}/slow"), "method": "GET", "timeout": 200}))
            .await;
    assert_eq!(status, ExecutionStatus::Failed);
    assert!(
        job.result["message"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{}",
        job.result
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (status, job, _) =
        request(json!({"url": format!("http://{closed}/"), "method": "GET"})).await;
    assert_eq!(status, ExecutionStatus::Failed);
    assert!(job.result["message"].is_string());
    let (status, _, _) =
        request(json!({"url": format!("http://{closed}/"), "method": "GET", "ignoreFail": true}))
            .await;
    assert_eq!(status, ExecutionStatus::Resolved);
}

#[tokio::test]
async fn oversized_responses_fail() {
    let addr = server().await;
    for path in ["big", "stream-big"] {
        let (status, job, _) =
            request(json!({"url": format!("http://{addr}/{path}"), "method": "GET"})).await;
        assert_eq!(status, ExecutionStatus::Failed, "{path}");
        assert!(
            job.result["message"]
                .as_str()
                .unwrap()
                .contains("larger than 5242880 bytes"),
            "{path}: {}",
            job.result
        );
    }
}

#[tokio::test]
async fn metadata_addresses_are_refused_directly_and_on_redirect() {
    let addr = server().await;
    let (status, job, _) =
        request(json!({"url": "http://169.254.169.254/latest/meta-data/", "method": "GET"})).await;
    assert_eq!(status, ExecutionStatus::Failed);
    assert!(
        job.result["message"]
            .as_str()
            .unwrap()
            .contains("169.254.169.254 are not allowed"),
        "{}",
        job.result
    );
    let (status, job, _) =
        request(json!({"url": "http://[fd00:ec2::254]/latest/", "method": "GET"})).await;
    assert_eq!(status, ExecutionStatus::Failed);
    assert!(
        job.result["message"]
            .as_str()
            .unwrap()
            .contains("not allowed")
    );
    let (status, job, _) =
        request(json!({"url": format!("http://{addr}/to-metadata"), "method": "GET"})).await;
    assert_eq!(status, ExecutionStatus::Failed);
    let message = job.result["message"].as_str().unwrap();
    assert!(
        message.contains("redirect refused") && message.contains("169.254.169.254"),
        "{message}"
    );
}

#[tokio::test]
async fn loopback_is_refused_by_default() {
    let addr = server().await;
    let nodes = json!([{"key": "call", "type": "request", "config": {"url": format!("http://{addr}/echo"), "method": "GET"}}]);
    let (outcome, jobs, _) =
        run_on(crate::nodes::builtin(), nodes, json!({}), Limits::default()).await;
    assert_eq!(outcome.status, ExecutionStatus::Failed);
    assert!(
        jobs[0].result["message"]
            .as_str()
            .unwrap()
            .contains("loopback")
    );
    let nodes = json!([{"key": "call", "type": "request", "config": {"url": format!("http://localhost:{}/echo", addr.port()), "method": "GET"}}]);
    let (outcome, jobs, _) =
        run_on(crate::nodes::builtin(), nodes, json!({}), Limits::default()).await;
    assert_eq!(
        outcome.status,
        ExecutionStatus::Failed,
        "a name resolving to loopback is refused too"
    );
    assert!(
        jobs[0].result["message"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{}",
        jobs[0].result
    );
}
