//! The clients: what a student types. `docker` turns a command line into work on its
//! node (containers, exec, and the swarm's commands in `swarm`), and prints Docker's
//! texts. The clients sit above the lab: nothing below imports them.

pub mod build;
pub mod docker;
pub mod info;
pub mod support;
pub mod swarm;
pub mod text;
