//! Hostile clients and heavy operators: slow clients are cut off by the timeouts, the
//! connection cap keeps the process within its file descriptors, shutdown has a deadline,
//! and neither an admin flood nor a slow Stripe API makes a webhook wait.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::service::{serve_env, ServiceProcess};
use common::*;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uchat_billing::secret::Secret;
use uchat_billing::stripe::api::StripeApi;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `host:port` of an `http://host:port` address.
fn socket_address(address: &str) -> &str {
    address.trim_start_matches("http://")
}

/// A head that never ends: one more byte of a header value every 200 ms.
const SLOW_HEAD: &[u8] = b"POST /webhooks/stripe HTTP/1.1\r\nHost: billing\r\nX-Slow: ";
/// A complete head announcing a body that then comes one byte every 200 ms.
const SLOW_BODY: &[u8] =
    b"POST /webhooks/stripe HTTP/1.1\r\nHost: billing\r\nContent-Length: 1000\r\n\r\n{";

/// What a client that sends `start`, then one byte every 200 ms (50 at most), got back,
/// and how long the service took to close the connection (`None`: open after `within`).
async fn trickle(address: &str, start: &[u8], within: Duration) -> (String, Option<Duration>) {
    let stream = TcpStream::connect(socket_address(address)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    write.write_all(start).await.unwrap();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if write.write_all(b"x").await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buffer = [0; 1024];
        while let Ok(read @ 1..) = read.read(&mut buffer).await {
            answer.extend_from_slice(&buffer[..read]);
        }
    })
    .await
    .is_ok();
    writer.abort();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    (answer, closed.then(|| started.elapsed()))
}

/// A signed event of its own id, as Stripe would post it.
fn event(n: usize) -> Vec<u8> {
    envelope(
        &format!("evt_limits_{n}"),
        "invoice.paid",
        now(),
        json!({"id": format!("in_limits_{n}"), "object": "invoice"}),
    )
}

#[tokio::test]
async fn slow_heads_and_slow_bodies_are_cut_off_while_a_webhook_goes_through() {
    let app = spawn_app_with(|config| {
        config.limits.server.header_timeout = Duration::from_secs(1);
        config.limits.server.body_timeout = Duration::from_secs(1);
    })
    .await;
    let within = Duration::from_secs(8);
    let slow = (0..4)
        .map(|_| trickle(&app.address, SLOW_HEAD, within))
        .chain((0..4).map(|_| trickle(&app.address, SLOW_BODY, within)));
    let (slow, webhook) = tokio::join!(join_all(slow), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.post_stripe_event(&event(1)).await.status()
    });
    assert_eq!(webhook, StatusCode::OK);
    assert_eq!(app.event_count().await, 1);
    for (n, (answer, closed_after)) in slow.iter().enumerate() {
        let closed_after = closed_after.unwrap_or_else(|| panic!("connection {n} still open"));
        assert!(
            closed_after >= Duration::from_millis(800),
            "{closed_after:?}"
        );
        if n >= 4 {
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
            assert!(
                answer.contains("request body not received in time"),
                "{answer}"
            );
        }
    }
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_keep_alive_time() {
    let app = spawn_app_with(|config| {
        config.limits.server.keep_alive = Some(Duration::from_secs(1));
    })
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: billing\r\n\r\n";
    let mut stream = TcpStream::connect(socket_address(&app.address))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let answered = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut answer))
        .await
        .expect("the idle connection is closed")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    let idle = answered.elapsed();
    assert!(idle >= Duration::from_millis(900), "{idle:?}");
}

