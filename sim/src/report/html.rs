//! The HTML report: one self-contained page (no script, no font or file fetched) that
//! shows a run as pictures, read from the trace alone:
//! - the topology: hosts on the LAN, their faults, overlays and their VNIs, and the
//!   containers each host runs at the end;
//! - the timeline of steps and expectations, each linked to its line of the scenario
//!   (which the page holds), with the commands' outputs folded;
//! - charts over virtual time, with the faults marked: tasks per node (a Gantt of
//!   container lifetimes), the membership view, the Raft leader and term, the underlay's
//!   traffic by port, and the routing mesh's distribution per replica.
//!
//! Charts are drawn by plotters' SVG backend. Large labs are downsampled: at most
//! `MAX_ROWS` hosts per chart, `MAX_POINTS` points per line.

use crate::time::Instant;
use crate::trace::{MemberChange, Trace, TraceEvent, TRAFFIC_PORTS};
use plotters::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Hosts drawn per chart (the first ones, in the order they were added).
const MAX_ROWS: usize = 40;
/// Points per line of a chart.
const MAX_POINTS: usize = 400;
/// Lines of a command's output kept in the page.
const MAX_OUTPUT_LINES: usize = 200;
/// Rows of the timeline table.
const MAX_TIMELINE_ROWS: usize = 2000;

const WIDTH: u32 = 960;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
];
const FAULT: RGBColor = RGBColor(214, 39, 40);

/// What the report is about.
pub struct Source<'a> {
    /// The scenario's file name.
    pub file: &'a str,
    /// Its text, shown with line anchors.
    pub text: &'a str,
    /// The seed it ran with.
    pub seed: u64,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn secs(t: Instant) -> f64 {
    t.0 as f64 / 1e9
}

/// A stable colour for a name (a service, a host).
fn colour(name: &str) -> RGBColor {
    let h = name
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    PALETTE[h as usize % PALETTE.len()]
}

/// The service a task's container belongs to (`web.2.abc` -> `web`), or the name.
fn service_of(container: &str) -> &str {
    let parts: Vec<&str> = container.split('.').collect();
    if parts.len() >= 3 {
        parts[0]
    } else {
        container
    }
}

/// Keep at most `MAX_POINTS` points of a line, evenly, with its last.
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let step = points.len().div_ceil(MAX_POINTS);
    let last = points[points.len() - 1];
    let mut out: Vec<(f64, f64)> = points.into_iter().step_by(step).collect();
    out.push(last);
    out
}

