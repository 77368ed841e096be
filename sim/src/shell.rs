//! `swarmlab shell`: a lab played line by line, as a student types it.
//!
//! Every line a scenario file may hold is taken (`m1$ docker node ls`, `crash w2`,
//! `sleep 10s`, `expect ...`); `use m1`, or a bare host name, sets the host that a line
//! without `HOST$` runs on. Virtual time moves only with what is typed (a command, a
//! `sleep`, a wait): never while the student thinks. The lines accepted so far are the
//! session, which `:save` writes as a `.lab` that replays to the same state, and which
//! `:undo` replays without its last line (the same seed gives the same lab).
//!
//! It drives a `Player` (the scenario runner, one step at a time); it never advances
//! time itself.

use crate::scenario::run::{Options, Player};
use crate::scenario::{self, DIRECTIVE_NAMES};
use crate::trace::Trace;
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

/// What the shell answers when asked for help.
pub const HELP: &str = "\
Type any line of a scenario file:
  HOST$ COMMAND              run a command on a host (docker, curl, wget)
  host, hosts, link, overlay, gossip, sleep, crash, restart, partition, heal,
  block, unblock, expect     the scenario language's directives (see README)
  use HOST  (or just HOST)   run the next lines without HOST$ on HOST
Meta-commands:
  :save FILE                 write the session as a .lab file that replays to this state
  :undo                      go back one line (the session is replayed without it)
  :time                      the virtual time
  :trace [N]                 the last N trace events (10 by default), as JSON lines
  :report FILE.html          the HTML report of the session so far
  :help                      this text
  :quit                      leave (also Ctrl-D)
Virtual time moves only with commands, sleeps and waits.";

/// The words tab completion offers, refreshed after each line.
#[derive(Debug, Default, Clone)]
pub struct Vocabulary {
    /// Host names.
    pub hosts: Vec<String>,
    /// Container names.
    pub containers: Vec<String>,
    /// Service names, as the leader knows them.
    pub services: Vec<String>,
    /// The host a line without `HOST$` runs on.
    pub current: Option<String>,
}

impl Vocabulary {
    fn of(p: &Player) -> Vocabulary {
        let lab = p.lab();
        let hosts = lab.underlay.nics().map(|(_, n)| n.name.clone()).collect();
        let mut containers: Vec<String> = lab
            .containers
            .iter()
            .filter(|c| c.running)
            .map(|c| c.name.clone())
            .collect();
        containers.sort();
        containers.dedup();
        let services = lab
            .swarm_view()
            .map(|(_, store)| store.services.values().map(|s| s.name.clone()).collect())
            .unwrap_or_default();
        Vocabulary {
            hosts,
            containers,
            services,
            current: None,
        }
    }

