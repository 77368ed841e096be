//! The `swarmlab` command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use swarmlab::scenario::{self, Scenario};

#[derive(Parser)]
#[command(
    name = "swarmlab",
    version,
    about = "A lab simulator of Docker Swarm's overlay networking"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario (the default one when FILE is omitted) and print its timeline.
    /// Exit 0 when every expectation held, 1 when one failed, 2 when the scenario is invalid.
    Run {
        /// Scenario file.
        file: Option<PathBuf>,
        /// Seed of the simulator's random source.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write one pcap per host and trace.jsonl into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Parse and validate a scenario without running it (exit 0 valid, 2 invalid).
    Check {
        /// Scenario file.
        file: PathBuf,
    },
    /// Live mode: run one VTEP with one container stack on a real UDP socket.
    #[command(hide = true)]
    LiveVtep(swarmlab::live::LiveArgs),
}

fn load(file: Option<&PathBuf>) -> Result<Scenario, ExitCode> {
    let (name, text) = match file {
        None => (
            "scenarios/default.lab".to_string(),
            scenario::DEFAULT_SCENARIO.to_string(),
        ),
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => (p.display().to_string(), t),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", p.display());
                return Err(ExitCode::from(2));
            }
        },
    };
    scenario::parse(&name, &text).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => match load(Some(&file)) {
            Ok(s) => {
                println!("{}: ok ({} steps)", s.file, s.steps.len());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { file, seed, out } => {
            let s = match load(file.as_ref()) {
                Ok(s) => s,
                Err(code) => return code,
            };
            // Each line is written (and flushed) when its step happens.
            let stdout: Box<dyn std::io::Write> = Box::new(std::io::stdout());
            let outcome = scenario::run::run_streaming(&s, seed, out.is_some(), Some(stdout));
            if let Some(dir) = out {
                match swarmlab::report::write_outputs(&outcome.lab, &dir) {
                    Ok(paths) => {
                        for p in paths {
                            println!("wrote {}", p.display());
                        }
                    }
                    Err(e) => {
                        eprintln!("error: cannot write to {}: {e}", dir.display());
                        return ExitCode::from(2);
                    }
                }
            }
            ExitCode::from(outcome.exit_code() as u8)
        }
        Command::LiveVtep(args) => match swarmlab::live::run_vtep(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}
