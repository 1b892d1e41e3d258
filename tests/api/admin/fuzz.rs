//! Anything at all: no input to any admin route causes a server error.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

use super::*;

/// Path ids: valid, out of range, and not numbers at all.
fn any_id() -> impl Strategy<Value = String> {
    prop_oneof![
        (1i64..40).prop_map(|id| id.to_string()),
        any::<i64>().prop_map(|id| id.to_string()),
        "[a-zA-Z0-9._~%-]{1,12}",
        Just("99999999999999999999".to_owned()),
    ]
}

/// Query values: sensible ones and anything.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (-5i64..300).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "pending",
            "running",
            "held",
            "succeeded",
            "dead",
            "canceled",
            "active",
            "needs_attention",
            "",
            " ",
            "1e3",
            "NaN",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ]
}

fn any_query() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop::sample::select(vec![
        "limit",
        "cursor",
        "status",
        "email",
        "customer",
        "workspace_id",
        "other",
    ]);
    prop::collection::vec((name.prop_map(str::to_owned), any_value()), 0..4)
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "(sub|cus|pi|cs|in|ch)_[a-z]{1,3}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Dry-run bodies: random JSON, events of types the service acts on with a random
/// object, and real samples with one field replaced.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    let acted_on = prop::sample::select(uchat_billing::stripe::decode::ACTED_ON.to_vec());
    let sample_names = prop::sample::select(vec![
        "checkout.session.completed.json",
        "invoice.paid.json",
        "customer.subscription.updated.json",
        "charge.refunded.json",
        "refund.created.json",
        "charge.dispute.created.json",
    ]);
    prop_oneof![
        any_json().prop_map(|value| serde_json::to_vec(&value).unwrap()),
        (acted_on, any::<i64>(), any_json()).prop_map(|(event_type, created, object)| {
            envelope("evt_random", event_type, created, object)
        }),
        (sample_names, "[a-z_]{1,12}", any_json()).prop_map(|(name, field, value)| {
            let mut event: Value = serde_json::from_slice(&sample(name)).unwrap();
            event["data"]["object"][field] = value;
            serde_json::to_vec(&event).unwrap()
        }),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

#[test]
fn no_input_to_any_admin_route_causes_a_server_error() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, operations) = runtime.block_on(async {
        let app = app_with_an_order().await;
        let calls = call_ids(&app, only_order_id(&app).await).await;
        set_call(&app, calls[0], "dead").await;
        app.expect_dead_calls();
        set_call(&app, calls[1], "held").await;
        let operations = operations(&document(&app).await, "{id}");
        (app, operations)
    });
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let input = (
        prop::sample::select(operations),
        any_id(),
        any_query(),
        any_body(),
    );
    runner
        .run(&input, |((method, path), id, query, body)| {
            runtime.block_on(async {
                let path = path.replace("{id}", &id);
                let response = app
                    .admin_request(method.clone(), &path)
                    .query(&query)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{method} {path}: {e}")))?;
                let status = response.status();
                let text = response.text().await.unwrap();
                prop_assert!(
                    !status.is_server_error(),
                    "{method} {path} {query:?}: {status} {text}"
                );
                if status.is_client_error() {
                    let body: Value = serde_json::from_str(&text)
                        .map_err(|_| TestCaseError::fail(format!("not JSON: {text}")))?;
                    prop_assert!(body["error"].is_string(), "{text}");
                }
                Ok(())
            })
        })
        .unwrap();
}
