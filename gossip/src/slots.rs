//! Where each known member sits in a `Member`'s node list, by registry id.
//!
//! Registry ids are shared by every member a driver runs, so they grow with the whole
//! population, not with what one member knows. A vector indexed by id is the fastest
//! lookup once a member knows most ids, but N members that each know only themselves
//! would hold N²/2 slots between them (20 GB for 100,000 hosts). So the index starts
//! sparse and turns dense when the member knows at least a quarter of the ids below
//! the largest it holds. Only looked up, never iterated: order cannot leak out.

use std::collections::BTreeMap;

const NOWHERE: u32 = u32::MAX;

/// Registry id -> position.
#[derive(Clone, Debug)]
pub(crate) enum Slots {
    Sparse(BTreeMap<u32, u32>),
    Dense(Vec<u32>),
}

impl Default for Slots {
    fn default() -> Self {
        Slots::Sparse(BTreeMap::new())
    }
}

impl Slots {
    /// The position of `id`, if present.
    pub(crate) fn get(&self, id: u32) -> Option<usize> {
        match self {
            Slots::Sparse(m) => m.get(&id).map(|p| *p as usize),
            Slots::Dense(v) => v
                .get(id as usize)
                .filter(|p| **p != NOWHERE)
                .map(|p| *p as usize),
        }
    }

    /// Record that `id` is at `pos`; `known` is how many ids the member holds now.
    pub(crate) fn set(&mut self, id: u32, pos: usize, known: usize) {
        let pos = u32::try_from(pos).expect("fewer than 2^32 members");
        match self {
            Slots::Sparse(m) => {
                m.insert(id, pos);
                let top = m.last_key_value().map_or(0, |(k, _)| *k as usize + 1);
                if known.max(m.len()) * 4 >= top {
                    let mut v = vec![NOWHERE; top];
                    for (k, p) in m.iter() {
                        v[*k as usize] = *p;
                    }
                    *self = Slots::Dense(v);
                }
            }
            Slots::Dense(v) => {
                let i = id as usize;
                if v.len() <= i {
                    v.resize(i + 1, NOWHERE);
                }
                v[i] = pos;
            }
        }
    }

    /// Forget every position (before a reindex).
    pub(crate) fn clear(&mut self) {
        match self {
            Slots::Sparse(m) => m.clear(),
            Slots::Dense(v) => v.fill(NOWHERE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn a_member_that_knows_only_a_high_id_stays_sparse() {
        let mut s = Slots::default();
        s.set(99_999, 0, 1);
        assert!(matches!(s, Slots::Sparse(_)));
        assert_eq!(s.get(99_999), Some(0));
        assert_eq!(s.get(5), None);
    }

    #[test]
    fn knowing_a_quarter_of_the_ids_turns_dense_and_keeps_every_position() {
        let mut s = Slots::default();
        for (pos, id) in (0..100u32).step_by(4).rev().enumerate() {
            s.set(id, pos, pos + 1);
            // 25 of the ids below 97 make a quarter.
            assert_eq!(matches!(s, Slots::Dense(_)), pos + 1 == 25, "after {id}");
        }
        for (pos, id) in (0..100u32).step_by(4).rev().enumerate() {
            assert_eq!(s.get(id), Some(pos));
        }
        assert_eq!(s.get(1), None);
        assert_eq!(s.get(1000), None);
        s.clear();
        assert_eq!(s.get(0), None);
    }
}
