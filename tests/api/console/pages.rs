//! The pages over plain HTTP: the search, the order timeline, the actions and the
//! overview, with the admin API's data.

use super::*;

fn has(answer: &Answer, text: &str) -> bool {
    answer.body.contains(text)
}

#[tokio::test]
async fn the_search_finds_an_order_by_any_of_its_keys() {
    let (app, _sandbox) = app_with_refusing_partner().await;
    app.expect_dead_calls();
    app.expect_unfinished_calls();
    let ada = sale_of(&app, &Buyer::story(), "evt_ada").await;
    let other = sale_of(&app, &Buyer::numbered(1), "evt_other").await;
    let operator = Operator::signed_in(&app).await;
    let link = |order: i64| format!(r#"href="/console/orders/{order}""#);

    for q in [
        "ADA@example.com",
        "cus_story",
        "sub_story",
        "cs_story_subscription",
    ] {
        let answer = operator.get(&format!("/console/orders?q={q}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{q}");
        assert!(has(&answer, &link(ada)), "{q} finds Ada's order");
        assert!(!has(&answer, &link(other)), "{q} finds only Ada's order");
    }
    let needing = operator.get("/console/orders?status=needs_attention").await;
    assert!(has(&needing, &link(ada)) && has(&needing, &link(other)));
    assert!(
        has(&needing, "create failed"),
        "the attention reason is shown"
    );
    let none = operator.get("/console/orders?q=nobody@example.com").await;
    assert!(has(&none, "No orders match."));

    sqlx::query("UPDATE orders SET workspace_id = 4242 WHERE id = $1")
        .bind(other)
        .execute(&app.db)
        .await
        .unwrap();
    let by_workspace = operator.get("/console/orders?q=4242").await;
    assert!(has(&by_workspace, &link(other)) && !has(&by_workspace, &link(ada)));

    let bad = operator.get("/console/orders?status=lost").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(has(&bad, "<!DOCTYPE html>"), "errors are pages too");
}

/// The href of the page's link to the next page, if it has one.
fn next_page(answer: &Answer) -> Option<String> {
    let (before, _) = answer.body.split_once(r#"" rel="next""#)?;
    let (_, href) = before.rsplit_once(r#"href=""#)?;
    Some(href.replace("&amp;", "&"))
}

#[tokio::test]
async fn the_order_list_pages_through_every_order_once() {
    let app = spawn_app().await;
    sqlx::query(
        "INSERT INTO orders (email, status)
         SELECT 'bulk@example.com', 'active' FROM generate_series(1, 120)",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let operator = Operator::signed_in(&app).await;
    let mut seen: Vec<i64> = Vec::new();
    let mut pages = 0;
    let mut path = Some("/console/orders?q=bulk@example.com&status=active".to_owned());
    while let Some(current) = path {
        let answer = operator.get(&current).await;
        pages += 1;
        seen.extend(
            answer
                .body
                .split(r#"href="/console/orders/"#)
                .skip(1)
                .map(|rest| rest.split('"').next().unwrap().parse::<i64>().unwrap()),
        );
        path = next_page(&answer);
    }
    assert_eq!(pages, 3, "50 orders a page");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (120, 120));
}

#[tokio::test]
async fn the_order_page_shows_facts_timeline_and_tries() {
    let (app, _sandbox) = app_with_refusing_partner().await;
    app.expect_dead_calls();
    app.expect_unfinished_calls();
    let order = sale_of(&app, &Buyer::story(), "evt_ada").await;
    let operator = Operator::signed_in(&app).await;
    let page = operator.get(&format!("/console/orders/{order}")).await;
    assert_eq!(page.status, StatusCode::OK);
    for text in [
        "ada@example.com",
        "cus_story",
        "sub:sub_story",
        "checkout.session.completed",
        "customer.subscription.created",
        "evt_ada_checkout",
        "Partner call 1",
        "Tries of call",
        "422",
        "Retry call",
        "Cancel call",
        "Provisioned in UChat",
    ] {
        assert!(has(&page, text), "{text} missing");
    }
    let missing = operator.get("/console/orders/999999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(has(&missing, "order 999999 not found"));
}

#[tokio::test]
async fn dead_calls_are_retried_in_bulk_only_after_the_confirmation() {
    let (app, sandbox) = app_with_refusing_partner().await;
    app.expect_dead_calls();
    let ada = sale_of(&app, &Buyer::story(), "evt_ada").await;
    let bob = sale_of(&app, &Buyer::numbered(1), "evt_bob").await;
    let dead = [
        calls_of(&app, ada, "dead").await,
        calls_of(&app, bob, "dead").await,
    ]
    .concat();
    assert_eq!(dead.len(), 2);
    let operator = Operator::signed_in(&app).await;

    let list = operator.get("/console/calls?status=dead").await;
    for call in &dead {
        assert!(has(&list, &format!(r#"name="call" value="{call}""#)));
    }
    let selection = format!("/console/calls/retry?call={}&call={}", dead[0], dead[1]);
    let confirmation = operator.get(&selection).await;
    assert_eq!(confirmation.status, StatusCode::OK);
    assert!(has(&confirmation, "Retry 2 calls"));
    assert_eq!(
        calls_of(&app, ada, "dead").await.len(),
        1,
        "nothing changes before the confirmation"
    );

    let (first, second) = (dead[0].to_string(), dead[1].to_string());
    let done = operator
        .submit(
            &selection,
            "/console/calls/retry",
            &[("call", &first), ("call", &second)],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(has(&done, "Pending again: 2 calls."));
    let again = operator
        .submit(&selection, "/console/calls/retry", &[("call", &first)])
        .await;
    assert!(has(&again, "Pending again: 0 calls.") && has(&again, "is pending"));

    sandbox.set_faults(Faults::default());
    app.deliver_all().await;
    for order in [ada, bob] {
        assert_eq!(app.order_status(Some(order)).await.0, "active");
    }
}

#[tokio::test]
async fn an_event_that_left_its_order_needing_attention_is_reprocessed() {
    let app = spawn_app().await;
    app.post_stripe_events(&story::subscription_sale(
        &Buyer::story(),
        "evt_ada",
        now() - 60,
        &[("price_unknown", 1)],
    ))
    .await;
    app.process_events().await;
    let (order, event): (i64, i64) = sqlx::query_as(
        "SELECT order_id, max(id) FROM events WHERE order_id IS NOT NULL GROUP BY order_id",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let operator = Operator::signed_in(&app).await;
    let page = format!("/console/orders/{order}");
    assert!(has(&operator.get(&page).await, "Reprocess event"));
    let answer = operator
        .submit(&page, &format!("/console/events/{event}/reprocess"), &[])
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        answer.location(),
        Some(format!("{page}#event-{event}").as_str())
    );
    let refused = operator
        .submit(&page, &format!("/console/events/{event}/reprocess"), &[])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(has(&refused, "is pending"));
    app.process_events().await;
}

/// Three days of traffic and more: 30,000 events and 30,000 delivered calls over 100
/// hours, each a few seconds off an hour's boundary (so none crosses the window's edge
/// while the test runs). The charts count only their window.
#[tokio::test]
async fn the_overview_charts_the_last_three_days_at_volume() {
    let app = spawn_app().await;
    sqlx::query(
        "WITH orders AS (INSERT INTO orders (status) VALUES ('active') RETURNING id)
         INSERT INTO partner_calls (order_id, position, kind, body, status, created_at, finished_at)
         SELECT (SELECT id FROM orders), n, 'pause', 'null', 'succeeded',
                date_trunc('hour', now()) - make_interval(secs => n * 12 + 6 + n % 40),
                date_trunc('hour', now()) - make_interval(secs => n * 12 + 6)
         FROM generate_series(1, 30000) n",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO events (stripe_event_id, event_type, api_version, livemode, stripe_created,
                             raw_body, payload, status, received_at)
         SELECT 'evt_' || n, 'invoice.paid', '2025-03-31.basil', false, 0, '{}', '{}', 'ignored',
                date_trunc('hour', now()) - make_interval(secs => n * 12 + 6)
         FROM generate_series(1, 30000) n",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&app.db).await.unwrap();
    let in_window: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events
         WHERE received_at >= date_trunc('hour', now()) - interval '71 hours'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();

    let operator = Operator::signed_in(&app).await;
    let overview = operator.get("/console").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(has(
        &overview,
        &format!("Stripe events received per hour: {in_window} in all")
    ));
    assert!(has(
        &overview,
        &format!("Partner calls succeeded per hour: {in_window} in all")
    ));
    assert!(has(
        &overview,
        &format!("Time from planned to succeeded (calls): {in_window} in all")
    ));
    assert!(
        has(&overview, "unknown"),
        "no partner configured: the credit is unknown"
    );
}

/// The credit is the polled gauge's last read: a page load never waits on UChat.
#[tokio::test]
async fn the_overview_shows_the_partner_credit_and_what_is_stuck() {
    let refuse = Faults {
        fail_rate: 1.0,
        fail_status: 422,
        ..Faults::default()
    };
    let (base, sandbox) = spawn_sandbox(refuse).await;
    let delivery = delivery_to(&base);
    let app = spawn_app_with(move |config| {
        config.delivery = Some(delivery);
        config.credit_poll = std::time::Duration::from_millis(50);
    })
    .await;
    app.expect_dead_calls();
    app.expect_unfinished_calls();
    sale_of(&app, &Buyer::story(), "evt_ada").await;
    let operator = Operator::signed_in(&app).await;
    sandbox.set_faults(Faults::default());
    sandbox.set_credit(1234.5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let overview = loop {
        let overview = operator.get("/console").await;
        if has(&overview, "1234.50") {
            break overview;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the credit never showed: {}",
            overview.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(has(
        &overview,
        r#"<a href="/console/calls?status=dead">1</a>"#
    ));
}

/// An order's page reconciles it with UChat: a workspace changed by hand shows as drift,
/// and the repair it offers queues the corrective calls, which the worker delivers.
#[tokio::test]
async fn an_order_page_reconciles_and_repairs_through_the_queue() {
    let (base, sandbox) = spawn_sandbox(Faults::default()).await;
    let app = spawn_app_delivering_to(&base).await;
    app.run_events(&story::story_sale(&[("price_business", 1)]))
        .await;
    let order: i64 = sqlx::query_scalar("SELECT id FROM orders")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let workspace = sandbox.workspaces()[0].id;
    assert!(sandbox.edit_workspace(workspace, |w| w.plan = "free".into()));
    let operator = Operator::signed_in(&app).await;
    let page = format!("/console/orders/{order}");
    let action = format!("/console/orders/{order}/reconcile");
    assert!(has(&operator.get(&page).await, &action));

    let report = operator.submit(&page, &action, &[]).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    assert!(has(&report, "1 drift"), "{}", report.body);
    assert!(
        has(&report, "<td>plan</td><td>UChat</td>"),
        "{}",
        report.body
    );
    assert!(has(&report, "Repair UChat through the queue"));
    assert_eq!(
        sandbox.workspaces()[0].plan,
        "free",
        "a report changes nothing"
    );

    let repaired = operator.submit(&page, &action, &[("repair", "true")]).await;
    assert!(
        has(&repaired, "Queued to repair: change-plan"),
        "{}",
        repaired.body
    );
    app.deliver_all().await;
    assert_eq!(sandbox.workspaces()[0].plan, "business");
    let again = operator.submit(&page, &action, &[]).await;
    assert!(has(&again, "Stripe and UChat agree"), "{}", again.body);
}
