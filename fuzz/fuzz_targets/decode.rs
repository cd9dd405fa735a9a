//! Fuzzes the decoder. Half the inputs are used as they are; the other half are
//! appended to a valid frame header of a tiny preset, so that random bytes reach
//! the block parser, the range decoders and the model instead of being rejected
//! at the magic number. Any panic, hang or huge allocation is a bug; errors are fine.
#![no_main]

use candle_core::Device;
use fade::engine;
use fade::format::{DeviceClass, FrameHeader};
use fade::model::Model;
use fade::Preset;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const TINY: &str = r#"
name = "fuzz"
lanes = 4
context = 4
embed = 4
global = "attention"
cache = 32
cache_step = 8
refiner_branches = 2
refiner_rank = 4
ffn = 16
lr = 2e-3
weight_decay = 1e-7
beta1 = 0.9
beta2 = 0.999
eps = 1e-8
segment = 4096
seed = 1
"#;

fn header() -> &'static [u8] {
    static H: OnceLock<Vec<u8>> = OnceLock::new();
    H.get_or_init(|| {
        let preset = Preset::parse(TINY).unwrap();
        let model = Model::new(&preset, &Device::Cpu).unwrap();
        let fingerprint = engine::fingerprint(&model, &preset).unwrap();
        let mut v = Vec::new();
        FrameHeader { preset, content_check: true, device: DeviceClass::Cpu, fingerprint }.write(&mut v).unwrap();
        v
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let input: Vec<u8> = if mode & 1 == 0 { rest.to_vec() } else { [header(), rest].concat() };
    let _ = engine::decompress(&mut &input[..], &mut std::io::sink(), &Device::Cpu, &mut |_| {});
});
