use serde_json::json;

use super::*;

macro_rules! sample {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/stripe/",
            $file
        ))
    };
}

const FIELD: &str = "workspaceid";

fn json_of(raw: &str) -> Value {
    serde_json::from_str(raw).expect("sample is JSON")
}

fn decode(event: &Value) -> Result<Option<Signal>, DecodeError> {
    parse_event(&serde_json::to_vec(event).unwrap())
        .expect("envelope parses")
        .signal(FIELD)
}

fn envelope(event_type: &str, object: Value) -> Value {
    json!({
        "id": "evt_test",
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": 1_700_000_000,
        "livemode": false,
        "type": event_type,
        "data": { "object": object },
    })
}

fn fixture(resource: &str) -> Value {
    let fixtures = json_of(sample!("stripe-openapi-fixtures3-subset.json"));
    fixtures["resources"][resource].clone()
}

/// The bare 2025+ invoice sample, in the envelope Stripe would send it in.
fn payment_failed_event() -> Value {
    json!({
        "id": "evt_payment_failed",
        "type": "invoice.payment_failed",
        "created": 1_745_433_964,
        "data": json_of(sample!("invoice.payment_failed.object.json")),
    })
}

/// `event` with `patch`'s keys set on its `data.object`.
fn patched(mut event: Value, patch: Value) -> Value {
    if let (Some(object), Value::Object(patch)) = (event["data"]["object"].as_object_mut(), patch) {
        object.extend(patch);
    }
    event
}

fn with_type(mut event: Value, event_type: &str) -> Value {
    event["type"] = json!(event_type);
    event
}

fn line(price: &str, quantity: u32) -> LineItem {
    LineItem {
        price: price.into(),
        quantity,
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.into())
}

// 2020-era samples.

#[test]
fn checkout_session_completed_2020() {
    let event = parse_event(sample!("checkout.session.completed.json").as_bytes()).unwrap();
    assert_eq!(event.id, "evt_T8nSaZqtPudigUMqnnbY4D4v");
    assert_eq!(event.api_version.as_deref(), Some("2020-03-02"));
    assert!(event.livemode);
    assert_eq!(
        event.stamp(),
        Stamp {
            created: 1_619_697_430,
            event_id: "evt_T8nSaZqtPudigUMqnnbY4D4v".into()
        }
    );
    let Some(Signal::CheckoutCompleted { session }) = event.signal(FIELD).unwrap() else {
        panic!("not a checkout signal");
    };
    assert_eq!(
        session,
        CheckoutSession {
            id: "cs_live_9RBjcHiy2i5p99Tf1MYM90c3SHK1grU0E6Ae6pKWR2KPA4ZiuKiB2X1Y3X".into(),
            customer: some("cus_IhGfebO16cMIGN"),
            mode: CheckoutMode::Payment,
            paid: true,
            subscription: None,
            payment_intent: some("pi_1IqxJOJDPojXS6LN9uOebAea"),
            email: some("billz@supabase.io"),
            name: some("Copple"),
            workspace_id: None,
            amount_total: Some(999),
            line_items: None,
        }
    );
}

#[test]
fn async_payment_succeeded_is_a_completed_checkout() {
    let event = with_type(
        json_of(sample!("checkout.session.completed.json")),
        "checkout.session.async_payment_succeeded",
    );
    assert!(matches!(
        decode(&event),
        Ok(Some(Signal::CheckoutCompleted { session })) if session.paid
    ));
}

#[test]
fn invoice_paid_2020() {
    let Some(Signal::InvoicePaid { invoice }) =
        decode(&json_of(sample!("invoice.paid.json"))).unwrap()
    else {
        panic!("not an invoice signal");
    };
    assert_eq!(
        invoice,
        Invoice {
            id: "in_1KJqKBJDPojXS6LNJbvLUgEy".into(),
            customer: some("cus_JsuO3bmrj0QlAw"),
            subscription: some("sub_JsuPyCPhXWfZar"),
            billing_reason: some("subscription_cycle"),
            customer_email: None,
            customer_name: None,
            lines: vec![line("price_1IDQm5JDPojXS6LNM31hxKzp", 1)],
            payment_intent: None,
            charge: None,
            amount_paid: 0,
        }
    );
}