/// A task's node, and its states with the times they were reached.
type TaskLife = (String, Vec<(f64, &'static str)>);

/// A charted member's view: who it sees alive, and the points of that count.
type View = (BTreeSet<String>, Vec<(f64, f64)>);

/// Everything the page shows, gathered from the trace in one pass.
#[derive(Default)]
struct Facts {
    end: f64,
    hosts: Vec<(String, String)>,
    host_index: BTreeMap<String, usize>,
    overlays: BTreeMap<String, (u32, String)>,
    /// Container -> (host, start, end, network address).
    lives: Vec<(String, String, f64, Option<f64>, String)>,
    faults: Vec<(f64, String)>,
    crashed: BTreeSet<String>,
    links: Vec<String>,
    /// Viewer -> its view.
    views: BTreeMap<String, View>,
    /// (viewer, member) -> what the viewer last saw of the member, for the first
    /// `MAX_ROWS` hosts: 0 alive, 1 suspect, 2 dead or left.
    seen: BTreeMap<(usize, usize), u8>,
    /// Container -> its exit status, once stopped.
    exits: BTreeMap<String, i32>,
    /// Task -> its node and its states over time.
    tasks: BTreeMap<String, TaskLife>,
    /// Host -> the inbound rules blocked at the end.
    blocked: BTreeMap<String, BTreeSet<String>>,
    leaders: Vec<(f64, String, u64)>,
    /// Backend address -> picks.
    picks: BTreeMap<String, u64>,
    held: usize,
    failed: usize,
}

/// Note what `viewer` saw of `member`, for the matrix of the first hosts.
fn record_seen(f: &mut Facts, viewer: &str, member: &str, kind: MemberChange) {
    let (Some(&v), Some(&m)) = (f.host_index.get(viewer), f.host_index.get(member)) else {
        return;
    };
    if v >= MAX_ROWS || m >= MAX_ROWS {
        return;
    }
    let state = match kind {
        MemberChange::Joined | MemberChange::Alive | MemberChange::Updated => 0,
        MemberChange::Suspect => 1,
        MemberChange::Dead | MemberChange::Left => 2,
        MemberChange::ReachableOnlyOverTcp => return,
    };
    f.seen.insert((v, m), state);
}

/// Viewers whose membership view is charted: the first hosts added.
const VIEWERS: usize = 10;

fn charted(f: &Facts, host: &str) -> bool {
    f.host_index.get(host).is_some_and(|&i| i < VIEWERS)
}

fn gather(trace: &Trace) -> Facts {
    let mut f = Facts::default();
    let mut live: BTreeMap<String, usize> = BTreeMap::new();
    for (at, e) in trace.events() {
        let t = secs(*at);
        f.end = f.end.max(t);
        match e {
            TraceEvent::HostAdded { host, ip, .. } => {
                f.host_index.insert(host.clone(), f.hosts.len());
                f.hosts.push((host.clone(), ip.clone()));
            }
            TraceEvent::GossipFormed { members } => {
                let idx: Vec<usize> = members
                    .iter()
                    .filter_map(|m| f.host_index.get(m).copied())
                    .filter(|&i| i < MAX_ROWS)
                    .collect();
                for &v in &idx {
                    for &m in &idx {
                        f.seen.insert((v, m), 0);
                    }
                }
                // Only the charted viewers keep their view (N views of N members would
                // not fit a large lab).
                let viewers: Vec<&String> = members.iter().filter(|m| charted(&f, m)).collect();
                for viewer in viewers {
                    let (alive, points) = f.views.entry(viewer.clone()).or_default();
                    alive.extend(members.iter().cloned());
                    points.push((t, alive.len() as f64));
                }
            }
            TraceEvent::OverlayCreated {
                network,
                vni,
                subnet,
                ..
            } => {
                f.overlays.insert(network.clone(), (*vni, subnet.clone()));
            }
            TraceEvent::ContainerStarted {
                container,
                host,
                ip,
                ..
            } if !live.contains_key(container) => {
                live.insert(container.clone(), f.lives.len());
                f.lives
                    .push((container.clone(), host.clone(), t, None, ip.clone()));
            }
            TraceEvent::ContainerStopped {
                container,
                exit_code,
                ..
            } => {
                if let Some(i) = live.remove(container) {
                    f.lives[i].3 = Some(t);
                    f.exits.insert(container.clone(), *exit_code);
                }
            }
            TraceEvent::HostCrashed { host } => {
                f.crashed.insert(host.clone());
            }
            TraceEvent::HostRestarted { host } => {
                f.crashed.remove(host);
            }
            TraceEvent::Step { text, .. } => {
                let word = text.split_whitespace().next().unwrap_or("");
                if matches!(
                    word,
                    "crash" | "restart" | "partition" | "heal" | "block" | "unblock"
                ) {
                    f.faults.push((t, text.clone()));
                }
                if word == "link" {
                    f.links.push(text.clone());
                }
                let words: Vec<&str> = text.split_whitespace().collect();
                match words.as_slice() {
                    ["block", h, rule, ..] => {
                        f.blocked
                            .entry(h.to_string())
                            .or_default()
                            .insert(rule.to_string());
                    }
                    ["unblock", h, rule, ..] => {
                        if let Some(b) = f.blocked.get_mut(*h) {
                            b.remove(*rule);
                        }
                    }
                    _ => {}
                }
            }
            TraceEvent::Gossip {
                host, kind, member, ..
            } if !charted(&f, host) => {
                record_seen(&mut f, host, member, *kind);
            }
            TraceEvent::Gossip {
                host, kind, member, ..
            } => {
                record_seen(&mut f, host, member, *kind);
                let (alive, points) = f.views.entry(host.clone()).or_default();
                let changed = match kind {
                    MemberChange::Joined | MemberChange::Alive | MemberChange::Updated => {
                        alive.insert(member.clone())
                    }
                    MemberChange::Dead | MemberChange::Left | MemberChange::Suspect => {
                        alive.remove(member)
                    }
                    MemberChange::ReachableOnlyOverTcp => false,
                };
                if changed {
                    points.push((t, alive.len() as f64));
                }
            }
            TraceEvent::Leader { host, term } => f.leaders.push((t, host.clone(), *term)),
            TraceEvent::Task { host, task, state } => {
                let (_, states) = f
                    .tasks
                    .entry(task.clone())
                    .or_insert_with(|| (host.clone(), Vec::new()));
                states.push((t, state));
            }
            TraceEvent::Balance {
                backend: Some(b), ..
            } => *f.picks.entry(b.clone()).or_default() += 1,
            TraceEvent::Expectation { held, .. } => {
                if *held {
                    f.held += 1;
                } else {
                    f.failed += 1;
                }
            }
            _ => {}
        }
    }
    f.end = f.end.max(1.0);
    f
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Draw into an SVG string; a drawing error leaves a note instead of the picture.
fn svg(height: u32, draw: impl FnOnce(&Area) -> Result<(), String>) -> String {
    let mut s = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut s, (WIDTH, height)).into_drawing_area();
        let r = root
            .fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| draw(&root));
        r.and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    match result {
        Ok(()) => s,
        Err(e) => format!("<p class=note>chart not drawn: {}</p>", escape(&e)),
    }
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// The chart's legend, in a framed box.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// Vertical marks at the faults' times, with their text.
fn mark_faults<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    faults: &[(f64, String)],
    (bottom, top): (f64, f64),
) -> Result<(), String> {
    for (t, text) in faults {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(*t, bottom), (*t, top)],
                FAULT.stroke_width(1),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                text.clone(),
                (*t, top),
                ("sans-serif", 11).into_font().color(&FAULT),
            )))
            .map_err(err)?;
    }
    Ok(())
}

