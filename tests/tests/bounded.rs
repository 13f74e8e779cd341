//! What one caller may hold of a real `hookflow serve`: connections, time and
//! memory (issue 15). Raw TCP, so each test controls exactly what is sent and when.

use std::time::{Duration, Instant};

use hookflow_tests::Server;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HOOK: &str = "/api/webhook:trigger/open-hook";

fn flows() -> Vec<Value> {
    vec![
        json!({"key": "open", "sync": true, "trigger": {"type": "webhook", "hookId": "open-hook"}, "nodes": []}),
        json!({"key": "locked", "sync": true, "trigger": {"type": "webhook", "hookId": "locked-hook",
            "basicAuthentication": {"username": "u", "password": "p"}}, "nodes": []}),
    ]
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or `within` passes: `None`).
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&out).into_owned())
}

/// Reads one response head and body (Content-Length framed), leaving the
/// connection open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before a full answer: {:?}",
                String::from_utf8_lossy(&out)
            );
            out.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&out).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if out.len() >= end + 4 + length {
                    return;
                }
            }
        }
    })
    .await
    .expect("an answer within 5 s");
    String::from_utf8_lossy(&out).into_owned()
}

fn post_head(path: &str, length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let server = Server::start_with(&flows(), &["--header-timeout", "1", "--idle-timeout", "30"]);
    let mut silent = connect(&server).await;
    let started = Instant::now();
    let closed = read_to_close(&mut silent, Duration::from_secs(5)).await;
    assert_eq!(closed.as_deref(), Some(""), "closed without an answer");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );

    // A head trickled in and never finished: the same.
    let mut slow = connect(&server).await;
    slow.write_all(b"POST /api/webhook:trigger/open-hook HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    assert!(
        read_to_close(&mut slow, Duration::from_secs(5))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout_not_before() {
    let server = Server::start_with(&flows(), &["--header-timeout", "1", "--idle-timeout", "3"]);
    let mut stream = connect(&server).await;
    stream
        .write_all(format!("{}{{}}", post_head(HOOK, 2, "")).as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Longer than the header timeout, shorter than the idle one: still open.
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    stream
        .write_all(format!("{}{{}}", post_head(HOOK, 2, "")).as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    let idle = Instant::now();
    assert!(
        read_to_close(&mut stream, Duration::from_secs(8))
            .await
            .is_some()
    );
    let took = idle.elapsed();
    assert!(
        took >= Duration::from_millis(2_500),
        "closed after {took:?}"
    );
}

#[tokio::test]
async fn a_body_shorter_than_its_length_gets_408_after_the_body_timeout() {
    let server = Server::start_with(&flows(), &["--body-timeout", "1"]);
    let mut stream = connect(&server).await;
    stream
        .write_all(format!("{}{{\"a\":", post_head(HOOK, 100, "")).as_bytes())
        .await
        .unwrap();
    let answer = read_to_close(&mut stream, Duration::from_secs(5))
        .await
        .expect("answered and closed within 5 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1 s"), "{answer}");
    assert!(server.executions(None).is_empty());
}

#[tokio::test]
async fn unknown_hooks_and_wrong_credentials_are_answered_before_any_body_is_sent() {
    let server = Server::start(&flows());
    for (path, extra, status) in [
        ("/api/webhook:trigger/no-such-hook", "", "404"),
        ("/api/webhook:trigger/locked-hook", "", "401"),
        (
            "/api/webhook:trigger/locked-hook",
            "authorization: Basic dTp3cm9uZw==\r\n",
            "401",
        ),
        // Past the limit by its declared length: 413 without waiting for it.
        (HOOK, "", "413"),
    ] {
        let mut stream = connect(&server).await;
        // 2 MiB declared, not one byte of it sent.
        stream
            .write_all(post_head(path, 2 << 20, extra).as_bytes())
            .await
            .unwrap();
        let answer = read_response(&mut stream).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {answer}"
        );
    }
    // A small body sent with an early answer is read and dropped: the connection
    // serves its next request.
    let mut stream = connect(&server).await;
    stream
        .write_all(format!("{}{{}}", post_head("/api/webhook:trigger/nope", 2, "")).as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 404"));
    stream
        .write_all(format!("{}{{}}", post_head(HOOK, 2, "")).as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    let server = Server::start(&flows());
    let mut stream = connect(&server).await;
    stream
        .write_all(format!("{}{{}}", post_head(HOOK, 2, "connection: close\r\n")).as_bytes())
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    let answer = read_to_close(&mut stream, Duration::from_secs(5))
        .await
        .expect("answered within 5 s");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test]
async fn past_the_connection_cap_a_new_connection_gets_503() {
    let server = Server::start_with(
        &flows(),
        &["--max-connections", "4", "--header-timeout", "30"],
    );
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&server).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = connect(&server).await;
    let answer = read_to_close(&mut fifth, Duration::from_secs(5))
        .await
        .expect("answered at once");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    // One leaves: a new connection is served again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect(&server).await;
    again
        .write_all(format!("{}{{}}", post_head(HOOK, 2, "")).as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut again).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn past_the_body_memory_budget_a_request_gets_503_and_memory_comes_back() {
    let server = Server::start_with(&flows(), &["--max-body-memory-mb", "1"]);
    // 800 KB declared and held (half sent): most of the 1 MiB budget.
    let mut holder = connect(&server).await;
    holder
        .write_all(post_head(HOOK, 800_000, "").as_bytes())
        .await
        .unwrap();
    holder.write_all(&[b' '; 400_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = connect(&server).await;
    second
        .write_all(post_head(HOOK, 400_000, "").as_bytes())
        .await
        .unwrap();
    let answer = read_response(&mut second).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    // Chunked bodies are counted as they come.
    let mut chunked = connect(&server).await;
    let chunk = format!("{:x}\r\n{}\r\n", 300_000, " ".repeat(300_000));
    chunked
        .write_all(
            format!("POST {HOOK} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{chunk}")
                .as_bytes(),
        )
        .await
        .unwrap();
    assert!(
        read_response(&mut chunked)
            .await
            .starts_with("HTTP/1.1 503")
    );
    // The holder finishes: its body is read, answered, and the budget is back.
    holder.write_all(&[b' '; 399_998]).await.unwrap();
    holder.write_all(b"{}").await.unwrap();
    assert!(read_response(&mut holder).await.starts_with("HTTP/1.1 200"));
    let mut third = connect(&server).await;
    third
        .write_all(
            format!(
                "{}{}{{}}",
                post_head(HOOK, 600_002, ""),
                " ".repeat(600_000)
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let answer = read_response(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