#[test]
fn invoice_payment_succeeded_is_a_paid_invoice() {
    let event = with_type(
        json_of(sample!("invoice.paid.json")),
        "invoice.payment_succeeded",
    );
    assert!(matches!(
        decode(&event),
        Ok(Some(Signal::InvoicePaid { .. }))
    ));
}

#[test]
fn subscription_updated_2020() {
    let Some(Signal::Subscription {
        subscription,
        deleted,
    }) = decode(&json_of(sample!("customer.subscription.updated.json"))).unwrap()
    else {
        panic!("not a subscription signal");
    };
    assert!(!deleted);
    assert_eq!(
        subscription,
        Subscription {
            id: "sub_JLEPMp81LApOJl".into(),
            customer: some("cus_IhGfebO16cMIGN"),
            status: SubscriptionStatus::Active,
            items: vec![line("price_1IDQm5JDPojXS6LNM31hxKzp", 1)],
            pause_collection: false,
            cancel_at_period_end: false,
            cancel_at: None,
            trial_end: None,
            workspace_id: None,
        }
    );
}

#[test]
fn subscription_deleted_2020() {
    let Some(Signal::Subscription {
        subscription,
        deleted,
    }) = decode(&json_of(sample!("customer.subscription.deleted.json"))).unwrap()
    else {
        panic!("not a subscription signal");
    };
    assert!(deleted);
    assert_eq!(subscription.id, "sub_JdIzvfy6o5GZRd");
    assert_eq!(subscription.status, SubscriptionStatus::Canceled);
    assert_eq!(
        subscription.items,
        vec![line("price_1IDQm5JDPojXS6LNM31hxKzp", 1)]
    );
}

#[test]
fn charge_refunded_2020() {
    let Some(Signal::Refund { refund }) =
        decode(&json_of(sample!("charge.refunded.json"))).unwrap()
    else {
        panic!("not a refund signal");
    };
    assert_eq!(
        refund,
        Refund {
            customer: some("cus_J7Mkgr8mvbl1eK"),
            charge: some("ch_3Kl36gJDPojXS6LN0DCM4A8l"),
            payment_intent: some("pi_3Kl36gJDPojXS6LN02fQVtKR"),
            invoice: some("in_1KJdKkJDPojXS6LNSwSWkZSN"),
            charge_amount: Some(2500),
            amount_refunded: Some(2500),
            refunds: vec![counted("re_3Kl36gJDPojXS6LN0eP4yPDz", 2500)],
        }
    );
}

#[test]
fn refund_created_2020() {
    let Some(Signal::Refund { refund }) = decode(&json_of(sample!("refund.created.json"))).unwrap()
    else {
        panic!("not a refund signal");
    };
    assert_eq!(
        refund,
        Refund {
            customer: None,
            charge: some("ch_1NirD82eZvKYlo2CIvbtLWuY"),
            payment_intent: some("pi_1GszsK2eZvKYlo2CfhZyoZLp"),
            invoice: None,
            charge_amount: None,
            amount_refunded: None,
            refunds: vec![counted("re_1Nispe2eZvKYlo2Cd31jOCgZ", 1000)],
        }
    );
}

fn counted(id: &str, amount: i64) -> RefundLine {
    RefundLine {
        id: id.into(),
        amount,
        reversed: false,
    }
}

#[test]
fn failed_and_canceled_refunds_are_reversed() {
    for status in ["failed", "canceled"] {
        for event_type in ["refund.updated", "refund.failed", "charge.refund.updated"] {
            let event = with_type(
                patched(
                    json_of(sample!("refund.created.json")),
                    json!({ "status": status }),
                ),
                event_type,
            );
            let Some(Signal::Refund { refund }) = decode(&event).unwrap() else {
                panic!("not a refund signal");
            };
            assert_eq!(
                refund.refunds,
                [RefundLine {
                    reversed: true,
                    ..counted("re_1Nispe2eZvKYlo2Cd31jOCgZ", 1000)
                }],
                "{status} refund counted"
            );
        }
    }
    let charge = patched(
        json_of(sample!("charge.refunded.json")),
        json!({ "refunds": { "data": [
            { "id": "re_ok", "amount": 100, "status": "succeeded" },
            { "id": "re_pending", "amount": 50, "status": "pending" },
            { "id": "re_failed", "amount": 900, "status": "failed" },
        ] } }),
    );
    let Some(Signal::Refund { refund }) = decode(&charge).unwrap() else {
        panic!("not a refund signal");
    };
    assert_eq!(
        refund.refunds,
        vec![
            counted("re_ok", 100),
            counted("re_pending", 50),
            RefundLine {
                reversed: true,
                ..counted("re_failed", 900)
            }
        ]
    );
}

