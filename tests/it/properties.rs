//! Property tests: arbitrary inputs round-trip through the library, and the
//! range coder round-trips arbitrary symbol streams under arbitrary tables.

use fade::__internals::coder::{quantize, Cdf, Decoder, Encoder, Precision};
use fade::__internals::engine;
use fade::{Device, Preset};
use proptest::prelude::*;
use std::io::{Read, Write};

fn tiny() -> Preset {
    Preset::parse(include_str!("../data/tiny.toml")).unwrap()
}

/// Compresses `data` into `out` with the public API.
fn compress_into(data: &[u8], p: &Preset, out: Vec<u8>) -> Vec<u8> {
    let mut enc = fade::Encoder::with_preset(out, p, Device::Cpu)
        .unwrap()
        .with_size(data.len() as u64);
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn roundtrip(data: &[u8], p: &Preset) -> Vec<u8> {
    let packed = compress_into(data, p, Vec::new());
    let mut out = Vec::new();
    fade::Decoder::new(&packed[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_roundtrip(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
        prop_assert_eq!(roundtrip(&data, &tiny()), data);
    }

    #[test]
    fn low_entropy_bytes_roundtrip_across_segments(data in proptest::collection::vec(0u8..4, 0..10000)) {
        // tiny's segments are 4096 bytes: several segments, model-coded.
        prop_assert_eq!(roundtrip(&data, &tiny()), data);
    }

    #[test]
    fn coder_roundtrips_any_stream(
        steps in proptest::collection::vec((any::<u8>(), proptest::collection::vec(-30.0f32..30.0, 256)), 1..200)
    ) {
        for prec in [Precision::V2, Precision::V3] {
            let tables: Vec<Cdf> = steps.iter().map(|(_, l)| { let mut c = [0; 257]; quantize(l, prec, &mut c); c }).collect();
            let mut e = Encoder::new(prec);
            for ((s, _), t) in steps.iter().zip(&tables) { e.encode(t, *s); }
            let bytes = e.finish();
            let mut d = Decoder::new(&bytes, prec);
            for ((s, _), t) in steps.iter().zip(&tables) { prop_assert_eq!(d.decode(t).unwrap(), *s); }
        }
    }
}

#[test]
fn concatenated_frames_decode_to_concatenated_content() {
    let p = tiny();
    let a = b"first frame, first frame, first frame".repeat(20);
    let b = b"second one".repeat(50);
    let mut packed = compress_into(&a, &p, Vec::new());
    packed = compress_into(&b, &p, packed);
    let mut out = Vec::new();
    let mut dec = fade::Decoder::new(&packed[..]);
    dec.read_to_end(&mut out).unwrap();
    assert_eq!(dec.frames(), 2);
    assert_eq!(out, [a, b].concat());
    // Trailing garbage is an error.
    packed.extend_from_slice(b"garbage");
    let err = fade::decompress(&packed).unwrap_err();
    assert!(err.to_string().contains("trailing garbage"), "{err}");
}

#[test]
fn reader_and_slice_paths_write_identical_frames() {
    let p = tiny();
    let data: Vec<u8> = (0..9000u32).map(|i| (i * 7 % 13) as u8).collect();
    let cpu = candle_core::Device::Cpu;
    let limits = fade::Limits::default();
    let a = engine::compress_slice(&data, Vec::new(), &p, &cpu, &limits, &mut |_| {}).unwrap();
    let size = Some(data.len() as u64);
    let b =
        engine::compress_reader_with(&data[..], Vec::new(), &p, &cpu, &limits, size, &mut |_| {})
            .unwrap();
    assert_eq!(a, b);
    assert_eq!(compress_into(&data, &p, Vec::new()), a);
}
