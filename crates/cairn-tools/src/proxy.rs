//! A TCP proxy on 127.0.0.1 that injects faults between edges and the hub:
//! the link can be cut (open connections broken, new ones refused), and each
//! new connection can be dropped, delayed, blackholed, reset in the middle of
//! the request or of the response, or have its request delivered twice. The
//! demo uses it to take the network away; the fault tests drive it from a
//! printed seed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to new connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward faithfully.
    None,
    /// Close the connection at once.
    Drop,
    /// Forward after a delay of up to this many ms.
    Delay(u64),
    /// Accept and read, never answer.
    Blackhole,
    /// Forward at most this many request bytes, then reset.
    ResetRequest(usize),
    /// Forward the request, at most this many response bytes, then reset.
    ResetResponse(usize),
    /// Send every request byte to the hub twice, over two connections.
    Duplicate,
    /// Emulate a slow link: each direction carries at most `bytes_per_sec`
    /// and delivers every byte `one_way_ms` after it was sent.
    Shape {
        /// Capacity of each direction.
        bytes_per_sec: u64,
        /// One-way latency (half the round trip).
        one_way_ms: u64,
    },
}

/// A running proxy.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    online: watch::Sender<bool>,
    fault: watch::Sender<Fault>,
    task: tokio::task::JoinHandle<()>,
    /// Bytes forwarded: client to target, target to client.
    traffic: Arc<Traffic>,
}

/// Bytes a proxy forwarded, by direction, and when each direction of the
/// shaped link is next free: one link, whatever the number of connections
/// over it.
#[derive(Default)]
struct Traffic {
    up: AtomicU64,
    down: AtomicU64,
    /// One more than the body offset of the byte to flip in the next
    /// response of the shaped link; 0 when nothing is to be damaged.
    corrupt: AtomicU64,
    up_free: std::sync::Mutex<Option<tokio::time::Instant>>,
    down_free: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// Most bytes buffered per read.
const CHUNK_BYTES: usize = 16 * 1024;

impl Proxy {
    /// Starts a proxy on a free loopback port forwarding to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (online, online_watch) = watch::channel(true);
        let (fault, fault_watch) = watch::channel(Fault::None);
        let counter = Arc::new(AtomicU64::new(1));
        let traffic = Arc::new(Traffic::default());
        let forwarded = traffic.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !*online_watch.borrow() {
                    drop(inbound);
                    continue;
                }
                let fault = *fault_watch.borrow();
                let mut cut = online_watch.clone();
                let jitter = counter.fetch_add(0x9E37_79B9, Ordering::Relaxed);
                let forwarded = forwarded.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve(inbound, target, fault, jitter, &forwarded) => {}
                        // Cutting the link breaks connections in flight too.
                        _ = cut.wait_for(|online| !online) => {}
                    }
                });
            }
        });
        Ok(Proxy {
            addr,
            online,
            fault,
            task,
            traffic,
        })
    }

    /// Bytes forwarded so far in both directions: what a benchmark puts on
    /// the wire.
    pub fn bytes(&self) -> u64 {
        self.uplink_bytes() + self.traffic.down.load(Ordering::Relaxed)
    }

    /// Bytes forwarded so far from clients to the target.
    pub fn uplink_bytes(&self) -> u64 {
        self.traffic.up.load(Ordering::Relaxed)
    }

    /// Takes the network away: new connections are refused, open ones broken.
    pub fn cut(&self) {
        self.online.send_replace(false);
    }

    /// Gives the network back.
    pub fn restore(&self) {
        self.online.send_replace(true);
    }

    /// Damages the next response body that crosses the shaped link: the
    /// byte `offset` bytes after its headers end is flipped (once), as a
    /// link that corrupts data a checksum below missed would.
    pub fn corrupt_next_body(&self, offset: u64) {
        self.traffic.corrupt.store(offset + 1, Ordering::SeqCst);
    }

    /// Sets the fault applied to new connections.
    pub fn set_fault(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, stopping after `limit` bytes (then resetting).
async fn copy_limited(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    limit: Option<usize>,
    counted: &AtomicU64,
) {
    let mut buffer = vec![0u8; CHUNK_BYTES];
    let mut sent = 0usize;
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            let _ = to.shutdown().await;
            return;
        }
        let allowed = limit.map_or(read, |limit| read.min(limit.saturating_sub(sent)));
        if to.write_all(&buffer[..allowed]).await.is_err() {
            return;
        }
        counted.fetch_add(allowed as u64, Ordering::Relaxed);
        sent += allowed;
        if limit.is_some_and(|limit| sent >= limit) {
            return;
        }
    }
}

