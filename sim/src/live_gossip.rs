//! The live gossip driver: one `gossip::Member` on a real UDP socket and TCP listener,
//! with tokio. It owns the clock (time since it started) and the sockets; the member
//! decides everything else. Streams are served one at a time, bounded by the member's
//! TCP timeout: enough for labs and interop tests, not for a thousand peers.

use gossip::member::StreamInput;
use gossip::{Config, Event, Member, State, Transmit};
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// What the running member shows the outside.
#[derive(Debug, Default)]
pub struct Shared {
    /// Every known member and its state, sorted by name.
    pub members: Vec<(String, State)>,
    /// Every event so far.
    pub events: Vec<Event>,
    /// Dropped input, by reason.
    pub dropped: Vec<(&'static str, u64)>,
}

/// A member running on its own thread.
pub struct GossipHandle {
    /// Its view, refreshed after every input.
    pub shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl GossipHandle {
    /// Leave the cluster (announce it, wait until it has been gossiped or 2 s), then stop.
    pub fn leave(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("gossip thread panicked"))?,
            None => Ok(()),
        }
    }

    /// A snapshot of the member's view.
    pub fn view(&self) -> Vec<(String, State)> {
        self.shared
            .lock()
            .map(|s| s.members.clone())
            .unwrap_or_default()
    }
}

fn seed() -> u64 {
    // Nonces for AES-GCM must not repeat across runs: take the seed from the OS.
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    u64::from_le_bytes(b)
}

/// Start a member named `name` on `bind` (UDP and TCP), joining `join` if not empty.
pub fn spawn(
    name: &str,
    bind: SocketAddrV4,
    join: Vec<SocketAddrV4>,
    config: Config,
) -> anyhow::Result<GossipHandle> {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, st2, name) = (shared.clone(), stop.clone(), name.to_string());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Streams run as local tasks so that a slow or silent peer never holds up UDP,
        // acks or timers; they talk to the member through channels.
        let local = tokio::task::LocalSet::new();
        rt.block_on(local.run_until(serve(name, bind, join, config, s2, st2, ready_tx)))
    });
    // Wait until the sockets are bound (or binding failed).
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(GossipHandle {
            shared,
            stop,
            thread: Some(thread),
        }),
        Ok(Err(e)) => Err(anyhow::anyhow!(e)),
        Err(_) => match thread.join() {
            Ok(r) => r.and_then(|_| Err(anyhow::anyhow!("gossip thread ended"))),
            Err(_) => Err(anyhow::anyhow!("gossip thread panicked")),
        },
    }
}

type Incoming = (Vec<u8>, tokio::sync::oneshot::Sender<StreamInput>);

async fn serve(
    name: String,
    bind: SocketAddrV4,
    join: Vec<SocketAddrV4>,
    config: Config,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> anyhow::Result<()> {
    let bound = async {
        Ok::<_, std::io::Error>((UdpSocket::bind(bind).await?, TcpListener::bind(bind).await?))
    }
    .await;
    let (udp, tcp) = match bound {
        Ok(s) => {
            let _ = ready.send(Ok(()));
            s
        }
        Err(e) => {
            let _ = ready.send(Err(format!("bind {bind}: {e}")));
            return Ok(());
        }
    };
    let tcp_timeout = config.tcp_timeout;
    let start = tokio::time::Instant::now();
    let now = || start.elapsed();
    let mut member = Member::new(config, &name, bind, now(), seed());
    member.join(now(), &join);
    let (replies_tx, mut replies) =
        tokio::sync::mpsc::unbounded_channel::<(gossip::StreamId, Option<Vec<u8>>)>();
    let (incoming_tx, mut incoming) = tokio::sync::mpsc::unbounded_channel::<Incoming>();
    let mut buf = vec![0u8; 65536];
    let mut leave_deadline: Option<std::time::Duration> = None;
    loop {
        flush(&mut member, &udp, tcp_timeout, &replies_tx).await;
        publish(&mut member, &shared);
        if stop.load(Ordering::SeqCst) {
            match leave_deadline {
                None => {
                    member.leave(now());
                    leave_deadline = Some(now() + std::time::Duration::from_secs(2));
                    continue;
                }
                Some(d) if member.leave_done() || now() >= d => return Ok(()),
                Some(_) => {}
            }
        }
        // Wake for the member's next timer, and at least every 50 ms to notice `stop`.
        let wake = member
            .next_timeout()
            .unwrap_or(now() + std::time::Duration::from_millis(50))
            .min(now() + std::time::Duration::from_millis(50));
        let sleep = tokio::time::sleep_until(start + wake);
        tokio::select! {
            r = udp.recv_from(&mut buf) => {
                if let Ok((n, std::net::SocketAddr::V4(from))) = r {
                    member.handle_packet(now(), from, &buf[..n]);
                }
            }
            r = tcp.accept() => {
                if let Ok((stream, _)) = r {
                    tokio::task::spawn_local(serve_stream(stream, tcp_timeout, incoming_tx.clone()));
                }
            }
            Some((id, reply)) = replies.recv() => match reply {
                Some(r) => member.handle_stream_reply(now(), id, &r),
                None => member.stream_failed(now(), id),
            },
            Some((bytes, answer)) = incoming.recv() => {
                let _ = answer.send(member.handle_stream(now(), &bytes));
            }
            _ = sleep => member.handle_timeout(now()),
        }
    }
}

fn publish(member: &mut Member, shared: &Arc<Mutex<Shared>>) {
    let Ok(mut s) = shared.lock() else { return };
    s.members = member
        .members()
        .into_iter()
        .map(|m| (m.name, m.state))
        .collect();
    while let Some(e) = member.poll_event() {
        s.events.push(e);
    }
    s.dropped = member
        .counters()
        .dropped
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
}

async fn flush(
    member: &mut Member,
    udp: &UdpSocket,
    timeout: std::time::Duration,
    replies: &tokio::sync::mpsc::UnboundedSender<(gossip::StreamId, Option<Vec<u8>>)>,
) {
    while let Some(t) = member.poll_transmit() {
        match t {
            Transmit::Packet { to, bytes } => {
                let _ = udp.send_to(&bytes, to).await;
            }
            Transmit::Stream { id, to, bytes } => {
                let replies = replies.clone();
                tokio::task::spawn_local(async move {
                    let reply = tokio::time::timeout(timeout, async {
                        let mut s = TcpStream::connect(to).await?;
                        s.write_all(&bytes).await?;
                        let mut reply = Vec::new();
                        s.read_to_end(&mut reply).await?;
                        Ok::<_, std::io::Error>(reply)
                    })
                    .await;
                    let _ = replies.send((id, reply.ok().and_then(Result::ok)));
                });
            }
        }
    }
}

async fn serve_stream(
    mut stream: TcpStream,
    timeout: std::time::Duration,
    member: tokio::sync::mpsc::UnboundedSender<Incoming>,
) {
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let _ = tokio::time::timeout(timeout, async {
        loop {
            let n = stream.read(&mut chunk).await?;
            got.extend_from_slice(&chunk[..n]);
            let (tx, rx) = tokio::sync::oneshot::channel();
            if member.send((got.clone(), tx)).is_err() {
                break;
            }
            match rx.await {
                Ok(StreamInput::NeedMore) if n > 0 => continue,
                Ok(StreamInput::Reply(r)) => {
                    stream.write_all(&r).await?;
                    break;
                }
                _ => break,
            }
        }
        stream.shutdown().await
    })
    .await;
}
