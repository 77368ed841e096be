//! The `swarmlab` command line.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use swarmlab::report::timeline::View;
use swarmlab::scenario::{self, run::Options, Scenario};

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

/// When the timeline is coloured.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Color {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
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
        /// Write one pcap per host, trace.jsonl and report.html into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the HTML report (one self-contained page) to this file.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Colour the timeline: ok green, FAIL red, faults yellow, gossip and swarm dim.
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
        /// Print only expectations, faults and the summary.
        #[arg(short, long, conflicts_with = "verbose")]
        quiet: bool,
        /// Print commands' outputs whole (the timeline folds runs of identical lines).
        #[arg(short, long)]
        verbose: bool,
        /// A command that exits non-zero fails the run, unless an `expect exit N` or
        /// `expect error contains` right after it expects the failure.
        #[arg(long)]
        strict: bool,
        /// Stop at the first failure.
        #[arg(long)]
        fail_fast: bool,
    },
    /// Validate a scenario without running it: its syntax, and that every command is one
    /// swarmlab runs (exit 0 valid, 2 invalid).
    Check {
        /// Scenario file.
        file: PathBuf,
    },
    /// An interactive lab: type scenario lines (`m1$ docker node ls`, `crash w2`,
    /// `sleep 10s`, `expect ...`), `use HOST`, and `:help` for the rest. Virtual time
    /// moves only with what is typed.
    Shell {
        /// Play this file first.
        file: Option<PathBuf>,
        /// Seed of the simulator's random source.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Live mode: run one VTEP with one container stack on a real UDP socket.
    #[command(hide = true)]
    LiveVtep(swarmlab::live::LiveArgs),
}

fn load(file: Option<&PathBuf>) -> Result<(Scenario, String), ExitCode> {
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
    match scenario::parse(&name, &text) {
        Ok(s) => Ok((s, text)),
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => match load(Some(&file)) {
            Ok((s, text)) => {
                let refused = scenario::check_commands(&s, &text);
                for e in &refused {
                    eprintln!("{e}\n");
                }
                if refused.is_empty() {
                    println!("{}: ok ({} steps)", s.file, s.steps.len());
                    ExitCode::SUCCESS
                } else {
                    eprintln!(
                        "{}: {} command line{} will not run as written",
                        s.file,
                        refused.len(),
                        if refused.len() == 1 { "" } else { "s" }
                    );
                    ExitCode::from(2)
                }
            }
            Err(code) => code,
        },
        Command::Run {
            file,
            seed,
            out,
            report,
            color,
            quiet,
            verbose,
            strict,
            fail_fast,
        } => {
            let (s, text) = match load(file.as_ref()) {
                Ok(s) => s,
                Err(code) => return code,
            };
            // What `check` refuses still runs (the commands fail as they would), with a
            // warning first.
            for e in scenario::check_commands(&s, &text) {
                eprintln!("{}\n", e.as_warning());
            }
            let choice = match color {
                Color::Auto => anstream::ColorChoice::Auto,
                Color::Always => anstream::ColorChoice::Always,
                Color::Never => anstream::ColorChoice::Never,
            };
            // Each line is written (and flushed) when its step happens; the stream drops
            // the colours where they do not belong (not a terminal, NO_COLOR).
            let stdout: Box<dyn std::io::Write> =
                Box::new(anstream::AutoStream::new(std::io::stdout(), choice));
            let options = Options {
                capture: out.is_some(),
                strict,
                fail_fast,
                view: View {
                    color: !matches!(color, Color::Never),
                    quiet,
                    verbose,
                },
                progress: true,
                count_traffic: out.is_some() || report.is_some(),
            };
            let outcome = scenario::run::run_with(&s, seed, options, Some(stdout));
            let source = swarmlab::report::html::Source {
                file: &s.file,
                text: &text,
                seed,
            };
            if let Some(path) = report {
                let page = swarmlab::report::html::render(&outcome.lab.trace, &source);
                if let Err(e) = std::fs::write(&path, page) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return ExitCode::from(2);
                }
                println!("wrote {}", path.display());
            }
            if let Some(dir) = out {
                match swarmlab::report::write_outputs(&outcome.lab, &dir, Some(&source)) {
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
        Command::Shell { file, seed } => {
            let stdout: Box<dyn std::io::Write> = Box::new(std::io::stdout());
            let mut shell = swarmlab::shell::Shell::new(seed, stdout);
            if let Some(p) = file {
                let text = match std::fs::read_to_string(&p) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("error: cannot read {}: {e}", p.display());
                        return ExitCode::from(2);
                    }
                };
                if let Err(e) = shell.preload(&text) {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            }
            match swarmlab::shell::repl(shell) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
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
