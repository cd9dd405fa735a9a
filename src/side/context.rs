//! The contexts of the statistics: what of a lane's past selects a slot.
//!
//! [`Keys`] keeps what every context reads: each lane's last bytes and words
//! ([`LanePast`]) and each lane's current line and the line before
//! ([`Lines`], for logs, listings, tables and indented source). The key of a
//! context is a plain integer; [`super::stats`] hashes it with the context's
//! tag. docs/FORMAT.md specifies every key.

/// A context of the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// The last k bytes, k = 1 to 8.
    Order(u32),
    /// The letters of the word being written so far (case folded; any byte
    /// of 128 and above counts as a letter, for UTF-8 text).
    Word,
    /// The current word and the one before it.
    WordPair,
    /// The two bytes before the last one (records, tables, binaries).
    Sparse,
    /// The column in the current line and the byte above it in the line
    /// before (logs, listings, tables, indented source).
    Column,
    /// The byte above, the one after it, and the last byte.
    Above,
    /// The current line's indentation and the last two bytes (source code).
    Indent,
    /// The open brackets (depth and the kinds of the innermost four) and the
    /// last two bytes (source code, JSON).
    Nest,
    /// The first bytes of the current line after its indentation and the
    /// last byte (the statement or record kind: logs, source code).
    Head,
    /// The name of the last markup tag (`<name` or `</name`), whether the
    /// lane is inside a tag, and the last two bytes (HTML, XML).
    Markup,
}

impl Context {
    /// Every context kind with its name in a preset and its bit in the
    /// header's mask: orders 1 to 8 are bits 0 to 7.
    pub const EXTRA: [(Context, &'static str, u32); 9] = [
        (Context::Word, "word", 8),
        (Context::WordPair, "pair", 9),
        (Context::Sparse, "sparse", 10),
        (Context::Column, "column", 11),
        (Context::Above, "above", 12),
        (Context::Indent, "indent", 13),
        (Context::Nest, "nest", 14),
        (Context::Head, "head", 15),
        (Context::Markup, "markup", 18),
    ];

    /// Whether the context reads the lane's line structure.
    fn uses_lines(self) -> bool {
        matches!(
            self,
            Context::Column | Context::Above | Context::Indent | Context::Head
        )
    }

    /// The tag hashed with the key, so equal keys of two contexts differ.
    pub fn tag(self) -> u32 {
        match self {
            Context::Order(k) => k,
            Context::Word => 9,
            Context::WordPair => 10,
            Context::Sparse => 11,
            Context::Column => 12,
            Context::Above => 13,
            Context::Indent => 14,
            Context::Nest => 15,
            Context::Head => 16,
            Context::Markup => 17,
        }
    }
}

/// Bytes the contexts of `contexts` keep beside the statistics, for `lanes`
/// lanes (counted in the side models' memory).
pub fn memory(contexts: &[Context], lanes: u64) -> u64 {
    let mut m = lanes * std::mem::size_of::<LanePast>() as u64;
    if contexts.iter().any(|c| c.uses_lines()) {
        m += lanes * std::mem::size_of::<Lines>() as u64;
    }
    m
}

/// Every context's state for a segment's lanes.
pub struct Keys {
    past: Vec<LanePast>,
    /// Each lane's lines, if a context reads them (else empty).
    lines: Vec<Lines>,
}

impl Keys {
    /// Fresh state for `lanes` lanes, keeping only what `contexts` read.
    pub fn new(contexts: &[Context], lanes: usize) -> Self {
        let lines = contexts.iter().any(|c| c.uses_lines());
        Self {
            past: vec![LanePast::default(); lanes],
            lines: if lines {
                vec![Lines::default(); lanes]
            } else {
                Vec::new()
            },
        }
    }

    /// Lane `b`'s key for context `k`.
    pub fn key(&self, b: usize, k: Context) -> u64 {
        let past = &self.past[b];
        if k.uses_lines() {
            self.lines[b].key(k, past.recent)
        } else {
            past.key(k)
        }
    }

