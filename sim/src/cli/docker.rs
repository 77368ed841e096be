//! The `docker` command line on a simulated host: the subcommands of this slice, with
//! Docker's own output and error texts (CLI 28 against a 20.10+ engine).
//!
//! A command is an `async fn` over a `Cx`: commands that take time (`docker exec ...
//! ping`, a `docker stop`'s grace period) wait through it, and the session lets the time
//! pass.

use crate::lab::cx::Cx;
use crate::lab::{ContainerId, Lab, RestartPolicy};
use crate::time::{Duration, Instant};
use crate::traffic::Owner;
use crate::underlay::HostId;

use super::text::{ellipsis, hash_id, human_duration, random_name, table, usage_error};
pub use crate::output::CommandOutput;

fn daemon_run_error(msg: &str) -> CommandOutput {
    CommandOutput::err(
        format!("{msg}\n\nRun 'docker run --help' for more information\n"),
        125,
    )
}

fn no_such_container(name: &str) -> CommandOutput {
    CommandOutput::err(
        format!("Error response from daemon: No such container: {name}\n"),
        1,
    )
}

/// Run one command line on `host`.
pub async fn execute(cx: &Cx<'_>, host: HostId, argv: &[String]) -> CommandOutput {
    let Some(program) = argv.first() else {
        return CommandOutput::default();
    };
    if let Some(down) = unreachable(&cx.lab(), host) {
        return down;
    }
    match program.as_str() {
        "docker" => {}
        "curl" => {
            let mut ns = crate::lab::Ns::new(cx, Owner::Host(host));
            return crate::programs::curl(&mut ns, &argv[1..]).await;
        }
        "wget" => {
            let mut ns = crate::lab::Ns::new(cx, Owner::Host(host));
            return crate::programs::wget(&mut ns, &argv[1..]).await;
        }
        _ => return CommandOutput::err(format!("bash: {program}: command not found\n"), 127),
    }
    let args = &argv[1..];
    match args.first().map(String::as_str) {
        Some("run") => docker_run(cx, host, &args[1..]).await,
        Some("exec") => docker_exec(cx, host, &args[1..]).await,
        Some("ps") => docker_ps(&mut cx.lab(), host, &args[1..]),
        Some("stop") => docker_stop_start(cx, host, &args[1..], false).await,
        Some("start") => docker_stop_start(cx, host, &args[1..], true).await,
        Some("rm") => docker_rm(cx, host, &args[1..]).await,
        Some("info") => crate::cli::info::info(&cx.lab(), host, &args[1..]),
        Some("images") => docker_images(&cx.lab(), host, &args[1..]),
        Some("build") => crate::cli::build::build(cx, host, &args[1..]).await,
        Some("image") if matches!(args.get(1).map(String::as_str), Some("ls" | "list")) => {
            docker_images(&cx.lab(), host, &args[2..])
        }
        Some("image") if args.get(1).map(String::as_str) == Some("build") => {
            crate::cli::build::build(cx, host, &args[2..]).await
        }
        Some("image") => match args.get(1) {
            Some(sub) if crate::dockerref::has_subcommand("image", sub) => {
                CommandOutput::err(
                    format!("swarmlab: docker image {sub} is not simulated yet\n"),
                    1,
                )
            }
            Some(sub) => CommandOutput::err(
                format!("docker: unknown command: docker image {sub}\n\nRun 'docker image --help' for more information\n"),
                1,
            ),
            None => CommandOutput::err(
                "swarmlab: docker image without a command prints Docker's help, which swarmlab does not; try docker image ls\n",
                1,
            ),
        },
        Some("version") => crate::cli::info::version(&args[1..]),
        // `docker container CMD` is `docker CMD` for the commands swarmlab simulates.
        Some("container") => match args.get(1).map(String::as_str) {
            Some("ls" | "list" | "ps") => docker_ps(&mut cx.lab(), host, &args[2..]),
            Some("run") => docker_run(cx, host, &args[2..]).await,
            Some("exec") => docker_exec(cx, host, &args[2..]).await,
            Some("stop") => docker_stop_start(cx, host, &args[2..], false).await,
            Some("start") => docker_stop_start(cx, host, &args[2..], true).await,
            Some("rm") => docker_rm(cx, host, &args[2..]).await,
            Some(sub) if crate::dockerref::has_subcommand("container", sub) => CommandOutput::err(
                format!("swarmlab: docker container {sub} is not simulated yet\n"),
                1,
            ),
            Some(sub) => CommandOutput::err(
                format!("docker: unknown command: docker container {sub}\n\nUsage:  docker container\n\nRun 'docker container --help' for more information\n"),
                1,
            ),
            None => CommandOutput::err(
                "swarmlab: docker container without a command prints Docker's help, which swarmlab does not; try docker container ls\n",
                1,
            ),
        },
        Some("swarm") => crate::cli::swarm::swarm(cx, host, &args[1..]).await,
        Some("node") => crate::cli::swarm::node(cx, host, &args[1..]).await,
        Some("service") => crate::cli::swarm::service(cx, host, &args[1..]).await,
        Some("network") => crate::cli::swarm::network(cx, host, &args[1..]).await,
        // A command Docker has but swarmlab does not simulate says so as swarmlab's; only
        // a command Docker itself lacks gets Docker's refusal.
        Some(other) if crate::dockerref::COMMANDS.contains(&other) => CommandOutput::err(
            format!("swarmlab: docker {other} is not simulated yet\n"),
            1,
        ),
        Some(other) => CommandOutput::err(
            format!("docker: unknown command: docker {other}\n\nRun 'docker --help' for more information\n"),
            1,
        ),
        None => CommandOutput::err("Usage:  docker [OPTIONS] COMMAND\n", 0),
    }
}

