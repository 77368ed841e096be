//! The live driver: the same `vxlan::Vtep` core and container stack as the simulator,
//! on real interfaces. This first slice serves one container interface on one VNI,
//! enough to answer a Linux kernel `vxlan` device across a veth pair
//! (`tests/kernel_vxlan.rs`); `swarmlab node` will grow from here. Two transports:
//!
//! - a UDP socket on 4789 with tokio: the kernel writes and checks the outer
//!   Ethernet/IPv4/UDP headers, we do the VXLAN header and the inner frame;
//! - `--raw IFACE`: whole Ethernet frames through an AF_PACKET socket (pnet), so our
//!   own outer headers go on the wire and the kernel's are checked by `Vtep::decapsulate`.

use crate::stack;
use anyhow::Context;
use std::net::{Ipv4Addr, SocketAddrV4};
use vxlan::{Config, MacAddr, Vni, Vtep, OUTER_LEN};

/// Arguments of `swarmlab live-vtep`.
#[derive(clap::Args, Debug, Clone)]
pub struct LiveArgs {
    /// Local underlay address to bind.
    #[arg(long)]
    pub local: Ipv4Addr,
    /// UDP port (4789 unless a data-path port is configured).
    #[arg(long, default_value_t = vxlan::VXLAN_PORT)]
    pub port: u16,
    /// The remote VTEP's address.
    #[arg(long)]
    pub remote: Ipv4Addr,
    /// VNI to serve.
    #[arg(long)]
    pub vni: u32,
    /// The container's overlay address.
    #[arg(long)]
    pub ip: Ipv4Addr,
    /// The container's MAC (default: 02:42 and the IP's octets, as Docker derives it).
    #[arg(long)]
    pub mac: Option<String>,
    /// Exit after answering this many ICMP echo requests.
    #[arg(long, default_value_t = u64::MAX)]
    pub echo_replies: u64,
    /// Exit after this many seconds without a datagram.
    #[arg(long, default_value_t = 30)]
    pub idle_secs: u64,
    /// Send and receive whole frames on this interface instead of a UDP socket.
    #[arg(long)]
    pub raw: Option<String>,
}

fn parse_mac(s: &str) -> anyhow::Result<MacAddr> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC {s}"))?;
    let arr: [u8; 6] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("bad MAC {s}"))?;
    Ok(MacAddr(arr))
}

/// Serve until `echo_replies` echo requests were answered or the socket idles out.
pub fn run_vtep(args: LiveArgs) -> anyhow::Result<()> {
    if args.raw.is_some() {
        return serve_raw(args);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(args))
}

/// What the container answers to `inner` (ARP or echo reply), encapsulated towards
/// `remote` in `buf`; with whether it is an echo reply. `None` when nothing is owed.
fn answer(
    vtep: &mut Vtep,
    vni: Vni,
    args: &LiveArgs,
    mac: MacAddr,
    inner: &[u8],
    remote: Ipv4Addr,
    buf: &mut [u8],
) -> anyhow::Result<Option<(vxlan::Encapsulated, bool)>> {
    let Some(reply) = stack::reply_to(args.ip, mac, inner) else {
        return Ok(None);
    };
    let is_echo = reply.get(12..14) == Some(&[0x08, 0x00]);
    buf[OUTER_LEN..OUTER_LEN + reply.len()].copy_from_slice(&reply);
    let e = vtep
        .encapsulate_to(vni, remote, buf, OUTER_LEN, reply.len())
        .map_err(|r| anyhow::anyhow!("encapsulation refused: {r}"))?;
    Ok(Some((e, is_echo)))
}

fn container_mac(args: &LiveArgs) -> anyhow::Result<MacAddr> {
    let o = args.ip.octets();
    match &args.mac {
        Some(m) => parse_mac(m),
        None => Ok(MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]])),
    }
}

