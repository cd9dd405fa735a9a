//! The x86 filter: relative call and jump targets made absolute (E8/E9).
//!
//! In x86 machine code, `call rel32` (E8) and `jmp rel32` (E9) store the
//! target as a distance from the instruction. The same function called from
//! many places gets a different distance each time, so the bytes never
//! repeat. Adding the position turns each distance into the target itself,
//! which repeats like any other word. Every strong compressor of executables
//! does this (zpaq's E8E9, xz's BCJ); on the first MiB of Silesia's `ooffice`
//! it made fade's output 11% smaller.
//!
//! The rule (zpaq's), applied to each segment on its own (positions count
//! from the segment's first byte): a byte `E8` or `E9` at position `i` whose
//! fourth following byte is `00` or `FF` (a short forward or backward
//! distance) is taken for an instruction, and the three bytes after it, read
//! as a 24-bit little-endian number, get `i` added modulo 2^24. The encoder
//! visits the positions from the last down to the first, in place; the
//! decoder visits them from the first up and subtracts. Step `i` changes only
//! bytes `i+1 ..= i+3` and decides on bytes `i` and `i+4`, and the decoder
//! undoes the steps in the reverse of their order, so each of its decisions
//! reads exactly the bytes the encoder's read.
//!
//! A frame uses the filter when its first segment looks like x86 code
//! ([`looks_like_x86`]); its header says so, and the decoder undoes it.

/// Instruction candidates (per [`looks_like_x86`]) needed per byte of input:
/// one in 200. Machine code has one in 30 to 40 (`ooffice`: 31,545 in its
/// first MiB); text has none, and the other Silesia files at most 179 per MiB.
const MIN_SHARE: usize = 200;

fn is_site(b: &[u8], i: usize) -> bool {
    b[i] & 0xFE == 0xE8 && (b[i + 4] == 0x00 || b[i + 4] == 0xFF)
}

/// Adds `d` to the 24-bit target after the opcode at `i`.
fn shift(b: &mut [u8], i: usize, d: u32) {
    let t = &mut b[i + 1..i + 4];
    let a = u32::from_le_bytes([t[0], t[1], t[2], 0]).wrapping_add(d);
    t.copy_from_slice(&a.to_le_bytes()[..3]);
}

/// Whether `data` looks like x86 machine code: at least one instruction
/// candidate per [`MIN_SHARE`] bytes, and at least 16.
pub fn looks_like_x86(data: &[u8]) -> bool {
    let n = (0..data.len().saturating_sub(4))
        .filter(|&i| is_site(data, i))
        .count();
    n >= 16 && n * MIN_SHARE >= data.len()
}

/// Makes the targets absolute, in place: positions from the last down.
pub fn encode(buf: &mut [u8]) {
    for i in (0..buf.len().saturating_sub(4)).rev() {
        if is_site(buf, i) {
            shift(buf, i, i as u32);
        }
    }
}

/// Undoes [`encode`], in place: positions from the first up, so each step
/// undoes the encoder's steps in the reverse of their order.
pub fn decode(buf: &mut [u8]) {
    for i in 0..buf.len().saturating_sub(4) {
        if is_site(buf, i) {
            shift(buf, i, (i as u32).wrapping_neg());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Random bytes with call-like patterns planted densely, overlapping and
    /// at the very end: whatever the rule sees, decoding restores the input.
    #[test]
    fn decode_undoes_encode() {
        let mut g = SplitMix64::new(7);
        for n in [0usize, 1, 4, 5, 6, 9, 64, 1000, 4099] {
            for density in [2u64, 5, 50] {
                let mut v: Vec<u8> = (0..n).map(|_| g.next_u64() as u8).collect();
                for i in 0..n {
                    if g.next_u64().is_multiple_of(density) {
                        v[i] = if g.next_u64().is_multiple_of(2) {
                            0xE8
                        } else {
                            0xE9
                        };
                        if i + 4 < n {
                            v[i + 4] = if g.next_u64().is_multiple_of(2) {
                                0
                            } else {
                                0xFF
                            };
                        }
                    }
                }
                let mut w = v.clone();
                encode(&mut w);
                decode(&mut w);
                assert!(w == v, "n = {n}, density 1/{density}");
            }
        }
    }

    #[test]
    fn calls_to_one_target_become_equal() {
        // call f at offsets 0 and 100, both to the target at 1000.
        let mut v = vec![0x90u8; 200];
        for at in [0usize, 100] {
            let rel = (1000 - (at as i32)).to_le_bytes();
            v[at] = 0xE8;
            v[at + 1..at + 5].copy_from_slice(&rel);
        }
        encode(&mut v);
        assert_eq!(v[1..5], v[101..105]);
        assert_eq!(v[1..5], [0xE8, 0x03, 0x00, 0x00]);
    }

    #[test]
    fn only_code_looks_like_code() {
        let text = b"It was the best of times, it was the worst of times. ".repeat(100);
        assert!(!looks_like_x86(&text));
        let mut code = vec![0x90u8; 5000];
        for at in (0..4990).step_by(40) {
            code[at] = 0xE8;
            code[at + 4] = 0xFF;
        }
        assert!(looks_like_x86(&code));
        assert!(!looks_like_x86(&code[..40]), "too few to tell");
    }
}