    /// The words that may complete `words` (the line's words before the one being
    /// typed), given the current host.
    pub fn candidates(&self, words: &[&str], current: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        // The command's words, after any `HOST$`.
        let cmd: Vec<&str> = match words.first() {
            Some(w) if w.ends_with('$') => words[1..].to_vec(),
            _ if current.is_some() => words.to_vec(),
            _ => words.to_vec(),
        };
        let prompt = words.first().is_some_and(|w| w.ends_with('$'));
        match cmd.as_slice() {
            [] if !prompt => {
                out.extend(self.hosts.iter().map(|h| format!("{h}$")));
                out.extend(DIRECTIVE_NAMES.iter().map(|d| d.to_string()));
                out.push("use".into());
                for m in [
                    ":save", ":undo", ":time", ":trace", ":report", ":help", ":quit",
                ] {
                    out.push(m.into());
                }
                if current.is_some() {
                    out.extend(["docker", "curl", "wget"].map(String::from));
                }
            }
            [] => out.extend(["docker", "curl", "wget"].map(String::from)),
            ["use"] | ["crash" | "restart"] => out.extend(self.hosts.iter().cloned()),
            ["docker"] => {
                let top = crate::cli::support::SIMULATED
                    .iter()
                    .find(|(c, _)| c.is_empty())
                    .map_or(&[][..], |(_, s)| s);
                out.extend(top.iter().map(|s| s.to_string()));
            }
            ["docker", cmd] => {
                if let Some((_, subs)) = crate::cli::support::SIMULATED
                    .iter()
                    .find(|(c, _)| c == cmd)
                {
                    out.extend(subs.iter().map(|s| s.to_string()));
                } else {
                    out.extend(
                        crate::dockerref::long_flags(cmd)
                            .iter()
                            .map(|s| s.to_string()),
                    );
                    out.extend(self.containers.iter().cloned());
                }
            }
            ["docker", cmd, sub, ..] => {
                let full = format!("{cmd} {sub}");
                out.extend(
                    crate::dockerref::long_flags(&full)
                        .iter()
                        .map(|s| s.to_string()),
                );
                out.extend(
                    crate::dockerref::long_flags(cmd)
                        .iter()
                        .map(|s| s.to_string()),
                );
                match *cmd {
                    "service" => out.extend(self.services.iter().cloned()),
                    "node" => out.extend(self.hosts.iter().cloned()),
                    _ => out.extend(self.containers.iter().cloned()),
                }
            }
            _ => {
                out.extend(self.hosts.iter().cloned());
                out.extend(self.containers.iter().cloned());
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// What a line asked of the shell's loop.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read the next line.
    Continue,
    /// Leave.
    Quit,
}

/// An interactive lab.
pub struct Shell {
    seed: u64,
    /// The session's lines, as a `.lab` file holds them.
    lines: Vec<String>,
    player: Player,
    /// The host a line without `HOST$` runs on.
    host: Option<String>,
    /// Where the timeline and the shell's answers go.
    out: Rc<RefCell<Box<dyn Write>>>,
    /// The words tab completion offers.
    pub vocabulary: Rc<RefCell<Vocabulary>>,
}

/// A writer shared by the player's timeline and the shell's own answers.
struct Shared(Rc<RefCell<Box<dyn Write>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

const NAME: &str = "shell";

/// The shell's lab counts its traffic, for `:report`.
const OPTIONS: Options = Options {
    capture: false,
    strict: false,
    fail_fast: false,
    view: crate::report::timeline::View {
        color: false,
        quiet: false,
        verbose: false,
    },
    progress: false,
    count_traffic: true,
};

impl Shell {
    /// An empty lab, seeded, printing to `out`.
    pub fn new(seed: u64, out: Box<dyn Write>) -> Shell {
        let out = Rc::new(RefCell::new(out));
        let player = Player::new(NAME, seed, OPTIONS, Some(Box::new(Shared(out.clone()))));
        let vocabulary = Rc::new(RefCell::new(Vocabulary::of(&player)));
        Shell {
            seed,
            lines: Vec::new(),
            player,
            host: None,
            out,
            vocabulary,
        }
    }

    /// Play a file's lines first, as if typed.
    pub fn preload(&mut self, text: &str) -> Result<(), String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let s = scenario::parse(NAME, text).map_err(|e| e.to_string())?;
        for step in &s.steps {
            self.player.play(step);
        }
        self.lines = text.lines().map(String::from).collect();
        self.refresh();
        Ok(())
    }

    /// The prompt: the current host and the virtual time, `m1 [12.400s]$ `.
    pub fn prompt(&self) -> String {
        format!(
            "{} [{}]$ ",
            self.host.as_deref().unwrap_or("swarmlab"),
            self.player.lab().now()
        )
    }

    /// The session's lines, as `:save` writes them.
    pub fn session(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }

    fn say(&self, text: &str) {
        let mut w = self.out.borrow_mut();
        let _ = writeln!(w, "{text}");
        let _ = w.flush();
    }

    fn refresh(&mut self) {
        let mut v = Vocabulary::of(&self.player);
        v.current = self.host.clone();
        *self.vocabulary.borrow_mut() = v;
    }

    fn host_named(&self, name: &str) -> bool {
        self.player.lab().underlay.by_name(name).is_some()
    }

    /// Handle one typed line.
    pub fn handle(&mut self, line: &str) -> Flow {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Flow::Continue;
        }
        if let Some(meta) = line.strip_prefix(':') {
            return self.meta(meta);
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let target = match words.as_slice() {
            ["use", h] | [h] if self.host_named(h) => Some(h.to_string()),
            ["use", h] => {
                let hosts = self.vocabulary.borrow().hosts.join(", ");
                self.say(&format!(
                    "swarmlab: no host {h}; hosts: {}",
                    if hosts.is_empty() { "none yet" } else { &hosts }
                ));
                return Flow::Continue;
            }
            _ => None,
        };
        if let Some(h) = target {
            self.host = Some(h);
            self.refresh();
            return Flow::Continue;
        }
        let first = words[0];
        let lab_line = if first.ends_with('$') || DIRECTIVE_NAMES.contains(&first) {
            line.to_string()
        } else if let Some(h) = &self.host {
            format!("{h}$ {line}")
        } else {
            self.say("swarmlab: no current host: type `use HOST`, or HOST$ COMMAND (:help)");
            return Flow::Continue;
        };
        self.accept(lab_line);
        Flow::Continue
    }

    /// Parse `line` after the session's lines, and play it when it is valid.
    fn accept(&mut self, line: String) {
        let mut text = self.session();
        if self.lines.is_empty() {
            text.clear();
        }
        text.push_str(&line);
        text.push('\n');
        let s = match scenario::parse(NAME, &text) {
            Ok(s) => s,
            Err(e) => {
                self.say(&e.to_string());
                return;
            }
        };
        let number = self.lines.len() + 1;
        let Some(step) = s.steps.last().filter(|st| st.line == number) else {
            self.lines.push(line);
            return; // a comment: nothing to play
        };
        for e in scenario::check_commands(&s, &text)
            .iter()
            .filter(|e| e.line == number)
        {
            self.say(&e.as_warning());
        }
        self.player.play(step);
        self.lines.push(line);
        self.refresh();
    }

    fn meta(&mut self, meta: &str) -> Flow {
        let words: Vec<&str> = meta.split_whitespace().collect();
        match words.as_slice() {
            ["quit" | "q" | "exit"] => return Flow::Quit,
            ["help" | "h" | "?"] => self.say(HELP),
            ["time"] => self.say(&self.player.lab().now().to_string()),
            ["trace"] | ["trace", _] => {
                let n = match words.get(1).map(|w| w.parse::<usize>()) {
                    None => 10,
                    Some(Ok(n)) if n <= 10_000 => n,
                    Some(_) => {
                        self.say("swarmlab: :trace N takes a count from 0 to 10000");
                        return Flow::Continue;
                    }
                };
                let events = self.player.lab().trace.events();
                let lines: Vec<String> = events[events.len().saturating_sub(n)..]
                    .iter()
                    .map(|(at, e)| Trace::json_line(*at, e))
                    .collect();
                self.say(&lines.join("\n"));
            }
            ["save", file] => match std::fs::write(file, self.session()) {
                Ok(()) => self.say(&format!(
                    "saved {} line{} to {file}",
                    self.lines.len(),
                    if self.lines.len() == 1 { "" } else { "s" }
                )),
                Err(e) => self.say(&format!("swarmlab: cannot write {file}: {e}")),
            },
            ["undo"] => self.undo(),
            ["report", file] => {
                let text = self.session();
                let page = crate::report::html::render(
                    &self.player.lab().trace,
                    &crate::report::html::Source {
                        file: NAME,
                        text: &text,
                        seed: self.seed,
                    },
                );
                match std::fs::write(file, page) {
                    Ok(()) => self.say(&format!("wrote {file}")),
                    Err(e) => self.say(&format!("swarmlab: cannot write {file}: {e}")),
                }
            }
            _ => self.say(&format!("swarmlab: unknown meta-command :{meta} (:help)")),
        }
        Flow::Continue
    }

    /// Replay the session without its last line, silently, on a new lab with the same
    /// seed: determinism makes it the state before that line.
    fn undo(&mut self) {
        let Some(last) = self.lines.pop() else {
            self.say("swarmlab: nothing to undo");
            return;
        };
        let text = if self.lines.is_empty() {
            String::new()
        } else {
            self.session()
        };
        let mut player = Player::new(NAME, self.seed, OPTIONS, None);
        if let Ok(s) = scenario::parse(NAME, &text) {
            for step in &s.steps {
                player.play(step);
            }
        }
        self.player = player;
        // The replay was silent; what comes next is shown again.
        self.player
            .set_stream(Some(Box::new(Shared(self.out.clone()))));
        self.refresh();
        self.say(&format!(
            "undone: {last} (back at {}, {} line{} replayed)",
            self.player.lab().now(),
            self.lines.len(),
            if self.lines.len() == 1 { "" } else { "s" }
        ));
    }

    /// The session's end: the summary of its expectations.
    pub fn finish(self) {
        let _ = self.player.finish();
    }
}

/// Tab completion over the shell's vocabulary (rustyline's helper).
struct Completion(Rc<RefCell<Vocabulary>>);

impl rustyline::completion::Completer for Completion {
    type Candidate = rustyline::completion::Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Self::Candidate>)> {
        let before = line.get(..pos).unwrap_or(line);
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let partial = &before[start..];
        let words: Vec<&str> = before[..start].split_whitespace().collect();
        let v = self.0.borrow();
        let found = v
            .candidates(&words, v.current.as_deref())
            .into_iter()
            .filter(|c| c.starts_with(partial))
            .map(|c| rustyline::completion::Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        Ok((start, found))
    }
}

impl rustyline::hint::Hinter for Completion {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Completion {}
impl rustyline::validate::Validator for Completion {}
impl rustyline::Helper for Completion {}

/// Where the shell keeps its history: `$SWARMLAB_HISTORY`, else `~/.swarmlab_history`.
pub fn history_file() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("SWARMLAB_HISTORY") {
        return Some(p.into());
    }
    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".swarmlab_history"))
}

/// Run the shell on the terminal (line editing, history, tab completion), or, when
/// standard input is not a terminal, on its lines (each echoed after its prompt).
pub fn repl(mut shell: Shell) -> Result<(), String> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        for line in std::io::stdin().lines() {
            let line = line.map_err(|e| e.to_string())?;
            shell.say(&format!("{}{line}", shell.prompt()));
            if shell.handle(&line) == Flow::Quit {
                break;
            }
        }
        shell.finish();
        return Ok(());
    }
    let mut rl: rustyline::Editor<Completion, rustyline::history::DefaultHistory> =
        rustyline::Editor::new().map_err(|e| e.to_string())?;
    rl.set_helper(Some(Completion(shell.vocabulary.clone())));
    let history = history_file();
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    loop {
        match rl.readline(&shell.prompt()) {
            Ok(typed) => {
                let _ = rl.add_history_entry(typed.as_str());
                // A pasted block arrives as one entry with its newlines: each line runs.
                if typed.lines().any(|line| shell.handle(line) == Flow::Quit) {
                    break;
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    shell.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Rc<RefCell<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_run_on_the_current_host_and_undo_replays_without_the_last() {
        let buf = Buf::default();
        let mut sh = Shell::new(1, Box::new(buf.clone()));
        assert_eq!(sh.handle("hosts m[1-2] 10.0.0.0/24"), Flow::Continue);
        sh.handle("use m1");
        assert!(sh.prompt().starts_with("m1 [0.000s]$"), "{}", sh.prompt());
        sh.handle("docker swarm init");
        sh.handle("sleep 2s");
        assert!(sh.prompt().contains("[2.000s]"), "{}", sh.prompt());
        assert_eq!(
            sh.session(),
            "hosts m[1-2] 10.0.0.0/24
m1$ docker swarm init
sleep 2s
"
        );
        sh.handle(":undo");
        assert!(sh.prompt().contains("[0.000s]"), "{}", sh.prompt());
        let shown = String::from_utf8(buf.0.borrow().clone()).unwrap();
        assert!(shown.contains("Swarm initialized"), "{shown}");
        assert!(shown.contains("undone: sleep 2s"), "{shown}");
        // A broken line is refused with its column, and not kept.
        sh.handle("sleep fast");
        assert_eq!(sh.session().lines().count(), 2);
        let shown = String::from_utf8(buf.0.borrow().clone()).unwrap();
        assert!(shown.contains("shell:3:7: expected a duration"), "{shown}");
    }

    #[test]
    fn completion_offers_hosts_docker_commands_and_flags() {
        let mut sh = Shell::new(1, Box::new(Buf::default()));
        sh.handle("hosts m[1-2] 10.0.0.0/24");
        let v = sh.vocabulary.borrow().clone();
        assert!(v.candidates(&[], None).contains(&"m1$".to_string()));
        assert!(v.candidates(&["use"], None).contains(&"m2".to_string()));
        assert!(v
            .candidates(&["m1$", "docker"], None)
            .contains(&"service".to_string()));
        assert!(v
            .candidates(&["m1$", "docker", "service", "create"], None)
            .contains(&"--replicas".to_string()));
    }
}