#[test]
fn dispute_created_2020_and_each_status() {
    let opened = json_of(sample!("charge.dispute.created.json"));
    let amount = opened["data"]["object"]["amount"].as_i64();
    let expected = Dispute {
        id: "dp_1MLuxQJDPojXS6LNrukJCBBG".into(),
        charge: some("ch_1IqtGAJDPojXS6LNstgEfUji"),
        payment_intent: some("pi_1IqtG9JDPojXS6LNOGnYrIqq"),
        invoice: None,
        customer: None,
        amount,
        status: DisputeStatus::Open,
    };
    assert_eq!(
        decode(&opened),
        Ok(Some(Signal::Dispute {
            dispute: expected.clone()
        }))
    );
    for (event_type, status, meaning) in [
        (
            "charge.dispute.updated",
            "needs_response",
            DisputeStatus::Open,
        ),
        (
            "charge.dispute.updated",
            "under_review",
            DisputeStatus::Open,
        ),
        (
            "charge.dispute.updated",
            "warning_under_review",
            DisputeStatus::Open,
        ),
        ("charge.dispute.closed", "won", DisputeStatus::Won),
        (
            "charge.dispute.closed",
            "warning_closed",
            DisputeStatus::Won,
        ),
        ("charge.dispute.closed", "prevented", DisputeStatus::Won),
        ("charge.dispute.closed", "lost", DisputeStatus::Lost),
        (
            "charge.dispute.funds_reinstated",
            "under_review",
            DisputeStatus::Won,
        ),
        (
            "charge.dispute.funds_withdrawn",
            "needs_response",
            DisputeStatus::Open,
        ),
    ] {
        let event = patched(
            with_type(opened.clone(), event_type),
            json!({ "status": status }),
        );
        assert_eq!(
            decode(&event),
            Ok(Some(Signal::Dispute {
                dispute: Dispute {
                    status: meaning,
                    ..expected.clone()
                }
            })),
            "{event_type} {status}"
        );
    }
}

#[test]
fn an_async_payment_failure_is_a_failed_checkout() {
    let event = with_type(
        json_of(sample!("checkout.session.completed.json")),
        "checkout.session.async_payment_failed",
    );
    let Some(Signal::CheckoutFailed { session }) = decode(&event).unwrap() else {
        panic!("not a failed checkout");
    };
    assert_eq!(session.mode, CheckoutMode::Payment);
}

#[test]
fn a_pending_update_that_expired_is_not_acted_on() {
    let event = with_type(
        json_of(sample!("customer.subscription.updated.json")),
        "customer.subscription.pending_update_expired",
    );
    assert_eq!(decode(&event), Ok(None));
    assert!(!acts_on("customer.subscription.pending_update_expired"));
}

#[test]
fn signature_vector_payload_is_an_event_we_ignore() {
    let vector = json_of(sample!("signature-vector.async-stripe.json"));
    let payload = vector["payload"].as_str().unwrap();
    let event = parse_event(payload.as_bytes()).unwrap();
    assert_eq!(event.id, "evt_123");
    assert_eq!(event.event_type, "invoiceitem.created");
    assert_eq!(event.created, 1_533_204_620);
    assert_eq!(event.api_version.as_deref(), Some("2017-05-25"));
    assert_eq!(event.object["id"], "ii_123");
    assert_eq!(event.signal(FIELD), Ok(None));
}

// 2025+ shapes.

#[test]
fn invoice_payment_failed_2025() {
    let Some(Signal::InvoicePaymentFailed { invoice }) = decode(&payment_failed_event()).unwrap()
    else {
        panic!("not a failed-invoice signal");
    };
    assert_eq!(
        invoice,
        Invoice {
            id: "in_1234".into(),
            customer: some("cus_1234"),
            subscription: some("sub_1234"),
            billing_reason: some("subscription_cycle"),
            customer_email: some("customer@example.org"),
            customer_name: some("Example Customer"),
            lines: vec![line("price_1234", 1)],
            payment_intent: None,
            charge: None,
            amount_paid: 0,
        }
    );
}

