//! The simulator's identifiers, shared by every room: a container's and an overlay's
//! index. Newtypes, so that one is never passed for the other; they import nothing.

/// Index of a container in the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerId(pub usize);

/// Index of an overlay network in the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetId(pub usize);
