//! Property tests: arbitrary inputs round-trip through the library, and the
//! range coder round-trips arbitrary symbol streams under arbitrary tables.

use candle_core::Device;
use fade::coder::{quantize, Cdf, Decoder, Encoder};
use fade::engine;
use fade::Preset;
use proptest::prelude::*;

fn tiny() -> Preset {
    Preset::parse(include_str!("data/tiny.toml")).unwrap()
}

fn roundtrip(data: &[u8], p: &Preset) -> Vec<u8> {
    let packed = engine::compress_slice(data, Vec::new(), p, &Device::Cpu, &mut |_| {}).unwrap();
    let mut out = Vec::new();
    engine::decompress(&mut &packed[..], &mut out, &Device::Cpu, &mut |_| {}).unwrap();
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
        let tables: Vec<Cdf> = steps.iter().map(|(_, l)| { let mut c = [0; 257]; quantize(l, &mut c); c }).collect();
        let mut e = Encoder::new();
        for ((s, _), t) in steps.iter().zip(&tables) { e.encode(t, *s); }
        let bytes = e.finish();
        let mut d = Decoder::new(&bytes);
        for ((s, _), t) in steps.iter().zip(&tables) { prop_assert_eq!(d.decode(t).unwrap(), *s); }
    }
}

#[test]
fn concatenated_frames_decode_to_concatenated_content() {
    let p = tiny();
    let a = b"first frame, first frame, first frame".repeat(20);
    let b = b"second one".repeat(50);
    let mut packed = engine::compress_slice(&a, Vec::new(), &p, &Device::Cpu, &mut |_| {}).unwrap();
    packed = engine::compress_slice(&b, packed, &p, &Device::Cpu, &mut |_| {}).unwrap();
    let mut out = Vec::new();
    let sum = engine::decompress(&mut &packed[..], &mut out, &Device::Cpu, &mut |_| {}).unwrap();
    assert_eq!(sum.frames, 2);
    assert_eq!(out, [a, b].concat());
    // Trailing garbage is an error.
    packed.extend_from_slice(b"garbage");
    let err = engine::decompress(&mut &packed[..], &mut Vec::new(), &Device::Cpu, &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("trailing garbage"), "{err}");
}

#[test]
fn reader_and_slice_paths_write_identical_frames() {
    let p = tiny();
    let data: Vec<u8> = (0..9000u32).map(|i| (i * 7 % 13) as u8).collect();
    let a = engine::compress_slice(&data, Vec::new(), &p, &Device::Cpu, &mut |_| {}).unwrap();
    let size = Some(data.len() as u64);
    let limits = engine::Limits::default();
    let b = engine::compress_reader_with(
        &data[..],
        Vec::new(),
        &p,
        &Device::Cpu,
        &limits,
        size,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(a, b);
}
