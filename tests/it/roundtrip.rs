//! End-to-end round trips through the real binary.

use crate::common::*;

#[test]
fn tiny_inputs_and_lane_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    // tiny presets: 8 lanes, T = 4, 4096-byte segments; tiny-side with every
    // side model, whose history spans segments.
    let text = b"It was the best of times, it was the worst of times, it was the age of wisdom, "
        .repeat(80);
    for n in [
        0usize,
        1,
        3,
        7,
        8,
        9,
        8 * 4 - 1,
        8 * 4,
        8 * 4 + 1,
        8 * 40 - 1,
        8 * 40,
        8 * 40 + 1,
        4095,
        4096,
        4097,
        6000,
    ] {
        for (i, p) in [tiny(), tiny_side()].iter().enumerate() {
            roundtrip(dir.path(), &format!("t{n}-{i}"), &text[..n], p);
        }
    }
}

#[test]
fn default_preset_small_inputs_and_lane_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    // default preset: 256 lanes, T = 8.
    let data = random_bytes(256 * 20 + 1, 1);
    for n in [
        1usize,
        7,
        255,
        256,
        257,
        256 * 20 - 1,
        256 * 20,
        256 * 20 + 1,
    ] {
        roundtrip(dir.path(), &format!("d{n}"), &data[..n], "default");
    }
}

/// The match model finds repeats far beyond the context, across lanes and
/// segments: 2 KiB of random bytes, ten times, costs about two copies (the
/// first bytes of each lane have no earlier copy the decoder knows yet),
/// where the network alone needs nearly all of it (17,545 bytes with tiny).
#[test]
fn a_repeated_random_block_costs_about_two_copies() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(2048, 3).repeat(10);
    let fast = roundtrip(dir.path(), "fast", &data, "fast");
    // tiny-side: 4096-byte segments, so most repeats are in earlier segments.
    let side = roundtrip(dir.path(), "side", &data, &tiny_side());
    let alone = roundtrip(dir.path(), "alone", &data, &tiny());
    eprintln!("2 KiB random x 10: fast {fast}, tiny-side {side}, tiny {alone} bytes");
    assert!(fast < 3 * 2048, "fast took {fast} bytes");
    assert!(side < 3 * 2048, "tiny-side took {side} bytes");
    assert!(
        side * 3 < alone,
        "tiny-side {side} against the network alone {alone}"
    );
}

#[test]
fn random_64k_is_not_expanded_much() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(65536, 2);
    let n = roundtrip(dir.path(), "random", &data, "default");
    // Stored: the frame header (about 135 bytes with the side models'
    // settings) and block framing.
    assert!(n <= 65536 + 160, "random data grew to {n}");
}

#[test]
fn zeros_64k_shrink_to_almost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let n = roundtrip(dir.path(), "zeros", &vec![0u8; 65536], "default");
    assert!(n < 2000, "64 KiB of zeros took {n} bytes");
}

/// A 32 KiB prefix of a corpus file round-trips with the default preset
/// (16 lanes of 2 KiB; 64 KiB, 32 lanes, cost the suite twice as much).
fn corpus_prefix(name: &str) {
    let Some(corpus) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(corpus.join(name)).unwrap();
    let data = &data[..32768.min(data.len())];
    let n = roundtrip(dir.path(), &name.replace('/', "_"), data, "default");
    eprintln!("{name}: {} -> {n}", data.len());
    assert!(n < data.len(), "{name} did not compress");
}

#[test]
fn corpus_dickens() {
    corpus_prefix("silesia/dickens");
}
#[test]
fn corpus_mr() {
    corpus_prefix("silesia/mr");
}
#[test]
fn corpus_nci() {
    corpus_prefix("silesia/nci");
}
#[test]
fn corpus_ooffice() {
    corpus_prefix("silesia/ooffice");
}
#[test]
fn corpus_osdb() {
    corpus_prefix("silesia/osdb");
}
#[test]
fn corpus_reymont() {
    corpus_prefix("silesia/reymont");
}
#[test]
fn corpus_xml() {
    corpus_prefix("silesia/xml");
}
#[test]
fn corpus_enwik6() {
    corpus_prefix("enwik6");
}

#[test]
fn output_is_identical_with_one_or_two_threads() {
    let Some(corpus) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(corpus.join("enwik6")).unwrap();
    let input = dir.path().join("in");
    std::fs::write(&input, &data[..20000]).unwrap();
    let mut outs = Vec::new();
    for t in ["1", "2"] {
        let out = dir.path().join(format!("out{t}"));
        ok(fade(&[
            "-T",
            t,
            "compress",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
        ]));
        outs.push(std::fs::read(&out).unwrap());
    }
    assert!(outs[0] == outs[1], "thread count changed the output");
    let back = dir.path().join("back");
    ok(fade(&[
        "-T",
        "2",
        "decompress",
        dir.path().join("out1").to_str().unwrap(),
        back.to_str().unwrap(),
    ]));
    assert!(std::fs::read(back).unwrap() == data[..20000]);
}
