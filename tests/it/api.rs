//! The public API: `Encoder` over `Write`, `Decoder` over `Read` across
//! concatenated frames, the one-call functions, and errors as `io::Error`s
//! carrying `fade::Error`. Inputs are small and use the tiny test preset
//! (tests/data/tiny.toml: 8 lanes, 4096-byte segments): model steps are slow.

use fade::{Decoder, Device, Encoder, Error, Limits, Preset};
use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn tiny() -> Preset {
    Preset::parse(include_str!("../data/tiny.toml")).unwrap()
}

/// `n` bytes of numbered lines.
fn text(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0.. {
        if v.len() >= n {
            break;
        }
        v.extend_from_slice(
            format!("line {i}: the quick brown fox jumps over the lazy dog\n").as_bytes(),
        );
    }
    v.truncate(n);
    v
}

/// `data` through an Encoder with the tiny preset, in writes of `chunk` bytes.
fn encode(data: &[u8], chunk: usize) -> Vec<u8> {
    let mut enc = Encoder::with_preset(Vec::new(), &tiny(), Device::Cpu).unwrap();
    for c in data.chunks(chunk) {
        enc.write_all(c).unwrap();
    }
    enc.finish().unwrap()
}

/// Everything a Decoder yields, in reads of at most `buf` bytes.
fn decode(packed: &[u8], buf: usize) -> io::Result<Vec<u8>> {
    let mut dec = Decoder::new(packed);
    let mut out = Vec::new();
    let mut b = vec![0u8; buf];
    loop {
        match dec.read(&mut b)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&b[..n]),
        }
    }
}

/// The fade error an io::Error from the Decoder or Encoder carries.
fn fade_error(e: io::Error) -> Error {
    assert!(
        e.get_ref().is_some_and(|i| i.is::<Error>()),
        "no fade::Error inside {e:?}"
    );
    Error::from(e)
}

#[test]
fn writes_of_any_size_give_one_frame_that_reads_back_in_any_size() {
    let data = text(10_000); // two full segments and a short one
    let whole = encode(&data, data.len());
    for chunk in [1, 7, 4096, 5000] {
        assert!(encode(&data, chunk) == whole, "writes of {chunk} bytes");
    }
    for buf in [1, 7, 4096, 100_000] {
        assert!(decode(&whole, buf).unwrap() == data, "reads of {buf} bytes");
    }
    // As a BufRead, line by line.
    let lines = Decoder::new(&whole[..]).lines().count();
    assert_eq!(lines, (&data[..]).lines().count());
}

#[test]
fn concatenated_frames_read_as_one_stream() {
    let a = text(3000);
    let b = b"a second frame ".repeat(40);
    let packed = [encode(&a, a.len()), encode(b"", 1), encode(&b, 100)].concat();
    let mut dec = Decoder::new(&packed[..]);
    assert_eq!(dec.frames(), 0);
    let mut out = Vec::new();
    dec.read_to_end(&mut out).unwrap();
    assert!(out == [a, b].concat());
    assert_eq!(dec.frames(), 3);
    // Ends stay ends.
    assert_eq!(dec.read(&mut [0u8; 10]).unwrap(), 0);

    let info = fade::scan(&packed[..]).unwrap();
    assert_eq!((info.frames, info.content), (3, out.len() as u64));
    assert_eq!(info.preset.name, "tiny");
    assert!(info.content_check);
}