#[tokio::test]
async fn past_the_cap_connections_wait_without_taking_descriptors_and_are_served_later() {
    const LIMIT: u64 = 320;
    const CAP: usize = 32;
    let database = fresh_database().await;
    let mut env = serve_env(&database.url);
    env.extend([
        ("MAX_CONNECTIONS", CAP.to_string()),
        // Only the cap, not a timeout, is what these idle connections meet.
        ("HTTP_HEADER_TIMEOUT_SECS", "60".into()),
    ]);
    let service = ServiceProcess::start_with_open_file_limit(&env, LIMIT).await;
    let descriptors =
        || std::fs::read_dir(format!("/proc/{}/fd", service.pid())).map_or(0, |fds| fds.count());
    let before = descriptors();

    // Past the cap, within the listen backlog.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(
            TcpStream::connect(socket_address(&service.address))
                .await
                .unwrap(),
        );
    }
    // A request past the cap waits in the backlog...
    let client = reqwest::Client::new();
    let health = format!("{}/healthz", service.address);
    let waiting = tokio::spawn({
        let (client, health) = (client.clone(), health.clone());
        async move {
            let sent = Instant::now();
            let status = client.get(&health).send().await.map(|r| r.status());
            (status, sent.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!waiting.is_finished(), "a request past the cap was served");
    // Besides the connections, the service may still open database connections: its
    // pools hold 18 at most.
    let held = descriptors();
    assert!(
        held <= before + CAP + 18 && (held as u64) < LIMIT,
        "{held} descriptors open, {before} before 300 connections, cap {CAP}"
    );

    // ...and is served once the others close.
    drop(idle);
    let (status, waited) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served once the idle connections closed")
        .unwrap();
    assert_eq!(status.unwrap(), StatusCode::OK);
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert_eq!(client.get(&health).send().await.unwrap().status(), 200);
    let log = std::fs::read_to_string(&service.log).unwrap();
    assert!(!log.contains("Too many open files"), "{log}");
}

#[tokio::test]
async fn sigterm_with_half_sent_requests_exits_within_the_grace_period() {
    let database = fresh_database().await;
    let mut env = serve_env(&database.url);
    env.extend([
        ("SHUTDOWN_GRACE_SECS", "2".into()),
        // The clients outlast the grace period: only it can end them.
        ("HTTP_HEADER_TIMEOUT_SECS", "60".into()),
        ("HTTP_BODY_TIMEOUT_SECS", "60".into()),
    ]);
    let mut service = ServiceProcess::start(&env).await;
    let mut half_sent = Vec::new();
    for start in [SLOW_HEAD, SLOW_BODY, SLOW_HEAD, SLOW_BODY] {
        let mut stream = TcpStream::connect(socket_address(&service.address))
            .await
            .unwrap();
        stream.write_all(start).await.unwrap();
        half_sent.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let signalled = Instant::now();
    service.terminate();
    let mut refused = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        refused = TcpStream::connect(socket_address(&service.address))
            .await
            .is_err();
        if refused {
            break;
        }
    }
    assert!(refused, "new connections are refused once shutdown starts");
    let status = service
        .exit_within(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", service.log_tail()));
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", service.log_tail());
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(6)).contains(&took),
        "exited {took:?} after SIGTERM, with a 2 s grace period"
    );
    drop(half_sent);
}

#[tokio::test]
async fn an_admin_flood_and_a_slow_stripe_api_do_not_make_webhooks_wait() {
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/v1/customers/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "cus_slow", "object": "customer", "email": null}))
                .set_delay(Duration::from_secs(2)),
        )
        .mount(&stripe)
        .await;
    let app = Arc::new(
        spawn_app_with(|config| {
            config.stripe_api = Some(StripeApi::new(&stripe.uri(), Secret::new("sk_test_x")));
        })
        .await,
    );
    // A dry run of an event whose buyer has no email reads the customer from Stripe.
    let dry_run_body = envelope(
        "evt_dry",
        "customer.subscription.updated",
        now(),
        json!({"id": "sub_slow", "object": "subscription", "customer": "cus_slow",
               "status": "active", "items": {"data": [{"price": {"id": "price_business"}, "quantity": 1}]}}),
    );
    let flood = (0..16)
        .map(|_| {
            let (app, body) = (app.clone(), dry_run_body.clone());
            tokio::spawn(async move {
                let request = app.admin_request(Method::POST, "/admin/dry-run").body(body);
                request.send().await.unwrap().status()
            })
        })
        .chain((0..40).map(|n| {
            let app = app.clone();
            tokio::spawn(async move {
                let path = format!("/admin/orders?email=buyer{n}@example.com");
                app.admin_request(Method::GET, &path)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        }))
        .collect::<Vec<_>>();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let webhooks = join_all((0..20).map(|n| {
        let app = app.clone();
        async move {
            let sent = Instant::now();
            let status = app.post_stripe_event(&event(n)).await.status();
            (status, sent.elapsed())
        }
    }))
    .await;
    for (status, took) in &webhooks {
        assert_eq!(*status, StatusCode::OK);
        assert!(*took < Duration::from_secs(2), "a webhook took {took:?}");
    }
    assert_eq!(app.event_count().await, 20);

    let mut admin_answers = Vec::new();
    for request in flood {
        admin_answers.push(request.await.unwrap());
    }
    assert!(
        admin_answers
            .iter()
            .all(|status| [200, 503].contains(&status.as_u16())),
        "{admin_answers:?}"
    );
    assert!(admin_answers.contains(&StatusCode::OK), "{admin_answers:?}");
}

#[tokio::test]
async fn webhooks_past_the_concurrency_limit_or_the_request_timeout_get_503_and_retry_after() {
    let app = spawn_app_with(|config| {
        config.limits.server.webhook_concurrency = 2;
        config.limits.server.request_timeout = Duration::from_secs(2);
    })
    .await;
    let app = Arc::new(app);
    // Intake cannot store anything while the table is locked: two webhooks wait in hand.
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let in_hand: Vec<_> = (1..=2)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move { app.post_stripe_event(&event(n)).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        if waiting == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the webhooks never reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let shed = app.post_stripe_event(&event(3)).await;
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers()["retry-after"], "2");
    assert_eq!(
        shed.json::<serde_json::Value>().await.unwrap()["error"],
        "too busy; retry later"
    );

    for waited in in_hand {
        let answer = waited.await.unwrap();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.headers()["retry-after"], "2");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "request timed out; retry later");
    }
    lock.rollback().await.unwrap();

    // Stripe retries: every event is stored once.
    for n in 1..=3 {
        assert_eq!(app.post_stripe_event(&event(n)).await.status(), 200);
    }
    assert_eq!(app.event_count().await, 3);
}
