//! What swarmlab runs of the commands a lab types on a host: the host's programs,
//! docker's commands, and the subcommands of the management commands. A scenario's
//! checker asks it, before anything runs, whether a command line is a typo, something
//! Docker itself lacks, or something swarmlab does not simulate yet; the clients'
//! dispatchers answer the same at run time, and a test keeps the two in step.

use crate::dockerref;

/// The programs a host runs (the others run in containers, through `docker exec`).
pub const HOST_PROGRAMS: &[&str] = &["docker", "curl", "wget"];

/// The docker commands swarmlab simulates, and the subcommands of each management
/// command it simulates (with Docker's aliases).
pub const SIMULATED: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "run",
            "exec",
            "ps",
            "stop",
            "start",
            "rm",
            "info",
            "version",
            "images",
            "build",
            "container",
            "image",
            "swarm",
            "node",
            "service",
            "network",
        ],
    ),
    (
        "container",
        &["ls", "list", "ps", "run", "exec", "stop", "start", "rm"],
    ),
    ("image", &["ls", "list", "build"]),
    ("swarm", &["init", "join", "join-token", "leave"]),
    (
        "node",
        &[
            "ls", "list", "ps", "update", "promote", "demote", "rm", "remove", "inspect",
        ],
    ),
    (
        "service",
        &[
            "create", "ls", "list", "ps", "update", "rollback", "scale", "rm", "remove", "inspect",
        ],
    ),
    (
        "network",
        &["create", "ls", "list", "rm", "remove", "inspect"],
    ),
];

/// Docker's aliases of management subcommands (`ls` is also `list`, and `ps` for
/// containers; `rm` is also `remove`).
fn canonical<'a>(cmd: &str, sub: &'a str) -> &'a str {
    match (cmd, sub) {
        (_, "list") | ("container", "ps") => "ls",
        (_, "remove") => "rm",
        (_, other) => other,
    }
}

/// Why a command line will not run as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The word at fault, as written.
    pub word: String,
    /// What was expected, and what was found.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// The closest of `known` to `word`, when it is close enough to be a typo of it.
pub fn did_you_mean<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn simulated(cmd: &str) -> &'static [&'static str] {
    SIMULATED
        .iter()
        .find(|(c, _)| *c == cmd)
        .map_or(&[], |(_, subs)| subs)
}

/// Whether `docker CMD [SUB]` is simulated (`sub` only for management commands).
pub fn is_simulated(cmd: &str, sub: Option<&str>) -> bool {
    if !simulated("").contains(&cmd) {
        return false;
    }
    match sub {
        Some(sub) if dockerref::SUBCOMMANDS.iter().any(|(c, _)| *c == cmd) => {
            simulated(cmd).contains(&sub)
        }
        _ => true,
    }
}

/// Check a line the host's shell runs: each of its commands (after `;`, `&&`, `||`, `|`
/// or a newline) is checked as `check` does.
pub fn check_script(script: &str) -> Result<(), Refusal> {
    let Ok(tokens) = brush_parser::tokenize_str(script) else {
        return Ok(()); // the shell itself says what is wrong with it
    };
    let mut argv: Vec<String> = Vec::new();
    let mut skip_next = false;
    for t in tokens
        .iter()
        .chain(std::iter::once(&brush_parser::Token::Operator(
            "\n".into(),
            brush_parser::TokenLocation::default(),
        )))
    {
        match t {
            brush_parser::Token::Word(w, _) if !skip_next => argv.push(shlex_word(w)),
            brush_parser::Token::Word(..) => skip_next = false,
            brush_parser::Token::Operator(op, _) => match op.as_str() {
                ">" | ">>" | "<" | ">&" => skip_next = true,
                "<<" | "<<-" => skip_next = true,
                _ => {
                    if !argv.is_empty() {
                        check(&argv)?;
                    }
                    argv.clear();
                }
            },
        }
    }
    Ok(())
}

/// A word without its quotes (its variables stay as written).
fn shlex_word(w: &str) -> String {
    w.chars().filter(|c| !matches!(c, '\'' | '"')).collect()
}