/// Whole frames on an interface: our outer headers, checked by the peer's kernel.
fn serve_raw(args: LiveArgs) -> anyhow::Result<()> {
    use pnet_datalink::Channel;
    let vni = Vni::new(args.vni).context("VNI must fit in 24 bits")?;
    let mac = container_mac(&args)?;
    let name = args.raw.clone().unwrap_or_default();
    let iface = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .with_context(|| format!("no interface {name}"))?;
    let iface_mac = iface.mac.context("interface has no MAC")?.octets();
    let mut vtep = Vtep::new(Config::docker(args.local, MacAddr(iface_mac)));
    vtep.add_network(vni);
    vtep.add_peer(vni, args.remote)?;
    // Hold the port so that the local kernel does not answer our VXLAN traffic with
    // ICMP port unreachable; the frames themselves are read from the packet socket.
    let _hold = std::net::UdpSocket::bind(SocketAddrV4::new(args.local, args.port))
        .with_context(|| format!("bind {}:{}", args.local, args.port))?;
    let config = pnet_datalink::Config {
        read_timeout: Some(std::time::Duration::from_millis(200)),
        ..Default::default()
    };
    let (mut tx, mut rx) = match pnet_datalink::channel(&iface, config)? {
        Channel::Ethernet(tx, rx) => (tx, rx),
        _ => anyhow::bail!("{name}: not an Ethernet channel"),
    };
    eprintln!(
        "live-vtep: raw on {name} {}:{} vni {vni} serving {} ({mac})",
        args.local, args.port, args.ip
    );
    let mut buf = vec![0u8; 65536 + OUTER_LEN];
    let mut replies = 0u64;
    let mut idle = std::time::Duration::ZERO;
    let idle_max = std::time::Duration::from_secs(args.idle_secs);
    while replies < args.echo_replies {
        let frame = match rx.next() {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                idle += config.read_timeout.unwrap_or_default();
                if idle >= idle_max {
                    anyhow::bail!("no frame for {}s", args.idle_secs);
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        idle = std::time::Duration::ZERO;
        // Only VXLAN addressed to us: the packet socket also sees ARP and our own output.
        let is_vxlan = crate::underlay::outer_flow(frame).is_some_and(|(dst, proto, port, _)| {
            dst == args.local && proto == 17 && port == Some(args.port)
        });
        if !is_vxlan {
            continue;
        }
        let (outer_src_mac, inner) = match vtep.decapsulate(frame) {
            Ok(d) => (MacAddr::from_slice(&frame[6..]), d.inner.to_vec()),
            Err(reason) => {
                eprintln!("live-vtep: dropped a frame: {reason}");
                continue;
            }
        };
        // Underlay neighbour learned from the frame itself, as ARP would have told us.
        if let Some(src_mac) = outer_src_mac {
            vtep.set_neighbor(args.remote, src_mac);
        }
        let Some((e, is_echo)) = answer(&mut vtep, vni, &args, mac, &inner, args.remote, &mut buf)?
        else {
            continue;
        };
        match tx.send_to(&buf[e.range()], None) {
            Some(Ok(())) => {}
            Some(Err(err)) => return Err(err.into()),
            None => anyhow::bail!("{name}: cannot send"),
        }
        if is_echo {
            replies += 1;
        }
    }
    eprintln!(
        "live-vtep: answered {replies} echo requests; counters {:?}",
        vtep.counters()
    );
    Ok(())
}

async fn serve(args: LiveArgs) -> anyhow::Result<()> {
    let vni = Vni::new(args.vni).context("VNI must fit in 24 bits")?;
    let mac = container_mac(&args)?;
    // The kernel builds the outer Ethernet/IP/UDP headers for a socket; the VTEP's MAC
    // and neighbor entries only matter to the simulator's raw frames.
    let mut vtep = Vtep::new(Config::docker(args.local, MacAddr::default()));
    vtep.add_network(vni);
    vtep.add_peer(vni, args.remote)?;
    vtep.set_neighbor(args.remote, MacAddr::default());
    let socket = tokio::net::UdpSocket::bind(SocketAddrV4::new(args.local, args.port))
        .await
        .with_context(|| format!("bind {}:{}", args.local, args.port))?;
    eprintln!(
        "live-vtep: {}:{} vni {vni} serving {} ({mac})",
        args.local, args.port, args.ip
    );
    let mut rx = vec![0u8; 65536];
    let mut tx = vec![0u8; 65536 + OUTER_LEN];
    let mut replies = 0u64;
    let idle = std::time::Duration::from_secs(args.idle_secs);
    while replies < args.echo_replies {
        let (n, from) = match tokio::time::timeout(idle, socket.recv_from(&mut rx)).await {
            Ok(r) => r?,
            Err(_) => anyhow::bail!("no datagram for {}s", args.idle_secs),
        };
        let std::net::SocketAddr::V4(from) = from else {
            continue;
        };
        let inner = match vtep.decapsulate_datagram(*from.ip(), &rx[..n]) {
            Ok(d) => d.inner.to_vec(),
            Err(reason) => {
                eprintln!("live-vtep: dropped a datagram from {from}: {reason}");
                continue;
            }
        };
        let Some((e, is_echo)) = answer(&mut vtep, vni, &args, mac, &inner, *from.ip(), &mut tx)?
        else {
            continue;
        };
        socket
            .send_to(
                &tx[e.udp_payload()],
                SocketAddrV4::new(*from.ip(), args.port),
            )
            .await?;
        if is_echo {
            replies += 1;
        }
    }
    eprintln!(
        "live-vtep: answered {replies} echo requests; counters {:?}",
        vtep.counters()
    );
    Ok(())
}
