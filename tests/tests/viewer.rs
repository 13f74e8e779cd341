//! The viewer (`/ui` on `hookflow serve`, and `hookflow ui`) in a real headless
//! Chromium: the pages of a branching, a looping, a parallel and a paused
//! execution as the browser renders them, with nothing loaded from elsewhere and
//! nothing written to the console; and `hookflow graph`'s Mermaid.
//!
//! Screenshots go to `target/viewer-screenshots/`; with `HOOKFLOW_UPDATE_SCREENSHOTS=1`
//! also to `docs/img/`, where the README shows them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hookflow_tests::browser::{self, Loaded};
use hookflow_tests::{Server, client, hookflow};
use scraper::{Html, Selector};
use serde_json::{Value, json};

fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn looping() -> Value {
    json!({
        "key": "sum-items", "title": "Add the items up", "sync": true,
        "trigger": {"type": "webhook", "hookId": "sum-items-1"},
        "nodes": [
            {"key": "total", "type": "variable", "config": {"target": null, "value": 0}},
            {"key": "each", "type": "loop", "config": {"target": "{{$context.body.items}}"}, "branches": {"0": [
                {"key": "add", "type": "calculation", "config": {"expression": "{{$jobsMapByNodeKey.total}} + {{$scopes.each.item}}"}},
                {"key": "keep", "type": "variable", "config": {"target": "total", "value": "{{$jobsMapByNodeKey.add}}"}}
            ]}},
            {"key": "answer", "type": "response", "config": {"body": {"total": "{{$jobsMapByNodeKey.total}}"}}}
        ]
    })
}

fn parallel() -> Value {
    json!({
        "key": "checks", "title": "Stock and fraud checks side by side", "sync": true,
        "trigger": {"type": "webhook", "hookId": "checks-1"},
        "nodes": [
            {"key": "both", "type": "parallel", "config": {"mode": "allSettled"}, "branches": {
                "0": [{"key": "stock", "type": "calculation", "config": {"expression": "{{$context.body.qty}} <= 500"}}],
                "1": [
                    {"key": "fraud", "type": "condition", "config": {"rejectOnFalse": true, "calculation":
                        {"calculator": "equal", "operands": ["{{$context.body.country}}", "DE"]}}},
                    {"key": "flag", "type": "output", "config": {"value": "never reached"}}
                ]
            }},
            {"key": "answer", "type": "response", "config": {"body": {"checks": "{{$jobsMapByNodeKey.both}}"}}}
        ]
    })
}

fn select<'a>(page: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    page.select(&Selector::parse(css).unwrap()).collect()
}

/// `data-node` → `data-status` of the graph's node groups.
fn graph_statuses(page: &Html) -> BTreeMap<String, String> {
    select(page, "svg.graph g.node")
        .into_iter()
        .map(|g| {
            let v = g.value();
            (
                v.attr("data-node").unwrap().to_string(),
                v.attr("data-status").unwrap_or("(none)").to_string(),
            )
        })
        .collect()
}

