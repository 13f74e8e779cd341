//! The AWS action nodes against moto, through `hookflow serve` on moto's DynamoDB
//! and SQS (sync runs answer from their response node, async ones run in its
//! worker), each effect read back with the SDK or from moto's backend; the Lambda
//! worker's path is in lambda.rs. A stand-in Lambda endpoint on loopback plays a
//! function that fails or is slow.

use std::time::{Duration, Instant};

use hookflow_tests::{Server, client, hookflow, moto_endpoint, stub_server, unique_name};
use serde_json::{Value, json};

async fn config() -> aws_config::SdkConfig {
    moto_endpoint();
    hookflow::ports::aws::load_config().await
}

/// `hookflow serve` on a table and queue of its own on moto, where its nodes go too.
struct Stack {
    server: Server,
    table: String,
}

fn serve(workflows: &[Value]) -> Stack {
    serve_with(workflows, &[])
}

fn serve_with(workflows: &[Value], envs: &[(&str, &str)]) -> Stack {
    let endpoint = moto_endpoint();
    let table = unique_name("nodes");
    let mut all = vec![("AWS_ENDPOINT_URL", endpoint.as_str())];
    all.extend_from_slice(envs);
    let server = Server::start_with_env(
        workflows,
        &["--table", &table, "--queue", &unique_name("runs")],
        &all,
    );
    Stack { server, table }
}