/// What the student's terminal says when the host is down: its ssh session cannot reach
/// it.
fn unreachable(lab: &Lab, host: HostId) -> Option<CommandOutput> {
    (!lab.underlay.nic(host).up).then(|| {
        CommandOutput::err(
            format!(
                "ssh: connect to host {} port 22: No route to host\n",
                lab.host_name(host)
            ),
            255,
        )
    })
}

/// A size as Docker prints it: three significant digits, decimal units (`7.8MB`).
fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{v:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", units[u])
}

/// `docker images` (and `docker image ls`): the node's images, newest first.
fn docker_images(lab: &Lab, host: HostId, args: &[String]) -> CommandOutput {
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    if let Some(other) = args
        .iter()
        .find(|a| !matches!(a.as_str(), "-q" | "--quiet" | "-a" | "--all"))
    {
        return CommandOutput::err(
            format!("swarmlab: docker images {other} is not simulated yet\n"),
            1,
        );
    }
    let now = lab.now();
    let rows = lab.images_of(host).rows();
    if quiet {
        let mut ids: Vec<&str> = rows.iter().map(|(_, _, i)| &i.id[7..19]).collect();
        ids.dedup();
        return CommandOutput::out(ids.iter().map(|i| format!("{i}\n")).collect::<String>());
    }
    let header: Vec<String> = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
        .map(String::from)
        .to_vec();
    let body: Vec<Vec<String>> = std::iter::once(header)
        .chain(rows.iter().map(|(repo, tag, img)| {
            // Built-in images were released before the lab began.
            let created = if img.created == 0 {
                "2 months ago".to_string()
            } else {
                format!("{} ago", human_duration(now - Instant(img.created)))
            };
            vec![
                repo.clone(),
                tag.clone(),
                img.id[7..19].to_string(),
                created,
                human_size(img.size),
            ]
        }))
        .collect();
    CommandOutput::out(table(&body))
}

/// A program's output as the shell takes it.
fn shell_io(out: CommandOutput) -> crate::sh::Io {
    crate::sh::Io {
        stdout: out.stdout,
        stderr: out.stderr,
        code: out.exit_code,
    }
}

/// What the shell printed, as the command's output.
fn command_output(io: crate::sh::Io) -> CommandOutput {
    CommandOutput {
        stdout: io.stdout,
        stderr: io.stderr,
        exit_code: io.code,
    }
}

/// The programs a host's shell runs that are not the shell's own: docker, curl, wget.
struct HostPrograms<'c, 'a> {
    cx: &'c Cx<'a>,
    host: HostId,
}

impl crate::sh::External for HostPrograms<'_, '_> {
    async fn run(
        &mut self,
        sh: &mut crate::sh::Sh,
        argv: &[String],
        _stdin: &str,
    ) -> Option<crate::sh::Io> {
        if !crate::cli::support::HOST_PROGRAMS.contains(&argv[0].as_str()) {
            return None;
        }
        // The program sees the disk as the shell left it, and the shell what it wrote.
        self.cx.lab().set_host_fs(self.host, sh.fs.clone());
        let out = Box::pin(execute(self.cx, self.host, argv)).await;
        sh.fs = self.cx.lab().host_fs(self.host).clone();
        Some(shell_io(out))
    }
}

/// A line run by `host`'s shell (bash, in `/root`, on the host's filesystem), with the
/// scenario's variables set. What it writes stays on the host's disk.
pub async fn host_shell(
    cx: &Cx<'_>,
    host: HostId,
    script: &str,
    vars: &std::collections::BTreeMap<String, String>,
) -> CommandOutput {
    let fs = {
        let lab = cx.lab();
        if let Some(down) = unreachable(&lab, host) {
            return down;
        }
        lab.host_fs(host).clone()
    };
    let mut sh = crate::sh::Sh::new(fs, "/root", crate::sh::Flavor::Gnu);
    sh.env
        .extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    let io = sh.run(script, "", &mut HostPrograms { cx, host }).await;
    cx.lab().set_host_fs(host, sh.fs);
    command_output(io)
}

