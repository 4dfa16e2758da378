//! The simulated network as the production code sees it: a
//! [`cairn_node::net::Dial`] over turmoil's TCP, and an
//! [`axum::serve::Listener`] over its listener.

use cairn_node::net::{Dial, Io, Network};
use futures::future::BoxFuture;
use std::net::SocketAddr;

struct Turmoil;

impl Dial for Turmoil {
    fn dial(&self, addr: String) -> BoxFuture<'static, std::io::Result<Box<dyn Io>>> {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as Box<dyn Io>)
        })
    }
}

/// Node RPC over the simulated network.
pub fn network() -> Network {
    Network::new(Turmoil)
}

/// A simulated listener the servers accept on.
pub struct Listener(turmoil::net::TcpListener);

impl Listener {
    /// Listen on `port` of the current host.
    pub async fn bind(port: u16) -> std::io::Result<Self> {
        Ok(Self(
            turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?,
        ))
    }
}

impl axum::serve::Listener for Listener {
    type Io = turmoil::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                // As axum does for TCP: a failed accept is not the end.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}
