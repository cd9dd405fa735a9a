//! Context statistics: how often each byte followed a context of any lane (the
//! last k bytes for orders 1 to 8, the current word, ...: [`super::Context`]).
//!
//! One hash table serves every order. A slot belongs to one context (a 32-bit
//! check tells contexts apart) and holds up to [`CANDIDATES`] bytes with
//! counts. A count starts at 1 on the first occurrence, so a context is useful
//! after a single occurrence. The statistics follow a file that changes: each
//! occurrence takes an eighth off the other counts above 2 (measured on the
//! 128 KiB set: 0.3% smaller than plain counts, a quarter was worse), and when
//! a count reaches [`LIMIT`] all counts of the slot are halved. A new
//! context takes over a slot whatever it held (recent contexts matter most).

/// Bytes a slot remembers per context.
pub const CANDIDATES: usize = 14;
/// A count that halves its slot.
const LIMIT: u8 = 255;

#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct Slot {
    check: u32,
    sym: [u8; CANDIDATES],
    cnt: [u8; CANDIDATES],
}

/// What a slot says about a context: its candidates with their counts.
#[derive(Clone, Copy, Default)]
pub struct Seen {
    pub found: bool,
    pub sym: [u8; CANDIDATES],
    pub cnt: [u8; CANDIDATES],
}

impl Seen {
    /// The sum of the counts.
    pub fn total(&self) -> u32 {
        self.cnt.iter().map(|&c| c as u32).sum()
    }

    /// Candidates with a non-zero count.
    pub fn distinct(&self) -> u32 {
        self.cnt.iter().filter(|&&c| c > 0).count() as u32
    }

    /// The largest count.
    pub fn top(&self) -> u8 {
        self.cnt.iter().copied().max().unwrap_or(0)
    }
}

/// A context's slot index and check ([`Stats::locate`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Place {
    i: usize,
    check: u32,
}

pub struct Stats {
    slots: Vec<Slot>,
    bits: u32,
}

/// `n` empty slots in memory the allocator hands over zeroed (fresh pages
/// from the system for a large table): a page costs neither time nor
/// resident memory until a context lands in it, so a frame asking for a
/// large table pays only for what its bytes fill (a 2 GiB table took 3.4 s
/// to clear slot by slot).
fn zeroed_slots(n: usize) -> Vec<Slot> {
    let layout = std::alloc::Layout::array::<Slot>(n).expect("table size checked by the preset");
    if layout.size() == 0 {
        return Vec::new();
    }
    // SAFETY: the layout is non-zero in size; an all-zero `Slot` is the
    // default one (integers and integer arrays only), so the `n` values are
    // initialised; the vector takes the allocation with the same layout,
    // from the same global allocator.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut Slot;
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Vec::from_raw_parts(ptr, n, n)
    }
}

/// The table index and check of context `key` (the context's bits, already
/// cut to what the context uses) of kind `tag` (below 16).
fn locate(key: u64, tag: u32, bits: u32) -> (usize, u32) {
    let mut x = key ^ ((tag as u64) << 59);
    x = (x ^ (x >> 31)).wrapping_mul(0x7FB5_D329_728E_A185);
    x = (x ^ (x >> 27)).wrapping_mul(0x81DA_DEF4_BC2D_D44D);
    x ^= x >> 33;
    ((x >> (64 - bits)) as usize, x as u32 | 1)
}

impl Stats {
    pub fn new(bits: u32) -> Self {
        Self {
            slots: zeroed_slots(1 << bits),
            bits,
        }
    }

    /// Where context `key` of kind `tag` lives: a step locates every lane's
    /// contexts once, then prefetches, reads and (after the step) updates
    /// them by that place.
    #[inline]
    pub fn locate(&self, key: u64, tag: u32) -> Place {
        let (i, check) = locate(key, tag, self.bits);
        Place { i, check }
    }

    /// Starts loading a slot into the cache. A step looks up every lane's
    /// contexts in a table far larger than the caches; asking for all of them
    /// first lets the misses overlap instead of waiting on each in turn.
    #[inline]
    pub fn prefetch(&self, at: Place) {
        super::prefetch(&self.slots[at.i]);
    }

    /// What the table knows of the context at `at`.
    pub fn seen(&self, at: Place) -> Seen {
        let s = &self.slots[at.i];
        if s.check != at.check {
            return Seen::default();
        }
        Seen {
            found: true,
            sym: s.sym,
            cnt: s.cnt,
        }
    }

    /// Counts byte `v` after the context at `at`.
    pub fn update(&mut self, at: Place, v: u8) {
        let (i, check) = (at.i, at.check);
        let s = &mut self.slots[i];
        if s.check != check {
            *s = Slot {
                check,
                ..Slot::default()
            };
        }
        let j = match (0..CANDIDATES).find(|&j| s.cnt[j] > 0 && s.sym[j] == v) {
            Some(j) => j,
            None => {
                // The least counted candidate (the last of equals) makes room.
                let j = (0..CANDIDATES).rev().min_by_key(|&j| s.cnt[j]).unwrap();
                s.sym[j] = v;
                s.cnt[j] = 0;
                j
            }
        };
        // The others lose an eighth of a count above 2: what a context says
        // lately outweighs what it said long ago.
        for (i, c) in s.cnt.iter_mut().enumerate() {
            if i != j && *c > 2 {
                *c -= *c >> 3;
            }
        }
        s.cnt[j] += 1;
        if s.cnt[j] == LIMIT {
            for c in &mut s.cnt {
                *c /= 2;
            }
        }
    }
}

/// An approximation of log2(n + 1) in steps of 1/8, in integer arithmetic
/// (so every machine has the same values): exact at powers of two, linear
/// between them.
pub fn log2q(n: u32) -> f32 {
    let m = n + 1;
    let l = 31 - m.leading_zeros();
    let frac = if l >= 3 {
        (m >> (l - 3)) - 8
    } else {
        (m << (3 - l)) - 8
    };
    (l * 8 + frac) as f32 / 8.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_what_was_seen() {
        let mut s = Stats::new(10);
        let ctx = u64::from_le_bytes(*b"the cat ");
        let at = s.locate(ctx, 3);
        assert!(!s.seen(at).found);
        s.update(at, b's');
        s.update(at, b's');
        s.update(at, b'x');
        let seen = s.seen(at);
        assert!(seen.found);
        assert_eq!((seen.total(), seen.distinct(), seen.top()), (3, 2, 2));
        // Another kind with the same key is another context.
        assert!(!s.seen(s.locate(ctx, 4)).found);
        assert!(!s.seen(s.locate(ctx ^ (1 << 40), 3)).found);
        for _ in 0..300 {
            s.update(at, b's');
        }
        assert!(s.seen(at).top() < LIMIT);
    }

    #[test]
    fn log2q_is_log2_at_powers_of_two_and_monotone() {
        assert_eq!(log2q(0), 0.0);
        assert_eq!(log2q(1), 1.0);
        assert_eq!(log2q(3), 2.0);
        assert_eq!(log2q(255), 8.0);
        assert!((1..1000).all(|n| log2q(n) >= log2q(n - 1)));
    }
}