/// `docker run`'s options (the subset the lab simulates), parsed with clap as the
/// Docker CLI parses them (combined short flags, `--opt=value`, options before IMAGE).
#[derive(clap::Parser, Debug)]
#[command(
    name = "docker run",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct RunArgs {
    #[arg(short = 'd', long)]
    detach: bool,
    #[arg(short = 'i', long)]
    interactive: bool,
    #[arg(short = 't', long)]
    tty: bool,
    #[arg(long)]
    rm: bool,
    #[arg(long)]
    name: Option<String>,
    #[arg(long, visible_alias = "net")]
    network: Option<String>,
    #[arg(long)]
    restart: Option<String>,
    #[arg(short = 'p', long)]
    publish: Vec<String>,
    image: Option<String>,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

async fn docker_run(cx: &Cx<'_>, host: HostId, args: &[String]) -> CommandOutput {
    use clap::Parser;
    let parsed = match RunArgs::try_parse_from(args) {
        Ok(p) => p,
        Err(e) => return usage_error("run", "[OPTIONS] IMAGE [COMMAND] [ARG...]", &e),
    };
    let (detach, remove, name, network) = (parsed.detach, parsed.rm, parsed.name, parsed.network);
    let _ = (parsed.interactive, parsed.tty);
    let restart = match parsed.restart.as_deref() {
        None | Some("no") => RestartPolicy::No,
        Some("always") => RestartPolicy::Always,
        Some("unless-stopped") => RestartPolicy::UnlessStopped,
        Some(p) if p == "on-failure" || p.starts_with("on-failure:") => RestartPolicy::OnFailure,
        Some(p) => return daemon_run_error(&format!("docker: invalid restart policy '{p}'")),
    };
    let Some(image) = parsed.image.as_ref() else {
        return CommandOutput::err(
            "docker: 'docker run' requires at least 1 argument\n\nUsage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nSee 'docker run --help' for more information\n",
            125,
        );
    };
    // The CLI reads the published ports before it asks for the image.
    let mut published = Vec::new();
    for spec in &parsed.publish {
        match parse_run_publish(spec) {
            Ok(p) => published.push(p),
            Err(e) => return daemon_run_error(&format!("docker: {e}")),
        }
    }
    let command: Vec<String> = parsed.command.clone();
    if cx.lab().image_pull(host, image).is_none() {
        let full = if image.contains(':') {
            image.clone()
        } else {
            format!("{image}:latest")
        };
        let repo = image.split(':').next().unwrap_or(image);
        return CommandOutput::err(
            format!("Unable to find image '{full}' locally\ndocker: Error response from daemon: pull access denied for {repo}, repository does not exist or may require 'docker login': denied: requested access to the resource is denied\n\nRun 'docker run --help' for more information\n"),
            125,
        );
    }
    let network = network.unwrap_or_else(|| "bridge".to_string());
    if matches!(network.as_str(), "host" | "none") {
        return daemon_run_error(&format!(
            "swarmlab: --network {network} is not simulated yet (the default bridge and overlays are)"
        ));
    }
    if !published.is_empty() && network != "bridge" {
        return daemon_run_error(
            "swarmlab: docker run -p is simulated on the default bridge network only",
        );
    }
    let shown = if command.is_empty() {
        "/bin/sh".to_string()
    } else {
        command.join(" ")
    };
    let name = {
        let mut g = cx.lab();
        let name = name.unwrap_or_else(|| random_name(&mut g));
        if let Some(c) = g.containers.iter().find(|c| c.name == name) {
            return daemon_run_error(&format!("docker: Error response from daemon: Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.", c.id));
        }
        name
    };
    if network == "bridge" {
        let launch = Launch {
            name: &name,
            image,
            shown: &shown,
            restart,
            detach,
            remove,
            command: &command,
        };
        return run_on_bridge(cx, host, &launch, published).await;
    }
    let attached = match crate::cli::swarm::attachment(cx, host, &network, &name).await {
        Ok(a) => a,
        Err(e) => return daemon_run_error(&e),
    };
    let cid = if let Some((net, ip)) = attached {
        let started = cx
            .lab()
            .attach_container(host, &name, &net, ip, image, &shown, restart);
        match started {
            Some(c) => {
                cx.sleep_until(cx.now() + crate::lab::ATTACH_TIME).await;
                c
            }
            None => {
                return daemon_run_error(&format!(
                    "docker: Error response from daemon: network {network} not found"
                ))
            }
        }
    } else {
        let mut g = cx.lab();
        let lab = &mut *g;
        let Some(net) = lab.net_by_name(&network) else {
            return daemon_run_error(&format!(
                "docker: Error response from daemon: network {network} not found"
            ));
        };
        match lab.run_container(host, &name, net, image, &shown, restart) {
            Ok(c) => c,
            Err(e) => return daemon_run_error(&e),
        }
    };
    if detach {
        return CommandOutput::out(format!("{}\n", cx.lab().containers[cid.0].id));
    }
    // Attached: run the command to completion, then the container exits with its status.
    let out = if command.is_empty() {
        CommandOutput::default()
    } else {
        exec_in(cx, cid, &command).await
    };
    cx.lab()
        .stop_container(cid, out.exit_code, "command exited");
    if remove {
        cx.lab().remove_container(cid);
        crate::cli::swarm::detach(cx, &name).await;
    }
    out
}

/// A `docker run -p` spec: `[IP:][HOST:]CONTAINER[/PROTO]` (a missing host port is
/// left to the engine), refused with the CLI's texts.
fn parse_run_publish(spec: &str) -> Result<(Option<u16>, u16, &'static str), String> {
    let (ports, proto) = match spec.rsplit_once('/') {
        Some((p, "tcp")) => (p, "tcp"),
        Some((p, "udp")) => (p, "udp"),
        Some((p, "sctp")) => (p, "sctp"),
        Some((_, other)) => return Err(format!("invalid proto: {other}")),
        None => (spec, "tcp"),
    };
    let parts: Vec<&str> = ports.split(':').collect();
    let (host, container) = match parts.as_slice() {
        [c] => ("", *c),
        [h, c] => (*h, *c),
        [ip @ .., h, c] => {
            let ip = ip.join(":");
            if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("invalid IP address: {ip}"));
            }
            (*h, *c)
        }
        [] => return Err(format!("invalid port specification: \"{spec}\"")),
    };
    let container: u16 = container
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid containerPort: {container}"))?;
    let host = match host {
        "" | "0" => None,
        h => Some(
            h.parse::<u16>()
                .ok()
                .ok_or_else(|| format!("invalid hostPort: {h}"))?,
        ),
    };
    Ok((host, container, proto))
}