#[test]
fn errors_come_out_of_read_as_io_errors_carrying_fade_errors() {
    // Not fade at all; and the decoder stays failed.
    let mut dec = Decoder::new(&b"plain text, not compressed"[..]);
    let e = dec.read(&mut [0u8; 64]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert_eq!(e.to_string(), "not a fade file");
    assert!(matches!(fade_error(e), Error::NotFade));
    assert!(dec.read(&mut [0u8; 64]).is_err());

    // Nothing at all.
    let e = decode(b"", 64).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert!(matches!(fade_error(e), Error::Truncated));

    // Cut anywhere: in the header, in a block, in the end block.
    let packed = encode(&text(3000), 3000);
    for cut in [3, 5, 20, packed.len() / 2, packed.len() - 1] {
        let e = decode(&packed[..cut], 4096).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
        assert!(matches!(fade_error(e), Error::Truncated), "cut at {cut}");
    }

    // A damaged end block, and bytes after the last frame.
    let mut bad = packed.clone();
    *bad.last_mut().unwrap() ^= 1;
    let e = decode(&bad, 4096).unwrap_err();
    assert!(matches!(fade_error(e), Error::Corrupt(_)));
    let e = decode(&[&packed[..], b"trailing"].concat(), 4096).unwrap_err();
    assert!(e.to_string().contains("trailing garbage"), "{e}");

    // The one-call form returns the fade error itself.
    assert!(matches!(fade::decompress(b"nope"), Err(Error::NotFade)));
}

#[test]
fn memory_limits_refuse_before_any_work() {
    let small = Limits::default().with_memory(1000);
    let mut enc = Encoder::with_preset(Vec::new(), &tiny(), Device::Cpu)
        .unwrap()
        .with_limits(small);
    enc.write_all(b"short input: checked when the frame starts")
        .unwrap();
    assert!(matches!(enc.finish(), Err(Error::MemoryLimit { .. })));

    // A write that fills the first segment starts the frame: it fails there.
    let mut enc = Encoder::with_preset(Vec::new(), &tiny(), Device::Cpu)
        .unwrap()
        .with_limits(small);
    let e = enc.write_all(&text(5000)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
    assert!(matches!(fade_error(e), Error::MemoryLimit { .. }));
    assert!(
        enc.write_all(b"more").is_err(),
        "a failed encoder stays failed"
    );
    assert!(enc.get_ref().is_empty(), "nothing written");

    let packed = encode(b"fits the default", 100);
    let mut dec = Decoder::new(&packed[..]).with_limits(small);
    let e = dec.read_to_end(&mut Vec::new()).unwrap_err();
    assert!(matches!(fade_error(e), Error::MemoryLimit { .. }));
}

#[test]
fn an_encoder_dropped_without_finish_leaves_no_complete_frame() {
    let p = tiny();
    // Shorter than a segment: nothing was coded, nothing written.
    let mut out = Vec::new();
    {
        let mut enc = Encoder::with_preset(&mut out, &p, Device::Cpu).unwrap();
        enc.write_all(b"never finished").unwrap();
        enc.flush().unwrap();
    }
    assert!(out.is_empty());
    // Longer: the header and the first segment, no end.
    {
        let mut enc = Encoder::with_preset(&mut out, &p, Device::Cpu).unwrap();
        enc.write_all(&text(5000)).unwrap();
    }
    assert!(!out.is_empty());
    let e = decode(&out, 4096).unwrap_err();
    assert!(matches!(fade_error(e), Error::Truncated));
}

#[test]
fn progress_counts_every_byte_both_ways() {
    let data = text(6000);
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let mut enc = Encoder::with_preset(Vec::new(), &tiny(), Device::Cpu)
        .unwrap()
        .with_progress(move |n| {
            s.fetch_add(n, Ordering::Relaxed);
        });
    enc.write_all(&data).unwrap();
    let packed = enc.finish().unwrap();
    assert_eq!(seen.swap(0, Ordering::Relaxed), data.len() as u64);
    let s = seen.clone();
    let mut dec = Decoder::new(&packed[..]).with_progress(move |n| {
        s.fetch_add(n, Ordering::Relaxed);
    });
    io::copy(&mut dec, &mut io::sink()).unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), data.len() as u64);
}

#[test]
fn levels_and_devices_are_checked_up_front() {
    for level in [0, 6] {
        let e = Encoder::new(Vec::new(), level)
            .err()
            .expect("no such level");
        assert!(matches!(e, Error::Preset(_)), "{e}");
        assert!(fade::compress(b"x", level).is_err());
    }
    if !cfg!(feature = "cuda") {
        let e = Encoder::with_preset(Vec::new(), &tiny(), Device::Cuda(0))
            .err()
            .expect("no CUDA in this build");
        assert!(matches!(e, Error::DeviceUnavailable(_)), "{e}");
        assert!(Decoder::with_device(&b""[..], Device::Cuda(0)).is_err());
    }
}

#[test]
fn one_call_functions_round_trip_at_level_1() {
    let data = text(600);
    let packed = fade::compress(&data, 1).unwrap();
    assert!(packed.len() < data.len());
    assert!(fade::decompress(&packed).unwrap() == data);
    let mut enc = Encoder::new(Vec::new(), 1).unwrap();
    enc.write_all(&data).unwrap();
    assert!(
        enc.finish().unwrap() == packed,
        "Encoder and compress agree"
    );
}

/// A pledged size goes into the header (`fade::scan` reads the frame the
/// same), and an input that does not keep the pledge fails with
/// `InputChanged`, whether it is longer or shorter, above or below a segment.
#[test]
fn a_pledged_size_is_recorded_and_enforced() {
    let data = text(9000);
    let pledged = |n: u64, body: &[u8]| -> fade::Result<Vec<u8>> {
        let mut enc = Encoder::with_preset(Vec::new(), &tiny(), Device::Cpu)?.with_size(n);
        enc.write_all(body)?;
        enc.finish()
    };
    let kept = pledged(9000, &data).unwrap();
    assert_eq!(fade::decompress(&kept).unwrap(), data);
    // Without the pledge the header has no length, so the frames differ.
    assert_ne!(kept, encode(&data, 9000));
    for (n, body) in [(9001, &data[..]), (8999, &data[..]), (9000, &data[..100])] {
        let e = pledged(n, body).unwrap_err();
        assert!(
            matches!(e, Error::InputChanged),
            "{n} vs {}: {e:?}",
            body.len()
        );
    }
}