/// One direction of a shaped link: chunks are serialized at the link's rate
/// (a queue of bounded depth, like a router's) and delivered a fixed latency
/// later, so several chunks can be in flight at once.
async fn shaped(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    bytes_per_sec: u64,
    one_way_ms: u64,
    (counted, corrupt): (&AtomicU64, Option<&AtomicU64>),
    free: &std::sync::Mutex<Option<tokio::time::Instant>>,
) {
    let (queue, mut delivered) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(64);
    let reader = async move {
        let mut buffer = vec![0u8; 4 * 1024];
        loop {
            let Ok(read) = from.read(&mut buffer).await else {
                return;
            };
            if read == 0 {
                return;
            }
            let now = tokio::time::Instant::now();
            let serialization =
                Duration::from_micros(read as u64 * 1_000_000 / bytes_per_sec.max(1));
            // Connections share the link: each chunk waits for the ones
            // any connection put on it before.
            let link_free = {
                let mut free = free.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let link_free = free.unwrap_or(now).max(now) + serialization;
                *free = Some(link_free);
                link_free
            };
            // The sender may not run ahead of the wire: wait for the link.
            tokio::time::sleep_until(link_free).await;
            if queue
                .send((
                    link_free + Duration::from_millis(one_way_ms),
                    buffer[..read].to_vec(),
                ))
                .await
                .is_err()
            {
                return;
            }
        }
    };
    let writer = async move {
        let mut damage = Damage::default();
        while let Some((at, mut chunk)) = delivered.recv().await {
            if let Some(armed) = corrupt {
                damage.apply(armed, &mut chunk);
            }
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
            counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Where a connection's responses stand for [`Proxy::corrupt_next_body`]:
/// the last four bytes seen (to find a header's end) and the bytes left
/// before the one to flip.
#[derive(Default)]
struct Damage {
    last: u32,
    countdown: Option<u64>,
}

impl Damage {
    fn apply(&mut self, armed: &AtomicU64, chunk: &mut [u8]) {
        for byte in chunk.iter_mut() {
            match self.countdown {
                Some(0) => {
                    *byte ^= 0xFF;
                    self.countdown = None;
                }
                Some(left) => self.countdown = Some(left - 1),
                None => {}
            }
            self.last = (self.last << 8) | u32::from(*byte);
            if self.last == 0x0D0A_0D0A && self.countdown.is_none() {
                let offset = armed.swap(0, Ordering::SeqCst);
                if offset > 0 {
                    self.countdown = Some(offset - 1);
                }
            }
        }
    }
}

async fn serve(
    mut inbound: TcpStream,
    target: SocketAddr,
    fault: Fault,
    jitter: u64,
    traffic: &Traffic,
) {
    match fault {
        Fault::Drop => {}
        Fault::Blackhole => {
            let mut buffer = vec![0u8; CHUNK_BYTES];
            while matches!(inbound.read(&mut buffer).await, Ok(read) if read > 0) {}
        }
        Fault::Duplicate => {
            let (Ok(first), Ok(second)) = (
                TcpStream::connect(target).await,
                TcpStream::connect(target).await,
            ) else {
                return;
            };
            let (mut inbound_read, mut inbound_write) = inbound.into_split();
            let (mut first_read, mut first_write) = first.into_split();
            let (mut second_read, mut second_write) = second.into_split();
            let fan_out = async {
                let mut buffer = vec![0u8; CHUNK_BYTES];
                loop {
                    let Ok(read) = inbound_read.read(&mut buffer).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    let _ = second_write.write_all(&buffer[..read]).await;
                    if first_write.write_all(&buffer[..read]).await.is_err() {
                        return;
                    }
                }
            };
            let answer = async {
                let mut buffer = vec![0u8; CHUNK_BYTES];
                loop {
                    let Ok(read) = first_read.read(&mut buffer).await else {
                        return;
                    };
                    if read == 0 || inbound_write.write_all(&buffer[..read]).await.is_err() {
                        return;
                    }
                }
            };
            let discard = async {
                let mut buffer = vec![0u8; CHUNK_BYTES];
                while matches!(second_read.read(&mut buffer).await, Ok(read) if read > 0) {}
            };
            tokio::join!(fan_out, answer, discard);
        }
        Fault::Shape {
            bytes_per_sec,
            one_way_ms,
        } => {
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            let (inbound_read, inbound_write) = inbound.into_split();
            let (outbound_read, outbound_write) = outbound.into_split();
            tokio::select! {
                _ = shaped(inbound_read, outbound_write, bytes_per_sec, one_way_ms, (&traffic.up, None), &traffic.up_free) => {}
                _ = shaped(outbound_read, inbound_write, bytes_per_sec, one_way_ms, (&traffic.down, Some(&traffic.corrupt)), &traffic.down_free) => {}
            }
        }
        Fault::None | Fault::Delay(_) | Fault::ResetRequest(_) | Fault::ResetResponse(_) => {
            if let Fault::Delay(ms) = fault {
                tokio::time::sleep(Duration::from_millis(jitter % (ms + 1))).await;
            }
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            let (request_limit, response_limit) = match fault {
                Fault::ResetRequest(bytes) => (Some(bytes), None),
                Fault::ResetResponse(bytes) => (None, Some(bytes)),
                _ => (None, None),
            };
            let (inbound_read, inbound_write) = inbound.into_split();
            let (outbound_read, outbound_write) = outbound.into_split();
            // Either direction ending (or hitting its limit) ends the connection.
            tokio::select! {
                _ = copy_limited(inbound_read, outbound_write, request_limit, &traffic.up) => {}
                _ = copy_limited(outbound_read, inbound_write, response_limit, &traffic.down) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_flips_one_body_byte_of_the_next_response_only() {
        let armed = AtomicU64::new(3);
        let mut damage = Damage::default();
        let mut first = b"HTTP/1.1 200 OK\r\nx: y\r\n\r\nabcdef".to_vec();
        damage.apply(&armed, &mut first[..20]);
        damage.apply(&armed, &mut first[20..]);
        assert_eq!(
            &first[first.len() - 6..],
            &[b'a', b'b', b'c' ^ 0xFF, b'd', b'e', b'f']
        );
        let mut second = b"HTTP/1.1 200 OK\r\n\r\nabcdef".to_vec();
        let untouched = second.clone();
        damage.apply(&armed, &mut second);
        assert_eq!(second, untouched, "once only");
    }

    async fn echo_server() -> SocketAddr {
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
        target
    }

    async fn round_trip(addr: SocketAddr, message: &[u8]) -> Option<Vec<u8>> {
        let mut client = TcpStream::connect(addr).await.ok()?;
        client.write_all(message).await.ok()?;
        let mut reply = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_millis(500), client.read_exact(&mut reply))
            .await
            .ok()?
            .ok()?;
        Some(reply)
    }

    #[tokio::test]
    async fn forwards_cuts_and_injects_faults() {
        let proxy = Proxy::start(echo_server().await).await.unwrap();
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut reply = [0u8; 4];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"ping");
        // The count follows each write, so it may trail the echo a little.
        for _ in 0..200 {
            if proxy.bytes() == 8 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(proxy.bytes(), 8, "four bytes each way are counted");
        proxy.cut();
        let mut buffer = [0u8; 4];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buffer))
            .await
            .unwrap();
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "an open connection is broken by a cut"
        );
        proxy.restore();
        assert_eq!(
            round_trip(proxy.addr, b"pong").await.as_deref(),
            Some(&b"pong"[..])
        );
        for fault in [
            Fault::Drop,
            Fault::Blackhole,
            Fault::ResetRequest(2),
            Fault::ResetResponse(2),
        ] {
            proxy.set_fault(fault);
            assert_eq!(
                round_trip(proxy.addr, b"data").await,
                None,
                "{fault:?} must not deliver the whole answer"
            );
        }
        for fault in [
            Fault::Delay(50),
            Fault::Duplicate,
            Fault::None,
            Fault::Shape {
                bytes_per_sec: 1_000_000,
                one_way_ms: 20,
            },
        ] {
            proxy.set_fault(fault);
            assert_eq!(
                round_trip(proxy.addr, b"data").await.as_deref(),
                Some(&b"data"[..]),
                "{fault:?} delivers"
            );
        }
    }
}

#[cfg(test)]
mod shaping_tests {
    use super::*;

    #[tokio::test]
    async fn a_shaped_link_honours_its_rate_and_latency() {
        let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = sink.local_addr().unwrap();
        let received = tokio::spawn(async move {
            let (mut socket, _) = sink.accept().await.unwrap();
            let mut data = Vec::new();
            socket.read_to_end(&mut data).await.unwrap();
            data.len()
        });
        let proxy = Proxy::start(target).await.unwrap();
        proxy.set_fault(Fault::Shape {
            bytes_per_sec: 100_000,
            one_way_ms: 100,
        });
        let started = std::time::Instant::now();
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        client.write_all(&vec![7u8; 50_000]).await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(received.await.unwrap(), 50_000);
        // 50 kB at 100 kB/s is 0.5 s, plus 0.1 s of latency.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(550), "{elapsed:?}");
    }

    #[tokio::test]
    async fn connections_share_one_shaped_link() {
        let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = sink.local_addr().unwrap();
        let received = tokio::spawn(async move {
            let mut total = 0;
            for _ in 0..2 {
                let (mut socket, _) = sink.accept().await.unwrap();
                let mut data = Vec::new();
                socket.read_to_end(&mut data).await.unwrap();
                total += data.len();
            }
            total
        });
        let proxy = Proxy::start(target).await.unwrap();
        proxy.set_fault(Fault::Shape {
            bytes_per_sec: 100_000,
            one_way_ms: 10,
        });
        let started = std::time::Instant::now();
        let send = |addr| async move {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(&vec![7u8; 30_000]).await.unwrap();
            client.shutdown().await.unwrap();
        };
        tokio::join!(send(proxy.addr), send(proxy.addr));
        assert_eq!(received.await.unwrap(), 60_000);
        // Two connections of 30 kB each take 0.6 s together, not 0.3 s.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(590), "{elapsed:?}");
    }
}
