//! Damaged and foreign inputs through the real binary: exit 1, one line, no output.

use crate::common::*;

fn packed_sample(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let text = b"the quick brown fox jumps over the lazy dog; ".repeat(100);
    let input = dir.join("in");
    let packed = dir.join("in.fade");
    std::fs::write(&input, &text).unwrap();
    ok(fade(&[
        "compress",
        "-p",
        &tiny(),
        input.to_str().unwrap(),
        packed.to_str().unwrap(),
    ]));
    (text, std::fs::read(&packed).unwrap())
}

#[test]
fn flipped_byte_fails_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let (_, packed) = packed_sample(dir.path());
    // One flip in the header, one in a block header, several in lane data.
    for pos in [
        5,
        packed.len() / 3,
        packed.len() / 2,
        packed.len() - 20,
        packed.len() - 5,
    ] {
        let mut bad = packed.clone();
        bad[pos] ^= 0x04;
        let f = dir.path().join("bad.fade");
        std::fs::write(&f, &bad).unwrap();
        let out = dir.path().join("bad.out");
        let res = fade(&["decompress", f.to_str().unwrap(), out.to_str().unwrap()]);
        assert_eq!(res.status.code(), Some(1), "flip at {pos} accepted");
        assert_eq!(
            String::from_utf8_lossy(&res.stderr)
                .trim_end()
                .lines()
                .count(),
            1
        );
        assert!(!out.exists(), "flip at {pos} left an output file");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".fade-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary file left behind");
    }
}

#[test]
fn foreign_truncated_and_future_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, packed) = packed_sample(dir.path());
    let out = dir.path().join("x.out");
    let case = |bytes: &[u8], needle: &str| {
        let f = dir.path().join("x.fade");
        std::fs::write(&f, bytes).unwrap();
        let res = fade(&[
            "decompress",
            "-f",
            f.to_str().unwrap(),
            out.to_str().unwrap(),
        ]);
        fails_with(&res, needle);
        assert!(!out.exists());
    };
    case(b"this is plain text, not compressed", "not a fade file");
    case(&packed[..packed.len() - 3], "unexpected end of input");
    case(&packed[..20], "unexpected end of input");
    let mut v = packed.clone();
    v[4] = 4;
    case(&v, "unsupported format version 4");
    // Format v1 (machine-dependent arithmetic, never released) is refused by name.
    v[4] = 1;
    case(&v, "unsupported format version 1");
    let mut v = packed.clone();
    let n = v.len();
    v[n - 6] ^= 1; // inside the content checksum: caught by the end block's own check
    case(&v, "corrupt data");
}

#[test]
fn existing_output_is_not_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let out = dir.path().join("out");
    std::fs::write(&input, b"hello hello hello").unwrap();
    std::fs::write(&out, b"precious").unwrap();
    let res = fade(&[
        "compress",
        "-p",
        &tiny(),
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    fails_with(&res, "already exists (use -f to overwrite)");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    ok(fade(&[
        "compress",
        "-f",
        "-p",
        &tiny(),
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]));
    assert_ne!(std::fs::read(&out).unwrap(), b"precious");
}

#[test]
fn unknown_preset_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::write(&input, b"x").unwrap();
    let res = fade(&[
        "compress",
        "-p",
        "nonsense",
        input.to_str().unwrap(),
        dir.path().join("o").to_str().unwrap(),
    ]);
    fails_with(&res, "unknown preset 'nonsense'");
}
