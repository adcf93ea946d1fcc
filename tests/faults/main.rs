//! The fault suite: SIGKILLs of the real binary at named and random points, network faults
//! through a TCP proxy, crafted bad wire input and decoder fuzzing, damaged or contended mirror
//! files, simulated power cuts, and TLS / static auth refusals.

#[path = "../support/mod.rs"]
mod support;

mod bad_wire;
mod change_feed;
mod crash_kill;
mod fuzz;
mod mirror_file;
mod network;
mod power_cut;
mod security;
