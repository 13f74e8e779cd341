//! Rules for the fields part 2 of the spec adds to a trigger (inbound.md §1–3):
//! secrets by reference, `trigger.signature`, `trigger.request.rawBody`.

use serde_json::{Map, Value};

use super::{Checker, Problem, is_header_name};
use crate::model::{SecretRef, Secrets, WorkflowDefinition};

/// The fields only the `hmac` preset takes.
const HMAC_ONLY: [&str; 6] = [
    "header",
    "algorithm",
    "encoding",
    "prefix",
    "timestampHeader",
    "signedPayload",
];
/// A day: wider windows defeat the point of a signed timestamp.
const MAX_TOLERANCE_SECONDS: u64 = 86_400;

/// A secret: a non-empty string, or exactly one of `{"env"}`, `{"ssm"}`,
/// `{"secretsManager", "key"?}`.
pub fn check_secret(value: Option<&Value>, at: &str, check: &mut Checker) {
    let shape = "a non-empty string, {\"env\": NAME}, {\"ssm\": \"/parameter/name\"} or \
                 {\"secretsManager\": \"name or ARN\", \"key\": \"field\"}";
    match value {
        Some(Value::String(s)) if !s.is_empty() => {}
        Some(Value::Object(map)) => {
            let non_empty = |name: &str| {
                map.get(name)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.trim().is_empty())
            };
            let ok = match map
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["env"] => map["env"].as_str().is_some_and(is_env_name),
                ["ssm"] => non_empty("ssm"),
                ["secretsManager"] => non_empty("secretsManager"),
                ["key", "secretsManager"] | ["secretsManager", "key"] => {
                    non_empty("secretsManager") && non_empty("key")
                }
                _ => false,
            };
            if !ok {
                check.error(at, format!("must be {shape}"));
            }
        }
        _ => check.error(at, format!("is required: {shape}")),
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub fn check_signature(signature: &Value, check: &mut Checker) {
    let at = "trigger.signature";
    let Some(map) = signature.as_object() else {
        return;
    };
    let preset = map.get("preset").and_then(Value::as_str);
    match map.get("secret") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for (i, item) in list.iter().enumerate() {
                check_secret(Some(item), &format!("{at}.secret[{i}]"), check);
            }
        }
        Some(Value::Array(_)) => {
            check.error(format!("{at}.secret"), "must list at least one secret")
        }
        other => check_secret(other, &format!("{at}.secret"), check),
    }
    check.optional_whole(
        signature,
        "toleranceSeconds",
        at,
        1..=MAX_TOLERANCE_SECONDS,
        "seconds",
    );
    if let Some(url) = map.get("publicUrl") {
        if preset != Some("twilio") {
            check.error(
                format!("{at}.publicUrl"),
                "applies to the twilio preset only",
            );
        } else if !url
            .as_str()
            .and_then(|u| url::Url::parse(u).ok())
            .is_some_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            check.error(format!("{at}.publicUrl"), "must be an http(s) URL");
        }
    }
    if preset == Some("hmac") {
        check_generic(map, at, check);
    } else if preset.is_some() {
        for field in HMAC_ONLY.iter().filter(|f| map.contains_key(**f)) {
            check.error(format!("{at}.{field}"), "applies to the hmac preset only");
        }
    }
}

fn check_generic(map: &Map<String, Value>, at: &str, check: &mut Checker) {
    match map.get("header").and_then(Value::as_str) {
        Some(h) if is_header_name(h) => {}
        _ => check.error(format!("{at}.header"), "is required: a header name"),
    }
    if let Some(h) = map.get("timestampHeader")
        && !h.as_str().is_some_and(is_header_name)
    {
        check.error(format!("{at}.timestampHeader"), "must be a header name");
    }
    if let Some(payload) = map.get("signedPayload") {
        if !map.contains_key("timestampHeader") {
            check.error(format!("{at}.signedPayload"), "needs timestampHeader");
        }
        if !payload.as_str().is_some_and(|p| p.contains("{body}")) {
            check.error(
                format!("{at}.signedPayload"),
                "must be a string with {body} (and usually {timestamp}), e.g. \"v0:{timestamp}:{body}\"",
            );
        }
    }
}