#[test]
fn proration_lines_are_skipped_in_both_eras() {
    let mut old = json_of(sample!("invoice.paid.json"));
    if let Some(line) = old.pointer_mut("/data/object/lines/data/0/proration") {
        *line = json!(true);
    }
    let mut new = payment_failed_event();
    if let Some(line) =
        new.pointer_mut("/data/object/lines/data/0/parent/subscription_item_details/proration")
    {
        *line = json!(true);
    }
    for event in [old, new] {
        let Some(Signal::InvoicePaid { invoice } | Signal::InvoicePaymentFailed { invoice }) =
            decode(&event).unwrap()
        else {
            panic!("not an invoice signal");
        };
        assert!(invoice.lines.is_empty());
    }
}

#[test]
fn invoice_payment_2025_prefers_the_paid_attempt() {
    let event = patched(
        payment_failed_event(),
        json!({ "payments": { "object": "list", "data": [
            { "status": "canceled", "payment": { "type": "payment_intent", "payment_intent": "pi_old" } },
            { "status": "paid", "payment": {
                "type": "payment_intent",
                "payment_intent": { "id": "pi_new", "object": "payment_intent" },
            } },
        ] } }),
    );
    let Some(Signal::InvoicePaymentFailed { invoice }) = decode(&event).unwrap() else {
        panic!("not a failed-invoice signal");
    };
    assert_eq!(invoice.payment_intent, some("pi_new"));
    assert_eq!(invoice.charge, None);
}

#[test]
fn fixture_checkout_session_2026() {
    let event = envelope("checkout.session.completed", fixture("checkout.session"));
    let Some(Signal::CheckoutCompleted { session }) = decode(&event).unwrap() else {
        panic!("not a checkout signal");
    };
    assert_eq!(
        session,
        CheckoutSession {
            id: "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY".into(),
            customer: None,
            mode: CheckoutMode::Payment,
            paid: false,
            subscription: None,
            payment_intent: some("pi_1PgafyB7WZ01zgkWSjxsAJo3"),
            email: some("example@example.com"),
            name: None,
            workspace_id: None,
            amount_total: None,
            line_items: None,
        }
    );
}

#[test]
fn fixture_invoice_2026() {
    let event = envelope("invoice.paid", fixture("invoice"));
    let Some(Signal::InvoicePaid { invoice }) = decode(&event).unwrap() else {
        panic!("not an invoice signal");
    };
    assert_eq!(
        invoice,
        Invoice {
            id: "in_1Pgc6tB7WZ01zgkWu9fdqL6I".into(),
            customer: some("cus_QXg1o8vcGmoR32"),
            // Stripe's placeholder, read from `parent.subscription_details`.
            subscription: some("subscription"),
            billing_reason: some("manual"),
            customer_email: None,
            customer_name: None,
            // The fixture's only line is a proration.
            lines: vec![],
            payment_intent: None,
            charge: None,
            amount_paid: 0,
        }
    );
}

#[test]
fn fixture_subscription_2026() {
    let event = envelope("customer.subscription.paused", fixture("subscription"));
    let Some(Signal::Subscription {
        subscription,
        deleted,
    }) = decode(&event).unwrap()
    else {
        panic!("not a subscription signal");
    };
    assert!(!deleted);
    assert_eq!(
        subscription,
        Subscription {
            id: "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw".into(),
            customer: some("cus_QXg1o8vcGmoR32"),
            status: SubscriptionStatus::Active,
            items: vec![line("price_1PgafmB7WZ01zgkW6dKueIc5", 1)],
            pause_collection: true,
            cancel_at_period_end: true,
            cancel_at: Some(1234567890),
            trial_end: Some(1234567890),
            workspace_id: None,
        }
    );
}

