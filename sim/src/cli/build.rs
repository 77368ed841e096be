//! `docker build -t NAME[:TAG] [-f FILE] DIR`: a Dockerfile read from the host's disk,
//! its instructions run into a new image of that node's store, with BuildKit's plain
//! progress lines.
//!
//! Instructions: FROM (a built-in image, or one built on this node), COPY and ADD (files
//! of the context), RUN (the shell, on the image's files), ENV, WORKDIR, EXPOSE, CMD,
//! ENTRYPOINT, LABEL. The build takes no virtual time, and RUN has no network yet.

use crate::fs::{resolve, Entry, Fs};
use crate::imagestore::{digest, normalize, ImageConfig, LocalImage};
use crate::lab::cx::Cx;
use crate::output::CommandOutput;
use crate::sh::{Flavor, Io, Sh};
use crate::underlay::HostId;

/// RUN's other programs: none reach the network in a build yet.
struct NoNetwork;

impl crate::sh::External for NoNetwork {
    async fn run(&mut self, _: &mut Sh, argv: &[String], _: &str) -> Option<Io> {
        crate::cli::support::HOST_PROGRAMS
            .contains(&argv[0].as_str())
            .then(|| Io {
                stderr: format!(
                    "swarmlab: {} in a build's RUN is not simulated yet (no network)\n",
                    argv[0]
                ),
                code: 1,
                ..Default::default()
            })
    }
}

fn failed(msg: &str, progress: String) -> CommandOutput {
    CommandOutput {
        stdout: String::new(),
        stderr: format!("{progress}ERROR: failed to solve: {msg}\n"),
        exit_code: 1,
    }
}

/// An instruction: its line, keyword (upper case) and the rest.
type Instruction = (usize, String, String);

/// The Dockerfile's instructions, or the line and the reason it is refused.
fn instructions(text: &str) -> Result<Vec<Instruction>, (usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if pending.is_none() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        let (start, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(cont) = line.strip_suffix('\\') {
            acc.push_str(cont);
            acc.push(' ');
            pending = Some((start, acc));
            continue;
        }
        acc.push_str(line);
        let (kw, rest) = acc.split_once(char::is_whitespace).unwrap_or((&acc, ""));
        let kw = kw.to_ascii_uppercase();
        const KNOWN: &[&str] = &[
            "FROM",
            "COPY",
            "ADD",
            "RUN",
            "ENV",
            "WORKDIR",
            "EXPOSE",
            "CMD",
            "ENTRYPOINT",
            "LABEL",
            "USER",
            "ARG",
            "VOLUME",
            "HEALTHCHECK",
            "STOPSIGNAL",
            "SHELL",
            "ONBUILD",
            "MAINTAINER",
        ];
        if !KNOWN.contains(&kw.as_str()) {
            return Err((start, format!("unknown instruction: {kw}")));
        }
        out.push((start, kw, rest.trim().to_string()));
    }
    Ok(out)
}

