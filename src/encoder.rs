//! [`Encoder`]: compression as a [`Write`], and the one-call [`compress`].

use crate::device::Device;
use crate::engine::{Compressor, Limits};
use crate::error::{Error, Result};
use crate::preset::Preset;
use std::io::{self, Write};

/// Told how many input bytes have been coded (or decoded), as it happens.
pub(crate) type Progress = Box<dyn FnMut(u64) + Send>;

/// Compresses everything written to it into one fade frame on `W`.
///
/// Input is gathered into segments of the preset's `segment` bytes (4 MiB for
/// the built-in presets); each full segment is coded by the model during the
/// [`write`](Write::write) that fills it, so a write may take a while and
/// memory stays bounded whatever the input's length. The frame header is
/// written with the first full segment, or by [`finish`](Encoder::finish)
/// when the whole input is shorter than a segment: such an input gets a preset
/// fitted to its length ([`Preset::fitted`]: fewer lanes, smaller tables),
/// which compresses short inputs much better. The output is the same however
/// the input is cut into writes.
///
/// [`finish`](Encoder::finish) must be called: it codes the last segment and
/// writes the end block (content length and checksum). An encoder dropped
/// without it leaves an incomplete frame, which decoders reject as
/// "unexpected end of input"; an input shorter than a segment leaves nothing
/// at all. [`flush`](Write::flush) only flushes `W`: it does not code the
/// bytes waiting for a full segment, since the output does not depend on how
/// the input was written.
///
/// Errors from [`Write`] are [`io::Error`]s carrying the [`Error`] (see
/// [`Error::io_kind`]); `fade::Error::from` gets it back. After an error the
/// frame cannot be completed, and every later call fails.
///
/// ```
/// use std::io::Write;
///
/// let mut enc = fade::Encoder::new(Vec::new(), 1)?;
/// enc.write_all(b"to be compressed, to be compressed")?;
/// let packed: Vec<u8> = enc.finish()?;
/// assert_eq!(&packed[..4], &fade::MAGIC);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Encoder<W: Write> {
    out: W,
    preset: Preset,
    device: candle_core::Device,
    limits: Limits,
    /// Told of progress; does nothing unless `with_progress` set it.
    progress: Progress,
    /// The input's length, if the caller pledged it ([`Encoder::with_size`]).
    size: Option<u64>,
    /// Input not coded yet: less than one segment.
    pending: Vec<u8>,
    /// The frame, from its first coded segment on. It writes into its own
    /// buffer, which is moved to `out` after every segment.
    frame: Option<Compressor<Vec<u8>>>,
    /// An earlier call failed: the frame cannot be completed.
    failed: bool,
}

impl<W: Write> Encoder<W> {
    /// An encoder at `level`, 1 (fastest) to 5 (strongest), as `fade -1` ..
    /// `fade -5`: the built-in presets `fast`, `medium`, `default`, `strong`
    /// and `paper`. The model runs on the CPU.
    pub fn new(out: W, level: u32) -> Result<Self> {
        let preset = Preset::load(&level.to_string())?;
        Self::with_preset(out, &preset, Device::Cpu)
    }

    /// An encoder with any preset (see [`Preset::load`] and
    /// [`Preset::parse`]) on `device`, which it opens here.
    pub fn with_preset(out: W, preset: &Preset, device: Device) -> Result<Self> {
        Ok(Self {
            out,
            preset: preset.clone(),
            device: device.open()?,
            limits: Limits::default(),
            progress: Box::new(|_| {}),
            size: None,
            pending: Vec::new(),
            frame: None,
            failed: false,
        })
    }

    /// Refuses to start a frame that would need more memory than `limits`
    /// allow ([`Error::MemoryLimit`], from the write that fills the first
    /// segment or from [`finish`](Encoder::finish)). The default allows
    /// [`DEFAULT_MEMORY_LIMIT`](crate::DEFAULT_MEMORY_LIMIT). Set it before
    /// the first write.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Pledges that exactly `bytes` will be written, as zstd's pledged source
    /// size. The length goes into the frame header, so a decoder can show a
    /// total before it starts, and [`finish`](Encoder::finish) (or the write
    /// that passes it) fails with [`Error::InputChanged`] if the input turns
    /// out longer or shorter. An input shorter than one segment records its
    /// length without a pledge. Set it before the first write.
    pub fn with_size(mut self, bytes: u64) -> Self {
        self.size = Some(bytes);
        self
    }