#[test]
fn fixture_charge_refund_and_dispute_2026() {
    let charge = decode(&envelope("charge.refunded", fixture("charge")));
    assert_eq!(
        charge,
        Ok(Some(Signal::Refund {
            refund: Refund {
                customer: None,
                charge: some("ch_1PgafuB7WZ01zgkWXYmPNZs8"),
                payment_intent: None,
                invoice: None,
                charge_amount: Some(100),
                amount_refunded: Some(0),
                refunds: vec![],
            }
        }))
    );
    let refund = decode(&envelope("refund.updated", fixture("refund")));
    assert_eq!(
        refund,
        Ok(Some(Signal::Refund {
            refund: Refund {
                customer: None,
                charge: some("ch_1PgafuB7WZ01zgkWXYmPNZs8"),
                payment_intent: None,
                invoice: None,
                charge_amount: None,
                amount_refunded: None,
                refunds: vec![counted("re_1Pgc72B7WZ01zgkWqPvrRrPE", 100)],
            }
        }))
    );
    let dispute = decode(&envelope("charge.dispute.closed", fixture("dispute")));
    assert_eq!(
        dispute,
        Ok(Some(Signal::Dispute {
            dispute: Dispute {
                id: "dp_1Pgc71B7WZ01zgkWMevJiAUx".into(),
                charge: some("ch_1PgafuB7WZ01zgkWXYmPNZs8"),
                payment_intent: None,
                invoice: None,
                customer: None,
                amount: Some(1000),
                status: DisputeStatus::Open,
            }
        }))
    );
}

#[test]
fn fixture_event_and_other_objects_are_ignored() {
    let event = fixture("event");
    let parsed = parse_event(&serde_json::to_vec(&event).unwrap()).unwrap();
    assert_eq!(parsed.event_type, "plan.created");
    assert_eq!(parsed.created, 1_234_567_890);
    assert_eq!(parsed.object["id"], "price_1PgafmB7WZ01zgkW6dKueIc5");
    assert_eq!(parsed.signal(FIELD), Ok(None));
    for (event_type, resource) in [
        ("payment_intent.succeeded", "payment_intent"),
        ("customer.subscription.trial_will_end", "subscription"),
        ("invoice.finalized", "invoice"),
    ] {
        assert_eq!(decode(&envelope(event_type, fixture(resource))), Ok(None));
    }
}

// Choices the samples do not show.

#[test]
fn checkout_workspace_id_from_custom_field_then_reference_then_metadata() {
    let workspace = |patch: Value| {
        let event = patched(json_of(sample!("checkout.session.completed.json")), patch);
        let Some(Signal::CheckoutCompleted { session }) = decode(&event).unwrap() else {
            panic!("not a checkout signal");
        };
        session.workspace_id
    };
    let metadata = json!({ "uchat_workspace_id": "ws_meta" });
    assert_eq!(workspace(json!({ "metadata": metadata })), some("ws_meta"));
    assert_eq!(
        workspace(json!({ "metadata": metadata, "client_reference_id": " ws_ref " })),
        some("ws_ref")
    );
    for (kind, answer) in [
        ("text", json!({ "value": " ws_text\n" })),
        ("numeric", json!({ "value": "4242" })),
        ("dropdown", json!({ "value": "ws_drop" })),
    ] {
        let custom_fields = json!([
            { "key": "other", "type": "text", "text": { "value": "not this" } },
            { "key": FIELD, "type": kind, kind: answer },
        ]);
        let found = workspace(json!({
            "custom_fields": custom_fields,
            "client_reference_id": "ws_ref",
            "metadata": metadata,
        }));
        let expected = answer["value"].as_str().unwrap().trim().to_owned();
        assert_eq!(found, Some(expected), "{kind} field");
    }
    // A field left blank falls through to the next source.
    let blank = json!([{ "key": FIELD, "type": "text", "text": { "value": "  " } }]);
    assert_eq!(
        workspace(json!({ "custom_fields": blank, "client_reference_id": "ws_ref" })),
        some("ws_ref")
    );
}