/// Name the rows of a chart whose y coordinate counts rows (row r spans r..r+1), in the
/// label area left of the plot.
fn label_rows<DB: DrawingBackend>(
    root: &Area,
    chart: &ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    x0: f64,
    names: &[String],
) -> Result<(), String> {
    let style = TextStyle::from(("sans-serif", 11).into_font()).pos(
        plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Right,
            plotters::style::text_anchor::VPos::Center,
        ),
    );
    for (r, name) in names.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(x0, r as f64 + 0.5));
        root.draw(&Text::new(name.clone(), (px - 6, py), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

fn topology(f: &Facts) -> String {
    let n = f.hosts.len().min(MAX_ROWS);
    if n == 0 {
        return "<p class=note>no host</p>".into();
    }
    let cols = (n as f64).sqrt().ceil().max(1.0) as usize;
    let rows = n.div_ceil(cols);
    let (bw, bh) = ((WIDTH as usize - 40) / cols, 110usize);
    let height = (rows * (bh + 20) + 80) as u32;
    // What each host runs at the end.
    let mut running: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (c, h, _, end, _) in &f.lives {
        if end.is_none() {
            running.entry(h.as_str()).or_default().push(c.as_str());
        }
    }
    svg(height, |root| {
        let font = ("sans-serif", 12).into_font();
        // The LAN: a bus under the hosts.
        let bus_y = height as i32 - 40;
        root.draw(&PathElement::new(
            vec![(20, bus_y), (WIDTH as i32 - 20, bus_y)],
            BLACK.stroke_width(2),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            format!(
                "LAN: {} host{}{}",
                f.hosts.len(),
                if f.hosts.len() == 1 { "" } else { "s" },
                if f.hosts.len() > n {
                    format!(" (the first {n} drawn)")
                } else {
                    String::new()
                }
            ),
            (24, bus_y + 8),
            font.clone(),
        ))
        .map_err(err)?;
        for (i, (name, ip)) in f.hosts.iter().take(n).enumerate() {
            let (x, y) = (20 + (i % cols) * bw, 20 + (i / cols) * (bh + 20));
            let (x, y) = (x as i32, y as i32);
            let down = f.crashed.contains(name);
            let edge = if down { FAULT } else { BLACK };
            root.draw(&Rectangle::new(
                [(x + 4, y), (x + bw as i32 - 4, y + bh as i32)],
                edge.stroke_width(if down { 3 } else { 1 }),
            ))
            .map_err(err)?;
            root.draw(&PathElement::new(
                vec![
                    (x + bw as i32 / 2, y + bh as i32),
                    (x + bw as i32 / 2, bus_y),
                ],
                RGBColor(160, 160, 160).stroke_width(1),
            ))
            .map_err(err)?;
            if let Some(rules) = f.blocked.get(name).filter(|r| !r.is_empty()) {
                let text = format!(
                    "blocks {}",
                    rules.iter().cloned().collect::<Vec<_>>().join(", ")
                );
                root.draw(&Text::new(
                    text,
                    (x + 10, y + bh as i32 - 16),
                    ("sans-serif", 11).into_font().color(&FAULT),
                ))
                .map_err(err)?;
            }
            let title = format!("{name} {ip}{}", if down { " (down)" } else { "" });
            root.draw(&Text::new(
                title,
                (x + 10, y + 6),
                font.clone().style(FontStyle::Bold),
            ))
            .map_err(err)?;
            let tasks = running.get(name.as_str()).map_or(&[][..], Vec::as_slice);
            for (k, c) in tasks.iter().take(5).enumerate() {
                root.draw(&Text::new(
                    c.to_string(),
                    (x + 10, y + 26 + 15 * k as i32),
                    ("sans-serif", 11).into_font().color(&colour(service_of(c))),
                ))
                .map_err(err)?;
            }
            if tasks.len() > 5 {
                root.draw(&Text::new(
                    format!("+{} more", tasks.len() - 5),
                    (x + 10, y + 26 + 75),
                    ("sans-serif", 11).into_font(),
                ))
                .map_err(err)?;
            }
        }
        Ok(())
    })
}

fn gantt(f: &Facts) -> String {
    let hosts: Vec<&String> = f
        .hosts
        .iter()
        .map(|(h, _)| h)
        .filter(|h| f.lives.iter().any(|l| &l.1 == *h) || f.tasks.values().any(|t| &t.0 == *h))
        .take(MAX_ROWS)
        .collect();
    if hosts.is_empty() {
        return "<p class=note>no container ran</p>".into();
    }
    let row: BTreeMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    // Each container gets a lane of its host's row, the first free when it starts, so
    // that lifetimes that overlap do not hide each other (at most 8 lanes).
    const LANES: usize = 8;
    let mut lane_end: Vec<[f64; LANES]> = vec![[f64::NEG_INFINITY; LANES]; hosts.len()];
    let mut lanes_used = vec![1usize; hosts.len()];
    let mut placed = Vec::new();
    // A task's states, each a segment; a container that is a task is drawn by them.
    let mut lives: Vec<(&str, &str, f64, Option<f64>)> = f
        .lives
        .iter()
        .filter(|l| !f.tasks.contains_key(&l.0))
        .map(|(c, h, s, e, _)| (c.as_str(), h.as_str(), *s, *e))
        .collect();
    for (name, (host, states)) in &f.tasks {
        let start = states.first().map_or(0.0, |s| s.0);
        let end = states
            .last()
            .filter(|s| {
                matches!(
                    s.1,
                    "complete" | "shutdown" | "failed" | "rejected" | "orphaned"
                )
            })
            .map(|s| s.0);
        lives.push((name.as_str(), host.as_str(), start, end));
    }
    lives.sort_by(|a, b| a.2.total_cmp(&b.2).then_with(|| a.0.cmp(b.0)));
    for (c, h, start, end) in lives {
        let Some(&r) = row.get(h) else {
            continue;
        };
        let end = end.unwrap_or(f.end).max(start + f.end / 500.0);
        let lane = (0..LANES)
            .find(|&k| lane_end[r][k] <= start)
            .unwrap_or(LANES - 1);
        lane_end[r][lane] = end;
        lanes_used[r] = lanes_used[r].max(lane + 1);
        placed.push((c, r, lane, start, end));
    }
    let rows = hosts.len();
    let height = (80 + rows * 34).max(160) as u32;
    let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    svg(height, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..f.end, 0f64..rows as f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("virtual time (s)")
            .draw()
            .map_err(err)?;
        label_rows(root, &chart, 0.0, &names)?;
        // A task's segments: grey while it is prepared and started, its service's colour
        // while it runs, red once failed or rejected, dark grey once shut down.
        let mut bars = Vec::new();
        for (c, r, lane, start, end) in &placed {
            let h = 0.8 / lanes_used[*r] as f64;
            let y0 = *r as f64 + 0.1 + h * *lane as f64;
            let segments: Vec<(f64, f64, RGBColor)> = match f.tasks.get(*c) {
                Some((_, states)) => states
                    .iter()
                    .enumerate()
                    .map(|(k, (t, st))| {
                        let next = states.get(k + 1).map_or(*end, |n| n.0);
                        let shade = match *st {
                            "running" => colour(service_of(c)),
                            "failed" | "rejected" => FAULT,
                            "complete" | "shutdown" | "orphaned" => RGBColor(90, 90, 90),
                            _ => RGBColor(190, 190, 190),
                        };
                        (*t, next.max(*t + f.end / 500.0), shade)
                    })
                    .collect(),
                None => vec![(*start, *end, colour(service_of(c)))],
            };
            for (a, b, shade) in segments {
                bars.push(Rectangle::new(
                    [(a, y0), (b, y0 + h * 0.9)],
                    shade.mix(0.85).filled(),
                ));
            }
        }
        chart.draw_series(bars).map_err(err)?;
        // How each stopped one ended: a black tick for 0, red for another status.
        let ends = placed.iter().filter_map(|(c, r, lane, _, end)| {
            let code = f.exits.get(*c).filter(|_| !f.tasks.contains_key(*c))?;
            let h = 0.8 / lanes_used[*r] as f64;
            let y0 = *r as f64 + 0.1 + h * *lane as f64;
            let colour = if *code == 0 { BLACK } else { FAULT };
            Some(PathElement::new(
                vec![(*end, y0), (*end, y0 + h * 0.9)],
                colour.stroke_width(3),
            ))
        });
        chart.draw_series(ends).map_err(err)?;
        mark_faults(&mut chart, &f.faults, (0.0, rows as f64))
    })
}

fn membership(f: &Facts) -> String {
    if f.views.is_empty() {
        return "<p class=note>no gossip membership changes in the trace</p>".into();
    }
    let viewers: Vec<(&String, &Vec<(f64, f64)>)> = f
        .hosts
        .iter()
        .filter_map(|(h, _)| f.views.get_key_value(h).map(|(k, v)| (k, &v.1)))
        .take(VIEWERS)
        .collect();
    // The range the counts move in: a large formed cluster losing one member still
    // shows it.
    let counts = || viewers.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y));
    let top = counts().fold(1.0f64, f64::max) + 1.0;
    let bottom = (counts().fold(top, f64::min) - 1.0).max(0.0);
    svg(300, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..f.end, bottom..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("virtual time (s)")
            .y_desc("members seen alive")
            .draw()
            .map_err(err)?;
        for (i, (name, points)) in viewers.iter().enumerate() {
            let mut line: Vec<(f64, f64)> = Vec::new();
            let mut last = bottom;
            for (t, y) in points.iter() {
                line.push((*t, last));
                line.push((*t, *y));
                last = *y;
            }
            line.push((f.end, last));
            let c = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(thin(line), c.stroke_width(2)))
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
        }
        mark_faults(&mut chart, &f.faults, (bottom, top))?;
        legend(&mut chart)
    })
}