/// `docker run` on the host's default bridge (172.17.0.0/16): ports published with `-p`
/// are DNATed from the host's address to the container (the host's own port table: one
/// container per host port); a port left to the engine takes the first free one from
/// 32768, as Docker's port allocator does.
async fn run_on_bridge(
    cx: &Cx<'_>,
    host: HostId,
    run: &Launch<'_>,
    published: Vec<(Option<u16>, u16, &'static str)>,
) -> CommandOutput {
    let Launch {
        name,
        image,
        shown,
        restart,
        ..
    } = *run;
    let cid = {
        let mut g = cx.lab();
        let lab = &mut *g;
        let taken = |lab: &Lab, port: u16, proto: &str| {
            lab.containers.iter().any(|c| {
                c.host == host
                    && c.running
                    && c.published
                        .iter()
                        .any(|(p, _, q)| *p == port && *q == proto)
            })
        };
        let mut ports = Vec::new();
        for (h, target, proto) in published {
            let port = match h {
                Some(p) => {
                    if taken(lab, p, proto) || ports.iter().any(|(q, _, r)| *q == p && *r == proto)
                    {
                        let endpoint: String = (0..64)
                            .map(|_| char::from_digit(lab.rng.below(16) as u32, 16).unwrap_or('0'))
                            .collect();
                        return daemon_run_error(&format!("docker: Error response from daemon: driver failed programming external connectivity on endpoint {name} ({endpoint}): Bind for 0.0.0.0:{p} failed: port is already allocated"));
                    }
                    p
                }
                None => {
                    let free = (32768..=60999u16)
                        .find(|p| !taken(lab, *p, proto) && !ports.iter().any(|(q, _, _)| q == p));
                    let Some(p) = free else {
                        return daemon_run_error(
                            "docker: Error response from daemon: no available ports",
                        );
                    };
                    p
                }
            };
            ports.push((port, target, proto));
        }
        let Some((net, _)) = lab.default_bridge(host) else {
            return daemon_run_error("swarmlab: the host's bridge network could not be made");
        };
        match lab.run_container(host, name, net, image, shown, restart) {
            Ok(c) => {
                lab.containers[c.0].published = ports;
                c
            }
            Err(e) => return daemon_run_error(&e),
        }
    };
    if run.detach {
        return CommandOutput::out(format!("{}\n", cx.lab().containers[cid.0].id));
    }
    let out = if run.command.is_empty() {
        CommandOutput::default()
    } else {
        exec_in(cx, cid, run.command).await
    };
    cx.lab()
        .stop_container(cid, out.exit_code, "command exited");
    if run.remove {
        cx.lab().remove_container(cid);
    }
    out
}

/// What `docker run` starts, once its flags are read.
struct Launch<'a> {
    name: &'a str,
    image: &'a str,
    shown: &'a str,
    restart: RestartPolicy,
    detach: bool,
    remove: bool,
    command: &'a [String],
}

