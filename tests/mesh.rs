//! Overlays, service discovery and the ingress routing mesh, with real TCP inside the
//! containers (smoltcp), driven by scenarios as a student would: the overlay issue's
//! behaviours and the course's failure lessons.

use swarmlab::docker::CommandOutput;
use swarmlab::lab::Lab;
use swarmlab::scenario::{parse, run::run};
use swarmlab::session::execute;
use swarmlab::trace::{MemberChange, TraceEvent};

fn play(text: &str) -> swarmlab::scenario::run::Outcome {
    let s = parse("test.lab", text).unwrap_or_else(|e| panic!("{e}"));
    run(&s, 5, false)
}

fn assert_all_hold(text: &str) -> swarmlab::scenario::run::Outcome {
    let o = play(text);
    assert!(o.failed == 0 && o.held > 0, "{}", o.timeline);
    o
}

fn sh(lab: &mut Lab, host: &str, line: &str) -> CommandOutput {
    let h = lab.underlay.by_name(host).expect("host declared");
    let argv: Vec<String> = line.split(' ').map(String::from).collect();
    execute(lab, h, &argv)
}

/// One manager, three workers, an attachable overlay.
const SWARM: &str = "
host m1 10.1.0.1
hosts w[1-3] 10.1.1.0/24
m1$ docker swarm init --advertise-addr 10.1.0.1
m1$ TOKEN=$(docker swarm join-token -q worker)
w1$ docker swarm join --token $TOKEN 10.1.0.1:2377
w2$ docker swarm join --token $TOKEN 10.1.0.1:2377
w3$ docker swarm join --token $TOKEN 10.1.0.1:2377
m1$ docker network create --driver overlay --attachable appnet
";

/// `web`: three whoami replicas on the workers, on appnet, published on 8080.
const WEB: &str = "
m1$ docker service create -d --name web --replicas 3 --network appnet --publish 8080:80 --constraint node.role==worker traefik/whoami
expect service web running 3 within 10s
";

#[test]
fn a_task_has_an_interface_per_network_mtu_1450_and_the_vip_takes_the_first_address() {
    let mut o = assert_all_hold(&format!(
        "{SWARM}
m1$ docker service create -d --name web --network appnet --publish 8080:80 --constraint node.hostname==w1 busybox sleep 1d
expect service web running 1 within 10s
m1$ docker service inspect web --format '{{{{json .Endpoint.VirtualIPs}}}}'
expect output contains \"10.0.1.2/24\"
"
    ));
    let lab = &mut o.lab;
    let ps = sh(lab, "w1", "docker ps -q --filter name=web");
    let id = ps.stdout.trim().to_string();
    assert_eq!(id.len(), 12, "{ps:?}");
    let ip = sh(lab, "w1", &format!("docker exec {id} ip addr"));
    let t = ip.stdout;
    assert!(t.contains("eth0@"), "{t}");
    assert!(t.contains("eth1@"), "{t}");
    assert_eq!(t.matches("mtu 1450").count(), 2, "{t}");
    // eth0 on appnet (after the VIP), eth1 on ingress (after the sandboxes and the VIP).
    assert!(t.contains("inet 10.0.1."), "{t}");
    assert!(t.contains("inet 10.0.0."), "{t}");
    assert!(
        !t.contains("inet 10.0.1.2/"),
        "the VIP is not a task's: {t}"
    );
    // eth2 on the node's docker_gwbridge, as Docker gives every task.
    assert!(t.contains("eth2@") && t.contains("inet 172.18.0."), "{t}");
    assert!(t.contains("mtu 1500"), "{t}");
}