/// x86-like input (calls to a few targets from everywhere, over three
/// segments of tiny-side) sets the x86 filter's header flag and round-trips;
/// text does not set the flag.
#[test]
fn machine_code_goes_through_the_x86_filter() {
    use fade::__internals::format::FrameHeader;
    let side = Preset::parse(include_str!("../data/tiny-side.toml")).unwrap();
    let mut g = fade::__internals::rng::SplitMix64::new(3);
    let mut code = Vec::new();
    while code.len() < 10_000 {
        // A few bytes of other instructions, then `call target`, with the
        // displacement relative to the end of the instruction.
        for _ in 0..g.next_u64() % 12 {
            code.push([0x8B, 0x45, 0x89, 0x5D, 0x83, 0xC4][(g.next_u64() % 6) as usize]);
        }
        let target = [0x1000i64, 0x2340, 0x5000, 0x7777][(g.next_u64() % 4) as usize];
        let rel = (target - (code.len() as i64 + 5)) as i32;
        code.push(0xE8);
        code.extend_from_slice(&rel.to_le_bytes());
    }
    let pack = |data: &[u8]| {
        let mut enc = Encoder::with_preset(Vec::new(), &side, Device::Cpu).unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    };
    let flag = |packed: &[u8]| {
        FrameHeader::read_after(packed[0], &mut &packed[1..])
            .unwrap()
            .x86
    };
    let packed = pack(&code);
    assert!(flag(&packed), "x86 filter not chosen");
    assert_eq!(fade::decompress(&packed).unwrap(), code);
    assert!(!flag(&pack(&text(10_000))));
}

/// The threads a model's kernels are split over never change a bit: the
/// default preset on 64 lanes (a step large enough to be split) gives the
/// same frame on 1 and 3 threads, and it decodes on 2.
#[test]
fn kernel_threads_never_change_the_output() {
    let data = text(4000);
    let preset = Preset::load("default").unwrap().with_lanes(64).unwrap();
    let mut packed = Vec::new();
    for threads in [1, 3] {
        let mut enc = Encoder::with_preset(Vec::new(), &preset, Device::Cpu)
            .unwrap()
            .with_limits(Limits::default().with_threads(threads));
        enc.write_all(&data).unwrap();
        packed.push(enc.finish().unwrap());
    }
    assert!(
        packed[0] == packed[1],
        "1 and 3 threads gave different frames"
    );
    let mut dec = Decoder::new(&packed[1][..]).with_limits(Limits::default().with_threads(2));
    let mut out = Vec::new();
    dec.read_to_end(&mut out).unwrap();
    assert!(out == data);
}

/// What `fade -T`, parallel decoding and `fade -l` do, through the public
/// API alone: blocks on two workers give the same bytes as on one, the frames
/// of the file are found with their lengths and preset, they decode on two
/// threads, and a file cut at a frame boundary is refused by both readers.
#[test]
fn blocks_frames_and_parallel_decoding_are_public() {
    use fade::{compress_parallel, decode_workers, decompress_frames, frames, Parallel};
    let data = text(10_000);
    let limits = Limits::default();
    let code = |threads| {
        compress_parallel(
            &data[..],
            Vec::new(),
            &tiny(),
            Device::Cpu,
            &limits,
            Some(data.len() as u64),
            Parallel::new(threads, Some(4096)),
            &mut |_| {},
        )
        .unwrap()
    };
    let packed = code(2);
    assert_eq!(packed, code(1), "the output depends on the block size only");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.fade");
    std::fs::write(&path, &packed).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let found = frames(&mut io::BufReader::new(&file)).unwrap();
    assert_eq!(found.len(), 3);
    assert_eq!(
        found.iter().map(|f| f.content).collect::<Vec<_>>(),
        [4096, 4096, 10_000 - 8192]
    );
    assert!(found
        .iter()
        .all(|f| f.preset.name == "tiny" && f.content_check));
    let last = found.last().unwrap();
    assert_eq!(last.offset + last.len + last.trailer, packed.len() as u64);
    assert_eq!(decode_workers(&found, &limits, 2), 2);
    let mut out = Vec::new();
    let mut seen = 0;
    decompress_frames(&found, &file, &mut out, Device::Cpu, &limits, 2, &mut |n| {
        seen += n
    })
    .unwrap();
    assert_eq!(out, data);
    assert_eq!(seen, data.len() as u64);
    // Cut after the second frame: not a whole file, for the listing and the decoder.
    let cut = &packed[..found[2].offset as usize];
    assert!(matches!(
        frames(&mut io::Cursor::new(cut)),
        Err(Error::Truncated | Error::Corrupt(_))
    ));
    assert!(decode(cut, 1 << 16).is_err());
}
