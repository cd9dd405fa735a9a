//! Fuzzes the decoder. The first byte picks how the rest is used:
//! - as a whole file (reaches the magic and header checks);
//! - appended to a valid frame header of a tiny preset (reaches the block parser);
//! - XOR-ed over the lane streams of a valid model-coded frame, whose header and
//!   block checksums stay intact (reaches the range decoders, the model and the
//!   content checksum);
//! - as hostile values under valid checksums: a frame header whose preset
//!   fields are taken from the input as they are (no validation), followed by a
//!   block whose length and lane lengths are also taken from the input, each
//!   with a correct xxh32, so random bytes reach the header validation, the
//!   memory estimate and the block length checks that a checksum hides from
//!   plain random input.
//! Any panic, hang or huge allocation is a bug; errors are fine. Decoding runs
//! under a 256 MiB memory limit (`Limits`); run with `-rss_limit_mb=1024` so an
//! allocation the estimate did not foresee is reported.
#![no_main]

use candle_core::Device;
use fade::__internals::engine;
use fade::__internals::format::{DeviceClass, FrameHeader, VERSION};
use fade::{Limits, Preset};
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
        let fingerprint = engine::fingerprint(&preset, &Device::Cpu, VERSION).unwrap();
        let mut v = Vec::new();
        FrameHeader {
            version: VERSION,
            preset,
            content_check: true,
            device: DeviceClass::Cpu,
            fingerprint,
            content_size: None,
            x86: false,
            member: None,
        }
        .write(&mut v)
        .unwrap();
        v
    })
}

/// A valid frame of the tiny preset and about the offset where its stream starts.
fn sample() -> &'static (Vec<u8>, usize) {
    static S: OnceLock<(Vec<u8>, usize)> = OnceLock::new();
    S.get_or_init(|| {
        let preset = Preset::parse(TINY).unwrap();
        let text = b"fuzzing the fade decoder, one lane at a time. ".repeat(12);
        let limits = fade::Limits::default();
        let frame = engine::compress_slice(&text, Vec::new(), &preset, &Device::Cpu, &limits, &mut |_| {})
            .unwrap();
        // About where the stream starts: the header, then kind(1) seg_len(2)
        // stream_len(2) check(4) tail(seg_len % 4).
        let start = header().len() + 1 + 2 + 2 + 4 + text.len() % 4;
        (frame, start)
    })
}

/// The memory limit decoding runs under.
const LIMIT: u64 = 256 << 20;

/// Reads a little-endian u32 from `rest`, advancing it; zero when it runs out.
fn take_u32(rest: &mut &[u8]) -> u32 {
    let n = rest.len().min(4);
    let mut b = [0u8; 4];
    b[..n].copy_from_slice(&rest[..n]);
    *rest = &rest[n..];
    u32::from_le_bytes(b)
}

/// A frame with a header and a first block built from `rest` under valid
/// checksums.
fn hostile(mut rest: &[u8]) -> Vec<u8> {
    let mut p = Preset::parse(TINY).unwrap();
    // Small values most of the time (so the model gets built and the block
    // parser reached), any value sometimes.
    let field = |rest: &mut &[u8]| {
        let v = take_u32(rest);
        if v & 0x8000_0000 != 0 {
            v & 0x7fff_ffff
        } else {
            v % 97
        }
    };
    p.lanes = field(&mut rest);
    p.context = field(&mut rest);
    p.embed = field(&mut rest);
    p.cache = field(&mut rest);
    p.cache_step = field(&mut rest);
    p.refiner_branches = field(&mut rest);
    p.refiner_rank = field(&mut rest);
    p.ffn = field(&mut rest);
    p.segment = field(&mut rest).saturating_mul(64);
    // Where the decoder would accept the preset, give the header the right
    // fingerprint, so the block that follows is parsed too.
    let bytes = fade::__internals::preset_bytes(&p);
    let fingerprint = match fade::__internals::preset_from_bytes(&mut &bytes[..]) {
        Ok(q) if q.memory_needed() <= LIMIT => engine::fingerprint(&q, &Device::Cpu, VERSION).unwrap_or(0),
        _ => 0,
    };
    let mut v = Vec::new();
    FrameHeader {
        version: VERSION,
        preset: p.clone(),
        content_check: true,
        device: DeviceClass::Cpu,
        fingerprint,
        content_size: None,
        x86: false,
        member: None,
    }
    .write(&mut v)
    .unwrap();
    // A block header: kind (3, the model-coded block of v3, or 1, v2's,
    // which v3 refuses), length, stream lengths (as varints), xxh32.
    let kind = rest.first().map_or(3, |k| k % 4);
    rest = rest.get(1..).unwrap_or(&[]);
    let mut head = vec![kind];
    head.extend_from_slice(&take_u32(&mut rest).to_le_bytes());
    if kind == 1 || kind == 3 {
        let streams = if kind == 3 { 1 } else { p.lanes.min(64) };
        for _ in 0..streams {
            let mut l = take_u32(&mut rest) as u64;
            while l >= 0x80 {
                head.push(l as u8 | 0x80);
                l >>= 7;
            }
            head.push(l as u8);
        }
    }
    let check = xxhash_rust::xxh32::xxh32(&head, 0);
    head.extend_from_slice(&check.to_le_bytes());
    v.extend_from_slice(&head);
    v.extend_from_slice(rest);
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let input: Vec<u8> = match mode % 4 {
        0 => rest.to_vec(),
        1 => [header(), rest].concat(),
        2 => {
            let (frame, start) = sample();
            let mut f = frame.clone();
            for (b, x) in f[*start..].iter_mut().zip(rest) {
                *b ^= x;
            }
            f
        }
        _ => hostile(rest),
    };
    // Through the public Decoder: its pull state machine is the one
    // `engine::decompress_with` runs on.
    let mut dec = fade::Decoder::new(&input[..]).with_limits(Limits::default().with_memory(LIMIT));
    let _ = std::io::copy(&mut dec, &mut std::io::sink());
});