/// A declared `Authorization` header on a hook with Basic authentication: its
/// credentials would be in the context every execution records (the webhook
/// leaves it out anyway, for definitions stored before this rule).
/// `trigger.redact`: paths to scrub, and how (`mask`, or `hash` with a `key`).
pub fn check_redact(redact: &Value, check: &mut Checker) {
    let at = "trigger.redact";
    let Some(map) = redact.as_object() else {
        check.error(
            at,
            "must be an object: {\"paths\": [...], \"mode\": \"mask\" or \"hash\"}",
        );
        return;
    };
    for field in map
        .keys()
        .filter(|k| !["paths", "mode", "key"].contains(&k.as_str()))
    {
        check.error(
            format!("{at}.{field}"),
            "is not a field of trigger.redact (paths, mode, key)",
        );
    }
    match map.get("paths").and_then(Value::as_array) {
        Some(paths) if !paths.is_empty() => {
            for (i, path) in paths.iter().enumerate() {
                match path.as_str().map(crate::lang::redact_path::parse) {
                    Some(Ok(_)) => {}
                    Some(Err(problem)) => check.error(format!("{at}.paths[{i}]"), problem),
                    None => check.error(
                        format!("{at}.paths[{i}]"),
                        "must be a path such as body.customer.email",
                    ),
                }
            }
        }
        _ => check.error(format!("{at}.paths"), "must list at least one path"),
    }
    match (map.get("mode").and_then(Value::as_str), map.get("key")) {
        (None | Some("mask"), None) => {}
        (None | Some("mask"), Some(_)) => {
            check.error(format!("{at}.key"), "applies to mode \"hash\" only")
        }
        (Some("hash"), key) => {
            if key.is_none() {
                check.error(
                    format!("{at}.key"),
                    "is required with mode \"hash\" (a secret: the HMAC key)",
                );
            } else {
                check_secret(key, &format!("{at}.key"), check);
            }
        }
        _ => check.error(format!("{at}.mode"), "must be \"mask\" or \"hash\""),
    }
}

pub fn check_declared_credentials(trigger: &Map<String, Value>, check: &mut Checker) {
    if !trigger
        .get("basicAuthentication")
        .is_some_and(Value::is_object)
    {
        return;
    }
    let declared = trigger
        .get("request")
        .and_then(|r| r.get("headers"))
        .and_then(Value::as_array);
    for (i, item) in declared.into_iter().flatten().enumerate() {
        if item
            .get("key")
            .and_then(Value::as_str)
            .is_some_and(|k| k.eq_ignore_ascii_case("authorization"))
        {
            check.error(
                format!("trigger.request.headers[{i}].key"),
                "declares Authorization, which carries this hook's Basic credentials: they \
                 would be recorded in every execution; remove it (hookflow checks the \
                 credentials before any run)",
            );
        }
    }
}