fn find_container(lab: &Lab, host: HostId, r: &str) -> Option<ContainerId> {
    lab.container_by_ref(r)
        .filter(|c| lab.containers[c.0].host == host && lab.exists(*c))
}

/// `docker exec`'s options.
#[derive(clap::Parser, Debug)]
#[command(
    name = "docker exec",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct ExecArgs {
    #[arg(short = 'i', long)]
    interactive: bool,
    #[arg(short = 't', long)]
    tty: bool,
    #[arg(short = 'd', long)]
    detach: bool,
    container: Option<String>,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

async fn docker_exec(cx: &Cx<'_>, host: HostId, args: &[String]) -> CommandOutput {
    use clap::Parser;
    let parsed = match ExecArgs::try_parse_from(args) {
        Ok(p) => p,
        Err(e) => return usage_error("exec", "[OPTIONS] CONTAINER COMMAND [ARG...]", &e),
    };
    let _ = (parsed.interactive, parsed.tty, parsed.detach);
    let (Some(name), false) = (parsed.container.as_ref(), parsed.command.is_empty()) else {
        return CommandOutput::err(
            "docker: 'docker exec' requires at least 2 arguments\n\nUsage:  docker exec [OPTIONS] CONTAINER COMMAND [ARG...]\n\nSee 'docker exec --help' for more information\n",
            1,
        );
    };
    let cid = {
        let lab = cx.lab();
        let Some(cid) = find_container(&lab, host, name) else {
            return no_such_container(name);
        };
        if !lab.containers[cid.0].running {
            return CommandOutput::err(
                format!(
                    "Error response from daemon: Container {} is not running\n",
                    lab.containers[cid.0].id
                ),
                1,
            );
        }
        cid
    };
    exec_in(cx, cid, &parsed.command).await
}

/// The programs a container's shell runs that are not the shell's own.
struct ContainerPrograms<'c, 'a> {
    cx: &'c Cx<'a>,
    cid: ContainerId,
}

impl crate::sh::External for ContainerPrograms<'_, '_> {
    async fn run(
        &mut self,
        sh: &mut crate::sh::Sh,
        argv: &[String],
        _stdin: &str,
    ) -> Option<crate::sh::Io> {
        // What the shell wrote so far is the container's before the program runs.
        self.cx.lab().set_container_fs(self.cid, sh.fs.clone());
        let out = Box::pin(exec_program(self.cx, self.cid, argv)).await?;
        // And what the program wrote (`wget -O`) is the shell's after it.
        sh.fs = self.cx.lab().containers[self.cid.0].fs.clone();
        Some(shell_io(out))
    }
}

/// Run a program inside a running container: the shell's programs on its filesystem
/// (in images that have a shell), the network programs on its stack.
async fn exec_in(cx: &Cx<'_>, cid: ContainerId, argv: &[String]) -> CommandOutput {
    let program = argv[0].rsplit('/').next().unwrap_or(&argv[0]);
    let (image, fs) = {
        let lab = cx.lab();
        let c = &lab.containers[cid.0];
        (c.base.clone(), c.fs.clone())
    };
    let shell = crate::programs::has_program(&image, "sh")
        && (crate::sh::BUILTINS.contains(&program) || program == "bash");
    if shell {
        let flavor = if crate::images::busybox_shell(&image) {
            crate::sh::Flavor::Busybox
        } else {
            crate::sh::Flavor::Gnu
        };
        let mut sh = crate::sh::Sh::new(fs, "/", flavor);
        // One command, as `docker exec` runs it: its words are already split.
        let quoted: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        let io = sh
            .run(&quoted.join(" "), "", &mut ContainerPrograms { cx, cid })
            .await;
        cx.lab().set_container_fs(cid, sh.fs);
        return command_output(io);
    }
    match Box::pin(exec_program(cx, cid, argv)).await {
        Some(out) => out,
        None => CommandOutput::out(format!(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{program}\": executable file not found in $PATH: unknown\n"
        ))
        .with_code(126),
    }
}

/// A word quoted for the shell, so that it stays one word.
fn shell_quote(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// A program of the container's other than the shell's: `None` when it has none of that
/// name.
async fn exec_program(cx: &Cx<'_>, cid: ContainerId, argv: &[String]) -> Option<CommandOutput> {
    let program = argv[0].rsplit('/').next().unwrap_or(&argv[0]);
    let mut ns = crate::lab::Ns::new(cx, Owner::Container(cid));
    let has = crate::programs::has_program(&cx.lab().containers[cid.0].base, program);
    Some(match program {
        "ping" if has => ping(cx, cid, &argv[1..]).await,
        "wget" if has => crate::programs::wget(&mut ns, &argv[1..]).await,
        "curl" if has => crate::programs::curl(&mut ns, &argv[1..]).await,
        "nslookup" if has => crate::programs::nslookup(&mut ns, &argv[1..]).await,
        "redis-cli" if has => crate::programs::redis_cli(&mut ns, &argv[1..]).await,
        "ip" if has => crate::programs::ip(&mut ns, &argv[1..]),
        "true" if has => CommandOutput::default(),
        "hostname" if has => {
            CommandOutput::out(format!("{}\n", &cx.lab().containers[cid.0].id[..12]))
        }
        _ => return None,
    })
}

impl CommandOutput {
    fn with_code(mut self, code: i32) -> CommandOutput {
        self.exit_code = code;
        self
    }
}

/// The longest a `ping` may run the lab (count x interval, plus the final wait).
const PING_MAX_SECS: u64 = 3600;

const PING_USAGE: &str = "\nUsage\n  ping [options] <destination>\n";

async fn ping(cx: &Cx<'_>, cid: ContainerId, args: &[String]) -> CommandOutput {
    let mut count: Option<u32> = None;
    let mut size = 56usize;
    let mut interval = Duration::from_secs(1);
    let mut timeout = Duration::from_secs(10);
    let mut target: Option<String> = None;
    let mut numeric = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let value = args.get(i + 1);
        let bad =
            |what: &str, v: &str| CommandOutput::err(format!("ping: invalid {what}: '{v}'\n"), 2);
        match a.as_str() {
            "-n" => {
                numeric = true;
                i += 1;
            }
            "-c" | "-s" | "-i" | "-W" => {
                let Some(v) = value else {
                    return CommandOutput::err(
                        format!(
                            "ping: option requires an argument -- '{}'{PING_USAGE}",
                            &a[1..]
                        ),
                        2,
                    );
                };
                match a.as_str() {
                    "-c" => match v.parse::<u32>() {
                        Ok(n) if n > 0 => count = Some(n),
                        _ => return bad("argument", v),
                    },
                    "-s" => match v.parse::<usize>() {
                        Ok(n) if n <= 65507 => size = n,
                        _ => return bad("argument", v),
                    },
                    "-i" => match v.parse::<f64>() {
                        Ok(s) if s >= 0.002 => interval = Duration((s * 1e9) as u64),
                        _ => return bad("argument", v),
                    },
                    _ => match v.parse::<f64>() {
                        Ok(s) if s >= 0.0 => timeout = Duration((s * 1e9) as u64),
                        _ => return bad("timeout value", v),
                    },
                }
                i += 2;
            }
            s if s.starts_with('-') && s.len() > 1 => {
                return CommandOutput::err(
                    format!(
                        "ping: invalid option -- '{}'{PING_USAGE}",
                        s.chars().nth(1).unwrap_or('-')
                    ),
                    2,
                );
            }
            _ => {
                target = Some(a.clone());
                i += 1;
            }
        }
    }
    let Some(target) = target else {
        return CommandOutput::err(
            format!("ping: usage error: Destination address required{PING_USAGE}"),
            1,
        );
    };
    let Some(count) = count else {
        return CommandOutput::err(
            "swarmlab: ping without -c would run forever in a scenario; add -c N\n",
            2,
        );
    };
    // The lab runs every event until ping ends: a run is bounded as the programs' waits.
    let runs_for = interval.as_nanos() as f64 * f64::from(count) + timeout.as_nanos() as f64;
    if runs_for > PING_MAX_SECS as f64 * 1e9 {
        return CommandOutput::err(
            format!("swarmlab: this ping would run the lab for more than {PING_MAX_SECS} s (count x interval + timeout); use fewer packets or a shorter interval\n"),
            2,
        );
    }
    let (id, horizon) = {
        let mut g = cx.lab();
        let lab = &mut *g;
        let Some(dst) = lab.resolve(cid, &target) else {
            return CommandOutput::err(format!("ping: {target}: Name or service not known\n"), 2);
        };
        if !lab.on_link(cid, dst) {
            // Overlay-only containers have no default route (no docker_gwbridge here).
            return CommandOutput::err("ping: connect: Network is unreachable\n", 2);
        }
        if size + 28 > 1450 {
            // Real ping would fragment the datagram; this stack does not fragment.
            return CommandOutput::err(
                format!("swarmlab: IPv4 fragmentation is not simulated; ping -s {size} needs it on a 1450-byte overlay (at most -s 1422)\n"),
                2,
            );
        }
        let options = crate::ping::PingOptions {
            numeric,
            count,
            size,
            interval,
            timeout,
        };
        let id = lab.start_ping(cid, &target, dst, options);
        let horizon = lab.now()
            + Duration(interval.as_nanos().saturating_mul(u64::from(count)))
            + timeout
            + Duration::from_secs(5);
        (id, horizon)
    };
    cx.wait_until(horizon, |lab: &Lab| lab.pings[id.0].finished)
        .await;
    let lab = cx.lab();
    let p = &lab.pings[id.0];
    let mut stdout = p.stdout.join("\n");
    stdout.push('\n');
    CommandOutput {
        stdout,
        stderr: String::new(),
        exit_code: p.exit_code(),
    }
}

/// `docker ps`'s options.
#[derive(clap::Parser, Debug)]
#[command(
    name = "docker ps",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct PsArgs {
    #[arg(short, long)]
    all: bool,
    #[arg(short, long)]
    quiet: bool,
    #[arg(long)]
    format: Option<String>,
    #[arg(short, long)]
    filter: Vec<String>,
}

fn docker_ps(lab: &mut Lab, host: HostId, args: &[String]) -> CommandOutput {
    use clap::Parser;
    let parsed = match PsArgs::try_parse_from(args) {
        Ok(p) => p,
        Err(e) => return usage_error("ps", "[OPTIONS]", &e),
    };
    let all = parsed.all;
    let mut filters = Vec::new();
    for f in &parsed.filter {
        match f.split_once('=') {
            Some((k @ ("name" | "status" | "id" | "ancestor"), v)) => {
                filters.push((k, v.to_string()))
            }
            Some((k, _)) => {
                return CommandOutput::err(
                    format!("Error response from daemon: invalid filter '{k}'\n"),
                    1,
                )
            }
            None => return CommandOutput::err("bad format of filter (expected name=value)\n", 1),
        }
    }
    let now: Instant = lab.now();
    let mut rows = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    // Newest first, as Docker lists them: standalone containers and swarm tasks.
    let mut listed: Vec<(Instant, usize, Vec<String>)> = Vec::new();
    for (i, c) in lab.containers.iter().enumerate() {
        if c.host != host || c.id.is_empty() || !(c.running || all) {
            continue;
        }
        let status = if c.running {
            format!("Up {}", human_duration(now - c.since))
        } else {
            format!(
                "Exited ({}) {} ago",
                c.exit_code.unwrap_or(0),
                human_duration(now - c.since)
            )
        };
        listed.push((
            c.created,
            i,
            vec![
                c.id[..12].to_string(),
                c.image.clone(),
                format!("\"{}\"", short_command(&c.command)),
                format!("{} ago", human_duration(now - c.created)),
                status,
                c.published
                    .iter()
                    .map(|(p, t, proto)| format!("0.0.0.0:{p}->{t}/{proto}, [::]:{p}->{t}/{proto}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                c.name.clone(),
            ],
        ));
    }
    if let Some(agent) = lab.swarm_of(host).agent.as_ref() {
        for (i, (id, t)) in agent.tasks.iter().enumerate() {
            use crate::swarm::store::TaskState;
            if t.container.is_some() {
                continue; // listed with the containers
            }
            let running = t.state == TaskState::Running;
            let exited = t.state.terminal();
            if !(running || (all && exited)) {
                continue;
            }
            let status = if running {
                format!("Up {}", human_duration(now - Instant(t.since)))
            } else {
                format!(
                    "Exited ({}) {} ago",
                    t.exit.unwrap_or(137),
                    human_duration(now - Instant(t.since))
                )
            };
            listed.push((
                Instant(t.created),
                lab.containers.len() + i,
                vec![
                    task_container_id(id),
                    t.image.clone(),
                    format!("\"{}\"", short_command(&t.args.join(" "))),
                    format!("{} ago", human_duration(now - Instant(t.created))),
                    status,
                    String::new(),
                    t.name.clone(),
                ],
            ));
        }
    }
    listed.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    listed.retain(|(_, _, r)| {
        filters.iter().all(|(k, v)| match *k {
            "name" => r[6].contains(v.as_str()),
            "id" => r[0].starts_with(v.as_str()),
            "ancestor" => r[1] == *v || r[1].split(':').next() == Some(v.as_str()),
            _ => match v.as_str() {
                "running" => r[4].starts_with("Up"),
                "exited" => r[4].starts_with("Exited"),
                _ => false,
            },
        })
    });
    if parsed.quiet {
        return CommandOutput::out(
            listed
                .iter()
                .map(|(_, _, r)| format!("{}\n", r[0]))
                .collect::<String>(),
        );
    }
    if let Some(f) = parsed.format.as_deref().filter(|f| f.trim() != "table") {
        let rows: Vec<serde_json::Value> = listed
            .iter()
            .map(|(_, _, r)| {
                serde_json::json!({
                    "ID": r[0], "Image": r[1], "Command": r[2], "RunningFor": r[3],
                    "Status": r[4], "Ports": r[5], "Names": r[6],
                })
            })
            .collect();
        return match crate::cli::swarm::listing(&rows, f, crate::cli::swarm::CONTAINER_HEADERS) {
            Ok(out) => CommandOutput::out(out),
            Err(e) => CommandOutput::err(format!("{e}\n"), 1),
        };
    }
    rows.extend(listed.into_iter().map(|(_, _, r)| r));
    CommandOutput::out(table(&rows))
}

fn short_command(cmd: &str) -> String {
    ellipsis(cmd, 20)
}

/// A task's container id.
fn task_container_id(task: &str) -> String {
    hash_id(task.as_bytes())
}

async fn docker_stop_start(
    cx: &Cx<'_>,
    host: HostId,
    args: &[String],
    start: bool,
) -> CommandOutput {
    let mut out = CommandOutput::default();
    let mut grace = Duration::from_secs(10);
    let mut names = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-t" | "--time" | "--timeout" if !start => {
                match args.get(i + 1).and_then(|v| v.parse::<u64>().ok()) {
                    Some(t) => grace = Duration::from_secs(t),
                    None => {
                        return CommandOutput::err(
                            format!("invalid argument \"{}\" for \"-t, --time\" flag: strconv.ParseInt: parsing \"{}\": invalid syntax\n\nSee 'docker stop --help'.\n", args.get(i + 1).map(String::as_str).unwrap_or(""), args.get(i + 1).map(String::as_str).unwrap_or("")),
                            125,
                        )
                    }
                }
                i += 2;
            }
            a if a.starts_with('-') => {
                let cmd = if start { "start" } else { "stop" };
                return CommandOutput::err(
                    format!("{}\n\nUsage:  docker {cmd} [OPTIONS] CONTAINER [CONTAINER...]\n\nRun 'docker {cmd} --help' for more information\n", crate::cli::text::unknown_flag(a)),
                    125,
                );
            }
            a => {
                names.push(a.to_string());
                i += 1;
            }
        }
    }
    for name in &names {
        let found = find_container(&cx.lab(), host, name);
        match found {
            Some(c) => {
                if start {
                    cx.lab().user_start_container(c);
                } else if cx.lab().containers[c.0].running {
                    // PID 1 (sleep, a shell) ignores SIGTERM: Docker waits the grace
                    // period, then SIGKILLs it, so the exit status is 137.
                    cx.sleep_until(cx.now() + grace).await;
                    cx.lab().user_stop_container(c);
                }
                out.stdout.push_str(&format!("{name}\n"));
            }
            None => {
                out.stderr.push_str(&format!(
                    "Error response from daemon: No such container: {name}\n"
                ));
                out.exit_code = 1;
            }
        }
    }
    out
}

