//! A filesystem in memory: a host's disk, or a container's (its image's files plus a
//! writable layer). Paths are absolute after `resolve`; directories are entries of
//! their own, so that an empty one exists. Iteration is in path order.
//!
//! It is a core: no clock, no lab. Errors are the texts busybox prints after the
//! program's name and the path (`No such file or directory`).

use std::collections::BTreeMap;

/// What a path holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir,
    /// A regular file and its bytes.
    File(Vec<u8>),
}

/// Why an operation failed, as `strerror` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    /// ENOENT.
    #[error("No such file or directory")]
    NotFound,
    /// EEXIST.
    #[error("File exists")]
    Exists,
    /// ENOTDIR.
    #[error("Not a directory")]
    NotDir,
    /// EISDIR.
    #[error("Is a directory")]
    IsDir,
    /// ENOTEMPTY.
    #[error("Directory not empty")]
    NotEmpty,
    /// EFBIG: past the stated limit of one file.
    #[error("File too large")]
    TooLarge,
}

/// The largest file swarmlab keeps (64 MiB): a bigger write is refused, not allocated.
pub const MAX_FILE: usize = 64 << 20;

/// A filesystem.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fs {
    entries: BTreeMap<String, Entry>,
}

/// `path` made absolute against `cwd`, with `.` and `..` resolved.
pub fn resolve(cwd: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{cwd}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

impl Fs {
    /// A filesystem with these files (their directories are made).
    pub fn with_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Fs {
        let mut fs = Fs::default();
        for (path, bytes) in files {
            let _ = fs.mkdir_p(parent(path));
            let _ = fs.write(path, bytes.to_vec());
        }
        fs
    }

    /// What `path` (absolute) holds; the root is always a directory.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        if path == "/" {
            return Some(&Entry::Dir);
        }
        self.entries.get(path)
    }

    fn need_dir(&self, path: &str) -> Result<(), FsError> {
        match self.get(path) {
            Some(Entry::Dir) => Ok(()),
            Some(Entry::File(_)) => Err(FsError::NotDir),
            None => Err(FsError::NotFound),
        }
    }

    /// Read a file.
    pub fn read(&self, path: &str) -> Result<&[u8], FsError> {
        match self.get(path) {
            Some(Entry::File(b)) => Ok(b),
            Some(Entry::Dir) => Err(FsError::IsDir),
            None => Err(FsError::NotFound),
        }
    }

    /// Write a file whole, creating it in an existing directory.
    pub fn write(&mut self, path: &str, bytes: Vec<u8>) -> Result<(), FsError> {
        if bytes.len() > MAX_FILE {
            return Err(FsError::TooLarge);
        }
        self.need_dir(parent(path))?;
        if let Some(Entry::Dir) = self.get(path) {
            return Err(FsError::IsDir);
        }
        self.entries.insert(path.to_string(), Entry::File(bytes));
        Ok(())
    }

    /// Append to a file, creating it.
    pub fn append(&mut self, path: &str, bytes: &[u8]) -> Result<(), FsError> {
        let mut now = match self.get(path) {
            Some(Entry::File(b)) => b.clone(),
            Some(Entry::Dir) => return Err(FsError::IsDir),
            None => Vec::new(),
        };
        if now.len() + bytes.len() > MAX_FILE {
            return Err(FsError::TooLarge);
        }
        now.extend_from_slice(bytes);
        self.write(path, now)
    }

    /// `mkdir`: one directory in an existing one.
    pub fn mkdir(&mut self, path: &str) -> Result<(), FsError> {
        if self.get(path).is_some() {
            return Err(FsError::Exists);
        }
        self.need_dir(parent(path))?;
        self.entries.insert(path.to_string(), Entry::Dir);
        Ok(())
    }

    /// `mkdir -p`: the directory and its parents; an existing directory is fine.
    pub fn mkdir_p(&mut self, path: &str) -> Result<(), FsError> {
        match self.get(path) {
            Some(Entry::Dir) => return Ok(()),
            Some(Entry::File(_)) => return Err(FsError::Exists),
            None => {}
        }
        self.mkdir_p(parent(path))?;
        self.entries.insert(path.to_string(), Entry::Dir);
        Ok(())
    }

    /// The names in a directory, in order.
    pub fn list(&self, dir: &str) -> Result<Vec<String>, FsError> {
        self.need_dir(dir)?;
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        Ok(self
            .entries
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !p[prefix.len()..].contains('/'))
            .map(|(p, _)| p[prefix.len()..].to_string())
            .collect())
    }

    /// Remove a file, or a directory (with what it holds when `recursive`).
    pub fn remove(&mut self, path: &str, recursive: bool) -> Result<(), FsError> {
        match self.get(path) {
            None => Err(FsError::NotFound),
            Some(Entry::File(_)) => {
                self.entries.remove(path);
                Ok(())
            }
            Some(Entry::Dir) => {
                let inside = format!("{path}/");
                let children: Vec<String> = self
                    .entries
                    .range(inside.clone()..)
                    .take_while(|(p, _)| p.starts_with(&inside))
                    .map(|(p, _)| p.clone())
                    .collect();
                if !children.is_empty() && !recursive {
                    return Err(FsError::NotEmpty);
                }
                if !recursive {
                    return Err(FsError::IsDir);
                }
                for c in children {
                    self.entries.remove(&c);
                }
                self.entries.remove(path);
                Ok(())
            }
        }
    }

    /// Copy a file, or a directory tree when `recursive`, to `to`.
    pub fn copy(&mut self, from: &str, to: &str, recursive: bool) -> Result<(), FsError> {
        match self.get(from).cloned() {
            None => Err(FsError::NotFound),
            Some(Entry::File(b)) => self.write(to, b),
            Some(Entry::Dir) if !recursive => Err(FsError::IsDir),
            Some(Entry::Dir) => {
                self.mkdir_p(to)?;
                let inside = format!("{from}/");
                let items: Vec<(String, Entry)> = self
                    .entries
                    .range(inside.clone()..)
                    .take_while(|(p, _)| p.starts_with(&inside))
                    .map(|(p, e)| (format!("{to}/{}", &p[inside.len()..]), e.clone()))
                    .collect();
                for (p, e) in items {
                    match e {
                        Entry::Dir => self.mkdir_p(&p)?,
                        Entry::File(b) => self.write(&p, b)?,
                    }
                }
                Ok(())
            }
        }
    }

    /// Move (rename) a file or a directory tree.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), FsError> {
        self.copy(from, to, true)?;
        self.remove(from, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_the_working_directory() {
        assert_eq!(resolve("/root", "app/Dockerfile"), "/root/app/Dockerfile");
        assert_eq!(resolve("/root/app", "../x/./y"), "/root/x/y");
        assert_eq!(resolve("/", ".."), "/");
    }

    #[test]
    fn files_live_in_directories_that_exist() {
        let mut fs = Fs::default();
        assert_eq!(fs.write("/a/b", b"x".to_vec()), Err(FsError::NotFound));
        fs.mkdir_p("/a").unwrap();
        fs.write("/a/b", b"x".to_vec()).unwrap();
        fs.append("/a/b", b"y").unwrap();
        assert_eq!(fs.read("/a/b").unwrap(), b"xy");
        assert_eq!(fs.list("/").unwrap(), vec!["a"]);
        assert_eq!(fs.remove("/a", false), Err(FsError::NotEmpty));
        fs.copy("/a", "/c", true).unwrap();
        fs.rename("/c/b", "/c/d").unwrap();
        assert_eq!(fs.list("/c").unwrap(), vec!["d"]);
        fs.remove("/a", true).unwrap();
        assert_eq!(fs.read("/a/b"), Err(FsError::NotFound));
        assert_eq!(
            fs.write("/c/big", vec![0; MAX_FILE + 1]),
            Err(FsError::TooLarge)
        );
    }
}