/// Who sees whom at the end of the run: a row per viewer, a column per member, green
/// alive, orange suspect, red dead or left, white never heard of.
fn who_sees_whom(f: &Facts) -> String {
    let n = f.hosts.len().min(MAX_ROWS);
    if f.seen.is_empty() || n == 0 {
        return String::new();
    }
    let cell = (600 / n).clamp(8, 28) as i32;
    let left = 80;
    let top = 70;
    let height = (top + cell * n as i32 + 20) as u32;
    let names: Vec<&str> = f.hosts.iter().take(n).map(|(h, _)| h.as_str()).collect();
    svg(height, |root| {
        let font = ("sans-serif", 11).into_font();
        root.draw(&Text::new(
            "who sees whom at the end (row: viewer, column: member): green alive, orange suspect, red dead or left",
            (10, 8),
            font.clone(),
        ))
        .map_err(err)?;
        for (j, m) in names.iter().enumerate() {
            let x = left + cell * j as i32;
            root.draw(&Text::new(
                m.to_string(),
                (x + 2, top - 14),
                ("sans-serif", 9).into_font(),
            ))
            .map_err(err)?;
        }
        for (i, v) in names.iter().enumerate() {
            let y = top + cell * i as i32;
            root.draw(&Text::new(v.to_string(), (10, y + cell / 4), font.clone()))
                .map_err(err)?;
            for j in 0..n {
                let x = left + cell * j as i32;
                let colour = match f.seen.get(&(i, j)) {
                    Some(0) => RGBColor(44, 160, 44),
                    Some(1) => RGBColor(255, 127, 14),
                    Some(_) => FAULT,
                    None => WHITE,
                };
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell - 1, y + cell - 1)],
                    colour.filled(),
                ))
                .map_err(err)?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell - 1, y + cell - 1)],
                    RGBColor(220, 220, 220).stroke_width(1),
                ))
                .map_err(err)?;
            }
        }
        Ok(())
    })
}

