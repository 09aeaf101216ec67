//! A TCP proxy on 127.0.0.1 that can cut the link: the demo (and tests) put
//! it between edges and hub to take the network away and give it back,
//! with real connections really broken.

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    online: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port forwarding to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (online, watcher) = watch::channel(true);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !*watcher.borrow() {
                    // Offline: the connection is closed at once.
                    drop(inbound);
                    continue;
                }
                let mut cut = watcher.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        // Cutting the link breaks connections in flight too.
                        _ = cut.wait_for(|online| !online) => {}
                    }
                });
            }
        });
        Ok(Proxy { addr, online, task })
    }

    /// Takes the network away: new connections are refused, open ones broken.
    pub fn cut(&self) {
        self.online.send_replace(false);
    }

    /// Gives the network back.
    pub fn restore(&self) {
        self.online.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn forwards_and_cuts() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    while let Ok(read) = socket.read(&mut buffer).await {
                        if read == 0 || socket.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = Proxy::start(target).await.unwrap();
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut reply = [0u8; 4];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"ping");
        proxy.cut();
        // The open connection is broken: a read ends (EOF or error).
        let mut buffer = [0u8; 4];
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(5), client.read(&mut buffer))
                .await
                .unwrap();
        assert!(matches!(read, Ok(0) | Err(_)));
        proxy.restore();
        let mut again = TcpStream::connect(proxy.addr).await.unwrap();
        again.write_all(b"pong").await.unwrap();
        again.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"pong");
    }
}
