//! Wiring: from a validated `Config` to a running service.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::backfill::{self, Backfill};
use crate::config::{Config, BIND_ADDR, DATABASE_URL};
use crate::db::Pools;
use crate::delivery::Worker;
use crate::http::{self, AppState, Console, ServerLimits, Storefront};
use crate::intake::{Committer, GroupCommit};
use crate::metrics::Metrics;
use crate::partner::PartnerClient;
use crate::processor::Processor;
use crate::reconcile::Reconciler;
use crate::start_error::{listen, StartError};

/// Batches of events applied at once. An order's events still apply one at a time, in order.
const PROCESSOR_LOOPS: usize = 4;

pub struct Application {
    listener: TcpListener,
    state: AppState,
    limits: ServerLimits,
    /// Stores the webhooks the server hands to `state.intake`.
    committer: Committer,
    /// The processor's and delivery's pool.
    work_db: PgPool,
    processor: Processor,
    worker: Option<Worker>,
    /// The partner whose credit is read into its gauge, and how often.
    credit_poll: Option<(PartnerClient, Duration)>,
    /// `serve`'s own backfill and how often it runs, with `STRIPE_API_KEY`.
    backfill: Option<(Backfill, Duration)>,
    background_work: bool,
    /// How often the whole reconciliation runs; `None`: never by itself.
    reconcile_every: Option<std::time::Duration>,
}

impl Application {
    /// Binds the listener and prepares the database (when it answers). A port in use and
    /// a database that cannot be reached are both reported, as a [`StartError`].
    pub async fn build(config: &Config) -> anyhow::Result<Application> {
        let listener = listen(BIND_ADDR.name, config.bind_addr).await;
        let prepared = crate::db::prepare(&config.database_url)
            .await
            .map_err(|error| StartError::database(DATABASE_URL.name, &config.database_url, &error));
        match (listener, prepared) {
            (Ok(listener), Ok(())) => Application::with_listener(config, listener),
            (listener, prepared) => Err(StartError::all([listener.err(), prepared.err()])
                .expect("one of them failed")
                .into()),
        }
    }

    /// Binds the listener over pools that connect on first use, without touching the
    /// database.
    pub async fn connect(config: &Config) -> anyhow::Result<Application> {
        let listener = listen(BIND_ADDR.name, config.bind_addr).await?;
        Application::with_listener(config, listener)
    }