#[test]
fn the_built_in_servers_answer_over_tcp_across_hosts() {
    let mut o = assert_all_hold(&format!(
        "{SWARM}
m1$ docker service create -d --name site --network appnet --constraint node.hostname==w2 nginx
m1$ docker service create -d --name db --network appnet --constraint node.hostname==w3 redis
m1$ docker service create -d --name who --network appnet --constraint node.hostname==w2 swarmlab/whoami
expect service db running 1 within 10s
w1$ docker run -d --name client --network appnet alpine sleep 1d
w1$ docker exec client wget -qO- http://site/
expect output contains \"<title>Welcome to nginx!</title>\"
w1$ docker exec client wget -qO- http://site/missing
expect error contains \"wget: server returned error: HTTP/1.1 404 Not Found\"
w1$ docker exec client curl -s http://who/hello
expect output contains \"GET /hello HTTP/1.1\"
w1$ docker exec client curl http://who:81/
expect error contains \"curl: (7) Failed to connect to who port 81\"
"
    ));
    let lab = &mut o.lab;
    let db = sh(lab, "w3", "docker ps -q --filter name=db");
    let db = db.stdout.trim().to_string();
    // redis-cli in the redis task itself, then across the overlay from another task.
    let set = sh(
        lab,
        "w3",
        &format!("docker exec {db} redis-cli SET greeting hello"),
    );
    assert_eq!(set.stdout, "OK\n", "{set:?}");
    let incr = sh(lab, "w3", &format!("docker exec {db} redis-cli INCR hits"));
    assert_eq!(incr.stdout, "1\n", "{incr:?}");
    let get = sh(
        lab,
        "w3",
        &format!("docker exec {db} redis-cli -h db GET greeting"),
    );
    assert_eq!(get.stdout, "hello\n", "{get:?}");
    let bad = sh(
        lab,
        "w3",
        &format!("docker exec {db} redis-cli -h nowhere GET x"),
    );
    assert_eq!(bad.exit_code, 1);
    assert!(
        bad.stderr
            .contains("Could not connect to Redis at nowhere:6379"),
        "{bad:?}"
    );
}

#[test]
fn unknown_images_are_refused_as_docker_refuses_them() {
    assert_all_hold(&format!(
        "{SWARM}
w1$ docker run -d --network appnet nosuch/thing
expect error contains \"pull access denied for nosuch/thing, repository does not exist\"
m1$ docker service create -d --name bad nosuch/thing
expect error contains \"image nosuch/thing:latest could not be accessed on a registry to record\"
sleep 2s
m1$ docker service ps bad --no-trunc
expect output contains \"Rejected\"
expect output contains \"No such image: nosuch/thing:latest\"
"
    ));
}

