//! Sources that are not files on this machine: each reads its data through the tools of the
//! system that holds it and hands the engine a stream, as the [`crate::Source`] trait expects.

pub mod postgres;
