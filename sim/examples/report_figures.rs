//! The HTML report's size and generation time, for the default scenario and the
//! 10,000-member lab (`scenarios/scale.lab`): `cargo run --release -p swarmlab --example
//! report_figures`. The run itself is not timed, only `report::html::render`. The pages
//! are written to the temp directory, to be opened in a browser.

use std::time::Instant;
use swarmlab::report::html::{render, Source};
use swarmlab::scenario::{parse, run::run_with, run::Options};

fn main() {
    let scale = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/scale.lab"
    ))
    .expect("scenarios/scale.lab");
    let labs = [
        (
            "scenarios/default.lab",
            swarmlab::scenario::DEFAULT_SCENARIO.to_string(),
        ),
        ("scenarios/scale.lab", scale),
    ];
    println!("| lab | trace events | report size | render (wall) |");
    println!("|---|---|---|---|");
    for (file, text) in labs {
        let s = parse(file, &text).expect("the lab parses");
        let options = Options {
            count_traffic: true,
            ..Default::default()
        };
        let o = run_with(&s, 1, options, None);
        let start = Instant::now();
        let page = render(
            &o.lab.trace,
            &Source {
                file,
                text: &text,
                seed: 1,
            },
        );
        let took = start.elapsed();
        let out = std::env::temp_dir().join(format!(
            "swarmlab-report-{}.html",
            file.trim_start_matches("scenarios/")
                .trim_end_matches(".lab")
        ));
        std::fs::write(&out, &page).expect("write the report");
        println!(
            "| {file} | {} | {:.1} KiB | {:.1} ms |",
            o.lab.trace.events().len(),
            page.len() as f64 / 1024.0,
            took.as_secs_f64() * 1e3
        );
        eprintln!("wrote {}", out.display());
    }
}
