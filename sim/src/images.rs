//! The one catalog of the built-in images: what each one is, which server it runs and on
//! which port, which programs a shell in it can exec, and how its PID 1 takes SIGTERM.
//! Every other room asks here; none keeps its own list. It imports nothing.

/// The server an image runs (its programs live in `netstack`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// traefik/whoami: replies with the hostname, the IPs and the request.
    Whoami,
    /// nginx: a static page on `/`.
    Nginx,
    /// redis: RESP commands.
    Redis,
    /// swarmlab/counter, the sessions lesson's visit counter.
    Counter,
}

/// One built-in image.
#[derive(Clone, Copy, Debug)]
pub struct Image {
    /// Its repository, as `image_repo` reduces a reference to it.
    pub repo: &'static str,
    /// The server it runs, and the port it listens on.
    pub server: Option<(Server, u16)>,
    /// What `docker exec` (and a task's command) can run in it.
    pub programs: Programs,
    /// Whether PID 1 stops on SIGTERM (nginx, redis), rather than ignoring it until the
    /// SIGKILL after the grace period (`sleep`, a shell, Go servers such as whoami).
    pub stops_on_sigterm: bool,
    /// Its size, as `docker images` shows it (linux/amd64).
    pub size: u64,
}

/// What an image can exec.
#[derive(Clone, Copy, Debug)]
pub enum Programs {
    /// Built FROM scratch: nothing.
    Scratch,
    /// Everything the simulator offers but these.
    AllBut(&'static [&'static str]),
}

impl Programs {
    /// Whether `program` is there.
    pub fn has(self, program: &str) -> bool {
        match self {
            Programs::Scratch => false,
            Programs::AllBut(missing) => !missing.contains(&program),
        }
    }
}

/// A busybox-based image has no redis client.
const BUSYBOX: Programs = Programs::AllBut(&["redis-cli"]);
/// redis' image (Debian) has redis-cli, but no wget or nslookup.
const REDIS: Programs = Programs::AllBut(&["wget", "nslookup"]);

/// The catalog.
pub const CATALOG: &[Image] = &[
    Image {
        repo: "alpine",
        server: None,
        programs: BUSYBOX,
        stops_on_sigterm: false,
        size: 7_800_000,
    },
    Image {
        repo: "busybox",
        server: None,
        programs: BUSYBOX,
        stops_on_sigterm: false,
        size: 4_260_000,
    },
    Image {
        repo: "nginx",
        server: Some((Server::Nginx, 80)),
        programs: BUSYBOX,
        stops_on_sigterm: true,
        size: 192_000_000,
    },
    Image {
        repo: "redis",
        server: Some((Server::Redis, 6379)),
        programs: REDIS,
        stops_on_sigterm: true,
        size: 117_000_000,
    },
    Image {
        repo: "swarmlab/whoami",
        server: Some((Server::Whoami, 80)),
        programs: Programs::Scratch,
        stops_on_sigterm: false,
        size: 6_840_000,
    },
    Image {
        repo: "traefik/whoami",
        server: Some((Server::Whoami, 80)),
        programs: Programs::Scratch,
        stops_on_sigterm: false,
        size: 6_840_000,
    },
    Image {
        repo: "containous/whoami",
        server: Some((Server::Whoami, 80)),
        programs: Programs::Scratch,
        stops_on_sigterm: false,
        size: 7_370_000,
    },
    Image {
        repo: "swarmlab/counter",
        server: Some((Server::Counter, 80)),
        programs: Programs::Scratch,
        stops_on_sigterm: false,
        size: 6_900_000,
    },
];

/// The page nginx's image serves at `/` (its `/usr/share/nginx/html/index.html`).
pub const NGINX_INDEX: &str = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n<p>swarmlab's built-in nginx image serves this page.</p>\n</body>\n</html>\n";

/// The files an image brings: its base system's few that labs read, and its server's.
pub fn files(image: &str) -> Vec<(&'static str, &'static [u8])> {
    let repo = image_repo(image);
    let mut files: Vec<(&'static str, &'static [u8])> = vec![
        ("/tmp/.keep", b""),
        ("/root/.keep", b""),
        ("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
    ];
    match repo {
        "alpine" => files.push((
            "/etc/os-release",
            b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"Alpine Linux v3.20\"\n",
        )),
        "nginx" => files.push(("/usr/share/nginx/html/index.html", NGINX_INDEX.as_bytes())),
        "redis" => files.push(("/data/.keep", b"")),
        _ => {}
    }
    files
}

/// Whether an image's shell is busybox's (alpine, busybox), rather than a Debian one.
pub fn busybox_shell(image: &str) -> bool {
    matches!(image_repo(image), "alpine" | "busybox")
}

/// An image reference without its tag or digest, and without `docker.io/library/`.
pub fn image_repo(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    let no_tag = match no_digest[last_slash..].find(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    };
    no_tag
        .strip_prefix("docker.io/")
        .map(|r| r.strip_prefix("library/").unwrap_or(r))
        .unwrap_or(no_tag)
}

/// The built-in image a reference names, if any.
pub fn lookup(image: &str) -> Option<&'static Image> {
    let repo = image_repo(image);
    CATALOG.iter().find(|i| i.repo == repo)
}

/// Whether a container of `image` can exec `program` (an image the catalog does not
/// know is taken as busybox-like, as the simulator has always run it).
pub fn has_program(image: &str, program: &str) -> bool {
    lookup(image).map_or(BUSYBOX, |i| i.programs).has(program)
}

/// Whether `image`'s PID 1 stops on SIGTERM.
pub fn stops_on_sigterm(image: &str) -> bool {
    lookup(image).is_some_and(|i| i.stops_on_sigterm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_repos_drop_tags_and_the_default_registry() {
        assert_eq!(image_repo("nginx:1.27"), "nginx");
        assert_eq!(image_repo("docker.io/library/redis:7"), "redis");
        assert_eq!(image_repo("traefik/whoami@sha256:abc"), "traefik/whoami");
        assert_eq!(image_repo("localhost:5000/app"), "localhost:5000/app");
    }

    #[test]
    fn every_image_is_listed_once_and_servers_have_ports() {
        for (i, a) in CATALOG.iter().enumerate() {
            assert!(
                CATALOG[i + 1..].iter().all(|b| b.repo != a.repo),
                "{}",
                a.repo
            );
            assert!(a.server.is_none_or(|(_, p)| p > 0));
        }
        assert_eq!(
            lookup("redis:7").unwrap().server,
            Some((Server::Redis, 6379))
        );
        assert!(lookup("mysql").is_none());
    }
}
