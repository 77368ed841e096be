//! Files written by `--out DIR`: one pcap per host (the underlay as that host's NIC saw
//! it, both directions) and the JSON-lines trace; the streamed text timeline
//! (`timeline`).

pub mod html;
pub mod timeline;

use crate::lab::Lab;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

/// Write `DIR/HOST.pcap` for every host, `DIR/trace.jsonl`, and `DIR/report.html` when
/// the scenario is given; returns the paths.
pub fn write_outputs(
    lab: &Lab,
    dir: &Path,
    report: Option<&html::Source<'_>>,
) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (id, nic) in lab.underlay.nics() {
        let path = dir.join(format!("{}.pcap", nic.name));
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            snaplen: 65535,
            ..Default::default()
        };
        let mut w = PcapWriter::with_header(BufWriter::new(File::create(&path)?), header)
            .map_err(io::Error::other)?;
        // Control streams put a frame on its receiver's tap ahead of time (one latency
        // later); a stable sort by time keeps the rest in the order they happened.
        let mut frames: Vec<&(crate::time::Instant, Vec<u8>)> =
            lab.hosts[id.0].capture.iter().collect();
        frames.sort_by_key(|(at, _)| *at);
        for (at, frame) in frames {
            let ts = std::time::Duration::from_nanos(at.0);
            w.write_packet(&PcapPacket::new(ts, frame.len() as u32, frame))
                .map_err(io::Error::other)?;
        }
        written.push(path);
    }
    let path = dir.join("trace.jsonl");
    lab.trace
        .write_jsonl(BufWriter::new(File::create(&path)?))?;
    written.push(path);
    if let Some(src) = report {
        let path = dir.join("report.html");
        std::fs::write(&path, html::render(&lab.trace, src))?;
        written.push(path);
    }
    Ok(written)
}

/// The `p`-quantile (0.0..=1.0) of `v` by nearest rank, sorting `v` (the figures'
/// examples report medians and tails with it). `NaN` for an empty slice.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize]
}
