//! Round trip: arbitrary bytes through a tiny preset (few lanes, short
//! segments, so inputs of a few KB cross segment and lane boundaries),
//! compressed from a slice, from a reader that returns short reads and
//! through the public `Encoder` in short writes, decompressed through the
//! public `Decoder`, compared. The three frames must be identical and decode
//! to the input. Then the input is coded as a multi-frame sequence (blocks of
//! a few hundred bytes, as `-T` writes them), which must decode to the input,
//! and mutated at its frame boundaries (a frame dropped, duplicated or moved,
//! the file cut at a boundary): every mutation that changes the bytes must be
//! refused by the streaming decoder and by the frame walk with parallel
//! decoding. Any panic, mismatch, error on good data or acceptance of a
//! mutation is a bug.
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
    sequences(data, step, &p);
});

/// Decodes `bytes` both ways a file is decoded: streaming, and by the frame
/// walk with frames decoded apart (the command's parallel path). Both must
/// agree on success.
fn decode_both(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let streamed = fade::Decoder::new(bytes).read_to_end(&mut out).map(|_| out);
    let walked = engine::frames(&mut std::io::Cursor::new(bytes)).and_then(|spans| {
        let fetch = |at: u64, len: usize| Ok(bytes[at as usize..at as usize + len].to_vec());
        let mut out = Vec::new();
        engine::blocks::decompress_frames(
            &spans,
            &fetch,
            &mut out,
            fade::Device::Cpu,
            &fade::Limits::default(),
            2,
            &mut |_| {},
        )
        .map(|_| out)
    });
    match (streamed, walked) {
        (Ok(a), Ok(b)) => {
            assert!(a == b, "the two decoders disagree");
            Some(a)
        }
        (Err(_), Err(_)) => None,
        (a, b) => panic!("one decoder accepted what the other refused: {a:?} / {b:?}"),
    }
}

fn sequences(data: &[u8], op: u8, p: &Preset) {
    if data.len() < 300 {
        return;
    }
    let block = 100 + (op as usize % 4) * 50;
    let par = engine::blocks::Parallel::new(2, Some(block));
    let packed = engine::blocks::compress_blocks(
        data,
        Vec::new(),
        p,
        fade::Device::Cpu,
        &fade::Limits::default(),
        Some(data.len() as u64),
        par,
        &mut |_| {},
    )
    .unwrap();
    assert!(decode_both(&packed).as_deref() == Some(data), "sequence round trip differs");
    let spans = engine::frames(&mut std::io::Cursor::new(&packed)).unwrap();
    let n = spans.len();
    assert!(n >= 2);
    let frame = |i: usize| {
        let s = &spans[i];
        &packed[s.offset as usize..(s.offset + s.len) as usize]
    };
    let index = &packed[(spans[n - 1].offset + spans[n - 1].len) as usize..];
    let (i, j) = (data[0] as usize % n, data[1] as usize % n);
    let mut order: Vec<usize> = (0..n).collect();
    let mut with_index = true;
    let mut cut = None;
    match op / 4 % 5 {
        0 => {
            order.remove(i);
        }
        1 => order.insert(i, i),
        2 => order.swap(i, j),
        3 => with_index = false,
        _ => cut = Some(spans[i].offset as usize),
    }
    let mut bad: Vec<u8> = order.iter().flat_map(|&k| frame(k).to_vec()).collect();
    if with_index {
        bad.extend_from_slice(index);
    }
    if let Some(at) = cut {
        bad = packed[..at].to_vec();
    }
    if bad != packed {
        assert!(decode_both(&bad).is_none(), "a mutated sequence decoded");
    }
}
