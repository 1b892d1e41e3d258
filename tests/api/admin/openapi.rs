//! The OpenAPI document: valid 3.1, every admin route, every reference resolving.

use std::collections::{BTreeSet, HashSet};

use serde_json::json;

use super::*;

/// Every `$ref` in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => found.push(target.clone()),
                    _ => references(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_is_valid_3_1_and_lists_every_admin_route() {
    let app = spawn_app().await;
    let document = document(&app).await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));

    let spec = oas3::from_json(document.to_string()).expect("parses as OpenAPI 3.1");
    assert_eq!(spec.validate_version().unwrap().minor, 1);

    let listed: BTreeSet<String> = operations(&document, "{id}")
        .into_iter()
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    let issue: BTreeSet<String> = [
        "GET /admin/orders",
        "GET /admin/orders/{id}",
        "GET /admin/calls",
        "POST /admin/calls/{id}/retry",
        "POST /admin/calls/{id}/cancel",
        "POST /admin/events/{id}/reprocess",
        "GET /admin/backfill",
        "POST /admin/dry-run",
        "GET /admin/stats",
        "GET /admin/reconcile",
        "POST /admin/reconcile",
        "GET /admin/openapi.json",
        "GET /metrics",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(listed, issue);

    let mut operation_ids = HashSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.contains_key("200"), "{method} {path}");
            assert!(responses.contains_key("401"), "{method} {path}");
            assert!(operation_ids.insert(operation["operationId"].as_str().unwrap().to_owned()));
            if path.contains("{id}") {
                assert_eq!(operation["parameters"][0]["name"], "id", "{method} {path}");
                assert_eq!(operation["parameters"][0]["in"], "path", "{method} {path}");
            }
        }
    }

    let mut targets = Vec::new();
    references(&document, &mut targets);
    assert!(targets.len() > 20);
    for target in targets {
        let pointer = target.strip_prefix('#').expect("a local reference");
        assert!(
            document.pointer(pointer).is_some(),
            "{target} does not resolve"
        );
    }

    assert_eq!(
        document["components"]["securitySchemes"]["admin_token"],
        json!({"type": "http", "scheme": "bearer"})
    );
    assert_eq!(document["security"], json!([{"admin_token": []}]));
    for schema in [
        "OrderDetail",
        "Page_OrderSummary",
        "Page_CallRecord",
        "CallRecord",
        "EventRecord",
        "DryRun",
        "Stats",
        "ErrorBody",
    ] {
        assert!(
            document["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
}
