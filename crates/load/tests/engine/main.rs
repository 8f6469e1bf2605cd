//! Loopback tests of the load engine against spark-sim (no mocks): accuracy
//! against the sim's truth log, framing, exact prompt lengths, faults and
//! the output-length probe. One test binary, so the suite links once.

#![allow(unreachable_pub)]

mod accuracy;
mod calibration;
mod chunking;
mod common;
mod engine_figures;
mod faults;
mod framing;
mod keepalive;
mod lengths;
mod llamacpp;
mod openloop;
mod probes;
mod rxstamp;
mod tgi;
