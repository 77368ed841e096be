//! The VXLAN data plane of swarmlab: the RFC 7348 wire format and a VTEP core.
//!
//! This crate owns the bytes of VXLAN and the forwarding state of one tunnel endpoint
//! (per-VNI FDB, ARP proxy, counters). It has no I/O, no clock and no allocation on the
//! packet path: a driver (the simulator or a live socket loop) hands it frames and sends
//! what it returns. Standard headers are read and written with etherparse; only the
//! VXLAN header is written by hand (`wire`).

pub mod flow;
pub mod mac;
pub mod vtep;
pub mod wire;

pub use mac::MacAddr;
pub use vtep::{
    Config, Counters, Decapsulated, DropReason, Encapsulated, Forward, UnknownDestination, Vtep,
    OUTER_LEN, VXLAN_PORT,
};
pub use wire::{Header, HeaderRepr, ReservedBits, Vni};