#[test]
fn checkout_email_name_and_line_items() {
    let event = patched(
        json_of(sample!("checkout.session.completed.json")),
        json!({
            "mode": "subscription",
            "payment_status": "no_payment_required",
            "customer_details": { "email": "", "name": "   " },
            "customer_email": " buyer@example.com ",
            "subscription": { "id": "sub_expanded", "object": "subscription" },
            "line_items": { "object": "list", "data": [
                { "price": { "id": "price_pro" }, "quantity": 2 },
                { "price": "price_addon" },
                { "description": "no price" },
            ] },
        }),
    );
    let Some(Signal::CheckoutCompleted { session }) = decode(&event).unwrap() else {
        panic!("not a checkout signal");
    };
    assert_eq!(session.mode, CheckoutMode::Subscription);
    assert!(session.paid);
    assert_eq!(session.email, some("buyer@example.com"));
    assert_eq!(session.name, None);
    assert_eq!(session.subscription, some("sub_expanded"));
    assert_eq!(
        session.line_items,
        Some(vec![line("price_pro", 2), line("price_addon", 1)])
    );
}

#[test]
fn expanded_ids_are_accepted() {
    let event = patched(
        json_of(sample!("invoice.paid.json")),
        json!({
            "customer": { "id": "cus_x", "object": "customer" },
            "subscription": { "id": "sub_x", "object": "subscription" },
            "payment_intent": { "id": "pi_x", "object": "payment_intent" },
            "charge": { "id": "ch_x", "object": "charge" },
        }),
    );
    let Some(Signal::InvoicePaid { invoice }) = decode(&event).unwrap() else {
        panic!("not an invoice signal");
    };
    assert_eq!(
        (
            invoice.customer,
            invoice.subscription,
            invoice.payment_intent,
            invoice.charge
        ),
        (some("cus_x"), some("sub_x"), some("pi_x"), some("ch_x"))
    );
}

#[test]
fn subscription_items_statuses_and_flags() {
    let event = patched(
        json_of(sample!("customer.subscription.updated.json")),
        json!({
            "status": "past_due",
            "pause_collection": { "behavior": "void", "resumes_at": null },
            "cancel_at_period_end": true,
            "metadata": { "uchat_workspace_id": "ws_9" },
            "items": { "data": [
                { "plan": { "id": "plan_old" }, "quantity": 3 },
                { "price": "price_metered" },
                { "price": "price_zero", "quantity": 0 },
            ] },
        }),
    );
    let Some(Signal::Subscription { subscription, .. }) = decode(&event).unwrap() else {
        panic!("not a subscription signal");
    };
    assert_eq!(subscription.status, SubscriptionStatus::PastDue);
    assert!(subscription.pause_collection);
    assert!(subscription.cancel_at_period_end);
    assert_eq!(subscription.workspace_id, some("ws_9"));
    assert_eq!(
        subscription.items,
        vec![
            line("plan_old", 3),
            line("price_metered", 1),
            line("price_zero", 0)
        ]
    );
    for (status, expected) in [
        ("incomplete", SubscriptionStatus::Incomplete),
        ("incomplete_expired", SubscriptionStatus::IncompleteExpired),
        ("trialing", SubscriptionStatus::Trialing),
        ("unpaid", SubscriptionStatus::Unpaid),
        ("paused", SubscriptionStatus::Paused),
        ("someday", SubscriptionStatus::Other("someday".into())),
    ] {
        assert_eq!(subscription_status(status), expected);
    }
}

#[test]
fn missing_essentials_are_readable_errors() {
    let unusable = |event: Value| decode(&event).unwrap_err().to_string();
    let no_id = patched(json_of(sample!("invoice.paid.json")), json!({ "id": null }));
    assert_eq!(unusable(no_id), "invoice.paid: data.object.id missing");
    let no_status = patched(
        json_of(sample!("customer.subscription.updated.json")),
        json!({ "status": 7 }),
    );
    assert_eq!(
        unusable(no_status),
        "customer.subscription.updated: data.object.status missing"
    );
    let no_items = patched(
        json_of(sample!("customer.subscription.deleted.json")),
        json!({ "items": [] }),
    );
    assert_eq!(
        unusable(no_items),
        "customer.subscription.deleted: data.object.items.data missing"
    );
    let odd_mode = patched(
        json_of(sample!("checkout.session.completed.json")),
        json!({ "mode": "barter" }),
    );
    assert_eq!(
        unusable(odd_mode),
        r#"checkout.session.completed: data.object.mode "barter" unknown"#
    );
    let bare = json!({ "id": "evt_1", "type": "charge.dispute.created" });
    assert_eq!(
        unusable(bare),
        "charge.dispute.created: data.object.id missing"
    );
}

