//! The HTML report of the default scenario, opened in a real browser (headless
//! Chromium): the page loads without console errors, fetches nothing, holds the
//! expectation rows and the SVG charts, and its screenshot is not blank.

use std::process::Command;
use swarmlab::report::html::{render, Source};
use swarmlab::scenario::run::{run_with, Options};
use swarmlab_tests::{can_run, default_scenario, have, scratch_dir};

fn chromium(args: &[&str]) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .output()
        .expect("run chromium")
}

#[test]
fn the_default_scenarios_report_renders_in_chromium() {
    if !can_run(
        "the_default_scenarios_report_renders_in_chromium",
        have("chromium"),
        "chromium is not installed (Debian's `chromium` package)",
    ) {
        return;
    }
    let s = default_scenario();
    let options = Options {
        count_traffic: true,
        ..Default::default()
    };
    let o = run_with(&s, 1, options, None);
    let page = render(
        &o.lab.trace,
        &Source {
            file: &s.file,
            text: swarmlab::scenario::DEFAULT_SCENARIO,
            seed: 1,
        },
    );
    assert!(page.len() < 2 << 20, "the report is {} bytes", page.len());
    // Self-contained: nothing is fetched (the SVG namespace is a name, not a fetch).
    for fetch in ["src=", "<link", "<script", "url(", "@import", "href=\"http"] {
        assert!(!page.contains(fetch), "the page fetches something: {fetch}");
    }
    let dir = scratch_dir("report");
    let path = dir.join("report.html");
    std::fs::write(&path, &page).unwrap();
    let url = format!("file://{}", path.display());

    let dom = chromium(&["--dump-dom", &url]);
    let html = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "{log}");
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    // The browser's DOM, not our text: one row per expectation, the charts as SVG.
    assert_eq!(
        html.matches("<tr class=\"ok\">").count(),
        o.held,
        "one row per expectation that held"
    );
    assert!(o.held > 10);
    assert!(html.matches("<svg").count() >= 7, "topology and charts");
    for id in [
        "topology",
        "timeline",
        "tasks",
        "membership",
        "raft",
        "traffic",
        "mesh",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
    }

    let shot = dir.join("report.png");
    let out = chromium(&[
        "--window-size=1100,2600",
        &format!("--screenshot={}", shot.display()),
        &url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // A blank page of that size compresses to a few kilobytes; drawn charts and text
    // do not.
    assert!(
        png.len() > 100_000,
        "the screenshot is {} bytes: blank?",
        png.len()
    );
}
