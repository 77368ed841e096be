//! Interned member identities, shared by every `Member` that a driver runs.
//!
//! Every member keeps the whole member list, as memberlist does, so N members hold N²
//! entries. What a member says about itself (name, address, port, metadata, protocol
//! versions) is the same in every one of those views, so it is stored once here and each
//! view holds a reference-counted pointer to it; each name also gets a dense number, so
//! that a view can find a member by name through a plain vector instead of a hash map of
//! its own. A driver running many members in one process (the simulator) gives them one
//! `Registry`; a member on its own gets one of its own.
//!
//! Ids and pointers are only ever used to look things up, never to order output, so the
//! order in which names are first seen cannot change what anything prints.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

type Fixed = BuildHasherDefault<DefaultHasher>;

/// What a member announces about itself in its alive message.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Ident {
    /// Which registry made it (see `Registry::owns`).
    pub registry: u64,
    /// Dense number of the name in its registry.
    pub id: u32,
    /// The member's name.
    pub name: Box<str>,
    /// The address bytes as announced (4 bytes, or 16 for IPv4-mapped IPv6).
    pub addr: Box<[u8]>,
    /// The IPv4 address those bytes hold.
    pub ip: Ipv4Addr,
    /// The gossip port.
    pub port: u16,
    /// Delegate metadata; Go treats nil and empty alike, and so does this (empty is None).
    pub meta: Option<Box<[u8]>>,
    /// pmin, pmax, pcur, dmin, dmax, dcur.
    pub vsn: [u8; 6],
}

#[derive(Debug, Default)]
struct Inner {
    ids: HashMap<Box<str>, u32, Fixed>,
    idents: HashSet<Arc<Ident>, Fixed>,
    /// Size of `idents` after the last sweep of identities nobody holds any more.
    swept: usize,
}

/// A shared table of names and identities (cheap to clone: clones share it).
#[derive(Clone, Debug)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
    /// Tells this registry's identities from another's (only ever compared).
    tag: u64,
}

impl Default for Registry {
    fn default() -> Registry {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Registry {
            inner: Arc::default(),
            tag: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing here can leave the table half-updated, so a poisoned lock is still sound.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `ident` was interned here (its id then means a name here).
    pub fn owns(&self, ident: &Ident) -> bool {
        ident.registry == self.tag
    }

    /// The dense number of `name`, if it has been seen.
    pub fn id(&self, name: &str) -> Option<u32> {
        self.lock().ids.get(name).copied()
    }

    /// How many names have been seen (ids are below this).
    pub fn names(&self) -> usize {
        self.lock().ids.len()
    }

    /// The shared identity with these fields, made if nobody holds one yet.
    pub fn intern(
        &self,
        name: &str,
        addr: &[u8],
        ip: Ipv4Addr,
        port: u16,
        meta: Option<&[u8]>,
        vsn: [u8; 6],
    ) -> Arc<Ident> {
        let mut inner = self.lock();
        let next = inner.ids.len() as u32;
        let id = *inner.ids.entry(name.into()).or_insert(next);
        let ident = Ident {
            registry: self.tag,
            id,
            name: name.into(),
            addr: addr.into(),
            ip,
            port,
            meta: meta.filter(|m| !m.is_empty()).map(Into::into),
            vsn,
        };
        if let Some(found) = inner.idents.get(&ident) {
            return found.clone();
        }
        // Identities change when metadata or addresses do; forget the ones no view holds
        // any more whenever the table has doubled, so that churn cannot grow it forever.
        if inner.idents.len() >= 2 * inner.swept.max(1024) {
            inner.idents.retain(|i| Arc::strong_count(i) > 1);
            inner.swept = inner.idents.len();
        }
        let ident = Arc::new(ident);
        inner.idents.insert(ident.clone());
        ident
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_identities_are_shared_and_names_numbered_once() {
        let r = Registry::new();
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let a = r.intern("n1", &[10, 0, 0, 1], ip, 7946, None, [1, 5, 5, 2, 5, 4]);
        let b = r.intern(
            "n1",
            &[10, 0, 0, 1],
            ip,
            7946,
            Some(&[]),
            [1, 5, 5, 2, 5, 4],
        );
        assert!(Arc::ptr_eq(&a, &b), "empty metadata is the same as none");
        let c = r.intern(
            "n1",
            &[10, 0, 0, 1],
            ip,
            7946,
            Some(b"x"),
            [1, 5, 5, 2, 5, 4],
        );
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(a.id, c.id);
        let d = r.intern("n2", &[10, 0, 0, 2], ip, 7946, None, [1, 5, 5, 2, 5, 4]);
        assert_ne!(a.id, d.id);
        assert_eq!(r.id("n2"), Some(d.id));
        assert_eq!(r.id("n3"), None);
        assert_eq!(r.names(), 2);
        assert!(r.owns(&a) && !Registry::new().owns(&a));
    }

    #[test]
    fn identities_nobody_holds_are_swept() {
        let r = Registry::new();
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let kept = r.intern("n1", &[10, 0, 0, 1], ip, 7946, None, [1, 5, 5, 2, 5, 4]);
        for i in 0..5000u32 {
            let meta = i.to_be_bytes();
            drop(r.intern(
                "n1",
                &[10, 0, 0, 1],
                ip,
                7946,
                Some(&meta),
                [1, 5, 5, 2, 5, 4],
            ));
        }
        let held = r.lock().idents.len();
        assert!(held < 2100, "{held} identities kept");
        let again = r.intern("n1", &[10, 0, 0, 1], ip, 7946, None, [1, 5, 5, 2, 5, 4]);
        assert!(Arc::ptr_eq(&kept, &again));
    }
}