    /// One step's bytes, lane `b`'s byte at `bytes[b]`.
    pub fn push(&mut self, bytes: &[u8]) {
        for (b, &v) in bytes.iter().enumerate() {
            self.past[b].push(v);
            if let Some(l) = self.lines.get_mut(b) {
                l.push(v);
            }
        }
    }
}

/// What a lane's contexts are made of.
#[derive(Clone, Copy, Default)]
struct LanePast {
    /// The last 8 bytes, newest lowest.
    recent: u64,
    /// Hash of the current word's letters (0 between words), and of the last
    /// complete word.
    word: u64,
    prev_word: u64,
    /// Open brackets: how many, and the kinds (1 to 3 for `(`, `[`, `{`)
    /// of the innermost 16, two bits each, the innermost lowest.
    depth: u32,
    open: u32,
    /// Hash of the last tag's name (with its `/`), whether its name is
    /// still being read, and whether the lane is between `<` and `>`.
    tag: u32,
    naming: bool,
    in_tag: bool,
}

impl LanePast {
    fn key(&self, c: Context) -> u64 {
        match c {
            Context::Order(k) if k >= 8 => self.recent,
            Context::Order(k) => self.recent & ((1u64 << (8 * k)) - 1),
            Context::Word => self.word,
            Context::WordPair => self.word ^ self.prev_word.rotate_left(29),
            Context::Sparse => (self.recent >> 8) & 0xFFFF,
            Context::Markup => {
                (self.tag as u64) << 24 | (self.in_tag as u64) << 16 | (self.recent & 0xFFFF)
            }
            Context::Nest => {
                (self.depth.min(15) as u64) << 24
                    | ((self.open & 0xFF) as u64) << 16
                    | (self.recent & 0xFFFF)
            }
            // Read from the lane's lines (`Keys::key`, `Context::uses_lines`).
            Context::Column | Context::Above | Context::Indent | Context::Head => 0,
        }
    }

    fn push(&mut self, v: u8) {
        self.recent = (self.recent << 8) | v as u64;
        if v == b'<' {
            (self.tag, self.naming, self.in_tag) = (0, true, true);
        } else if v == b'>' {
            (self.naming, self.in_tag) = (false, false);
        } else if self.naming {
            if v.is_ascii_alphanumeric() || matches!(v, b'/' | b'!' | b'?' | b'-' | b':') {
                self.tag = (self.tag ^ v as u32).wrapping_mul(0x0100_0193);
            } else {
                self.naming = false;
            }
        }
        let kind = match v {
            b'(' => 1,
            b'[' => 2,
            b'{' => 3,
            _ => 0,
        };
        if kind > 0 {
            self.open = self.open << 2 | kind;
            self.depth = self.depth.saturating_add(1);
        } else if matches!(v, b')' | b']' | b'}') && self.depth > 0 {
            self.open >>= 2;
            self.depth -= 1;
        }
        let letter = v.is_ascii_alphabetic() || v >= 128;
        if letter {
            let folded = v.to_ascii_lowercase() as u64;
            self.word = (self.word.wrapping_add(folded + 1)).wrapping_mul(0x2F0F_3A6B_9C4D_5E71);
        } else if self.word != 0 {
            self.prev_word = self.word;
            self.word = 0;
        }
    }
}

/// Bytes of a line the column contexts keep; a byte further right has no
/// byte above it.
const LINE: usize = 128;

/// A lane's current line and the line before it, for the column contexts.
#[derive(Clone)]
struct Lines {
    cur: [u8; LINE],
    above: [u8; LINE],
    /// Bytes since the last newline.
    col: u32,
    /// The length of the line before.
    above_len: u32,
    /// The current line's leading spaces and tabs, and whether the line
    /// has had another byte yet.
    indent: u32,
    begun: bool,
    /// The first four bytes after the indentation, the first highest, and
    /// how many of them there are.
    head: u32,
    head_len: u32,
}

impl Default for Lines {
    fn default() -> Self {
        Self {
            cur: [0; LINE],
            above: [0; LINE],
            col: 0,
            above_len: 0,
            indent: 0,
            begun: false,
            head: 0,
            head_len: 0,
        }
    }
}

impl Lines {
    /// The byte `d` columns right of the current one in the line before, or
    /// 0 past its end (or past what is kept).
    fn above(&self, d: u32) -> u64 {
        let c = self.col + d;
        if c < self.above_len.min(LINE as u32) {
            self.above[c as usize] as u64
        } else {
            0
        }
    }

    /// The key of a context that reads the lines, given the lane's last 8
    /// bytes (newest lowest).
    fn key(&self, c: Context, recent: u64) -> u64 {
        let last = recent & 0xFF;
        match c {
            Context::Column => (self.col.min(255) as u64) << 8 | self.above(0),
            Context::Indent => {
                (self.indent.min(255) as u64) << 17 | (self.begun as u64) << 16 | (recent & 0xFFFF)
            }
            Context::Head => (self.head_len as u64) << 40 | (self.head as u64) << 8 | last,
            _ => self.above(0) << 16 | self.above(1) << 8 | last,
        }
    }

