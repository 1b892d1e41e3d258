//! Whatever arrives, nothing falls over: the signature header parser and the event
//! decoder take arbitrary input without panicking, and `POST /webhooks/stripe` answers
//! any body and header with 200, 400 or 413, never a 5xx.

use crate::common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use reqwest::header::HeaderValue;
use serde_json::{json, Value};
use uchat_billing::http::MAX_BODY_BYTES;
use uchat_billing::secret::Secret;
use uchat_billing::stripe::decode::{is_event_type, parse_event, ACTED_ON};
use uchat_billing::stripe::signature::{self, SignatureError, SignatureHeader, TOLERANCE_SECS};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings of every kind: printable, control characters and NULs, Stripe-like words.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z_.]{0,16}",
        prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        Just("\u{0}".to_owned()),
        Just("  ".to_owned()),
    ]
}

/// Keys Stripe objects have, so random objects now and then look like one.
const KEYS: &[&str] = &[
    "id",
    "object",
    "type",
    "created",
    "data",
    "customer",
    "subscription",
    "items",
    "price",
    "plan",
    "quantity",
    "status",
    "mode",
    "payment_status",
    "customer_details",
    "email",
    "name",
    "metadata",
    "lines",
    "payment_intent",
    "charge",
    "refunds",
    "amount",
    "amount_refunded",
    "cancel_at_period_end",
    "pause_collection",
    "custom_fields",
    "key",
    "text",
    "value",
    "line_items",
    "parent",
    "payments",
    "payment",
    "invoice",
];

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        any_text().prop_map(Value::from),
    ];
    let key = prop_oneof![
        prop::sample::select(KEYS).prop_map(str::to_owned),
        any_text()
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Event ids: mostly Stripe's shape, sometimes anything, sometimes far too long.
fn any_event_id() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "evt_[A-Za-z0-9]{1,40}",
        1 => any_text(),
        1 => "evt_[a-z0-9]{250,3000}",
    ]
}

/// The real samples, each an event envelope.
fn samples() -> Vec<Value> {
    EVENT_SAMPLES
        .iter()
        .map(|name| serde_json::from_slice(&sample(name)).unwrap())
        .collect()
}

/// JSON pointers to every node of `v`.
fn pointers(v: &Value, at: &str, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, child)| (k.replace('~', "~0").replace('/', "~1"), child))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, child)| (i.to_string(), child))
            .collect(),
        _ => Vec::new(),
    };
    for (key, child) in children {
        pointers(child, &format!("{at}/{key}"), out);
    }
    out.push(at.to_owned());
}

/// An event shaped as Stripe sends it: a real sample under any type we act on, with a
/// few of its nodes (anywhere, the envelope included) replaced by arbitrary JSON.
fn any_event() -> impl Strategy<Value = Value> {
    let samples = samples();
    let count = samples.len();
    (
        0..count,
        prop::sample::select(ACTED_ON.to_vec()),
        any_event_id(),
        prop::collection::vec((any::<prop::sample::Index>(), any_json()), 0..5),
    )
        .prop_map(move |(index, event_type, id, mutations)| {
            let mut event = samples[index].clone();
            event["type"] = json!(event_type);
            event["id"] = json!(id);
            let mut paths = Vec::new();
            pointers(&event, "", &mut paths);
            for (at, value) in mutations {
                if let Some(node) = event.pointer_mut(&paths[at.index(paths.len())]) {
                    *node = value;
                }
            }
            event
        })
}