fn raft(f: &Facts) -> String {
    if f.leaders.is_empty() {
        return "<p class=note>no Raft leader in the trace (no swarm)</p>".into();
    }
    let top = f.leaders.iter().map(|l| l.2).max().unwrap_or(1) as f64 + 1.0;
    svg(240, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..f.end, 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("virtual time (s)")
            .y_desc("term")
            .draw()
            .map_err(err)?;
        let mut line = Vec::new();
        let mut last = 0.0;
        for (t, _, term) in &f.leaders {
            line.push((*t, last));
            line.push((*t, *term as f64));
            last = *term as f64;
        }
        line.push((f.end, last));
        chart
            .draw_series(LineSeries::new(thin(line), BLUE.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(f.leaders.iter().map(|(t, host, term)| {
                EmptyElement::at((*t, *term as f64))
                    + Circle::new((0, 0), 4, colour(host).filled())
                    + Text::new(host.clone(), (6, -14), ("sans-serif", 12).into_font())
            }))
            .map_err(err)?;
        mark_faults(&mut chart, &f.faults, (0.0, top))
    })
}

fn traffic(trace: &Trace, f: &Facts) -> String {
    let Some(t) = trace.traffic() else {
        return "<p class=note>traffic was not counted</p>".into();
    };
    let classes: Vec<&str> = TRAFFIC_PORTS
        .iter()
        .map(|(_, n)| *n)
        .chain(std::iter::once("other"))
        .collect();
    let top = t
        .per_second
        .iter()
        .flat_map(|c| c.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.1;
    let over_time = svg(280, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..f.end, 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("virtual time (s)")
            .y_desc("bytes/s, all hosts")
            .draw()
            .map_err(err)?;
        for (k, name) in classes.iter().enumerate() {
            let points: Vec<(f64, f64)> = t
                .per_second
                .iter()
                .enumerate()
                .map(|(s, c)| (s as f64, c[k] as f64))
                .collect();
            let c = PALETTE[k];
            chart
                .draw_series(LineSeries::new(thin(points), c.stroke_width(2)))
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
        }
        mark_faults(&mut chart, &f.faults, (0.0, top))?;
        legend(&mut chart)
    });
    // Per host: the busiest, stacked by class.
    let mut hosts: Vec<(usize, [u64; 4])> = t.per_host.iter().copied().enumerate().collect();
    hosts.sort_by_key(|(i, c)| (std::cmp::Reverse(c.iter().sum::<u64>()), *i));
    hosts.truncate(MAX_ROWS);
    let most = hosts
        .iter()
        .map(|(_, c)| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.1;
    let names: Vec<String> = hosts
        .iter()
        .map(|(i, _)| f.hosts.get(*i).map(|h| h.0.clone()).unwrap_or_default())
        .collect();
    let per_host = svg((80 + hosts.len() * 22).max(160) as u32, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..most, 0f64..hosts.len().max(1) as f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("bytes sent over the whole run")
            .draw()
            .map_err(err)?;
        label_rows(root, &chart, 0.0, &names)?;
        for (row, (_, c)) in hosts.iter().enumerate() {
            let mut x = 0.0;
            for (k, bytes) in c.iter().enumerate() {
                let w = *bytes as f64;
                if w > 0.0 {
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(x, row as f64 + 0.15), (x + w, row as f64 + 0.85)],
                            PALETTE[k].filled(),
                        )))
                        .map_err(err)?;
                }
                x += w;
            }
        }
        Ok(())
    });
    let legend: String = classes
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let RGBColor(r, g, b) = PALETTE[k];
            format!("<span style=\"color:rgb({r},{g},{b})\">&#9632;</span> {name} ")
        })
        .collect();
    format!("{over_time}\n{per_host}\n<p>{legend}</p>\n")
}