fn statuses(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Loads a page in the browser and checks what every page must hold: no console
/// output, no script, nothing from elsewhere.
fn open(url: &str) -> Html {
    let Loaded { dom, console } = browser::load(url);
    assert!(
        console.is_empty(),
        "{url} wrote to the console: {console:#?}"
    );
    let page = Html::parse_document(&dom);
    assert!(select(&page, "script").is_empty(), "{url} has a script");
    let outside: Vec<String> = select(&page, "[src], link[href], [href^='http'], [href^='//']")
        .iter()
        .map(|e| e.html())
        .collect();
    assert!(
        outside.is_empty(),
        "{url} loads or links outside: {outside:?}"
    );
    page
}

fn text(page: &Html, css: &str) -> String {
    select(page, css)
        .iter()
        .map(|e| e.text().collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

fn screenshot(url: &str, name: &str, height: u32) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path: PathBuf = root.join("target/viewer-screenshots").join(name);
    let png = browser::screenshot(url, &path, 1280, height);
    assert_eq!(browser::png_size(&png), Some((1280, height)), "{name}");
    if std::env::var_os("HOOKFLOW_UPDATE_SCREENSHOTS").is_some() {
        std::fs::create_dir_all(root.join("docs/img")).unwrap();
        std::fs::write(root.join("docs/img").join(name), &png).unwrap();
    }
}

#[tokio::test]
async fn the_viewer_shows_each_run_as_a_picture_in_a_real_browser() {
    let server = Server::start(&[
        example("payment-callback.json"),
        example("cart-reminder.json"),
        looping(),
        parallel(),
    ]);
    let http = client();
    // Branching: paid → the "true" branch; a hostile value rides along in the body.
    let hostile = "<script>console.error('xss')</script><img src=x onerror=alert(1)>";
    let r = http
        .post(server.hook_url("pay-3kq9x0v2m1"))
        .basic_auth("acme", Some("s3cret"))
        .json(&json!({"status": "paid", "order": {"id": hostile}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(server.hook_url("sum-items-1"))
        .json(&json!({"items": [1, 2, 3]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"total": 6}));
    let r = http
        .post(server.hook_url("checks-1"))
        .json(&json!({"qty": 3, "country": "FR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(server.hook_url("cart-reminder-5d1e8b3a90"))
        .json(&json!({"cart": {"id": "c-1", "items": 2}, "customer": {"email": "a@example.com"}, "remindInSeconds": 600}))
        .send()
        .await
        .unwrap();
    let paused_id = r.json::<Value>().await.unwrap()["executionId"]
        .as_str()
        .unwrap()
        .to_string();
    server.wait_for_execution(&paused_id, "started");
    let id_of = |key: &str| {
        server.executions(Some(key))[0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let execution_url = |id: &str| format!("{}/ui/executions/{id}", server.base);

    // The first page: every workflow with its full URL, and the runs.
    let index = open(&format!("{}/ui", server.base));
    let rows = select(&index, "#workflows tr[data-workflow]");
    let keys: Vec<_> = rows
        .iter()
        .map(|r| r.value().attr("data-workflow").unwrap())
        .collect();
    assert_eq!(
        keys,
        ["cart-reminder", "checks", "payment-callback", "sum-items"]
    );
    assert!(
        text(&index, "#workflows").contains(&format!(
            "{}/api/webhook:trigger/pay-3kq9x0v2m1",
            server.base
        )),
        "{}",
        text(&index, "#workflows")
    );
    assert_eq!(select(&index, "#executions tr[data-execution]").len(), 4);
    assert!(text(&index, "tr[data-workflow='cart-reminder'] .counts").contains("1 started"));
    assert_eq!(
        select(&index, "meta[http-equiv='refresh']").len(),
        1,
        "the list reloads while runs come in"
    );
    screenshot(&format!("{}/ui", server.base), "viewer-index.png", 900);

    // Branching: the path taken, the branch not taken skipped, values as text.
    let url = execution_url(&id_of("payment-callback"));
    let page = open(&url);
    assert_eq!(
        graph_statuses(&page),
        statuses(&[
            ("paid", "resolved"),
            ("ok", "resolved"),
            ("nope", "skipped")
        ])
    );
    assert!(
        text(&page, "#context").contains(hostile),
        "the context is shown as text"
    );
    assert!(text(&page, "#node-ok .result").contains("\"received\""));
    assert!(select(&page, "img").is_empty());
    let taken: Vec<_> = select(&page, "polyline.edge.taken")
        .iter()
        .map(|e| e.value().attr("points").unwrap().to_string())
        .collect();
    assert_eq!(
        taken.len(),
        2,
        "into the true branch and out of it: {taken:?}"
    );
    assert_eq!(select(&page, "polyline.edge").len(), 4);
    assert_eq!(
        select(&page, "svg.graph a[href='#node-ok']").len(),
        1,
        "a node leads to its job"
    );
    screenshot(&url, "viewer-branching.png", 820);

    // Looping: the body ran once per item, the last status shown.
    let url = execution_url(&id_of("sum-items"));
    let page = open(&url);
    assert_eq!(
        graph_statuses(&page),
        statuses(&[
            ("total", "resolved"),
            ("each", "resolved"),
            ("add", "resolved"),
            ("keep", "resolved"),
            ("answer", "resolved"),
        ])
    );
    assert_eq!(select(&page, "article.job[data-node='add']").len(), 3);
    assert!(text(&page, "g.node[data-node='add'] .kind").contains("×3"));
    screenshot(&url, "viewer-loop.png", 900);

    // Parallel: one branch failed (its error shown), the node after it skipped.
    let url = execution_url(&id_of("checks"));
    let page = open(&url);
    assert_eq!(
        graph_statuses(&page),
        statuses(&[
            ("both", "resolved"),
            ("stock", "resolved"),
            ("fraud", "failed"),
            ("flag", "skipped"),
            ("answer", "resolved"),
        ])
    );
    let fraud = select(&page, "article.job[data-node='fraud']");
    assert_eq!(fraud[0].value().attr("data-status"), Some("failed"));
    screenshot(&url, "viewer-parallel.png", 820);

    // Paused: what it waits for, and the page reloads until it ends.
    let url = execution_url(&paused_id);
    let page = open(&url);
    assert_eq!(
        graph_statuses(&page),
        statuses(&[("wait", "pending"), ("reminder", "skipped")])
    );
    let paused = text(&page, "#paused");
    assert!(
        paused.contains("node wait waits until") && paused.contains("Wakes up at"),
        "{paused}"
    );
    assert_eq!(select(&page, "meta[http-equiv='refresh']").len(), 1);
    screenshot(&url, "viewer-paused.png", 760);

    // A workflow's definition never shows a secret written in it.
    let page = open(&format!("{}/ui/workflows/payment-callback", server.base));
    let definition = text(&page, "#definition");
    assert!(
        definition.contains("\"password\": \"<redacted>\""),
        "{definition}"
    );
    assert!(!page.html().contains("s3cret"));

    // A workflow: its graph with no statuses, its versions, its runs.
    let page = open(&format!("{}/ui/workflows/checks", server.base));
    assert_eq!(
        graph_statuses(&page),
        statuses(&[
            ("both", "(none)"),
            ("stock", "(none)"),
            ("fraud", "(none)"),
            ("flag", "(none)"),
            ("answer", "(none)"),
        ])
    );
    assert_eq!(select(&page, "#versions tr[data-version='1']").len(), 1);
    assert_eq!(select(&page, "#executions tr[data-execution]").len(), 1);

    // Filters: by status, and a bad one explained.
    let page = open(&format!("{}/ui?status=started&since=1h", server.base));
    let listed: Vec<_> = select(&page, "#executions tr[data-execution]")
        .iter()
        .map(|r| r.value().attr("data-execution").unwrap().to_string())
        .collect();
    assert_eq!(listed, std::slice::from_ref(&paused_id));
    let r = http
        .get(format!("{}/ui?status=nope", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("status &quot;nope&quot; is not one of")
    );
}

#[tokio::test]
async fn unknown_pages_are_404_and_the_viewer_only_reads() {
    let server = Server::start(&[looping()]);
    let http = client();
    for path in [
        "/ui/executions/01234567-0000-7000-8000-000000000000",
        "/ui/workflows/nope",
        "/ui/elsewhere",
    ] {
        let r = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let policy = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
        assert!(r.text().await.unwrap().contains("Not found"));
    }
    let page = open(&format!("{}/ui/workflows/nope", server.base));
    assert!(text(&page, "main").contains("No workflow has the key \"nope\""));
    let r = http
        .post(format!("{}/ui", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // A page elsewhere reaching the viewer through DNS rebinding names its own host.
    let r = http
        .get(format!("{}/ui", server.base))
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A reverse proxy on this machine forwarding from elsewhere.
    let r = http
        .get(format!("{}/ui", server.base))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn serve_without_the_viewer_answers_404_at_ui() {
    let server = Server::start_with(&[looping()], &["--no-ui"]);
    let r = client()
        .get(format!("{}/ui", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(!server.banner.iter().any(|l| l.contains("/ui")));
}

/// The console check above is only worth something if it sees errors: a page
/// that logs and throws is caught.
#[test]
fn the_browser_check_sees_console_errors() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "<html><body><p>hi</p><script>console.error('boom'); missing();</script></body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let loaded = browser::load(&url);
    assert!(
        loaded.console.iter().any(|l| l.contains("boom")),
        "{:?}",
        loaded.console
    );
    assert!(
        loaded
            .console
            .iter()
            .any(|l| l.contains("Uncaught ReferenceError")),
        "{:?}",
        loaded.console
    );
}

#[tokio::test]
async fn hookflow_ui_serves_the_same_pages_over_a_data_directory() {
    let mut server = Server::start(&[looping()]);
    let r = client()
        .post(server.hook_url("sum-items-1"))
        .json(&json!({"items": [5]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop();
    let data = server.data_dir();
    let (base, _ui) = hookflow_tests::start_ui(
        &["--data", data.to_str().unwrap()],
        "https://hooks.example.com",
    )
    .await;
    let index = open(&format!("{base}/ui"));
    assert!(
        text(&index, "#workflows")
            .contains("https://hooks.example.com/api/webhook:trigger/sum-items-1")
    );
    let id = select(&index, "#executions tr[data-execution]")[0]
        .value()
        .attr("data-execution")
        .unwrap()
        .to_string();
    let page = open(&format!("{base}/ui/executions/{id}"));
    assert_eq!(graph_statuses(&page)["keep"], "resolved");
    let r = client().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status(), 303, "the root leads to the viewer");
    assert_eq!(r.headers()["location"], "/ui");
}

#[test]
fn the_charts_in_the_docs_are_what_graph_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/graphs.md")).unwrap();
    for name in ["payment-callback", "order-fulfilment", "invoice-total"] {
        let file = root.join(format!("examples/{name}.json"));
        let (ok, chart, err) = hookflow(&["graph", "--markdown", file.to_str().unwrap()]);
        assert!(ok, "{err}");
        assert!(
            doc.contains(&format!("## examples/{name}.json\n\n{chart}")),
            "docs/graphs.md is stale for {name}: rerun `hookflow graph --markdown`:\n{chart}"
        );
    }
}

#[tokio::test]
async fn graph_prints_mermaid_and_marks_the_path_an_execution_took() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let file = examples.join("payment-callback.json");
    let (ok, chart, err) = hookflow(&["graph", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(chart.starts_with("flowchart TD\n"), "{chart}");
    assert!(
        chart.contains("-->|true|") && chart.contains("-->|false|"),
        "{chart}"
    );

    let server = Server::start(&[example("payment-callback.json")]);
    let r = client()
        .post(server.hook_url("pay-3kq9x0v2m1"))
        .basic_auth("acme", Some("s3cret"))
        .json(&json!({"status": "refunded", "order": {"id": "A-2"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let id = server.executions(Some("payment-callback"))[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let data = server.data_dir();
    let (ok, chart, err) = hookflow(&[
        "graph",
        file.to_str().unwrap(),
        "--execution",
        &id,
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    // The false branch was taken: drawn thick, its node resolved, the other skipped.
    assert!(chart.contains("==>|false|"), "{chart}");
    assert!(chart.contains("-->|true|"), "{chart}");
    assert!(chart.contains("class n0,n2 resolved"), "{chart}");
    assert!(chart.contains("class n1 skipped"), "{chart}");

    let (ok, _, err) = hookflow(&[
        "graph",
        examples.join("cart-reminder.json").to_str().unwrap(),
        "--execution",
        &id,
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("ran workflow \"payment-callback\""), "{err}");
}