async fn docker_rm(cx: &Cx<'_>, host: HostId, args: &[String]) -> CommandOutput {
    let force = args.iter().any(|a| a == "-f" || a == "--force");
    let mut out = CommandOutput::default();
    for name in args.iter().filter(|a| !a.starts_with('-')) {
        let found = find_container(&cx.lab(), host, name);
        let running = found.is_some_and(|c| cx.lab().containers[c.0].running);
        match found {
            Some(c) if running && !force => {
                out.stderr.push_str(&format!("Error response from daemon: You cannot remove a running container {}. Stop the container before attempting removal or force remove\n", cx.lab().containers[c.0].id));
                out.exit_code = 1;
            }
            Some(c) => {
                let full = cx.lab().containers[c.0].name.clone();
                cx.lab().remove_container(c);
                crate::cli::swarm::detach(cx, &full).await;
                out.stdout.push_str(&format!("{name}\n"));
            }
            None => {
                out.stderr.push_str(&format!(
                    "Error response from daemon: No such container: {name}\n"
                ));
                // `rm -f` of a missing container still exits 0.
                if !force {
                    out.exit_code = 1;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_as_docker_tabwriter() {
        // Min width 10, padding 3; an empty last cell keeps the padding before it, as
        // `docker service ls` prints an empty PORTS column.
        let t = table(&[
            vec!["A".into(), "BB".into(), "C".into()],
            vec!["xxxx".into(), "".into(), "z".into()],
            vec!["ID-twelve-ch".into(), "x".into(), "".into()],
        ]);
        assert_eq!(
            t,
            "A              BB        C\nxxxx                     z\nID-twelve-ch   x         \n"
        );
    }

    #[test]
    fn human_durations_match_docker() {
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(6)), "6 seconds");
        assert_eq!(human_duration(Duration::from_secs(75)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
    }
}