#[test]
fn garbage_bodies_are_malformed() {
    let bodies: [&[u8]; 12] = [
        b"",
        b"\xff\xfe{}",
        b"{",
        b"null",
        b"\"evt_1\"",
        b"[{\"id\":\"evt_1\",\"type\":\"invoice.paid\"}]",
        b"{}",
        b"{\"type\":\"invoice.paid\"}",
        b"{\"id\":\"evt_1\"}",
        b"{\"id\":1,\"type\":\"invoice.paid\"}",
        b"{\"id\":\"evt_1\",\"type\":[\"invoice.paid\"]}",
        b"{\"id\":\"  \",\"type\":\"invoice.paid\"}",
    ];
    for body in bodies {
        assert!(
            matches!(parse_event(body), Err(DecodeError::Malformed(_))),
            "accepted {:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn nuls_postgres_cannot_store_are_dropped_everywhere() {
    let raw = br#"{"id":"evt_\u00001","type":"customer.subscription.updated","data":{"object":
        {"id":"sub_\u00001","status":"active","customer":"cus_1","items":{"data":[]},
         "metadata":{"k\u0000":"v\u0000"}}}}"#;
    let event = parse_event(raw).unwrap();
    assert_eq!(event.id, "evt_1");
    assert_eq!(event.object["metadata"], json!({"k": "v"}));
    assert_eq!(event.order_links(), ["sub:sub_1"]);
    let stored = storable_json(std::str::from_utf8(raw).unwrap());
    assert!(!stored.contains("\\u0000"));
    assert_eq!(json_of(&stored)["id"], "evt_1");
    // Bodies without the escape are stored as they came.
    let plain = r#"{"id": "evt_1", "type": "x"}"#;
    assert!(matches!(storable_json(plain), Cow::Borrowed(s) if s == plain));
}

#[test]
fn ids_longer_than_stripe_ids_are_not_ids() {
    let long = "x".repeat(MAX_ID_BYTES + 1);
    let body = json!({"id": format!("evt_{long}"), "type": "invoice.paid"});
    assert!(matches!(
        parse_event(body.to_string().as_bytes()),
        Err(DecodeError::Malformed(_))
    ));
    let event = envelope(
        "customer.subscription.updated",
        json!({"id": long, "status": "active", "customer": long, "items": {"data": []}}),
    );
    assert!(matches!(decode(&event), Err(DecodeError::Unusable { .. })));
}

#[test]
fn types_that_are_no_stripe_event_type_are_malformed() {
    let long = format!("invoice.{}", "p".repeat(MAX_TYPE_BYTES));
    for event_type in [
        long.as_str(),
        "Invoice.Paid",
        "invoice paid",
        "invoice\npaid",
        "ünicode",
        "a\"b",
    ] {
        let body = json!({"id": "evt_1", "type": event_type});
        assert!(
            matches!(
                parse_event(body.to_string().as_bytes()),
                Err(DecodeError::Malformed(_))
            ),
            "accepted {event_type:?}"
        );
    }
    for event_type in [
        "invoice.paid",
        "checkout.session.async_payment_succeeded",
        "v1.billing.meter.error_report_triggered",
        &"a".repeat(MAX_TYPE_BYTES),
    ] {
        let body = json!({"id": "evt_1", "type": event_type});
        assert_eq!(
            parse_event(body.to_string().as_bytes()).unwrap().event_type,
            event_type
        );
    }
}

#[test]
fn odd_envelopes_still_parse() {
    let event = parse_event(
        br#"{"id":"evt_1","type":"whatever","created":"yesterday","livemode":"yes","data":7}"#,
    )
    .unwrap();
    assert_eq!((event.created, event.livemode), (0, false));
    assert_eq!(event.api_version, None);
    assert_eq!(event.object, Value::Null);
    assert_eq!(event.signal(FIELD), Ok(None));
}