fn mesh(f: &Facts) -> String {
    if f.picks.is_empty() {
        return "<p class=note>no load-balancing decision in the trace</p>".into();
    }
    // Backends by address, named by the container that had it (`web.2`).
    let by_ip: BTreeMap<&str, &str> = f
        .lives
        .iter()
        .map(|(c, _, _, _, ip)| (ip.as_str(), c.as_str()))
        .collect();
    let bars: Vec<(String, u64)> = f
        .picks
        .iter()
        .take(MAX_ROWS)
        .map(|(b, n)| {
            let ip = b.split(':').next().unwrap_or(b);
            let name = by_ip.get(ip).map_or(b.clone(), |c| {
                let mut parts = c.split('.');
                match (parts.next(), parts.next()) {
                    (Some(s), Some(slot)) => format!("{s}.{slot} ({b})"),
                    _ => format!("{c} ({b})"),
                }
            });
            (name, *n)
        })
        .collect();
    let most = bars.iter().map(|b| b.1).max().unwrap_or(1) as f64 * 1.15;
    svg((80 + bars.len() * 24).max(160) as u32, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(230)
            .build_cartesian_2d(0f64..most, 0f64..bars.len() as f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("connections or requests balanced to it")
            .draw()
            .map_err(err)?;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        label_rows(root, &chart, 0.0, &names)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (name, n))| {
                Rectangle::new(
                    [(0.0, i as f64 + 0.15), (*n as f64, i as f64 + 0.85)],
                    colour(service_of(name)).filled(),
                )
            }))
            .map_err(err)?;
        Ok(())
    })
}