/// Check a command line typed on a host. Words holding a variable are not judged.
pub fn check(argv: &[String]) -> Result<(), Refusal> {
    let Some(program) = argv.first() else {
        return Ok(());
    };
    if program.contains('$') || crate::sh::BUILTINS.contains(&program.as_str()) {
        return Ok(());
    }
    if program.contains('=') {
        return Ok(()); // a variable assignment
    }
    if !HOST_PROGRAMS.contains(&program.as_str()) {
        let known: Vec<&str> = HOST_PROGRAMS
            .iter()
            .chain(crate::sh::BUILTINS)
            .copied()
            .collect();
        let hint = match did_you_mean(program, &known) {
            Some(k) => format!("did you mean \"{k}\"?"),
            None => "a host runs docker, curl and wget; run other programs in a container: \
                     docker exec CONTAINER PROGRAM ..."
                .to_string(),
        };
        return Err(Refusal {
            word: program.clone(),
            message: format!("expected a command a host runs, found \"{program}\""),
            hint,
        });
    }
    if program != "docker" {
        return Ok(());
    }
    // The command is the first word that is not a global flag; a lab's docker has none
    // that take a value, so the first word not starting with `-` is it.
    let mut words = argv[1..].iter().filter(|w| !w.starts_with('-'));
    let Some(cmd) = words.next() else {
        return Ok(());
    };
    if cmd.contains('$') {
        return Ok(());
    }
    if !dockerref::COMMANDS.contains(&cmd.as_str()) {
        let hint = match did_you_mean(cmd, dockerref::COMMANDS) {
            Some(k) => format!("did you mean \"{k}\"?"),
            None => "see README's supported commands".to_string(),
        };
        return Err(Refusal {
            word: cmd.clone(),
            message: format!("expected a docker command, found \"{cmd}\", which Docker lacks"),
            hint,
        });
    }
    if !is_simulated(cmd, None) {
        return Err(Refusal {
            word: cmd.clone(),
            message: format!("swarmlab does not simulate docker {cmd} yet"),
            hint: "see README's supported commands".to_string(),
        });
    }
    let Some((_, docker_subs)) = dockerref::SUBCOMMANDS.iter().find(|(c, _)| c == cmd) else {
        return Ok(());
    };
    // A management command alone prints Docker's help: its dispatcher says so at run time.
    let Some(sub) = argv[1..]
        .iter()
        .skip_while(|w| *w != cmd)
        .skip(1)
        .find(|w| !w.starts_with('-'))
    else {
        return Ok(());
    };
    if sub.contains('$') {
        return Ok(());
    }
    if !docker_subs.contains(&canonical(cmd, sub)) {
        let hint = match did_you_mean(sub, docker_subs) {
            Some(k) => format!("did you mean \"{k}\"?"),
            None => format!("docker {cmd} has: {}", docker_subs.join(", ")),
        };
        return Err(Refusal {
            word: sub.clone(),
            message: format!(
                "expected a subcommand of docker {cmd}, found \"{sub}\", which Docker lacks"
            ),
            hint,
        });
    }
    if !is_simulated(cmd, Some(sub)) {
        return Err(Refusal {
            word: sub.clone(),
            message: format!("swarmlab does not simulate docker {cmd} {sub} yet"),
            hint: format!(
                "swarmlab simulates docker {cmd} {}",
                simulated(cmd)
                    .iter()
                    .filter(|s| !matches!(**s, "list" | "remove"))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn a_typo_of_docker_is_refused_with_a_suggestion() {
        let r = check(&argv("dokcer service ls")).unwrap_err();
        assert_eq!(r.word, "dokcer");
        assert_eq!(r.hint, "did you mean \"docker\"?");
    }

    #[test]
    fn docker_commands_are_told_apart_typo_gap_and_simulated() {
        let r = check(&argv("docker sevrice ls")).unwrap_err();
        assert_eq!(r.hint, "did you mean \"service\"?");
        let r = check(&argv("docker push x")).unwrap_err();
        assert!(r.message.contains("does not simulate docker push"), "{r:?}");
        let r = check(&argv("docker service logs web")).unwrap_err();
        assert!(r.message.contains("docker service logs"), "{r:?}");
        let r = check(&argv("docker service lss")).unwrap_err();
        assert_eq!(r.hint, "did you mean \"ls\"?");
        assert!(check(&argv("docker service list")).is_ok());
        assert!(check(&argv("docker node rm -f w1")).is_ok());
        assert!(check(&argv("docker $CMD ls")).is_ok());
        assert!(check(&argv("curl -s http://10.0.0.1")).is_ok());
    }

    #[test]
    fn every_simulated_subcommand_is_one_docker_has() {
        for (cmd, subs) in SIMULATED {
            for sub in *subs {
                if cmd.is_empty() {
                    assert!(dockerref::COMMANDS.contains(sub), "docker {sub}");
                } else {
                    assert!(
                        dockerref::has_subcommand(cmd, canonical(cmd, sub)),
                        "docker {cmd} {sub}"
                    );
                }
            }
        }
    }
}