impl Stack {
    /// `hookflow executions show ID`, once it has ended.
    fn ended(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (ok, out, _) =
                hookflow(&["executions", "show", id, "--json", "--table", &self.table]);
            if ok {
                let execution: Value = serde_json::from_str(&out).unwrap();
                if execution["status"] != "started" {
                    return execution;
                }
            }
            assert!(Instant::now() < deadline, "execution {id} never ended");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn sync_flow(key: &str, nodes: Value, answer: Value) -> Value {
    let mut nodes = nodes.as_array().cloned().unwrap();
    nodes.push(json!({"key": "answer", "type": "response", "config": {"body": answer}}));
    json!({"key": key, "sync": true, "trigger": {"type": "webhook", "hookId": format!("{key}-hook")}, "nodes": nodes})
}

async fn post(stack: &Stack, key: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(stack.server.hook_url(&format!("{key}-hook")))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn new_queue(sqs: &aws_sdk_sqs::Client) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(unique_name("q"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    (url, arn)
}

async fn receive_one(sqs: &aws_sdk_sqs::Client, url: &str) -> aws_sdk_sqs::types::Message {
    for _ in 0..20 {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(m) = got.messages.and_then(|m| m.into_iter().next()) {
            return m;
        }
    }
    panic!("nothing arrived on {url}");
}

/// The job of `node` in an execution.
fn job(execution: &Value, node: &str) -> Value {
    execution["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["nodeKey"] == node)
        .cloned()
        .unwrap_or_else(|| panic!("no job for {node}: {execution}"))
}

/// An async workflow that answers with its execution's id.
fn async_flow(key: &str, nodes: Value) -> Value {
    json!({"key": key, "sync": false,
        "trigger": {"type": "webhook", "hookId": format!("{key}-hook"),
            "response": {"body": {"executionId": "{{$system.executionId}}"}}},
        "nodes": nodes})
}

#[tokio::test]
async fn eventbridge_puts_the_event_a_rule_routes_to_its_target() {
    let config = config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = unique_name("bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let (url, arn) = new_queue(&sqs).await;
    let rule = unique_name("rule");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(r#"{"source": ["com.stripe"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(&arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let stack = serve(&[sync_flow(
        "eb",
        json!([{"key": "put", "type": "eventbridge", "config": {
            "eventBusName": bus, "source": "com.stripe", "detailType": "{{$context.body.type}}",
            "detail": "{{$context.body}}", "resources": "{{$context.body.resources}}"}}]),
        json!({"event": "{{$jobsMapByNodeKey.put}}"}),
    )]);
    let (status, body) = post(
        &stack,
        "eb",
        json!({"type": "payment_intent.succeeded", "id": "evt_1", "resources": ["arn:aws:s3:::a"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let event_id = body["event"]["eventId"].as_str().expect("an event id");
    let message = receive_one(&sqs, &url).await;
    let event: Value = serde_json::from_str(message.body().unwrap()).unwrap();
    assert_eq!(event["id"], event_id);
    assert_eq!(event["source"], "com.stripe");
    assert_eq!(event["detail-type"], "payment_intent.succeeded");
    assert_eq!(event["detail"]["id"], "evt_1");
    assert_eq!(event["resources"], json!(["arn:aws:s3:::a"]));

    // An event from another source matches no rule: nothing reaches the queue.
    let other = serve(&[sync_flow(
        "eb2",
        json!([{"key": "put", "type": "eventbridge", "config": {
            "eventBusName": bus, "source": "com.github", "detailType": "push", "detail": {"n": 1}}}]),
        json!("{{$jobsMapByNodeKey.put}}"),
    )]);
    let (status, _) = post(&other, "eb2", json!({})).await;
    assert_eq!(status, 200);
    let idle = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(idle.messages.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn sqs_and_sns_deliver_the_message() {
    let config = config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let sns = aws_sdk_sns::Client::new(&config);
    let (direct_url, _) = new_queue(&sqs).await;
    let (subscribed_url, subscribed_arn) = new_queue(&sqs).await;
    let topic = sns
        .create_topic()
        .name(unique_name("topic"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&subscribed_arn)
        .send()
        .await
        .unwrap();
    let stack = serve(&[sync_flow(
        "msg",
        json!([
            {"key": "send", "type": "sqs", "config": {"queueUrl": direct_url,
                "messageBody": {"order": "{{$context.body.id}}"},
                "messageAttributes": {"kind": "order", "n": "{{$context.body.n}}", "gone": "{{$context.body.nothing}}"}}},
            {"key": "publish", "type": "sns", "config": {"topicArn": topic, "subject": "Order {{$context.body.id}}",
                "message": {"order": "{{$context.body.id}}"}}}
        ]),
        json!({"sqs": "{{$jobsMapByNodeKey.send}}", "sns": "{{$jobsMapByNodeKey.publish}}"}),
    )]);
    let (status, body) = post(&stack, "msg", json!({"id": "A-7", "n": 3})).await;
    assert_eq!(status, 200, "{body}");
    let direct = receive_one(&sqs, &direct_url).await;
    assert_eq!(body["sqs"]["messageId"].as_str(), direct.message_id());
    assert_eq!(direct.body(), Some(r#"{"order":"A-7"}"#));
    let attributes = direct.message_attributes().unwrap();
    assert_eq!(attributes["kind"].string_value(), Some("order"));
    assert_eq!(attributes["n"].data_type(), "Number");
    assert_eq!(attributes["n"].string_value(), Some("3"));
    assert!(
        !attributes.contains_key("gone"),
        "a null attribute is left out"
    );
    let envelope: Value =
        serde_json::from_str(receive_one(&sqs, &subscribed_url).await.body().unwrap()).unwrap();
    assert_eq!(envelope["MessageId"], body["sns"]["messageId"]);
    assert_eq!(envelope["Message"], r#"{"order":"A-7"}"#);
    assert_eq!(envelope["Subject"], "Order A-7");
}

#[tokio::test]
async fn dynamodb_and_s3_write_and_read_plain_json() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType,
    };
    let config = config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("orders");
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    dynamo
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .unwrap();
    // An item written elsewhere with a binary attribute, which JSON has no type for.
    dynamo
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("ORDER#A-1".into()))
        .item("sk", AttributeValue::S("note".into()))
        .item("raw", AttributeValue::B(vec![0xff, 0x00, 0x01].into()))
        .send()
        .await
        .unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = unique_name("archive").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let order_key = json!({"pk": "ORDER#{{$context.body.id}}", "sk": "order"});
    let stack = serve(&[sync_flow(
        "store",
        json!([
            {"key": "put", "type": "dynamodb", "config": {"operation": "put", "tableName": table,
                "item": {"pk": "ORDER#{{$context.body.id}}", "sk": "order", "total": "{{$context.body.total}}", "tags": ["a", "b"]},
                "conditionExpression": "attribute_not_exists(pk)", "ignoreFail": true}},
            {"key": "bump", "type": "dynamodb", "config": {"operation": "update", "tableName": table,
                "key": order_key, "updateExpression": "ADD seen :one",
                "expressionAttributeValues": {":one": 1}}},
            {"key": "get", "type": "dynamodb", "config": {"operation": "get", "tableName": table,
                "key": order_key}},
            {"key": "projected", "type": "dynamodb", "config": {"operation": "get", "tableName": table,
                "key": order_key, "projectionExpression": "#t", "expressionAttributeNames": {"#t": "total"}}},
            {"key": "missing", "type": "dynamodb", "config": {"operation": "get", "tableName": table,
                "key": {"pk": "nope", "sk": "order"}}},
            {"key": "all", "type": "dynamodb", "config": {"operation": "query", "tableName": table,
                "keyConditionExpression": "pk = :pk", "expressionAttributeValues": {":pk": "ORDER#{{$context.body.id}}"},
                "limit": 1}},
            {"key": "archive", "type": "s3", "config": {"operation": "put", "bucket": bucket,
                "key": "orders/{{$context.body.id}}.json", "body": "{{$context.body}}"}},
            {"key": "fetch", "type": "s3", "config": {"operation": "get", "bucket": bucket,
                "key": "orders/{{$context.body.id}}.json"}},
            // A key with spaces, a plus and non-ASCII letters, and one that is not there.
            {"key": "odd", "type": "s3", "config": {"operation": "put", "bucket": bucket,
                "key": "notes/{{$context.body.id}} ü+1.txt", "body": "straße"}},
            {"key": "gone", "type": "s3", "config": {"operation": "get", "bucket": bucket,
                "key": "orders/none.json", "ignoreFail": true}}
        ]),
        json!({"put": "{{$jobsMapByNodeKey.put}}", "bump": "{{$jobsMapByNodeKey.bump}}",
               "get": "{{$jobsMapByNodeKey.get}}", "projected": "{{$jobsMapByNodeKey.projected}}",
               "missing": "{{$jobsMapByNodeKey.missing}}", "all": "{{$jobsMapByNodeKey.all}}",
               "archive": "{{$jobsMapByNodeKey.archive}}", "fetch": "{{$jobsMapByNodeKey.fetch}}",
               "gone": "{{$jobsMapByNodeKey.gone}}"}),
    )]);
    let (status, body) = post(&stack, "store", json!({"id": "A-1", "total": 42.5})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["put"], json!({}));
    assert_eq!(
        body["get"],
        json!({"pk": "ORDER#A-1", "sk": "order", "total": 42.5, "tags": ["a", "b"], "seen": 1})
    );
    assert_eq!(body["projected"], json!({"total": 42.5}));
    assert_eq!(body["bump"]["seen"], 1);
    assert_eq!(body["missing"], Value::Null);
    // Items in key order, one per page: the binary note comes first, as base64.
    assert_eq!(
        body["all"]["items"],
        json!([{"pk": "ORDER#A-1", "sk": "note", "raw": "/wAB"}])
    );
    assert_eq!(
        body["all"]["lastEvaluatedKey"],
        json!({"pk": "ORDER#A-1", "sk": "note"})
    );
    let stored = s3
        .get_object()
        .bucket(&bucket)
        .key("orders/A-1.json")
        .send()
        .await
        .unwrap();
    assert_eq!(body["archive"]["etag"].as_str(), stored.e_tag());
    assert_eq!(stored.content_type(), Some("application/json"));
    let bytes = stored.body.collect().await.unwrap().into_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        json!({"id": "A-1", "total": 42.5})
    );
    assert_eq!(body["fetch"]["contentType"], "application/json");
    let fetched: Value = serde_json::from_str(body["fetch"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(fetched, json!({"id": "A-1", "total": 42.5}));
    let odd = s3
        .get_object()
        .bucket(&bucket)
        .key("notes/A-1 ü+1.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(odd.content_type(), Some("text/plain; charset=utf-8"));
    let bytes = odd.body.collect().await.unwrap().into_bytes();
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), "straße");
    assert_eq!(body["gone"]["code"], "NoSuchKey", "{body}");
    let message = body["gone"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("GetObject s3://{bucket}/orders/none.json: ")),
        "{message}"
    );
    // The item, read back with the SDK.
    let item = dynamo
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("ORDER#A-1".into()))
        .key("sk", AttributeValue::S("order".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["total"], AttributeValue::N("42.5".into()));

    // The same order again: the conditional put fails, ignoreFail keeps its code.
    let (_, again) = post(&stack, "store", json!({"id": "A-1", "total": 1})).await;
    assert_eq!(again["put"]["code"], "ConditionalCheckFailedException");
    assert!(
        again["put"]["message"].as_str().unwrap().contains(&table),
        "{again}"
    );
    assert_eq!(again["get"]["total"], 42.5);
    assert_eq!(again["get"]["seen"], 2);
}

#[tokio::test]
async fn ses_sends_the_email_moto_then_holds() {
    let config = config().await;
    let ses = aws_sdk_sesv2::Client::new(&config);
    let sender = format!("{}@example.com", unique_name("shop"));
    ses.create_email_identity()
        .email_identity(&sender)
        .send()
        .await
        .unwrap();
    let stack = serve(&[sync_flow(
        "mail",
        json!([{"key": "mail", "type": "ses", "config": {"from": sender,
            "to": "{{$context.body.email}}", "cc": ["ops@example.com"],
            "subject": "Order {{$context.body.id}} paid", "text": "Thanks, {{$context.body.name}}."}}]),
        json!("{{$jobsMapByNodeKey.mail}}"),
    )]);
    let (status, body) = post(
        &stack,
        "mail",
        json!({"email": "ada@example.com", "id": "A-9", "name": "Ada"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["messageId"].as_str().expect("a message id");
    // moto keeps what it was asked to send in its backend.
    let backend: Value = client()
        .get(format!("{}/moto-api/data.json", moto_endpoint()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sent = backend["ses"]["Message"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("message {id} not in moto: {}", backend["ses"]["Message"]));
    assert_eq!(sent["source"], json!(sender));
    assert_eq!(sent["subject"], "Order A-9 paid");
    assert_eq!(sent["body"], "Thanks, Ada.");
    assert_eq!(
        sent["destinations"]["ToAddresses"],
        json!(["ada@example.com"])
    );
    assert_eq!(
        sent["destinations"]["CcAddresses"],
        json!(["ops@example.com"])
    );

    // From an identity nobody verified: SES refuses it and the node fails with its code.
    let refused = serve(&[sync_flow(
        "mail2",
        json!([{"key": "mail", "type": "ses", "config": {"from": "nobody@unverified.example",
            "to": ["ada@example.com"], "text": "x", "ignoreFail": true}}]),
        json!("{{$jobsMapByNodeKey.mail}}"),
    )]);
    let (status, body) = post(&refused, "mail2", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], "MessageRejected", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nobody@unverified.example"),
        "{body}"
    );
}

#[tokio::test]
async fn lambda_invokes_the_function_and_waits_or_hands_the_event_over() {
    // Without Docker, moto's Lambda answers an invocation with its payload.
    let moto = moto_endpoint();
    let set = client()
        .post(format!("{moto}/moto-api/config"))
        .json(&json!({"lambda": {"use_docker": false}}))
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success());
    let stack = serve(&[sync_flow(
        "fn",
        json!([
            {"key": "call", "type": "lambda", "config": {"functionName": "price-order",
                "payload": {"order": "{{$context.body.id}}", "lines": "{{$context.body.lines}}"}}},
            {"key": "fire", "type": "lambda", "config": {"functionName": "price-order",
                "invocationType": "Event", "payload": {"order": "{{$context.body.id}}"}}}
        ]),
        json!({"call": "{{$jobsMapByNodeKey.call}}", "fire": "{{$jobsMapByNodeKey.fire}}"}),
    )]);
    let (status, body) = post(&stack, "fn", json!({"id": "A-3", "lines": [1, 2]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["call"], json!({"order": "A-3", "lines": [1, 2]}));
    assert_eq!(body["fire"], json!({"statusCode": 202}));
}

#[tokio::test]
async fn a_failing_or_slow_function_fails_the_node() {
    // A stand-in for the Lambda service: the first call's function throws, the
    // second takes longer than the node waits.
    let lambda = stub_server(|raw, n| {
        assert!(raw.starts_with("POST /2015-03-31/functions/"), "{raw}");
        if n == 1 {
            (
                200,
                "x-amz-function-error: Unhandled\r\n".to_string(),
                r#"{"errorType":"TypeError","errorMessage":"total is undefined"}"#.to_string(),
            )
        } else {
            std::thread::sleep(Duration::from_secs(3));
            (200, String::new(), "{}".to_string())
        }
    });
    let stack = serve_with(
        &[async_flow(
            "fn-fail",
            json!([{"key": "call", "type": "lambda", "config": {"functionName": "price-order",
                "payload": {}, "timeout": 500}}]),
        )],
        &[("AWS_ENDPOINT_URL_LAMBDA", &lambda)],
    );
    let (status, accepted) = post(&stack, "fn-fail", json!({})).await;
    assert_eq!(status, 200);
    let execution = stack.ended(accepted["executionId"].as_str().unwrap());
    assert_eq!(execution["status"], "failed", "{execution}");
    let failed = job(&execution, "call");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["result"]["code"], "FunctionError");
    assert_eq!(
        failed["result"]["error"]["errorMessage"],
        "total is undefined"
    );
    assert!(
        failed["result"]["message"]
            .as_str()
            .unwrap()
            .contains("function price-order"),
        "{failed}"
    );
    let started = Instant::now();
    let (status, accepted) = post(&stack, "fn-fail", json!({})).await;
    assert_eq!(status, 200);
    let slow = job(
        &stack.ended(accepted["executionId"].as_str().unwrap()),
        "call",
    );
    assert_eq!(slow["result"]["code"], "Timeout", "{slow}");
    assert!(
        slow["result"]["message"]
            .as_str()
            .unwrap()
            .contains("within 500 ms"),
        "{slow}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn s3_calls_are_signed_for_s3_and_a_throttled_one_is_tried_again() {
    // A stand-in for S3: the first PUT is throttled, the second succeeds, the
    // third is refused; each raw request is kept.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let kept = std::sync::Arc::clone(&seen);
    let s3 = stub_server(move |raw, n| {
        kept.lock().unwrap().push(raw);
        let error = |code: &str, message: &str| {
            format!(
                "<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            )
        };
        match n {
            1 => (
                503,
                String::new(),
                error("SlowDown", "Please reduce your request rate."),
            ),
            2 => (
                200,
                "etag: \"9b2cf535f27731c974343645a3985328\"\r\n".to_string(),
                String::new(),
            ),
            _ => (403, String::new(), error("AccessDenied", "Access Denied")),
        }
    });
    let stack = serve_with(
        &[async_flow(
            "archive",
            json!([{"key": "put", "type": "s3", "config": {"operation": "put",
                "bucket": "archive-bucket", "key": "in/{{$context.body.id}}.json",
                "body": "{{$context.body}}"}}]),
        )],
        &[("AWS_ENDPOINT_URL_S3", &s3)],
    );
    let (status, accepted) = post(&stack, "archive", json!({"id": "A-7"})).await;
    assert_eq!(status, 200, "{accepted}");
    let execution = stack.ended(accepted["executionId"].as_str().unwrap());
    assert_eq!(execution["status"], "resolved", "{execution}");
    assert_eq!(
        job(&execution, "put")["result"],
        json!({"etag": "\"9b2cf535f27731c974343645a3985328\""})
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "one throttled attempt, one that succeeded");
        let key_id = std::env::var("AWS_ACCESS_KEY_ID").unwrap();
        let payload_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(br#"{"id":"A-7"}"#));
        for raw in seen.iter() {
            let lower = raw.to_ascii_lowercase();
            assert!(
                raw.starts_with("PUT /archive-bucket/in/A-7.json HTTP/1.1\r\n"),
                "{raw}"
            );
            assert!(
                lower.contains(&format!(
                    "authorization: aws4-hmac-sha256 credential={}/",
                    key_id.to_ascii_lowercase()
                )) && lower.contains("/us-east-1/s3/aws4_request, signedheaders="),
                "{raw}"
            );
            assert!(
                lower.contains(&format!("x-amz-content-sha256: {payload_hash}")),
                "{raw}"
            );
            assert!(lower.contains("content-type: application/json"), "{raw}");
            assert!(raw.ends_with(r#"{"id":"A-7"}"#), "{raw}");
        }
    }
    // A refusal is not tried again: the node fails with S3's code and message.
    let (status, accepted) = post(&stack, "archive", json!({"id": "A-8"})).await;
    assert_eq!(status, 200, "{accepted}");
    let execution = stack.ended(accepted["executionId"].as_str().unwrap());
    assert_eq!(execution["status"], "failed", "{execution}");
    let failed = job(&execution, "put");
    assert_eq!(
        failed["result"],
        json!({"code": "AccessDenied",
               "message": "PutObject s3://archive-bucket/in/A-8.json: Access Denied"})
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn an_async_run_sends_its_message_from_the_worker() {
    let config = config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (url, _) = new_queue(&sqs).await;
    let stack = serve(&[async_flow(
        "relay",
        json!([{"key": "send", "type": "sqs", "config": {"queueUrl": url,
            "messageBody": "{{$context.body}}", "messageGroupId": null}}]),
    )]);
    let (status, accepted) = post(&stack, "relay", json!({"order": "A-5"})).await;
    assert_eq!(status, 200, "{accepted}");
    let execution = stack.ended(accepted["executionId"].as_str().unwrap());
    assert_eq!(execution["status"], "resolved", "{execution}");
    let message = receive_one(&sqs, &url).await;
    assert_eq!(message.body(), Some(r#"{"order":"A-5"}"#));
    assert_eq!(
        execution["jobs"][0]["result"]["messageId"].as_str(),
        message.message_id()
    );
}

#[tokio::test]
async fn an_aws_error_fails_the_node_naming_the_resource() {
    let stack = serve(&[sync_flow(
        "broken",
        json!([{"key": "send", "type": "sqs", "config": {
            "queueUrl": format!("{}/123456789012/no-such-queue", moto_endpoint()), "messageBody": "x"}}]),
        json!("unreachable"),
    )]);
    let (status, answer) = post(&stack, "broken", json!({})).await;
    assert_eq!(status, 500);
    let execution = stack.ended(answer["executionId"].as_str().unwrap());
    let job = job(&execution, "send");
    assert_eq!(job["status"], "failed");
    let message = job["result"]["message"].as_str().unwrap();
    assert!(message.contains("SendMessage to queue"), "{job}");
    assert!(message.contains("no-such-queue"), "{job}");
    assert_eq!(
        job["result"]["code"],
        "AWS.SimpleQueueService.NonExistentQueue"
    );
}

#[tokio::test]
async fn without_aws_configured_the_node_says_so() {
    // No region anywhere: no environment, no config file, no instance metadata
    // (and no AWS_ENDPOINT_URL: the server keeps its runs in its embedded store).
    let stack = Stack {
        table: String::new(),
        server: Server::start_with_env(
            &[sync_flow(
                "noaws",
                json!([{"key": "put", "type": "eventbridge", "config": {
                "source": "x", "detailType": "y", "detail": {}, "ignoreFail": true}}]),
                json!("{{$jobsMapByNodeKey.put}}"),
            )],
            &[],
            &[
                ("AWS_REGION", ""),
                ("AWS_DEFAULT_REGION", ""),
                ("AWS_CONFIG_FILE", "/nonexistent"),
                ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ],
        ),
    };
    let (status, body) = post(&stack, "noaws", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], "NotConfigured", "{body}");
    assert!(body["message"].as_str().unwrap().contains("AWS_REGION"));
}

#[tokio::test]
async fn a_message_that_renders_to_nothing_is_not_sent() {
    let config = config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (url, _) = new_queue(&sqs).await;
    let stack = serve(&[sync_flow(
        "empty",
        json!([{"key": "send", "type": "sqs", "config": {"queueUrl": url,
            "messageBody": "{{$context.body.missing}}", "ignoreFail": true}}]),
        json!("{{$jobsMapByNodeKey.send}}"),
    )]);
    let (status, body) = post(&stack, "empty", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["code"], "InvalidParameter", "{body}");
    let idle = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(idle.messages.unwrap_or_default().is_empty());
}
