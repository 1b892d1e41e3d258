//! A TCP proxy on loopback between the service and Postgres, that a test switches off to
//! play a database outage and on again to end it.

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct DbProxy {
    pub address: SocketAddr,
    upstream: String,
    up: watch::Sender<bool>,
}

impl DbProxy {
    /// Forwards every connection to `upstream` (`host:port`) while switched on, as it is
    /// from the start.
    pub async fn start(upstream: &str) -> DbProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let proxy = DbProxy {
            address,
            upstream: upstream.to_owned(),
            up,
        };
        tokio::spawn(accept(
            listener,
            proxy.upstream.clone(),
            proxy.up.subscribe(),
        ));
        proxy
    }

    /// The outage: every open connection is closed at once, and every new one is closed
    /// as soon as it is accepted, until [`DbProxy::restore`].
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// The database is back: new connections go through again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    /// `url` (a Postgres URL) with its host and port replaced by the proxy's.
    pub fn url_through(&self, url: &str) -> String {
        let mut url = reqwest::Url::parse(url).expect("a database URL");
        url.set_ip_host(self.address.ip()).unwrap();
        url.set_port(Some(self.address.port())).unwrap();
        url.to_string()
    }
}

async fn accept(listener: TcpListener, upstream: String, up: watch::Receiver<bool>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if !*up.borrow() {
            drop(client);
            continue;
        }
        tokio::spawn(forward(client, upstream.clone(), up.clone()));
    }
}

/// Copies both ways until either side closes or the proxy is cut.
async fn forward(mut client: TcpStream, upstream: String, mut up: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        _ = up.wait_for(|up| !*up) => {}
    }
    // Dropping both ends closes them.
}