    /// The application on a listener the caller bound, over pools that connect on first
    /// use.
    pub fn with_listener(config: &Config, listener: TcpListener) -> anyhow::Result<Application> {
        let delivery_connections = config
            .delivery
            .as_ref()
            .map_or(0, |delivery| delivery.settings.concurrency);
        // One for each processor loop and each call in flight; one for the worker's own
        // claims, one for folding the status counts and one for the backfill.
        let work_connections = (PROCESSOR_LOOPS + delivery_connections + 3) as u32;
        let pools = Pools::new(&config.database_url, &config.limits.pools, work_connections)?;
        if config.admin_token.is_none() {
            tracing::warn!(
                "ADMIN_TOKEN is not set: admin disabled (/admin/... and /metrics answer 503)"
            );
        }
        let processor = Processor::new(
            pools.work.clone(),
            config.catalog.clone(),
            config.stripe_api.clone(),
            config.settle,
        );
        let metrics = Arc::new(Metrics::default());
        let worker = config.delivery.as_ref().map(|delivery| {
            Worker::new(
                pools.work.clone(),
                delivery.partner.clone(),
                delivery.settings.clone(),
                metrics.clone(),
            )
        });
        let reconciler = Reconciler::of(config)?;
        let backfill = config
            .stripe_api
            .clone()
            .zip(config.backfill_every)
            .map(|(stripe, every)| (Backfill::new(pools.work.clone(), stripe), every));
        let limits = config.limits.server.clone();
        let store =
            config
                .store
                .clone()
                .zip(config.stripe_api.clone())
                .map(|(settings, stripe)| {
                    Storefront::new(
                        settings,
                        config.catalog.clone(),
                        stripe,
                        config.delivery.as_ref().map(|d| d.partner.clone()),
                        pools.admin.clone(),
                    )
                });
        let (intake, committer) = GroupCommit::new(
            pools.intake.clone(),
            processor.arrivals(),
            limits.webhook_concurrency,
        );
        let state = AppState {
            intake_db: pools.intake,
            intake,
            webhook_slots: Arc::new(Semaphore::new(limits.webhook_concurrency)),
            webhook_secrets: config.webhook_secrets.clone().into(),
            admin_token: config.admin_token.clone(),
            metrics_public: config.metrics_public,
            metrics,
            console: config
                .admin_token
                .as_ref()
                .map(|token| Arc::new(Console::new(token, config.console_secure_cookie))),
            paid_not_provisioned_after: config.paid_not_provisioned_after,
            // Dry runs read through the admin pool, not the processor's.
            processor: processor.reading_from(pools.admin.clone()),
            admin_db: pools.admin,
            store,
            reconciler,
            uchat_webhook_token: config.uchat_webhook_token.clone(),
        };
        Ok(Application {
            listener,
            state,
            limits,
            committer,
            work_db: pools.work,
            processor,
            worker,
            credit_poll: config
                .delivery
                .as_ref()
                .filter(|_| !config.credit_poll.is_zero())
                .map(|delivery| (delivery.partner.clone(), config.credit_poll)),
            backfill,
            background_work: config.background_work,
            reconcile_every: config.reconcile.every,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The process's metrics, for the workers that record into them.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// The event processor this application runs, for tests and commands that drive it.
    pub fn processor(&self) -> Processor {
        self.processor.clone()
    }

    /// The delivery worker, when partner delivery is configured.
    pub fn worker(&self) -> Option<Worker> {
        self.worker.clone()
    }

    /// Serves HTTP (and runs the background work) until `shutdown` resolves. Then it
    /// stops accepting, and gives requests in progress, the current events and calls in
    /// flight the shutdown grace period to finish; what is left then is cut off (an event
    /// stays pending, a call is taken back when its lease expires).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        tracing::info!(addr = %self.local_addr(), "listening");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // Not stopped with the rest: it ends once the server (and so every webhook that
        // could still arrive) is gone, having answered what it was given.
        let intake = tokio::spawn(self.committer.run());
        let mut tasks = tokio::task::JoinSet::new();
        // Every instance serves /metrics, intake-only ones too.
        if let Some((partner, every)) = self.credit_poll {
            let metrics = self.state.metrics.clone();
            tasks.spawn(crate::credit::poll(
                partner,
                metrics,
                every,
                stopped.clone(),
            ));
        }
        if self.background_work {
            tasks.spawn(crate::db::stats::keep_folded(
                self.work_db.clone(),
                stopped.clone(),
            ));
            tracing::info!(
                loops = PROCESSOR_LOOPS,
                settle_ms = self.processor.settle().as_millis() as u64,
                "event processor started"
            );
            for _ in 0..PROCESSOR_LOOPS {
                tasks.spawn(self.processor.clone().run(stopped.clone()));
            }
            if let (Some(reconciler), Some(every)) = (&self.state.reconciler, self.reconcile_every)
            {
                tracing::info!(every_s = every.as_secs(), "periodic reconciliation started");
                tasks.spawn(reconciler.clone().run_every(every, stopped.clone()));
            }
            match self.worker {
                Some(worker) => {
                    tasks.spawn(worker.run(stopped.clone()));
                }
                None => tracing::warn!(
                    "UCHAT_API_TOKEN is not set: partner calls are planned but not delivered"
                ),
            }
            if let Some((backfill, every)) = self.backfill {
                tasks.spawn(backfill::keep_backfilling(
                    backfill,
                    every,
                    self.state.metrics.clone(),
                    self.processor.arrivals(),
                    stopped.clone(),
                ));
            }
        }
        let grace = self.limits.shutdown_grace;
        let router = http::router(self.state, &self.limits);
        let signal = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        let background = async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|stopped| *stopped).await;
            let drained =
                tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
                    .await;
            if drained.is_err() {
                tracing::warn!(
                    "background work still running when the shutdown grace period ended; cut off"
                );
            }
        };
        tokio::join!(
            http::serve(self.listener, router, &self.limits, signal),
            background
        );
        if tokio::time::timeout(grace, intake).await.is_err() {
            tracing::warn!("webhooks still being stored when the shutdown grace period ended");
        }
        tracing::info!("stopped");
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not
/// when the future is first polled, so a signal sent as soon as the service says it is
/// listening is not lost (nor kills the process, as an unhandled SIGTERM would).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).expect("installing the SIGINT handler"),
            signal(SignalKind::terminate()).expect("installing the SIGTERM handler"),
        )
    };
    async move {
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received; finishing in-flight requests");
    }
}