/// Decodes `raw` and everything the service reads from an event: errors are fine,
/// panics are not.
fn decode_all_the_way(raw: &[u8]) {
    if let Ok(event) = parse_event(raw) {
        let _ = event.stamp();
        let _ = event.order_links();
        let _ = event.signal("workspaceid");
        let _ = event.signal("");
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn any_signature_header_parses_or_is_refused(header in any::<String>()) {
        if let Ok(parsed) = SignatureHeader::parse(&header) {
            prop_assert!(!parsed.v1.is_empty());
        }
    }

    #[test]
    fn any_header_of_stripe_like_pairs_parses_or_is_refused(
        pairs in prop::collection::vec(
            (
                prop_oneof![Just("t"), Just("v1"), Just("v0"), Just(""), Just(" t ")],
                prop_oneof![
                    any::<i64>().prop_map(|t| t.to_string()),
                    "[0-9a-f]{0,70}",
                    any_text(),
                ],
            ),
            0..6,
        ),
        separator in prop_oneof![Just(","), Just(", "), Just(",,")],
    ) {
        let header = pairs
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(separator);
        let _ = SignatureHeader::parse(&header);
    }

    #[test]
    fn verify_refuses_what_no_secret_signed(
        header in prop::option::of(any::<String>()),
        body in prop::collection::vec(any::<u8>(), 0..256),
        now in any::<i64>(),
    ) {
        let result = signature::verify(header.as_deref(), &body, &[Secret::new(WEBHOOK_SECRET)], now);
        prop_assert!(result.is_err());
    }

    /// A real signature at any timestamp, checked at any moment: accepted exactly when
    /// the two are within the tolerance, with no overflow at the ends of time.
    #[test]
    fn verify_accepts_a_signature_exactly_within_the_tolerance(
        timestamp in prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), -1000i64..1000],
        skew in prop_oneof![any::<i64>(), -400i64..400],
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let secret = Secret::new(WEBHOOK_SECRET);
        let now = timestamp.wrapping_add(skew);
        let header = signature::header_for(&secret, timestamp, &body);
        let within = (i128::from(now) - i128::from(timestamp)).abs() <= i128::from(TOLERANCE_SECS);
        let result = signature::verify(Some(&header), &body, &[secret], now);
        prop_assert_eq!(
            result,
            if within { Ok(()) } else { Err(SignatureError::StaleTimestamp) }
        );
    }

    #[test]
    fn any_bytes_decode_or_are_refused(raw in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all_the_way(&raw);
    }

    #[test]
    fn any_json_decodes_or_is_refused(value in any_json()) {
        decode_all_the_way(&serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn any_mutated_stripe_event_decodes_or_is_refused(event in any_event()) {
        decode_all_the_way(&serde_json::to_vec(&event).unwrap());
    }
}

/// What to put in the `Stripe-Signature` header.
#[derive(Debug, Clone)]
enum Signed {
    Missing,
    Header(HeaderValue),
    /// As Stripe signs, now, with the service's secret.
    Valid,
    WithAnotherSecret,
    At(i64),
}

#[derive(Debug, Clone)]
enum Body {
    Bytes(Vec<u8>),
    Json(Value),
    Event(Value),
    /// This many bytes past the limit (negative: under it).
    AroundTheLimit(i64),
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Body::Bytes(bytes) => bytes.clone(),
            Body::Json(value) | Body::Event(value) => serde_json::to_vec(value).unwrap(),
            Body::AroundTheLimit(past) => {
                let mut body = b"{\"id\":\"evt_big\",\"type\":\"invoice.paid\",\"pad\":\"".to_vec();
                let len = (MAX_BODY_BYTES as i64 + past) as usize;
                body.resize(len - 2, b'x');
                body.extend_from_slice(b"\"}");
                body
            }
        }
    }
}

fn any_request() -> impl Strategy<Value = (Body, Signed)> {
    let body = prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..512).prop_map(Body::Bytes),
        2 => any_json().prop_map(Body::Json),
        6 => any_event().prop_map(Body::Event),
        1 => (-2i64..3).prop_map(Body::AroundTheLimit),
    ];
    let header = prop::collection::vec(any::<u8>(), 0..120)
        .prop_filter_map("a value HTTP can carry", |bytes| {
            HeaderValue::from_bytes(&bytes).ok()
        });
    let signed = prop_oneof![
        1 => Just(Signed::Missing),
        1 => header.prop_map(Signed::Header),
        1 => any::<String>()
            .prop_filter_map("a value HTTP can carry", |s| HeaderValue::from_str(&s).ok())
            .prop_map(Signed::Header),
        6 => Just(Signed::Valid),
        1 => Just(Signed::WithAnotherSecret),
        1 => prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX)].prop_map(Signed::At),
    ];
    (body, signed)
}

