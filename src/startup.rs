//! Wiring: from a validated `Config` to a running service.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::{Config, BIND_ADDR, DATABASE_URL};
use crate::delivery::Worker;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::processor::Processor;
use crate::start_error::{listen, StartError};

/// Connections the service keeps; intake holds one only for a single INSERT.
const POOL_SIZE: u32 = 10;
/// Events applied at once. An order's events still apply one at a time, in order.
const PROCESSOR_LOOPS: usize = 4;

pub struct Application {
    listener: TcpListener,
    state: AppState,
    processor: Processor,
    worker: Option<Worker>,
    background_work: bool,
}

impl Application {
    /// Binds the listener and prepares the database (when it answers). A port in use and
    /// a database that cannot be reached are both reported, as a [`StartError`].
    pub async fn build(config: &Config) -> anyhow::Result<Application> {
        let db = crate::db::pool(&config.database_url, POOL_SIZE)?;
        let listener = listen(BIND_ADDR.name, config.bind_addr).await;
        let prepared = crate::db::prepare(&config.database_url, &db)
            .await
            .map_err(|error| StartError::database(DATABASE_URL.name, &config.database_url, &error));
        match (listener, prepared) {
            (Ok(listener), Ok(())) => Ok(Application::with_listener(config, db, listener)),
            (listener, prepared) => Err(StartError::all([listener.err(), prepared.err()])
                .expect("one of them failed")
                .into()),
        }
    }

    /// Binds the listener over an existing pool, without touching the database.
    pub async fn with_pool(config: &Config, db: PgPool) -> anyhow::Result<Application> {
        let listener = listen(BIND_ADDR.name, config.bind_addr).await?;
        Ok(Application::with_listener(config, db, listener))
    }

    /// The application on a listener the caller bound, over an existing pool.
    pub fn with_listener(config: &Config, db: PgPool, listener: TcpListener) -> Application {
        if config.admin_token.is_none() {
            tracing::warn!(
                "ADMIN_TOKEN is not set: admin disabled (/admin/... and /metrics answer 503)"
            );
        }
        let processor = Processor::new(
            db.clone(),
            config.catalog.clone(),
            config.stripe_api.clone(),
            config.settle,
        );
        let metrics = Arc::new(Metrics::default());
        let worker = config.delivery.as_ref().map(|delivery| {
            Worker::new(
                db.clone(),
                delivery.partner.clone(),
                delivery.settings.clone(),
                metrics.clone(),
            )
        });
        let state = AppState {
            db,
            webhook_secrets: config.webhook_secrets.clone().into(),
            admin_token: config.admin_token.clone(),
            metrics_public: config.metrics_public,
            metrics,
            processor: processor.clone(),
        };
        Application {
            listener,
            state,
            processor,
            worker,
            background_work: config.background_work,
        }
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

    /// Serves HTTP (and runs the background work) until `shutdown` resolves, then lets
    /// in-flight requests and the current event finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "listening");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut background = tokio::task::JoinSet::new();
        if self.background_work {
            tracing::info!(
                loops = PROCESSOR_LOOPS,
                settle_ms = self.processor.settle().as_millis() as u64,
                "event processor started"
            );
            for _ in 0..PROCESSOR_LOOPS {
                background.spawn(self.processor.clone().run(stopped.clone()));
            }
            match self.worker {
                Some(worker) => {
                    background.spawn(worker.run(stopped));
                }
                None => tracing::warn!(
                    "UCHAT_API_TOKEN is not set: partner calls are planned but not delivered"
                ),
            }
        }
        let served = http::serve(self.listener, http::router(self.state), shutdown).await;
        let _ = stop.send(true);
        while background.join_next().await.is_some() {}
        served?;
        tracing::info!("stopped");
        Ok(())
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