#[test]
fn the_embedded_dns_answers_vips_tasks_containers_and_nxdomain() {
    let mut o = assert_all_hold(&format!(
        "{SWARM}{WEB}
m1$ docker service create -d --name rr --endpoint-mode dnsrr --replicas 2 --network appnet busybox sleep 1d
expect service rr running 2 within 10s
w1$ docker run -d --name client --network appnet alpine sleep 1d
expect resolve client web -> 1 address
expect resolve client tasks.web -> 3 addresses
expect resolve client rr -> 2 addresses
expect resolve client client -> 1 address
expect resolve client nothing.here -> 0 addresses
w1$ docker exec client nslookup web
expect output contains \"Server:\t\t127.0.0.11\"
expect output contains \"Address: 10.0.1.2\"
w1$ docker exec client nslookup nothing.here
expect output contains \"** server can't find nothing.here: NXDOMAIN\"
"
    ));
    // nslookup's queries went over UDP to 127.0.0.11 and the engine answered them.
    let answered = o.lab.trace.events().iter().any(|(_, e)| {
        matches!(e, TraceEvent::Balance { at, what, .. } if at == "client" && what == "embedded DNS 127.0.0.11: web -> 10.0.1.2")
    });
    assert!(answered, "{}", o.timeline);
    // A container on another network cannot resolve appnet's names.
    let lab = &mut o.lab;
    let out = sh(
        lab,
        "m1",
        "docker network create -d overlay --attachable other",
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
    let out = sh(
        lab,
        "w2",
        "docker run -d --name outsider --network other alpine sleep 1d",
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
    let out = sh(lab, "w2", "docker exec outsider nslookup web");
    assert_eq!(out.exit_code, 1, "{out:?}");
}

#[test]
fn a_vip_balances_connections_over_the_tasks() {
    let mut o = assert_all_hold(&format!(
        "{SWARM}{WEB}
w1$ docker run -d --name client --network appnet alpine sleep 1d
expect reach client web:80 ok
expect reach client web:81 fails
"
    ));
    let lab = &mut o.lab;
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..6 {
        let out = sh(lab, "w1", "docker exec client wget -qO- http://web/");
        let host = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Hostname: "))
            .unwrap_or_else(|| panic!("{out:?}"))
            .to_string();
        *seen.entry(host).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.values().all(|n| *n == 2), "{seen:?}");
}

#[test]
fn the_mesh_answers_on_every_node_even_without_a_task_and_round_robins() {
    let o = assert_all_hold(&format!(
        "{SWARM}{WEB}
expect http m1:8080 ok within 5s
expect http w1:8080 ok
expect spread m1:8080 over web
expect spread w3:8080 over web 10 requests
expect http m1:9090 fails
m1$ curl -s --repeat 6 http://w2:8080/
expect output contains \"--- 6 requests to http://w2:8080/\"
"
    ));
    // The manager runs no task, yet it answered: the mesh DNATed to the tasks.
    let t = &o.timeline;
    let balanced_on_m1 = o.lab.trace.events().iter().any(|(_, e)| {
        matches!(e, TraceEvent::Balance { at, what, .. } if at == "m1" && what.starts_with("10.1.0.1:8080 from"))
    });
    assert!(balanced_on_m1, "{t}");
    let lines: Vec<&str> = t.lines().filter(|l| l.contains("     2  ")).collect();
    assert_eq!(lines.len(), 3, "6 requests, 2 per replica: {t}");
}

#[test]
fn the_mesh_snats_to_the_nodes_ingress_sandbox() {
    let mut o = assert_all_hold(&format!("{SWARM}{WEB}"));
    let lab = &mut o.lab;
    let out = sh(lab, "m1", "curl -s http://w1:8080/");
    // The replica sees w1's ingress sandbox (10.0.0.x), not m1's underlay address.
    let remote = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("RemoteAddr: "))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(remote.starts_with("10.0.0."), "{remote}");
    let w1 = lab.underlay.by_name("w1").unwrap();
    let sbox = lab.hosts[w1.0]
        .mesh
        .sandbox
        .expect("w1 has an ingress sandbox");
    assert!(remote.starts_with(&format!("{}:", sbox.ip)), "{remote}");
}

#[test]
fn schedulers_sh_sticks_and_lc_spreads() {
    let mut o = assert_all_hold(&format!(
        "{SWARM}
m1$ docker service create -d --name sticky --replicas 3 --publish 8081:80 --label swarmlab.lb=sh traefik/whoami
m1$ docker service create -d --name least --replicas 3 --publish 8082:80 --label swarmlab.lb=lc traefik/whoami
expect service least running 3 within 10s
expect spread m1:8082 over least
m1$ docker service create -d --name odd --label swarmlab.lb=random traefik/whoami
expect error contains \"the routing mesh's schedulers are rr, wrr, lc, sh\"
"
    ));
    let out = sh(&mut o.lab, "w1", "curl -s --repeat 6 http://w1:8081/");
    assert!(out.stdout.contains("     6  "), "{}", out.stdout);
    let out = sh(&mut o.lab, "w2", "curl -s --repeat 6 http://w2:8081/");
    assert!(out.stdout.contains("     6  "), "{}", out.stdout);
}

#[test]
fn a_crashed_nodes_tasks_leave_the_mesh_which_heals() {
    let o = assert_all_hold(&format!(
        "{SWARM}{WEB}
expect spread m1:8080 over web
crash w3
m1$ curl -s -m 1 --repeat 6 http://m1:8080/
expect member m1 sees w3 dead within 30s
m1$ curl -s -m 1 --repeat 6 http://m1:8080/
expect node w3 status down within 30s
expect service web running 3 within 30s
expect spread m1:8080 over web within 10s
"
    ));
    // The gap: from the crash, connections the mesh sent to w3's task went unanswered
    // until gossip declared w3 dead and NetworkDB withdrew its endpoint.
    let events = o.lab.trace.events();
    let crash = events
        .iter()
        .find(|(_, e)| matches!(e, TraceEvent::HostCrashed { host } if host == "w3"))
        .map(|(t, _)| *t)
        .expect("w3 crashed");
    let dead = events
        .iter()
        .find(|(_, e)| {
            matches!(e, TraceEvent::Gossip { host, kind, member, .. }
                if host == "m1" && *kind == MemberChange::Dead && member == "w3")
        })
        .map(|(t, _)| *t)
        .expect("m1 declared w3 dead");
    let w3 = o.lab.underlay.by_name("w3").unwrap();
    let w3_task = o
        .lab
        .containers
        .iter()
        .position(|c| c.host == w3 && c.name.starts_with("web."))
        .expect("w3 ran a replica");
    let w3_task_ip: Vec<String> = o
        .lab
        .ifaces(swarmlab::lab::ContainerId(w3_task))
        .into_iter()
        .map(|i| i.ip.to_string())
        .collect();
    let to_dead = |from: swarmlab::time::Instant| {
        events
            .iter()
            .filter(|(t, e)| {
                *t > from
                    && matches!(e, TraceEvent::Balance { at, what, .. } if at == "m1" && w3_task_ip.iter().any(|ip| what.contains(&format!("-> task {ip}:"))))
            })
            .count()
    };
    let balanced_after_dead = events
        .iter()
        .filter(|(t, e)| *t > dead && matches!(e, TraceEvent::Balance { at, .. } if at == "m1"))
        .count();
    // In the gap, m1's mesh still sent one flow in three to the dead task...
    assert_eq!(to_dead(crash) - to_dead(dead), 2, "{}", o.timeline);
    // ... and none once gossip had declared w3 dead, though it balanced many more.
    assert_eq!(to_dead(dead), 0, "{}", o.timeline);
    assert!(balanced_after_dead >= 6, "{}", o.timeline);
    // Right after a crash, requests already balanced to the dead task time out.
    let mut o2 = assert_all_hold(&format!("{SWARM}{WEB}"));
    let h = o2.lab.underlay.by_name("w3").unwrap();
    o2.lab.crash(h);
    let out = sh(&mut o2.lab, "m1", "curl -s -m 1 --repeat 6 http://m1:8080/");
    assert_eq!(out.exit_code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("     2  failed (curl exit status 28)"),
        "{}",
        out.stdout
    );
}

#[test]
fn host_mode_opens_the_port_only_where_a_task_runs() {
    assert_all_hold(&format!(
        "{SWARM}
m1$ docker service create -d --name edge --publish mode=host,target=80,published=8088 --constraint node.hostname==w2 nginx
expect service edge on w2 within 10s
expect http w2:8088 ok
expect http w1:8088 fails
expect http m1:8088 fails
"
    ));
}

#[test]
fn blocking_vxlan_breaks_the_overlay_while_gossip_and_the_managers_keep_working() {
    let mut o = assert_all_hold(&format!(
        "{SWARM}
m1$ docker service create -d --name who --network appnet --constraint node.hostname==w2 swarmlab/whoami
expect service who running 1 within 10s
w1$ docker run -d --name client --network appnet alpine sleep 1d
expect reach client who:80 ok
block w2 udp/4789
expect reach client who:80 fails
sleep 20s
expect members m1 count 4
expect node w2 status ready
unblock w2 udp/4789
expect reach client who:80 ok within 5s
"
    ));
    let out = sh(
        &mut o.lab,
        "w1",
        "docker exec client wget -qO- -T 2 http://who/",
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
}

#[test]
fn an_underlay_mtu_of_1400_under_a_1450_overlay_drops_big_packets_and_says_why() {
    let o = assert_all_hold(
        "
host m1 10.1.0.1 mtu=1400
host w1 10.1.1.1 mtu=1400
m1$ docker swarm init --advertise-addr 10.1.0.1
m1$ TOKEN=$(docker swarm join-token -q worker)
w1$ docker swarm join --token $TOKEN 10.1.0.1:2377
m1$ docker network create --driver overlay --attachable appnet
m1$ docker service create -d --name who --network appnet --constraint node.hostname==w1 swarmlab/whoami
expect service who running 1 within 10s
m1$ docker run -d --name client --network appnet alpine sleep 1d
m1$ docker exec client ping -c 1 -s 100 tasks.who
expect output contains \"1 packets transmitted, 1 received\"
m1$ docker exec client ping -c 1 -s 1322 tasks.who
expect output contains \"1 packets transmitted, 1 received\"
m1$ docker exec client ping -c 1 -W 1 -s 1323 tasks.who
expect output contains \"1 packets transmitted, 0 received\"
m1$ docker exec client ping -c 1 -W 1 -s 1400 tasks.who
expect output contains \"1 packets transmitted, 0 received\"
",
    );
    // 1322 + 8 (ICMP) + 20 (IP) + 14 (inner Ethernet) + 36 (VXLAN, UDP, outer IP) = 1400:
    // the largest that fits. The container's 1450 MTU lets bigger ones leave it.
    assert!(
        o.timeline.contains("does not fit underlay MTU 1400"),
        "{}",
        o.timeline
    );
}

#[test]
fn sessions_in_memory_survive_only_under_sh_and_in_redis_always() {
    let mut o = assert_all_hold(&format!(
        "{SWARM}
m1$ docker service create -d --name db --network appnet redis
m1$ docker service create -d --name mem --replicas 3 -p 8080:80 swarmlab/counter
m1$ docker service create -d --name sticky --replicas 3 -p 8081:80 --label swarmlab.lb=sh swarmlab/counter
m1$ docker service create -d --name shared --replicas 3 --network appnet -p 8082:80 swarmlab/counter --redis db
expect service shared running 3 within 10s
"
    ));
    let visits = |lab: &mut Lab, port: u16| -> Vec<u64> {
        (0..4)
            .map(|_| {
                let out = sh(lab, "w1", &format!("curl -s http://w1:{port}/"));
                out.stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("visits: "))
                    .unwrap_or_else(|| panic!("{out:?}"))
                    .parse()
                    .unwrap()
            })
            .collect()
    };
    // In memory, round robin: each replica counts its own visits; the session is lost.
    assert_eq!(visits(&mut o.lab, 8080), vec![1, 1, 1, 2]);
    // Source hashing keeps the client on one replica.
    assert_eq!(visits(&mut o.lab, 8081), vec![1, 2, 3, 4]);
    // Kept in redis, the count survives whichever replica answers.
    assert_eq!(visits(&mut o.lab, 8082), vec![1, 2, 3, 4]);
}

#[test]
fn peers_are_withdrawn_when_a_task_stops_and_when_its_node_dies_and_addresses_are_reused_safely() {
    let mut o = assert_all_hold(&format!(
        "{SWARM}
m1$ docker service create -d --name a --network appnet --constraint node.hostname==w2 busybox sleep 1d
m1$ docker service create -d --name b --network appnet --constraint node.hostname==w3 busybox sleep 1d
m1$ docker service create -d --name probe --network appnet --constraint node.hostname==w1 busybox sleep 1d
expect service probe running 1 within 10s
expect resolve probe.1 tasks.a -> 1 address
expect resolve probe.1 tasks.b -> 1 address
"
    ));
    let lab = &mut o.lab;
    let w1 = lab.underlay.by_name("w1").unwrap();
    let net = lab.net_by_name("appnet").unwrap();
    let vni = lab.nets[net.0].vni;
    let ip_of = |lab: &Lab, prefix: &str| {
        let c = lab
            .containers
            .iter()
            .find(|c| c.running && c.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} runs"));
        (c.ip, c.mac)
    };
    let (a_ip, a_mac) = ip_of(lab, "a.1.");
    let (b_ip, _) = ip_of(lab, "b.1.");
    assert_eq!(lab.hosts[w1.0].vtep.arp_lookup(vni, a_ip), Some(a_mac));
    // The task stops: its entry leaves w1's VTEP.
    let out = sh(lab, "m1", "docker service rm a");
    assert_eq!(out.exit_code, 0, "{out:?}");
    let gone = |lab: &Lab| lab.hosts[w1.0].vtep.arp_lookup(vni, a_ip).is_none();
    assert!(lab.run_until_or(lab.now() + swarmlab::time::Duration::from_secs(15), gone));
    // Once the task is gone (after its 10 s stop grace), its address is free again and
    // a new task elsewhere (w3) takes it: reachable, resolvable.
    lab.run_until(lab.now() + swarmlab::time::Duration::from_secs(12));
    let out = sh(
        lab,
        "m1",
        "docker service create -d --name c --network appnet --constraint node.hostname==w3 busybox sleep 1d",
    );
    assert_eq!(out.exit_code, 0, "{out:?}");
    let ok = lab.run_until_or(lab.now() + swarmlab::time::Duration::from_secs(10), |lab| {
        lab.containers
            .iter()
            .any(|c| c.running && c.name.starts_with("c.1."))
    });
    assert!(ok);
    let (c_ip, _) = ip_of(lab, "c.1.");
    assert_eq!(c_ip, a_ip, "the freed address is the lowest free one");
    lab.run_until(lab.now() + swarmlab::time::Duration::from_secs(2));
    let probe = sh(lab, "w1", "docker ps -q --filter name=probe");
    let probe = probe.stdout.trim().to_string();
    let ping = sh(lab, "w1", &format!("docker exec {probe} ping -c 1 tasks.c"));
    assert!(ping.stdout.contains("1 received"), "{ping:?}");
    // w3 dies: gossip declares it dead and w1 withdraws both of its tasks' peers.
    let w3 = lab.underlay.by_name("w3").unwrap();
    lab.crash(w3);
    let both_gone = |lab: &Lab| {
        lab.hosts[w1.0].vtep.arp_lookup(vni, b_ip).is_none()
            && lab.hosts[w1.0].vtep.arp_lookup(vni, c_ip).is_none()
    };
    assert!(lab.run_until_or(
        lab.now() + swarmlab::time::Duration::from_secs(30),
        both_gone
    ));
}

#[test]
fn the_mesh_heals_for_every_node_after_a_crash_and_spread_fails_when_a_replica_is_silent() {
    assert_all_hold(&format!(
        "{SWARM}{WEB}
crash w3
expect service web running 3 within 30s
expect spread m1:8080 over web within 10s
expect spread w1:8080 over web within 10s
expect spread w2:8080 over web within 10s
m1$ curl -s http://localhost:8080/
expect output contains \"Hostname: \"
"
    ));
    // Under sh, one client sticks to one replica: spread must say the others never answered.
    let o = play(&format!(
        "{SWARM}
m1$ docker service create -d --name sticky --replicas 3 --publish 8081:80 --label swarmlab.lb=sh traefik/whoami
m1$ docker service create -d --name weighted --replicas 3 --publish 8082:80 --label swarmlab.lb=wrr traefik/whoami
expect service weighted running 3 within 10s
expect spread m1:8082 over weighted
expect spread m1:8081 over sticky
"
    ));
    assert_eq!((o.held, o.failed), (2, 1), "{}", o.timeline);
    assert!(
        o.timeline.contains("a running replica never answered"),
        "{}",
        o.timeline
    );
}

#[test]
fn blocking_7946_leaves_networkdb_diverged_and_peers_unprogrammed() {
    let o = assert_all_hold(&format!(
        "{SWARM}
expect members m1 count 4 within 10s
block w2 udp/7946
block w2 tcp/7946
m1$ docker service create -d --name a --network appnet --constraint node.hostname==w1 busybox sleep 1d
m1$ docker service create -d --name b --network appnet --constraint node.hostname==w2 busybox sleep 1d
expect service b running 1 within 10s
sleep 5s
"
    ));
    let lab = &o.lab;
    let (w1, w2) = (
        lab.underlay.by_name("w1").unwrap(),
        lab.underlay.by_name("w2").unwrap(),
    );
    let entries = |h: swarmlab::underlay::HostId| {
        lab.hosts[h.0]
            .gossip
            .db
            .entries("appnet", "endpoint_table")
            .len()
    };
    // Each node knows only its own task: the tables never converged.
    assert_eq!((entries(w1), entries(w2)), (1, 1));
    let net = lab.net_by_name("appnet").unwrap();
    let vni = lab.nets[net.0].vni;
    let b = lab
        .containers
        .iter()
        .find(|c| c.running && c.name.starts_with("b.1."))
        .unwrap();
    assert_eq!(lab.hosts[w1.0].vtep.arp_lookup(vni, b.ip), None);
}

#[test]
fn a_new_task_is_programmed_on_every_node_of_its_network_within_two_seconds_at_10_nodes() {
    let mut text =
        "hosts h[1-10] 10.3.0.0/24\nh1$ docker swarm init\nh1$ W=$(docker swarm join-token -q worker)\n"
            .to_string();
    for i in 2..=10 {
        text.push_str(&format!(
            "h{i}$ docker swarm join --token $W 10.3.0.1:2377\n"
        ));
    }
    text.push_str(
        "h1$ docker network create --driver overlay mynet\n\
         h1$ docker service create --name all --mode global --network mynet --detach busybox sleep 1d\n\
         expect service all running 10 within 60s\nsleep 30s\n\
         h1$ docker service create --name probe --network mynet --detach busybox sleep 1d\n",
    );
    let mut o = assert_all_hold(&text);
    let lab = &mut o.lab;
    let started = lab.run_until_or(lab.now() + swarmlab::time::Duration::from_secs(10), |lab| {
        lab.containers
            .iter()
            .any(|c| c.running && c.name.starts_with("probe."))
    });
    assert!(started);
    let c = lab
        .containers
        .iter()
        .find(|c| c.running && c.name.starts_with("probe."))
        .unwrap();
    let (t0, host, ip, mac, net) = (c.created, c.host, c.ip, c.mac, c.net);
    let vni = lab.nets[net.0].vni;
    let all = |lab: &Lab| {
        lab.nets[net.0]
            .hosts
            .iter()
            .filter(|h| **h != host)
            .all(|h| lab.hosts[h.0].vtep.arp_lookup(vni, ip) == Some(mac))
    };
    assert!(lab.run_until_or(t0 + swarmlab::time::Duration::from_secs(2), all));
    assert_eq!(lab.nets[net.0].hosts.len(), 10);
}

#[test]
fn an_overlay_exists_on_a_worker_only_while_something_there_uses_it() {
    let mut o = assert_all_hold(&format!(
        "{SWARM}
m1$ docker service create -d --name a --network appnet --constraint node.hostname==w1 busybox sleep 1d
expect service a running 1 within 10s
w1$ docker network ls --format '{{{{.Name}}}}'
expect output contains \"appnet\"
expect output contains \"ingress\"
w2$ docker network ls --format '{{{{.Name}}}}'
expect output contains \"ingress\"
"
    ));
    let lab = &mut o.lab;
    let w2 = sh(lab, "w2", "docker network ls --format {{.Name}}");
    assert!(!w2.stdout.contains("appnet"), "{w2:?}");
    let net = lab.net_by_name("appnet").unwrap();
    let w1 = lab.underlay.by_name("w1").unwrap();
    let vni = lab.nets[net.0].vni;
    assert!(lab.hosts[w1.0].vtep.has_network(vni));
    let out = sh(lab, "m1", "docker service rm a");
    assert_eq!(out.exit_code, 0, "{out:?}");
    let gone = |lab: &Lab| !lab.hosts[w1.0].vtep.has_network(vni);
    assert!(lab.run_until_or(lab.now() + swarmlab::time::Duration::from_secs(15), gone));
    let ls = sh(lab, "w1", "docker network ls --format {{.Name}}");
    assert!(!ls.stdout.contains("appnet"), "{ls:?}");
    assert!(ls.stdout.contains("ingress"), "{ls:?}");
}

#[test]
fn service_update_adds_and_removes_networks_and_published_ports_as_the_course_does() {
    let o = assert_all_hold(&format!(
        "{SWARM}
m1$ docker service create -d --name web --replicas 2 traefik/whoami
expect service web running 2 within 10s
w1$ docker run -d --name client --network appnet alpine sleep 1d
expect resolve client web -> 0 addresses
m1$ docker service update --network-add appnet web
expect service web running 2 within 60s
expect resolve client web -> 1 address within 10s
expect reach client web:80 ok
m1$ docker service update --network-add appnet web
expect error contains \"service is already attached to network appnet\"
m1$ docker service update --network-add nosuchnet web
expect error contains \"network nosuchnet not found\"
m1$ docker service update --publish-add 8080:80 web
expect http w2:8080 ok within 60s
m1$ docker service update --publish-rm 8080 web
expect http w2:8080 fails within 60s
m1$ docker service update --network-rm appnet web
expect resolve client web -> 0 addresses within 60s
m1$ docker service inspect web --format '{{{{json .Endpoint}}}}'
expect output contains \"{{\\\"Spec\\\":{{\\\"Mode\\\":\\\"vip\\\"}}}}\"
"
    ));
    // The tasks were redeployed for each change of attachments.
    assert!(
        o.timeline.matches("service web updated").count() >= 4,
        "{}",
        o.timeline
    );
}

#[test]
fn network_inspect_on_a_node_lists_its_endpoints_and_the_peers_networkdb_knows() {
    assert_all_hold(&format!(
        "{SWARM}
m1$ docker service create -d --name pub --publish 8080:80 --constraint node.hostname==m1 nginx
expect service pub running 1 within 10s
sleep 2s
m1$ docker network inspect ingress --format '{{{{json .Peers}}}}'
expect output contains \"{{\\\"Name\\\":\\\"w3\\\",\\\"IP\\\":\\\"10.1.1.3\\\"}}\"
m1$ docker network inspect ingress --format '{{{{json .Containers}}}}'
expect output contains \"\\\"ingress-sbox\\\":{{\\\"Name\\\":\\\"ingress-endpoint\\\"\"
expect output contains \"\\\"IPv4Address\\\":\\\"10.0.0.2/24\\\"\"
expect output contains \"\\\"Name\\\":\\\"pub.1.\"
"
    ));
}

/// Docker's ingress sandbox sets IPVS's `expire_nodest_conn=1`: once gossip withdraws a
/// crashed node's task, the mesh expires the connections to it at once, and the
/// client's retransmitted SYN goes to a live task. A request that happened to go to the
/// dead task is answered within seconds, not after curl's 300 s.
#[test]
fn a_connection_to_a_crashed_replica_moves_to_a_live_one_on_the_next_syn() {
    for seed in 1..=5 {
        let text = "hosts m[1-3] 10.1.0.0/24\nhosts w[1-3] 10.1.1.0/24\n\
             m1$ docker swarm init\nm1$ M=$(docker swarm join-token -q manager)\n\
             m1$ W=$(docker swarm join-token -q worker)\n\
             m2$ docker swarm join --token $M 10.1.0.1:2377\nm3$ docker swarm join --token $M 10.1.0.1:2377\n\
             w1$ docker swarm join --token $W 10.1.0.1:2377\nw2$ docker swarm join --token $W 10.1.0.1:2377\n\
             w3$ docker swarm join --token $W 10.1.0.1:2377\n\
             m1$ docker service create --name web --replicas 3 --publish 8080:80 --constraint node.role==worker --detach traefik/whoami\n\
             expect service web running 3 within 10s\nexpect http m1:8080 ok within 10s\n\
             crash w3\n\
             m1$ curl -s http://m1:8080/\nexpect output contains \"Hostname:\"\n\
             m1$ curl -s http://m1:8080/\nexpect output contains \"Hostname:\"\n\
             m1$ curl -s http://m1:8080/\nexpect output contains \"Hostname:\"\n";
        let o = swarmlab::scenario::run::run(
            &swarmlab::scenario::parse("t.lab", text).unwrap(),
            seed,
            false,
        );
        assert_eq!((o.held, o.failed), (5, 0), "seed {seed}:\n{}", o.timeline);
        let crash = o
            .lab
            .trace
            .events()
            .iter()
            .find(|(_, e)| matches!(e, TraceEvent::HostCrashed { .. }))
            .map(|(t, _)| *t)
            .unwrap();
        let took = o.lab.now() - crash;
        assert!(
            took < swarmlab::time::Duration::from_secs(20),
            "seed {seed}: the three requests took {took} after the crash:\n{}",
            o.timeline
        );
    }
}