#[test]
fn the_webhook_answers_anything_with_200_400_or_413_and_never_falls_over() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(spawn_app());
    let mut runner = TestRunner::new(config(400));
    let answered = std::cell::RefCell::new(std::collections::BTreeMap::<u16, usize>::new());
    runner
        .run(&any_request(), |(body, signed)| {
            let bytes = body.bytes();
            let header = match &signed {
                Signed::Missing => None,
                Signed::Header(value) => Some(value.clone()),
                Signed::Valid => Some(sign(&bytes).parse().unwrap()),
                Signed::WithAnotherSecret => Some(
                    signature::header_for(&Secret::new("whsec_someone_else"), now(), &bytes)
                        .parse()
                        .unwrap(),
                ),
                Signed::At(t) => Some(
                    signature::header_for(&Secret::new(WEBHOOK_SECRET), *t, &bytes)
                        .parse()
                        .unwrap(),
                ),
            };
            let (status, answer) = runtime.block_on(async {
                let mut request = app
                    .client
                    .post(format!("{}/webhooks/stripe", app.address))
                    .header("content-type", "application/json")
                    .body(bytes.clone());
                if let Some(header) = header {
                    request = request.header("stripe-signature", header);
                }
                let response = request
                    .send()
                    .await
                    .expect("the service answers (a panic would drop the connection)");
                let status = response.status().as_u16();
                (status, response.bytes().await.unwrap())
            });
            *answered.borrow_mut().entry(status).or_default() += 1;
            prop_assert!(
                matches!(status, 200 | 400 | 413),
                "{status} {}",
                String::from_utf8_lossy(&answer)
            );
            let answer: Value = serde_json::from_slice(&answer).expect("a JSON answer");
            if status == 200 {
                prop_assert_eq!(answer, json!({"received": true}));
            } else {
                prop_assert!(answer["error"].is_string(), "{}", answer);
            }
            // A validly signed event with a Stripe-shaped id is stored.
            if let (Body::Event(event), Signed::Valid) = (&body, &signed) {
                let id = event["id"].as_str().unwrap_or_default();
                let stripe_like = id.starts_with("evt_")
                    && id.len() <= 44
                    && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                let event_type = event["type"].as_str().unwrap_or_default();
                if stripe_like && is_event_type(event_type.trim()) {
                    prop_assert_eq!(status, 200);
                }
            }
            Ok(())
        })
        .unwrap();
    let answered = answered.into_inner();
    eprintln!("answers: {answered:?}");
    assert!(answered.get(&200) > Some(&50), "{answered:?}");
    assert!(answered.get(&400) > Some(&50), "{answered:?}");
}

#[test]
fn whatever_signed_events_are_stored_the_processor_applies_or_sets_each_aside() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(spawn_app());
    app.expect_failed_events();
    app.expect_unfinished_calls();
    let mut runner = TestRunner::new(config(60));
    runner
        .run(&prop::collection::vec(any_event(), 1..8), |events| {
            runtime.block_on(async {
                app.reset().await;
                for event in &events {
                    let status = app
                        .post_stripe_event(&serde_json::to_vec(event).unwrap())
                        .await
                        .status();
                    assert!(matches!(status.as_u16(), 200 | 400), "{status}");
                }
                // Each event is applied, ignored or failed, or set aside with its reason:
                // none stops the processor, and nothing in one makes it panic.
                app.processor
                    .drain()
                    .await
                    .expect("the processor never stops on an event");
            });
            Ok(())
        })
        .unwrap();
}
