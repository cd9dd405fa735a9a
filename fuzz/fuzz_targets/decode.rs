//! Fuzzes the decoder. The first byte picks how the rest is used:
//! - as a whole file (reaches the magic and header checks);
//! - appended to a valid frame header of a tiny preset (reaches the block parser);
//! - XOR-ed over the lane streams of a valid model-coded frame, whose header and
//!   block checksums stay intact (reaches the range decoders, the model and the
//!   content checksum).
//! Any panic, hang or huge allocation is a bug; errors are fine.
#![no_main]

use candle_core::Device;
use fade::engine;
use fade::format::{DeviceClass, FrameHeader};
use fade::Preset;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

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
segment = 4096
seed = 1
"#;

fn header() -> &'static [u8] {
    static H: OnceLock<Vec<u8>> = OnceLock::new();
    H.get_or_init(|| {
        let preset = Preset::parse(TINY).unwrap();
        let fingerprint = engine::fingerprint(&preset, &Device::Cpu).unwrap();
        let mut v = Vec::new();
        FrameHeader { preset, content_check: true, device: DeviceClass::Cpu, fingerprint }.write(&mut v).unwrap();
        v
    })
}

/// A valid frame of the tiny preset and the offset where its lane streams start.
fn sample() -> &'static (Vec<u8>, usize) {
    static S: OnceLock<(Vec<u8>, usize)> = OnceLock::new();
    S.get_or_init(|| {
        let preset = Preset::parse(TINY).unwrap();
        let text = b"fuzzing the fade decoder, one lane at a time. ".repeat(12);
        let frame = engine::compress_slice(&text, Vec::new(), &preset, &Device::Cpu, &mut |_| {}).unwrap();
        // header, then kind(1) seg_len(4) 4 one-byte varints check(4) tail(seg_len % 4)
        let start = header().len() + 1 + 4 + 4 + 4 + text.len() % 4;
        (frame, start)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let input: Vec<u8> = match mode % 3 {
        0 => rest.to_vec(),
        1 => [header(), rest].concat(),
        _ => {
            let (frame, start) = sample();
            let mut f = frame.clone();
            for (b, x) in f[*start..].iter_mut().zip(rest) {
                *b ^= x;
            }
            f
        }
    };
    let _ = engine::decompress(&mut &input[..], &mut std::io::sink(), &Device::Cpu, &mut |_| {});
});
