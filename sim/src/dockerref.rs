//! Facts of the Docker CLI (28.2), read off `docker --help` and `docker COMMAND --help`:
//! its commands, the subcommands of the swarm's management commands, and each simulated
//! command's flags. swarmlab uses them to tell "Docker has this, swarmlab does not
//! simulate it" (said as swarmlab's) from "Docker has no such thing" (Docker's refusal).
//! It imports nothing.

/// The commands of `docker --help`.
pub const COMMANDS: &[&str] = &[
    "run",
    "exec",
    "ps",
    "build",
    "pull",
    "push",
    "images",
    "login",
    "logout",
    "search",
    "version",
    "info",
    "builder",
    "container",
    "context",
    "image",
    "manifest",
    "network",
    "plugin",
    "system",
    "trust",
    "volume",
    "config",
    "node",
    "secret",
    "service",
    "stack",
    "swarm",
    "attach",
    "commit",
    "cp",
    "create",
    "diff",
    "events",
    "export",
    "history",
    "import",
    "inspect",
    "kill",
    "load",
    "logs",
    "pause",
    "port",
    "rename",
    "restart",
    "rm",
    "rmi",
    "save",
    "start",
    "stats",
    "stop",
    "tag",
    "top",
    "unpause",
    "update",
    "wait",
];

/// The subcommands of the management commands a swarm course uses.
pub const SUBCOMMANDS: &[(&str, &[&str])] = &[
    (
        "container",
        &[
            "attach", "commit", "cp", "create", "diff", "exec", "export", "inspect", "kill",
            "logs", "ls", "pause", "port", "prune", "rename", "restart", "rm", "run", "start",
            "stats", "stop", "top", "unpause", "update", "wait",
        ],
    ),
    (
        "image",
        &[
            "build", "history", "import", "inspect", "load", "ls", "prune", "pull", "push", "rm",
            "save", "tag",
        ],
    ),
    (
        "swarm",
        &[
            "ca",
            "init",
            "join",
            "join-token",
            "leave",
            "unlock",
            "unlock-key",
            "update",
        ],
    ),
    (
        "node",
        &["demote", "inspect", "ls", "promote", "ps", "rm", "update"],
    ),
    (
        "service",
        &[
            "create", "inspect", "logs", "ls", "ps", "rm", "rollback", "scale", "update",
        ],
    ),
    (
        "network",
        &[
            "connect",
            "create",
            "disconnect",
            "inspect",
            "ls",
            "prune",
            "rm",
        ],
    ),
];

