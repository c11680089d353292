//! Exists so that `exporter` can name this crate as a build dependency: cargo then rebuilds
//! the exporter when the programs change. The programs themselves are the binary target.
#![no_std]