fn timeline(trace: &Trace, src: &Source<'_>) -> String {
    let mut out = String::from(
        "<table class=steps><tr><th>time</th><th>line</th><th>step</th><th>verdict</th></tr>\n",
    );
    let mut rows = 0;
    let events = trace.events();
    let mut i = 0;
    while i < events.len() && rows < MAX_TIMELINE_ROWS {
        let (at, e) = &events[i];
        i += 1;
        let (line, text, class, verdict) = match e {
            // An expectation's row is its verdict's.
            TraceEvent::Step { line, .. }
                if events[i..]
                    .iter()
                    .take_while(|(_, n)| !matches!(n, TraceEvent::Step { .. }))
                    .any(
                        |(_, n)| matches!(n, TraceEvent::Expectation { line: l, .. } if l == line),
                    ) =>
            {
                continue
            }
            TraceEvent::Step { line, text } => (*line, text, "step", String::new()),
            TraceEvent::Expectation {
                line,
                text,
                held,
                detail,
            } => (
                *line,
                text,
                if *held { "ok" } else { "fail" },
                format!(
                    "<b>{}</b> {}",
                    if *held { "ok" } else { "FAIL" },
                    escape(detail)
                ),
            ),
            _ => continue,
        };
        rows += 1;
        // The command's output follows its step.
        let mut output = String::new();
        while let Some((_, TraceEvent::Output { text, stream, .. })) = events.get(i) {
            let lines: Vec<&str> = text.lines().collect();
            let kept = lines.len().min(MAX_OUTPUT_LINES);
            let _ = write!(
                output,
                "<details><summary>{stream} ({} line{})</summary><pre>{}{}</pre></details>",
                lines.len(),
                if lines.len() == 1 { "" } else { "s" },
                escape(&lines[..kept].join("\n")),
                if kept < lines.len() {
                    format!("\n... {} more lines", lines.len() - kept)
                } else {
                    String::new()
                }
            );
            i += 1;
        }
        let _ = writeln!(
            out,
            "<tr class={class}><td>{at}</td><td><a href=\"#L{line}\">{}:{line}</a></td><td><code>{}</code>{output}</td><td>{verdict}</td></tr>",
            escape(src.file),
            escape(text),
        );
    }
    out.push_str("</table>\n");
    if rows == MAX_TIMELINE_ROWS {
        out.push_str("<p class=note>the first 2000 rows</p>\n");
    }
    out
}

