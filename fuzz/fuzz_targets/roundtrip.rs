//! Round trip: arbitrary bytes through a tiny preset (few lanes, short
//! segments, so inputs of a few KB cross segment and lane boundaries),
//! compressed from a slice, from a reader that returns short reads and
//! through the public `Encoder` in short writes, decompressed through the
//! public `Decoder`, compared. The three frames must be identical and decode
//! to the input. Any panic, mismatch or error is a bug.
#![no_main]

use candle_core::Device;
use fade::__internals::engine;
use fade::Preset;
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};

const TINY: &str = r#"
name = "fuzz"
lanes = 4
context = 4
embed = 4
global = "attention"
cache = 32
cache_step = 8
refiner_branches = 2
refiner_rank = 4
ffn = 16
lr = 2e-3
weight_decay = 1e-7
beta1 = 0.9
beta2 = 0.999
eps = 1e-8
segment = 512
seed = 1
"#;

/// Yields its bytes a few at a time, as a pipe may.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.len().min(buf.len()).min(self.step);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let data = &data[..data.len().min(4096)];
    let p = Preset::parse(TINY).unwrap();
    let dev = Device::Cpu;
    let limits = fade::Limits::default();
    let a = engine::compress_slice(data, Vec::new(), &p, &dev, &limits, &mut |_| {}).unwrap();
    let r = Trickle {
        data,
        step: step as usize % 61 + 1,
    };
    // Both record the length in the header (the slice knows it; the reader is
    // told it, as the command does for a regular file).
    let size = Some(data.len() as u64);
    let b =
        engine::compress_reader_with(r, Vec::new(), &p, &dev, &limits, size, &mut |_| {}).unwrap();
    assert!(a == b, "slice and reader frames differ");
    let mut enc = fade::Encoder::with_preset(Vec::new(), &p, fade::Device::Cpu)
        .unwrap()
        .with_size(data.len() as u64);
    for chunk in data.chunks(step as usize % 61 + 1) {
        enc.write_all(chunk).unwrap();
    }
    let c = enc.finish().unwrap();
    assert!(a == c, "slice and Encoder frames differ");
    let mut out = Vec::new();
    let mut dec = fade::Decoder::new(&a[..]);
    dec.read_to_end(&mut out).unwrap();
    assert_eq!(dec.frames(), 1);
    assert!(out == data, "round trip differs");
});