/// Secrets written in the definition: accepted, but kept in its store in clear.
pub fn secret_warnings(definition: &WorkflowDefinition, found: &mut Vec<Problem>) {
    let warn = |path: String, found: &mut Vec<Problem>| {
        found.push(Problem {
            path,
            message: "the secret is written in the definition (and so kept in clear in its \
                      store); use {\"env\": ...}, {\"ssm\": ...} or {\"secretsManager\": ...}"
                .into(),
        });
    };
    let trigger = &definition.trigger;
    if let Some(auth) = &trigger.basic_authentication
        && matches!(auth.password, SecretRef::Plain(_))
    {
        warn("trigger.basicAuthentication.password".into(), found);
    }
    if let Some(handshake) = &trigger.handshake {
        for (field, secret) in [
            ("verifyToken", &handshake.verify_token),
            ("secret", &handshake.secret),
        ] {
            if matches!(secret, Some(SecretRef::Plain(_))) {
                warn(format!("trigger.handshake.{field}"), found);
            }
        }
    }
    if let Some(signature) = &trigger.signature {
        match &signature.secret {
            Secrets::One(SecretRef::Plain(_)) => warn("trigger.signature.secret".into(), found),
            Secrets::One(_) => {}
            Secrets::Many(list) => {
                for (i, secret) in list.iter().enumerate() {
                    if matches!(secret, SecretRef::Plain(_)) {
                        warn(format!("trigger.signature.secret[{i}]"), found);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use crate::nodes::builtin;
    use crate::validate::{validate, warnings};

    pub(in crate::validate) fn with_trigger(extra: serde_json::Value) -> serde_json::Value {
        let mut trigger = json!({"type": "webhook", "hookId": "h"});
        for (k, v) in extra.as_object().unwrap() {
            trigger[k] = v.clone();
        }
        json!({"key": "k", "trigger": trigger})
    }

    fn assert_has(found: &[String], expected: &[&str]) {
        for e in expected {
            assert!(
                found.iter().any(|f| f.starts_with(e)),
                "{e} not in {found:?}"
            );
        }
    }

    pub(in crate::validate) fn problems(extra: serde_json::Value) -> Vec<String> {
        match validate(&with_trigger(extra), &builtin()) {
            Ok(_) => Vec::new(),
            Err(p) => p
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect(),
        }
    }

    #[test]
    fn every_preset_and_reference_form_is_accepted() {
        for signature in [
            json!({"preset": "github", "secret": {"env": "GITHUB_SECRET"}}),
            json!({"preset": "stripe", "secret": {"ssm": "/hookflow/stripe"}, "toleranceSeconds": 600}),
            json!({"preset": "slack", "secret": {"secretsManager": "hookflow", "key": "slack"}}),
            json!({"preset": "shopify", "secret": [{"env": "NEW"}, {"env": "OLD"}]}),
            json!({"preset": "standard-webhooks", "secret": {"secretsManager": "arn:aws:secretsmanager:eu-west-1:1:secret:x"}}),
            json!({"preset": "twilio", "secret": {"env": "TWILIO_TOKEN"}, "publicUrl": "https://hooks.example.com/sms"}),
            json!({"preset": "hmac", "secret": "s", "header": "X-Sig", "algorithm": "sha512", "encoding": "base64",
                   "prefix": "v1=", "timestampHeader": "X-Ts", "signedPayload": "{timestamp}:{body}"}),
        ] {
            assert_eq!(
                problems(json!({"signature": signature.clone()})),
                Vec::<String>::new(),
                "{signature}"
            );
        }
        let auth = json!({"basicAuthentication": {"username": "u", "password": {"env": "HOOK_PASSWORD"}}, "request": {"rawBody": true}});
        assert_eq!(problems(auth), Vec::<String>::new());
    }

    #[test]
    fn wrong_signatures_are_named_by_path() {
        let found = problems(
            json!({"signature": {"preset": "gitlab", "secret": {"env": "1X"}, "toleranceSeconds": 0,
            "publicUrl": "ftp://x", "header": "X", "bogus": 1}}),
        );
        assert_has(
            &found,
            &[
                "trigger.signature.bogus: unknown field",
                "trigger.signature.preset: must be one of github, stripe",
                "trigger.signature.secret: must be a non-empty string",
                "trigger.signature.toleranceSeconds: must be a whole number",
                "trigger.signature.publicUrl: applies to the twilio preset only",
            ],
        );
        let found =
            problems(json!({"signature": {"preset": "github", "secret": [], "header": "X-Sig"}}));
        assert_has(
            &found,
            &[
                "trigger.signature.secret: must list",
                "trigger.signature.header: applies to the hmac preset only",
            ],
        );
        let found = problems(
            json!({"signature": {"preset": "hmac", "secret": {"ssm": ""},
            "algorithm": "md5", "signedPayload": "{timestamp}"}}),
        );
        assert_has(
            &found,
            &[
                "trigger.signature.header: is required",
                "trigger.signature.secret: must be",
                "trigger.signature.algorithm: must be one of sha1, sha256, sha512",
                "trigger.signature.signedPayload: needs timestampHeader",
                "trigger.signature.signedPayload: must be a string with {body}",
            ],
        );
        let found = problems(
            json!({"basicAuthentication": {"username": "u", "password": {"env": "A", "ssm": "/b"}},
            "request": {"rawBody": "yes"}}),
        );
        assert_has(
            &found,
            &[
                "trigger.basicAuthentication.password: must be",
                "trigger.request.rawBody: must be true or false",
            ],
        );
    }

    #[test]
    fn redaction_needs_paths_and_a_key_for_hashing_only() {
        let good = json!({"paths": ["body.customer.email", "body.items[*].card"], "mode": "mask"});
        assert!(problems(json!({"redact": good})).is_empty());
        let hashed = json!({"paths": ["headers.x-api-key"], "mode": "hash", "key": {"env": "K"}});
        assert!(problems(json!({"redact": hashed})).is_empty());
        assert_has(
            &problems(json!({"redact": {"paths": [], "mode": "hash"}})),
            &[
                "trigger.redact.paths: must list at least one path",
                "trigger.redact.key: is required with mode \"hash\"",
            ],
        );
        assert_has(
            &problems(
                json!({"redact": {"paths": ["body..a", 3], "key": "k", "mode": "mask", "x": 1}}),
            ),
            &[
                "trigger.redact.paths[0]: \"body..a\" is not a path",
                "trigger.redact.paths[1]: must be a path",
                "trigger.redact.key: applies to mode \"hash\" only",
                "trigger.redact.x: is not a field",
            ],
        );
        assert_has(
            &problems(json!({"redact": {"paths": ["body.a"], "mode": "blur"}})),
            &["trigger.redact.mode: must be \"mask\" or \"hash\""],
        );
    }

    #[test]
    fn a_body_limit_is_a_number_of_bytes_up_to_a_lambdas_request() {
        for good in [json!(1), json!(6 << 20)] {
            assert!(problems(json!({"request": {"maxBodyBytes": good}})).is_empty());
        }
        for bad in [json!(0), json!((6 << 20) + 1), json!("1MB"), json!(1.5)] {
            assert_has(
                &problems(json!({"request": {"maxBodyBytes": bad}})),
                &[
                    "trigger.request.maxBodyBytes: must be a whole number of bytes from 1 to 6291456",
                ],
            );
        }
    }

    #[test]
    fn a_declared_authorization_header_with_basic_auth_is_refused() {
        let auth = json!({"username": "u", "password": {"env": "HOOK_PASSWORD"}});
        for name in ["authorization", "Authorization", "AUTHORIZATION"] {
            let found = problems(json!({"basicAuthentication": auth,
                "request": {"headers": [{"key": "x-id"}, {"key": name}]}}));
            assert_has(
                &found,
                &["trigger.request.headers[1].key: declares Authorization"],
            );
            assert_eq!(found.len(), 1, "{found:?}");
        }
        // Without Basic auth the header is the workflow's to read (a bearer token
        // it checks itself).
        for basic in [json!(false), json!(null)] {
            let found = problems(json!({"basicAuthentication": basic,
                "request": {"headers": [{"key": "Authorization"}, {"key": "proxy-authorization"}]}}));
            assert_eq!(found, Vec::<String>::new());
        }
    }

    #[test]
    fn secrets_written_in_the_definition_are_warned_of() {
        let doc = with_trigger(json!({
            "basicAuthentication": {"username": "u", "password": "p"},
            "signature": {"preset": "github", "secret": [{"env": "NEW"}, "old-plain"]},
        }));
        let definition = validate(&doc, &builtin()).unwrap();
        let paths: Vec<String> = warnings(&definition).into_iter().map(|w| w.path).collect();
        assert_eq!(
            paths,
            [
                "trigger.basicAuthentication.password",
                "trigger.signature.secret[1]"
            ]
        );
        // The stored definition keeps the references as written.
        let stored = serde_json::to_value(&definition).unwrap();
        assert_eq!(
            stored["trigger"]["signature"]["secret"],
            json!([{"env": "NEW"}, "old-plain"])
        );
    }
}