/// `["a", "b"]` or a shell form (`/bin/sh -c "..."`).
fn command_form(rest: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(rest)
        .unwrap_or_else(|_| vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
}

/// `docker build`.
pub async fn build(cx: &Cx<'_>, host: HostId, args: &[String]) -> CommandOutput {
    let mut tags: Vec<String> = Vec::new();
    let mut file: Option<String> = None;
    let mut quiet = false;
    let mut context: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-t" | "--tag" | "-f" | "--file" => {
                let Some(v) = args.get(i + 1) else {
                    return CommandOutput::err(
                        format!("flag needs an argument: '{}' in -{}\nSee 'docker buildx build --help'.\n", args[i].trim_start_matches('-'), args[i].trim_start_matches('-')),
                        1,
                    );
                };
                if args[i].ends_with('t') || args[i] == "--tag" {
                    tags.push(v.clone());
                } else {
                    file = Some(v.clone());
                }
                i += 1;
            }
            "-q" | "--quiet" => quiet = true,
            a if a.starts_with('-') => {
                return CommandOutput::err(
                    format!("swarmlab: docker build {a} is not simulated yet\n"),
                    1,
                )
            }
            a if context.is_none() => context = Some(a.to_string()),
            _ => {
                return CommandOutput::err(
                    "ERROR: docker buildx build requires exactly 1 argument.\nSee 'docker buildx build --help'.\n\nUsage:  docker buildx build [OPTIONS] PATH | URL | -\n\nStart a build\n",
                    1,
                )
            }
        }
        i += 1;
    }
    let Some(context) = context else {
        return CommandOutput::err(
            "ERROR: docker buildx build requires exactly 1 argument.\nSee 'docker buildx build --help'.\n\nUsage:  docker buildx build [OPTIONS] PATH | URL | -\n\nStart a build\n",
            1,
        );
    };
    for t in &tags {
        if t.is_empty()
            || t.chars()
                .any(|c| c.is_ascii_uppercase() || c.is_whitespace())
        {
            return CommandOutput::err(
                format!("ERROR: invalid tag \"{t}\": invalid reference format: repository name must be lowercase\n"),
                1,
            );
        }
    }
    let disk = cx.lab().host_fs(host).clone();
    let dir = resolve("/root", &context);
    if !matches!(disk.get(&dir), Some(Entry::Dir)) {
        return CommandOutput::err(
            format!("ERROR: unable to prepare context: path \"{context}\" not found\n"),
            1,
        );
    }
    let dockerfile = resolve(&dir, file.as_deref().unwrap_or("Dockerfile"));
    let mut p = String::from("#0 building with \"default\" instance using docker driver\n\n");
    let Ok(text) = disk.read(&dockerfile) else {
        let name = file.as_deref().unwrap_or("Dockerfile");
        return failed(
            &format!("failed to read dockerfile: open {name}: no such file or directory"),
            p,
        );
    };
    let text = String::from_utf8_lossy(text).into_owned();
    p.push_str(&format!(
        "#1 [internal] load build definition from Dockerfile\n#1 transferring dockerfile: {}B done\n#1 DONE 0.0s\n\n",
        text.len()
    ));
    let steps = match instructions(&text) {
        Ok(s) => s,
        Err((line, e)) => return failed(&format!("dockerfile parse error on line {line}: {e}"), p),
    };
    let Some((_, kw, from)) = steps.first() else {
        return failed("the Dockerfile cannot be empty", p);
    };
    if kw != "FROM" {
        return failed("no build stage in current context", p);
    }
    let from = from.split_whitespace().next().unwrap_or("").to_string();
    let full = |r: &str| {
        let n = normalize(r);
        if n.matches('/').count() == 0 {
            format!("docker.io/library/{n}")
        } else {
            n
        }
    };
    let base = cx.lab().image_pull(host, &from).cloned();
    p.push_str(&format!(
        "#2 [internal] load metadata for {}\n",
        full(&from)
    ));
    let Some(base) = base else {
        let repo = crate::images::image_repo(&from).to_string();
        return failed(
            &format!(
                "{from}: failed to resolve source metadata for {}: pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed",
                full(&repo)
            ),
            p,
        );
    };
    p.push_str("#2 DONE 0.0s\n\n#3 [internal] load .dockerignore\n#3 transferring context: 2B done\n#3 DONE 0.0s\n\n");
    // BuildKit numbers the steps that make layers.
    let n = steps
        .iter()
        .filter(|(_, kw, _)| matches!(kw.as_str(), "FROM" | "COPY" | "ADD" | "RUN"))
        .count();
    let mut layer = 1;
    p.push_str(&format!(
        "#4 [1/{n}] FROM {}\n#4 DONE 0.0s\n\n",
        full(&from)
    ));
    let flavor = if crate::images::busybox_shell(&base.base) {
        Flavor::Busybox
    } else {
        Flavor::Gnu
    };
    let mut fs: Fs = base.files.clone();
    let mut config = ImageConfig {
        workdir: "/".into(),
        ..base.config.clone()
    };
    let mut added = 0u64;
    let mut context_sent = false;
    let mut step_no = 5;
    for (line, kw, rest) in steps.iter().skip(1) {
        if matches!(kw.as_str(), "COPY" | "ADD" | "RUN") {
            layer += 1;
        }
        let label = format!("[{layer}/{n}] {kw} {rest}");
        match kw.as_str() {
            "COPY" | "ADD" => {
                if !context_sent {
                    p.push_str(&format!(
                        "#{step_no} [internal] load build context\n#{step_no} transferring context: done\n#{step_no} DONE 0.0s\n\n"
                    ));
                    step_no += 1;
                    context_sent = true;
                }
                let words: Vec<&str> = rest.split_whitespace().filter(|w| !w.starts_with("--")).collect();
                let Some((dest, srcs)) = words.split_last().filter(|(_, s)| !s.is_empty()) else {
                    return failed(&format!("dockerfile parse error on line {line}: {kw} requires at least two arguments"), p);
                };
                let into_dir = dest.ends_with('/') || srcs.len() > 1;
                let dest = resolve(&config.workdir, dest);
                for src in srcs {
                    let from_path = resolve(&dir, src);
                    if !from_path.starts_with(&dir) {
                        return failed(&format!("failed to compute cache key: failed to calculate checksum of ref: \"/{src}\": not found"), p);
                    }
                    let target = if into_dir || matches!(fs.get(&dest), Some(Entry::Dir)) {
                        let name = from_path.rsplit('/').next().unwrap_or("");
                        format!("{}/{name}", dest.trim_end_matches('/'))
                    } else {
                        dest.clone()
                    };
                    match disk.get(&from_path) {
                        Some(Entry::File(b)) => {
                            added += b.len() as u64;
                            let parent = target.rsplit_once('/').map_or("/", |(p, _)| if p.is_empty() { "/" } else { p });
                            let _ = fs.mkdir_p(parent);
                            if let Err(e) = fs.write(&target, b.clone()) {
                                return failed(&format!("failed to copy {src}: {e}"), p);
                            }
                        }
                        Some(Entry::Dir) => {
                            // The directory's files go into the destination.
                            let _ = fs.mkdir_p(&dest);
                            for name in disk.list(&from_path).unwrap_or_default() {
                                if let Some(Entry::File(b)) =
                                    disk.get(&format!("{from_path}/{name}"))
                                {
                                    added += b.len() as u64;
                                    let at = format!("{}/{name}", dest.trim_end_matches('/'));
                                    let _ = fs.write(&at, b.clone());
                                }
                            }
                        }
                        None => {
                            return failed(&format!("failed to compute cache key: failed to calculate checksum of ref: \"/{src}\": not found"), p);
                        }
                    }
                }
            }
            "RUN" => {
                let mut sh = Sh::new(fs.clone(), &config.workdir, flavor);
                for e in &config.env {
                    if let Some((k, v)) = e.split_once('=') {
                        sh.env.insert(k.into(), v.into());
                    }
                }
                let io = sh.run(rest, "", &mut NoNetwork).await;
                p.push_str(&format!("#{step_no} {label}\n"));
                for l in io.stdout.lines().chain(io.stderr.lines()) {
                    p.push_str(&format!("#{step_no} 0.000 {l}\n"));
                }
                if io.code != 0 {
                    p.push_str(&format!("#{step_no} ERROR: process \"/bin/sh -c {rest}\" did not complete successfully: exit code: {}\n\n", io.code));
                    return failed(
                        &format!("process \"/bin/sh -c {rest}\" did not complete successfully: exit code: {}", io.code),
                        p,
                    );
                }
                fs = sh.fs;
                p.push_str(&format!("#{step_no} DONE 0.0s\n\n"));
                step_no += 1;
                continue;
            }
            "ENV" => {
                let pairs: Vec<String> = if rest.contains('=') {
                    rest.split_whitespace().map(|w| w.replace('"', "")).collect()
                } else {
                    let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                    vec![format!("{k}={}", v.trim())]
                };
                for pair in pairs {
                    let key = pair.split('=').next().unwrap_or("").to_string();
                    config.env.retain(|e| !e.starts_with(&format!("{key}=")));
                    config.env.push(pair);
                }
            }
            "WORKDIR" => {
                config.workdir = resolve(&config.workdir, rest);
                let _ = fs.mkdir_p(&config.workdir);
            }
            "EXPOSE" => config.exposed.extend(rest.split_whitespace().map(|p| {
                if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                }
            })),
            "CMD" => config.cmd = command_form(rest),
            "ENTRYPOINT" => config.entrypoint = command_form(rest),
            "LABEL" => {
                for w in rest.split_whitespace() {
                    if let Some((k, v)) = w.split_once('=') {
                        config.labels.push((k.into(), v.replace('"', "")));
                    }
                }
            }
            other => {
                return failed(
                    &format!("swarmlab: the Dockerfile instruction {other} (line {line}) is not simulated yet"),
                    p,
                )
            }
        }
        // Instructions that only change the config do not show as steps.
        if matches!(kw.as_str(), "COPY" | "ADD") {
            p.push_str(&format!("#{step_no} {label}\n#{step_no} DONE 0.0s\n\n"));
            step_no += 1;
        }
    }
    let now = cx.lab().now().0;
    let id = digest(&[
        text.as_bytes(),
        base.id.as_bytes(),
        format!("{fs:?}").as_bytes(),
    ]);
    let image = LocalImage {
        id: id.clone(),
        base: base.base.clone(),
        size: base.size + added,
        created: now,
        files: fs,
        config,
    };
    p.push_str(&format!(
        "#{step_no} exporting to image\n#{step_no} exporting layers done\n#{step_no} writing image {id} done\n"
    ));
    for t in &tags {
        p.push_str(&format!("#{step_no} naming to {} done\n", full(t)));
    }
    p.push_str(&format!("#{step_no} DONE 0.0s\n"));
    {
        let mut lab = cx.lab();
        if tags.is_empty() {
            lab.image_add(host, image, "<none>:<none>");
        } else {
            lab.image_add(host, image.clone(), &tags[0]);
            for t in &tags[1..] {
                lab.image_add(host, image.clone(), t);
            }
        }
    }
    if quiet {
        return CommandOutput::out(format!("{id}\n"));
    }
    CommandOutput {
        stdout: String::new(),
        stderr: p,
        exit_code: 0,
    }
}