/// Every sample and fixture, as an event, plus variants that reach the branches the
/// samples leave cold (custom fields, line items, invoice payments).
fn corpus() -> Vec<Value> {
    let mut events: Vec<Value> = [
        sample!("checkout.session.completed.json"),
        sample!("invoice.paid.json"),
        sample!("customer.subscription.updated.json"),
        sample!("customer.subscription.deleted.json"),
        sample!("charge.refunded.json"),
        sample!("refund.created.json"),
        sample!("charge.dispute.created.json"),
    ]
    .into_iter()
    .map(json_of)
    .collect();
    events.push(payment_failed_event());
    events.push(json_of(
        json_of(sample!("signature-vector.async-stripe.json"))["payload"]
            .as_str()
            .unwrap(),
    ));
    events.push(fixture("event"));
    for (event_type, resource) in [
        ("checkout.session.completed", "checkout.session"),
        ("invoice.paid", "invoice"),
        ("customer.subscription.updated", "subscription"),
        ("charge.refunded", "charge"),
        ("refund.created", "refund"),
        ("charge.dispute.closed", "dispute"),
    ] {
        events.push(envelope(event_type, fixture(resource)));
    }
    events.push(patched(
        json_of(sample!("checkout.session.completed.json")),
        json!({
            "custom_fields": [
                { "key": FIELD, "text": { "value": "ws" }, "numeric": { "value": "1" },
                  "dropdown": { "value": "d" } },
            ],
            "line_items": { "data": [{ "price": { "id": "price_1" }, "quantity": 1 }] },
        }),
    ));
    events.push(patched(
        payment_failed_event(),
        json!({ "payments": { "data": [
            { "status": "paid", "payment": { "payment_intent": "pi_1", "charge": "ch_1" } },
        ] } }),
    ));
    events
}

/// JSON pointers to every node of `v`, `v` itself included.
fn pointers(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (key, child) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                pointers(child, &format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at.to_owned());
}

fn wrong_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(u64::MAX),
        json!(1.5e300),
        json!(""),
        json!("  "),
        json!("x"),
        json!([]),
        json!([null, 1, "x"]),
        json!({}),
        json!({ "id": 5, "data": "x" }),
    ]
}

/// Decodes whatever it is given, under its own type: errors are fine, panics are not.
fn survive(event: &Value) {
    if let Ok(parsed) = parse_event(&serde_json::to_vec(event).unwrap()) {
        let _ = parsed.signal(FIELD);
    }
}

/// Deterministic fuzzing: each node of each corpus event, in turn, replaced by each
/// value of the wrong kind.
#[test]
fn every_field_mutated_never_panics() {
    for event in corpus() {
        let parsed = parse_event(&serde_json::to_vec(&event).unwrap()).unwrap();
        let mut paths = Vec::new();
        pointers(&event, "", &mut paths);
        for path in &paths {
            for wrong in wrong_values() {
                // Nodes inside `data.object` are mutated in the parsed event: re-parsing
                // the whole body for each would make this test several times slower.
                if let Some(inner) = path.strip_prefix("/data/object") {
                    let mut mutated = parsed.clone();
                    if let Some(node) = mutated.object.pointer_mut(inner) {
                        *node = wrong;
                    }
                    let _ = mutated.signal(FIELD);
                } else {
                    let mut mutated = event.clone();
                    if let Some(node) = mutated.pointer_mut(path) {
                        *node = wrong;
                    }
                    survive(&mutated);
                }
            }
        }
    }
}

/// Every top-level field of the object wrong at once, under every type we act on.
/// Non-empty strings are left out: they would make a valid id.
#[test]
fn all_fields_wrong_at_once_is_an_error() {
    let wrong_values: Vec<Value> = wrong_values()
        .into_iter()
        .filter(|v| text(v).is_none())
        .collect();
    for event in corpus() {
        for wrong in &wrong_values {
            let mut mutated = event.clone();
            if let Some(object) = mutated["data"]["object"].as_object_mut() {
                object.values_mut().for_each(|v| *v = wrong.clone());
            }
            for event_type in ACTED_ON {
                let result = decode(&with_type(mutated.clone(), event_type));
                assert!(result.is_err(), "{event_type} decoded {result:?}");
            }
        }
    }
}

/// Every object under every type we act on: a charge read as a subscription and so on.
#[test]
fn objects_under_the_wrong_type_never_panic() {
    for event in corpus() {
        for event_type in ACTED_ON {
            survive(&with_type(event.clone(), event_type));
        }
    }
}