fn scenario_source(src: &Source<'_>) -> String {
    let mut out = String::from("<pre class=source>");
    for (i, l) in src.text.lines().enumerate() {
        let _ = writeln!(
            out,
            "<span id=\"L{n}\"><span class=n>{n:>4}</span> {}</span>",
            escape(l),
            n = i + 1
        );
    }
    out.push_str("</pre>\n");
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;max-width:1000px;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table.steps{border-collapse:collapse;width:100%;font-size:.9em}\
table.steps td,table.steps th{border-bottom:1px solid #eee;padding:2px 6px;vertical-align:top;text-align:left}\
tr.ok td:last-child{color:#2a7d2a}tr.fail{background:#fde8e8}tr.fail td:last-child{color:#c00}\
pre{background:#f6f6f6;padding:4px;overflow-x:auto;font-size:.85em}\
pre.source span:target{background:#fff3b0}.n{color:#999}.note{color:#777;font-style:italic}\
.fault{color:#c00}.summary.ok{color:#2a7d2a}.summary.fail{color:#c00}svg{display:block;margin:.5em 0}";

/// The page for a run whose trace is `trace`.
pub fn render(trace: &Trace, src: &Source<'_>) -> String {
    let f = gather(trace);
    let total = f.held + f.failed;
    let mut page = String::with_capacity(256 * 1024);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>swarmlab: {file}</title><style>{STYLE}</style></head><body>\n\
         <h1>swarmlab report: {file} (seed {seed})</h1>\n\
         <p class=\"summary {cls}\" id=summary>{total} expectation{s}, {held} held, {failed} failed; {end:.3} s of virtual time, {hosts} host{hs}.</p>\n",
        file = escape(src.file),
        seed = src.seed,
        cls = if f.failed == 0 { "ok" } else { "fail" },
        s = if total == 1 { "" } else { "s" },
        held = f.held,
        failed = f.failed,
        end = f.end,
        hosts = f.hosts.len(),
        hs = if f.hosts.len() == 1 { "" } else { "s" },
    );
    page.push_str("<h2 id=topology>Topology</h2>\n");
    page.push_str(&topology(&f));
    if !f.overlays.is_empty() || !f.links.is_empty() || !f.faults.is_empty() {
        page.push_str("<ul>");
        for (t, text) in &f.faults {
            let _ = write!(
                page,
                "<li class=fault>at {t:.3} s: <code>{}</code></li>",
                escape(text)
            );
        }
        for (name, (vni, subnet)) in &f.overlays {
            let _ = write!(
                page,
                "<li>overlay <b>{}</b>: VNI {vni}, {}</li>",
                escape(name),
                escape(subnet)
            );
        }
        for l in &f.links {
            let _ = write!(page, "<li><code>{}</code></li>", escape(l));
        }
        page.push_str("</ul>\n");
    }
    page.push_str("<h2 id=timeline>Timeline</h2>\n");
    page.push_str(&timeline(trace, src));
    page.push_str("<h2 id=tasks>Tasks per node</h2>\n");
    page.push_str(&gantt(&f));
    page.push_str("<p class=note>A bar per task, by state: grey while it is prepared and started, its service's colour while it runs, red once failed or rejected, dark grey once shut down or complete. A container that is not a task is a bar of its service's colour, with a tick at its end: black for exit status 0, red for another.</p>\n");
    page.push_str("<h2 id=membership>Membership (gossip)</h2>\n");
    page.push_str(&membership(&f));
    page.push_str(&who_sees_whom(&f));
    page.push_str("<h2 id=raft>Raft leader and term</h2>\n");
    page.push_str(&raft(&f));
    page.push_str("<h2 id=traffic>Traffic by port</h2>\n");
    page.push_str(&traffic(trace, &f));
    page.push_str("<h2 id=mesh>Load balancing per replica</h2>\n");
    page.push_str(&mesh(&f));
    page.push_str("<h2 id=source>Scenario</h2>\n");
    page.push_str(&scenario_source(src));
    page.push_str("</body></html>\n");
    page
}
