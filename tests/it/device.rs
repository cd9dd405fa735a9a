//! The cross-device safety check, exercised on the CPU: a frame whose recorded
//! arithmetic fingerprint or device class differs from this machine's is refused
//! before any decoding, with a message naming the device to use.

use crate::common::*;

/// Rewrites the header, as a file from another device would look.
fn patch_header(packed: &[u8], f: impl Fn(&mut fade::__internals::format::FrameHeader)) -> Vec<u8> {
    let mut rest = &packed[1..];
    let mut h = fade::__internals::format::FrameHeader::read_after(packed[0], &mut rest).unwrap();
    f(&mut h);
    let mut v = Vec::new();
    h.write(&mut v).unwrap();
    v.extend_from_slice(rest);
    v
}

#[test]
fn other_arithmetic_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::write(&input, b"cross device ".repeat(200)).unwrap();
    let packed = ok(fade(&[
        "compress",
        "-c",
        "-p",
        &tiny(),
        input.to_str().unwrap(),
    ]));
    // A different fingerprint: same device class, different arithmetic.
    let other = patch_header(&packed, |h| h.fingerprint ^= 0x55);
    let f = dir.path().join("x.fade");
    std::fs::write(&f, &other).unwrap();
    let out = dir.path().join("x");
    let res = fade(&["decompress", f.to_str().unwrap(), out.to_str().unwrap()]);
    fails_with(&res, "device mismatch");
    assert!(!out.exists());
    // A file made on CUDA names the device to use.
    let cuda = patch_header(&packed, |h| {
        h.device = fade::__internals::format::DeviceClass::Cuda
    });
    std::fs::write(&f, &cuda).unwrap();
    let res = fade(&["decompress", f.to_str().unwrap(), out.to_str().unwrap()]);
    fails_with(&res, "the cuda that wrote the file");
}

#[test]
fn cuda_request_on_a_cpu_build_is_one_line() {
    if cfg!(feature = "cuda") {
        return;
    }
    let res = fade(&[
        "--device",
        "cuda",
        "compress",
        "-c",
        "-p",
        &tiny(),
        "Cargo.toml",
    ]);
    fails_with(&res, "built without CUDA support");
    let res = fade(&["--device", "tpu", "compress", "-c", "Cargo.toml"]);
    fails_with(&res, "unknown device 'tpu'");
}
