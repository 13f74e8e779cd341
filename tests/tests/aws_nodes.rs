//! The AWS action nodes against moto, through `hookflow serve` (sync runs in the
//! request, async ones in its worker): each effect read back with the SDK.
//!
//! WIP (issue 14): written before its first compile; SES, Lambda and the worker
//! handler still to come.

use std::time::Duration;

use hookflow_tests::{Server, client, moto_endpoint, unique_name};
use serde_json::{Value, json};

async fn config() -> aws_config::SdkConfig {
    hookflow::ports::aws::load_config().await
}

fn serve(workflows: &[Value]) -> Server {
    let endpoint = moto_endpoint();
    Server::start_with_env(
        workflows,
        &["--table", &unique_name("nodes"), "--queue", &unique_name("nodes")],
        &[("AWS_ENDPOINT_URL", &endpoint)],
    )
}

fn sync_flow(key: &str, nodes: Value, answer: Value) -> Value {
    let mut nodes = nodes.as_array().cloned().unwrap();
    nodes.push(json!({"key": "answer", "type": "response", "config": {"body": answer}}));
    json!({"key": key, "sync": true, "trigger": {"type": "webhook", "hookId": format!("{key}-hook")}, "nodes": nodes})
}

async fn post(server: &Server, key: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(server.hook_url(&format!("{key}-hook")))
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

#[tokio::test]
async fn eventbridge_puts_the_event_a_rule_routes_to_its_target() {
    let config = config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = unique_name("bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let (url, arn) = new_queue(&sqs).await;
    events
        .put_rule()
        .name(unique_name("rule"))
        .event_bus_name(&bus)
        .event_pattern(r#"{"source": ["com.stripe"]}"#)
        .send()
        .await
        .unwrap();
    let rules = events.list_rules().event_bus_name(&bus).send().await.unwrap();
    let rule = rules.rules()[0].name().unwrap().to_string();
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(aws_sdk_eventbridge::types::Target::builder().id("q").arn(&arn).build().unwrap())
        .send()
        .await
        .unwrap();
    let server = serve(&[sync_flow(
        "eb",
        json!([{"key": "put", "type": "eventbridge", "config": {
            "eventBusName": bus, "source": "com.stripe", "detailType": "{{$context.body.type}}",
            "detail": "{{$context.body}}"}}]),
        json!({"event": "{{$jobsMapByNodeKey.put}}"}),
    )]);
    let (status, body) = post(&server, "eb", json!({"type": "payment_intent.succeeded", "id": "evt_1"})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["event"]["eventId"].is_string(), "{body}");
    let message = receive_one(&sqs, &url).await;
    let event: Value = serde_json::from_str(message.body().unwrap()).unwrap();
    assert_eq!(event["detail-type"], "payment_intent.succeeded");
    assert_eq!(event["detail"]["id"], "evt_1");
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
    let server = serve(&[sync_flow(
        "msg",
        json!([
            {"key": "send", "type": "sqs", "config": {"queueUrl": direct_url,
                "messageBody": {"order": "{{$context.body.id}}"}, "messageAttributes": {"kind": "order", "n": 3}}},
            {"key": "publish", "type": "sns", "config": {"topicArn": topic, "subject": "Order {{$context.body.id}}",
                "message": {"order": "{{$context.body.id}}"}}}
        ]),
        json!({"sqs": "{{$jobsMapByNodeKey.send}}", "sns": "{{$jobsMapByNodeKey.publish}}"}),
    )]);
    let (status, body) = post(&server, "msg", json!({"id": "A-7"})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["sqs"]["messageId"].is_string() && body["sns"]["messageId"].is_string(), "{body}");
    let direct = receive_one(&sqs, &direct_url).await;
    assert_eq!(direct.body(), Some(r#"{"order":"A-7"}"#));
    let attributes = direct.message_attributes().unwrap();
    assert_eq!(attributes["kind"].string_value(), Some("order"));
    assert_eq!(attributes["n"].data_type(), Some("Number"));
    let envelope: Value =
        serde_json::from_str(receive_one(&sqs, &subscribed_url).await.body().unwrap()).unwrap();
    assert_eq!(envelope["Message"], r#"{"order":"A-7"}"#);
    assert_eq!(envelope["Subject"], "Order A-7");
}

#[tokio::test]
async fn dynamodb_and_s3_write_and_read_plain_json() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let config = config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("orders");
    dynamo
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build().unwrap())
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
        .send()
        .await
        .unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build(),
    );
    let bucket = unique_name("archive").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let server = serve(&[sync_flow(
        "store",
        json!([
            {"key": "put", "type": "dynamodb", "config": {"operation": "put", "tableName": table,
                "item": {"pk": "ORDER#{{$context.body.id}}", "total": "{{$context.body.total}}", "tags": ["a", "b"]},
                "conditionExpression": "attribute_not_exists(pk)", "ignoreFail": true}},
            {"key": "bump", "type": "dynamodb", "config": {"operation": "update", "tableName": table,
                "key": {"pk": "ORDER#{{$context.body.id}}"}, "updateExpression": "ADD seen :one",
                "expressionAttributeValues": {":one": 1}}},
            {"key": "get", "type": "dynamodb", "config": {"operation": "get", "tableName": table,
                "key": {"pk": "ORDER#{{$context.body.id}}"}}},
            {"key": "missing", "type": "dynamodb", "config": {"operation": "get", "tableName": table,
                "key": {"pk": "nope"}}},
            {"key": "archive", "type": "s3", "config": {"operation": "put", "bucket": bucket,
                "key": "orders/{{$context.body.id}}.json", "body": "{{$context.body}}"}},
            {"key": "fetch", "type": "s3", "config": {"operation": "get", "bucket": bucket,
                "key": "orders/{{$context.body.id}}.json"}}
        ]),
        json!({"put": "{{$jobsMapByNodeKey.put}}", "bump": "{{$jobsMapByNodeKey.bump}}",
               "get": "{{$jobsMapByNodeKey.get}}", "missing": "{{$jobsMapByNodeKey.missing}}",
               "archive": "{{$jobsMapByNodeKey.archive}}", "fetch": "{{$jobsMapByNodeKey.fetch}}"}),
    )]);
    let (status, body) = post(&server, "store", json!({"id": "A-1", "total": 42.5})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["get"], json!({"pk": "ORDER#A-1", "total": 42.5, "tags": ["a", "b"], "seen": 1}));
    assert_eq!(body["bump"]["seen"], 1);
    assert_eq!(body["missing"], Value::Null);
    assert!(body["archive"]["etag"].is_string(), "{body}");
    assert_eq!(body["fetch"]["contentType"], "application/json");
    let fetched: Value = serde_json::from_str(body["fetch"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(fetched, json!({"id": "A-1", "total": 42.5}));
    // The same order again: the conditional put fails, ignoreFail keeps its code.
    let (_, again) = post(&server, "store", json!({"id": "A-1", "total": 1})).await;
    assert_eq!(again["put"]["code"], "ConditionalCheckFailedException");
    assert!(again["put"]["message"].as_str().unwrap().contains(&table));
    assert_eq!(again["get"]["total"], 42.5);
    // Read back with the SDK.
    let stored = s3.get_object().bucket(&bucket).key("orders/A-1.json").send().await.unwrap();
    let bytes = stored.body.collect().await.unwrap().into_bytes();
    assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap()["id"], "A-1");
}

#[tokio::test]
async fn an_aws_error_fails_the_node_naming_the_resource() {
    let server = serve(&[sync_flow(
        "broken",
        json!([{"key": "send", "type": "sqs", "config": {
            "queueUrl": format!("{}/123456789012/no-such-queue", moto_endpoint()), "messageBody": "x"}}]),
        json!("unreachable"),
    )]);
    let (status, _) = post(&server, "broken", json!({})).await;
    assert_eq!(status, 500);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let execution = &server.executions(Some("broken"))[0];
    let job = &execution["jobs"][0];
    assert_eq!(job["status"], "failed");
    assert!(job["result"]["message"].as_str().unwrap().contains("no-such-queue"), "{job}");
    assert!(job["result"]["code"].is_string(), "{job}");
}