/// Each simulated command's flags, as its `--help` lists them.
const FLAGS: &[(&str, &str)] = &[
    (
        "run",
        "--add-host -a --attach --blkio-weight --blkio-weight-device --cap-add --cap-drop --cgroup-parent --cgroupns --cidfile --cpu-period --cpu-quota --cpu-rt-period --cpu-rt-runtime -c --cpu-shares --cpus --cpuset-cpus --cpuset-mems -d --detach --detach-keys --device --device-cgroup-rule --device-read-bps --device-read-iops --device-write-bps --device-write-iops --disable-content-trust --dns --dns-option --dns-search --domainname --entrypoint -e --env --env-file --expose --gpus --group-add --health-cmd --health-interval --health-retries --health-start-period --health-timeout --help -h --hostname --init -i --interactive --ip --ip6 --ipc --isolation --kernel-memory -l --label --label-file --link --link-local-ip --log-driver --log-opt --mac-address -m --memory --memory-reservation --memory-swap --memory-swappiness --mount --name --network --network-alias --no-healthcheck --oom-kill-disable --oom-score-adj --pid --pids-limit --platform --privileged -p --publish -P --publish-all --pull -q --quiet --read-only --restart --rm --runtime --security-opt --shm-size --sig-proxy --stop-signal --stop-timeout --storage-opt --sysctl --tmpfs -t --tty --ulimit --use-api-socket -u --user --userns --uts -v --volume --volume-driver --volumes-from -w --workdir",
    ),
    (
        "exec",
        "-d --detach --detach-keys -e --env --env-file -i --interactive --privileged -t --tty -u --user -w --workdir",
    ),
    (
        "ps",
        "-a --all -f --filter --format -n --last -l --latest --no-trunc -q --quiet -s --size",
    ),
    (
        "stop",
        "-s --signal -t --timeout",
    ),
    (
        "start",
        "-a --attach --detach-keys -i --interactive",
    ),
    (
        "rm",
        "-f --force -l --link -v --volumes",
    ),
    (
        "swarm init",
        "--advertise-addr --autolock --availability --cert-expiry --data-path-addr --data-path-port --default-addr-pool --default-addr-pool-mask-length --dispatcher-heartbeat --external-ca --force-new-cluster --listen-addr --max-snapshots --snapshot-interval --task-history-limit",
    ),
    (
        "swarm join",
        "--advertise-addr --availability --data-path-addr --listen-addr --token",
    ),
    (
        "swarm leave",
        "-f --force",
    ),
    (
        "swarm join-token",
        "-q --quiet --rotate",
    ),
    (
        "node ls",
        "-f --filter --format -q --quiet",
    ),
    (
        "node update",
        "--availability --label-add --label-rm --role",
    ),
    (
        "node rm",
        "-f --force",
    ),
    (
        "node inspect",
        "-f --format --pretty",
    ),
    (
        "service create",
        "--cap-add --cap-drop --config --constraint --container-label --credential-spec -d --detach --dns --dns-option --dns-search --endpoint-mode --entrypoint -e --env --env-file --generic-resource --group --health-cmd --health-interval --health-retries --health-start-period --health-timeout --host --hostname --init --isolation -l --label --limit-cpu --limit-memory --limit-pids --log-driver --log-opt --max-concurrent --replicas --mode --mount --name --network --no-healthcheck --no-resolve-image --placement-pref -p --publish -q --quiet --read-only --replicas --replicas-max-per-node --reserve-cpu --reserve-memory --restart-condition --restart-delay --restart-max-attempts --restart-window --rollback-delay --rollback-failure-action --rollback-max-failure-ratio --rollback-monitor --rollback-order --rollback-parallelism --secret --stop-grace-period --stop-signal --sysctl -t --tty --ulimit --update-delay --update-failure-action --update-max-failure-ratio --update-monitor --update-order --update-parallelism -u --user --with-registry-auth -w --workdir",
    ),
    (
        "service update",
        "--args --cap-add --cap-drop --config-add --config-rm --constraint-add --constraint-rm --container-label-add --container-label-rm --credential-spec -d --detach --dns-add --dns-option-add --dns-option-rm --dns-rm --dns-search-add --dns-search-rm --endpoint-mode --entrypoint --env-add --env-rm --force --generic-resource-add --generic-resource-rm --group-add --group-rm --health-cmd --health-interval --health-retries --health-start-period --health-timeout --host-add --host-rm --hostname --image --init --isolation --label-add --label-rm --limit-cpu --limit-memory --limit-pids --log-driver --log-opt --max-concurrent --replicas --mount-add --mount-rm --network-add --network-rm --no-healthcheck --no-resolve-image --placement-pref-add --placement-pref-rm --publish-add --publish-rm -q --quiet --read-only --replicas --replicas-max-per-node --reserve-cpu --reserve-memory --restart-condition --restart-delay --restart-max-attempts --restart-window --rollback --rollback-delay --rollback-failure-action --rollback-max-failure-ratio --rollback-monitor --rollback-order --rollback-parallelism --secret-add --secret-rm --stop-grace-period --stop-signal --sysctl-add --sysctl-rm -t --tty --ulimit-add --ulimit-rm --update-delay --update-failure-action --update-max-failure-ratio --update-monitor --update-order --update-parallelism -u --user --with-registry-auth -w --workdir",
    ),
    (
        "service ls",
        "-f --filter --format -q --quiet",
    ),
    (
        "service ps",
        "-f --filter --format --no-resolve --no-trunc -q --quiet",
    ),
    (
        "service scale",
        "-d --detach",
    ),
    (
        "service rm",
        "",
    ),
    (
        "service inspect",
        "-f --format --pretty",
    ),
    (
        "network create",
        "--attachable --aux-address --config-from --config-only -d --driver --gateway --ingress --internal --ip-range --ipam-driver --ipam-opt --ipv4 --ipv6 --label -o --opt --scope --subnet",
    ),
    (
        "network ls",
        "-f --filter --format --no-trunc -q --quiet",
    ),
    (
        "network rm",
        "-f --force",
    ),
    (
        "network inspect",
        "-f --format -v --verbose",
    ),
];

/// Whether `docker CMD` (e.g. `"service"`) has the subcommand `sub`.
pub fn has_subcommand(cmd: &str, sub: &str) -> bool {
    SUBCOMMANDS
        .iter()
        .any(|(c, subs)| *c == cmd && subs.contains(&sub))
}

/// Whether `docker CMD` (e.g. `"service create"`) takes the flag `flag` (`-v`,
/// `--volume`).
pub fn has_flag(cmd: &str, flag: &str) -> bool {
    FLAGS
        .iter()
        .any(|(c, flags)| *c == cmd && flags.split(' ').any(|f| f == flag))
}

/// The long flags of `docker CMD` (e.g. `"service create"`), as its `--help` lists them.
pub fn long_flags(cmd: &str) -> Vec<&'static str> {
    FLAGS
        .iter()
        .filter(|(c, _)| *c == cmd)
        .flat_map(|(_, flags)| flags.split(' ').filter(|f| f.starts_with("--")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_has_what_swarmlab_lacks_and_not_what_nobody_has() {
        assert!(has_flag("run", "-v") && has_flag("run", "--mount"));
        assert!(has_flag("service create", "--env"));
        assert!(!has_flag("run", "--frobnicate"));
        assert!(has_subcommand("service", "logs") && !has_subcommand("service", "bogus"));
        assert!(COMMANDS.contains(&"volume") && !COMMANDS.contains(&"frobnicate"));
    }
}
