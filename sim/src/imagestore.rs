//! A node's image store: the images its engine has, built-in ones pulled on first use
//! and images built there. An image built on one node is on that node only.
//!
//! A core: it knows the catalog (`images`) and filesystems (`fs`), nothing of the lab.

use crate::fs::Fs;
use std::collections::BTreeMap;

/// What `docker inspect` calls the config: what a container of the image runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `CMD`.
    pub cmd: Vec<String>,
    /// `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
    /// `ENV`, as `KEY=value`.
    pub env: Vec<String>,
    /// `WORKDIR`.
    pub workdir: String,
    /// `EXPOSE`.
    pub exposed: Vec<String>,
    /// `LABEL`.
    pub labels: Vec<(String, String)>,
}

/// An image on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalImage {
    /// Its id: `sha256:` and 64 hex digits.
    pub id: String,
    /// The built-in image its programs come from (itself, or what it was built FROM).
    pub base: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was made (virtual nanoseconds; built-ins carry their release date).
    pub created: u64,
    /// Its files.
    pub files: Fs,
    /// What its containers run.
    pub config: ImageConfig,
}

/// `nginx` is `nginx:latest`; `127.0.0.1:5000/app:1` keeps its registry.
pub fn normalize(reference: &str) -> String {
    let r = reference
        .strip_prefix("docker.io/library/")
        .or_else(|| reference.strip_prefix("docker.io/"))
        .unwrap_or(reference);
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') || r.contains('@') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// A node's images, by id, and its tags.
#[derive(Clone, Debug, Default)]
pub struct ImageStore {
    by_id: BTreeMap<String, LocalImage>,
    tags: BTreeMap<String, String>,
}

/// A stable 64-hex-digit id from the image's name and content (FNV-1a, stretched).
pub fn digest(parts: &[&[u8]]) -> String {
    let mut out = String::from("sha256:");
    for round in 0u64..4 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ round;
        for p in parts {
            for b in *p {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

impl ImageStore {
    /// The image a reference names here (a tag, or an id prefix of 12 digits or more).
    pub fn get(&self, reference: &str) -> Option<&LocalImage> {
        if let Some(id) = self.tags.get(&normalize(reference)) {
            return self.by_id.get(id);
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self
                .by_id
                .values()
                .find(|i| i.id["sha256:".len()..].starts_with(hex));
        }
        None
    }

    /// The image, pulling a built-in one if the node does not have it yet. `None` when
    /// no registry has it.
    pub fn get_or_pull(&mut self, reference: &str) -> Option<&LocalImage> {
        if self.get(reference).is_none() {
            let builtin = crate::images::lookup(reference)?;
            let name = normalize(reference);
            let image = LocalImage {
                id: digest(&[builtin.repo.as_bytes()]),
                base: builtin.repo.to_string(),
                size: builtin.size,
                created: 0,
                files: Fs::with_files(crate::images::files(builtin.repo)),
                config: ImageConfig::default(),
            };
            self.add(image, &name);
        }
        self.get(reference)
    }

    /// Add an image under a name (the name leaves the image that had it).
    pub fn add(&mut self, image: LocalImage, name: &str) {
        let id = image.id.clone();
        self.by_id.insert(id.clone(), image);
        self.tag(&id, name);
    }

    /// Give the image `id` the name `name`.
    pub fn tag(&mut self, id: &str, name: &str) {
        self.tags.insert(normalize(name), id.to_string());
    }

    /// `docker images`' rows: (repository, tag, id, created, size), newest first, then
    /// by name.
    pub fn rows(&self) -> Vec<(String, String, &LocalImage)> {
        let mut rows: Vec<(String, String, &LocalImage)> = self
            .tags
            .iter()
            .filter_map(|(name, id)| {
                let img = self.by_id.get(id)?;
                let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
                Some((repo.to_string(), tag.to_string(), img))
            })
            .collect();
        rows.sort_by(|a, b| b.2.created.cmp(&a.2.created).then_with(|| a.0.cmp(&b.0)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalise_as_docker_does() {
        assert_eq!(normalize("nginx"), "nginx:latest");
        assert_eq!(normalize("docker.io/library/redis:7"), "redis:7");
        assert_eq!(normalize("127.0.0.1:5000/app"), "127.0.0.1:5000/app:latest");
    }

    #[test]
    fn built_ins_are_pulled_on_first_use_and_unknown_ones_are_not() {
        let mut s = ImageStore::default();
        assert!(s.get("alpine").is_none());
        assert!(s.get_or_pull("alpine:latest").is_some());
        assert!(s.get("alpine").is_some());
        assert!(s.get_or_pull("myapp:1").is_none());
        assert_eq!(s.rows().len(), 1);
    }
}