    fn push(&mut self, v: u8) {
        if v == b'\n' {
            std::mem::swap(&mut self.cur, &mut self.above);
            self.above_len = self.col;
            self.col = 0;
            (self.indent, self.begun, self.head, self.head_len) = (0, false, 0, 0);
        } else {
            if !self.begun && (v == b' ' || v == b'\t') {
                self.indent += 1;
            } else {
                self.begun = true;
                if self.head_len < 4 {
                    self.head = self.head << 8 | v as u32;
                    self.head_len += 1;
                }
            }
            if (self.col as usize) < LINE {
                self.cur[self.col as usize] = v;
            }
            self.col = self.col.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn past(text: &[u8]) -> LanePast {
        let mut p = LanePast::default();
        text.iter().for_each(|&v| p.push(v));
        p
    }

    #[test]
    fn word_contexts_fold_case_and_reset_between_words() {
        let (a, b) = (past(b"one Ca"), past(b"two cA"));
        assert_eq!(a.key(Context::Word), b.key(Context::Word));
        assert_ne!(a.key(Context::WordPair), b.key(Context::WordPair));
        assert_eq!(past(b"the ").key(Context::Word), 0);
        assert_eq!(
            past(b"x the ").key(Context::WordPair),
            past(b"y the ").key(Context::WordPair)
        );
        assert_eq!(past(b"abcdef").key(Context::Order(2)), 0x6566);
        assert_eq!(past(b"abcdef").key(Context::Sparse), 0x6465);
    }

    #[test]
    fn nest_follows_open_brackets() {
        let p = past(b"f(a[{x}], ");
        // Open: ( then [ closed by ] after { }: only ( remains.
        assert_eq!(p.key(Context::Nest), 1 << 24 | 1 << 16 | 0x2C20);
        // Closing more than was opened leaves nothing open.
        assert_eq!(
            past(b")){[").key(Context::Nest),
            2 << 24 | 0b1110 << 16 | 0x7B5B
        );
        assert_eq!(past(b"x))").key(Context::Nest), 0x2929);
    }

    #[test]
    fn markup_names_the_last_tag() {
        let fnv = |s: &[u8]| {
            s.iter()
                .fold(0u32, |h, &v| (h ^ v as u32).wrapping_mul(0x0100_0193))
        };
        // Inside `<span class=`: the name ends at the space, still in a tag.
        let p = past(b"<p>x</p><span cl");
        assert_eq!(
            p.key(Context::Markup),
            (fnv(b"span") as u64) << 24 | 1 << 16 | 0x636C
        );
        // After `>` the lane is out of the tag; the name stays.
        let p = past(b"<p>x</em>ab");
        assert_eq!(p.key(Context::Markup), (fnv(b"/em") as u64) << 24 | 0x6162);
    }

    #[test]
    fn indent_and_head_read_the_current_line() {
        let mut l = Lines::default();
        b"x\n\t  let y".iter().for_each(|&v| l.push(v));
        // Three bytes of indentation, the line begun, the last two bytes.
        assert_eq!(l.key(Context::Indent, 0x2079), 3 << 17 | 1 << 16 | 0x2079);
        // Head: "let " (the first four bytes after the indentation).
        assert_eq!(
            l.key(Context::Head, b'y' as u64),
            4 << 40 | (u32::from_be_bytes(*b"let ") as u64) << 8 | b'y' as u64
        );
        // A new line starts with nothing.
        l.push(b'\n');
        assert_eq!(l.key(Context::Indent, 10), 10);
        assert_eq!(l.key(Context::Head, 10), 10);
        l.push(b' ');
        assert_eq!(l.key(Context::Indent, 0x0A20) >> 16, 1 << 1);
    }

    #[test]
    fn line_contexts_read_the_line_above() {
        let mut l = Lines::default();
        b"ab,c\nxy".iter().for_each(|&v| l.push(v));
        // Column 2 of "xy|", under "ab,c": up(0) = ',', up(1) = 'c'.
        assert_eq!(l.key(Context::Column, b'y' as u64), 2 << 8 | b',' as u64);
        let above = (b',' as u64) << 16 | (b'c' as u64) << 8 | b'y' as u64;
        assert_eq!(l.key(Context::Above, b'y' as u64), above);
        // Past the end of the line above, nothing is above.
        b"zzz".iter().for_each(|&v| l.push(v));
        assert_eq!(l.key(Context::Column, b'z' as u64), 5 << 8);
        // A new line: the last one is now above.
        l.push(b'\n');
        assert_eq!(
            l.key(Context::Above, 10),
            (b'x' as u64) << 16 | (b'y' as u64) << 8 | 10
        );
    }
}