    /// Calls `f` with the number of input bytes coded, many times per segment
    /// (once per model step), on the thread that writes.
    pub fn with_progress(mut self, f: impl FnMut(u64) + Send + 'static) -> Self {
        self.progress = Box::new(f);
        self
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// The underlying writer. Writing to it puts bytes inside the frame,
    /// which then fails to decode.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Codes what is left, writes the end block, flushes and returns the
    /// writer.
    pub fn finish(mut self) -> Result<W> {
        self.usable()?;
        if self.frame.is_none() || !self.pending.is_empty() {
            self.code_pending()?;
        }
        let end = self.frame.take().expect("the frame was started").finish()?;
        self.out.write_all(&end)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::Io(io::Error::other(
                "fade::Encoder: an earlier error left the frame incomplete",
            )));
        }
        Ok(())
    }

    /// Codes the pending input as one segment, starting the frame first if
    /// needed, and passes the frame's bytes on. Poisons the encoder on error.
    fn code_pending(&mut self) -> Result<()> {
        let res = self.try_code_pending();
        self.failed = res.is_err();
        res
    }

    fn try_code_pending(&mut self) -> Result<()> {
        if self.frame.is_none() {
            // As in `engine::compress_reader_with`: an input shorter than a
            // segment is all there is, and gets a preset fitted to it.
            // Its length is then known, and goes into the header.
            let n = self.pending.len();
            let (preset, size) = if n < self.preset.segment as usize {
                if self.size.is_some_and(|s| s != n as u64) {
                    return Err(Error::InputChanged);
                }
                (self.preset.fitted(n), Some(n as u64))
            } else {
                (self.preset.clone(), self.size)
            };
            self.limits.check(&preset)?;
            self.frame = Some(Compressor::new(
                &preset,
                &self.device,
                &self.limits,
                Vec::new(),
                size,
                &self.pending,
                None,
            )?);
        }
        let frame = self.frame.as_mut().expect("started above");
        frame.segment(&self.pending, &mut *self.progress)?;
        self.pending.clear();
        let bytes = frame.writer();
        self.out.write_all(bytes)?;
        bytes.clear();
        Ok(())
    }
}

impl<W: Write> Write for Encoder<W> {
    /// Takes bytes up to the end of the current segment; coding it when
    /// that fills it.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.usable()?;
        let seg = self.preset.segment as usize;
        let n = buf.len().min(seg - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == seg {
            self.code_pending()?;
        }
        Ok(n)
    }

    /// Flushes `W`; the bytes of an incomplete segment stay buffered.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Compresses `data` into one frame at `level` (1 to 5, as [`Encoder::new`]),
/// on the CPU, within the default [`Limits`].
///
/// ```
/// let data = b"one call, one frame. ".repeat(20);
/// let packed = fade::compress(&data, 1)?;
/// assert_eq!(fade::decompress(&packed)?, data);
/// # Ok::<(), fade::Error>(())
/// ```
pub fn compress(data: &[u8], level: u32) -> Result<Vec<u8>> {
    let mut enc = Encoder::new(Vec::new(), level)?;
    enc.write_all(data)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine;

    fn tiny() -> Preset {
        Preset::parse(include_str!("../tests/data/tiny.toml")).unwrap()
    }

    fn encoded(data: &[u8], p: &Preset, chunk: usize) -> Vec<u8> {
        let mut enc = Encoder::with_preset(Vec::new(), p, Device::Cpu).unwrap();
        for c in data.chunks(chunk.max(1)) {
            enc.write_all(c).unwrap();
        }
        enc.finish().unwrap()
    }

    /// The encoder writes exactly the frame `compress_reader_with` writes, at
    /// every length around the segment size (tiny's segments are 4096 bytes)
    /// and whatever the writes.
    #[test]
    fn output_equals_compress_reader_with() {
        let p = tiny();
        let seg = p.segment as usize;
        for n in [0, 1, 100, seg - 1, seg, seg + 1, 2 * seg + 300] {
            let data: Vec<u8> = (0..n as u32).map(|i| (i * 7 % 13 + i / 97) as u8).collect();
            let cpu = candle_core::Device::Cpu;
            let limits = Limits::default();
            let want = engine::compress_reader_with(
                &data[..],
                Vec::new(),
                &p,
                &cpu,
                &limits,
                None,
                &mut |_| {},
            )
            .unwrap();
            for chunk in [n, 7, 1000] {
                assert!(
                    encoded(&data, &p, chunk) == want,
                    "{n} bytes in writes of {chunk}"
                );
            }
        }
    }

    #[test]
    fn encoder_and_decoder_are_send() {
        fn send<T: Send>() {}
        send::<Encoder<Vec<u8>>>();
        send::<crate::Decoder<&[u8]>>();
    }
}
