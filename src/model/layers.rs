//! Parameters and the small building blocks of the model.
//!
//! Only ops whose gradients candle really computes are used (some of its fused
//! ops have none, and a parameter behind one would silently never learn): layer
//! norm is written out from basic ops instead of candle's fused one, softmax is
//! `candle_nn::ops::softmax`, and the depthwise convolution is three shifted
//! slices instead of candle's conv1d.

use crate::rng::SplitMix64;
use candle_core::{Device, Result, Tensor, Var, D};

/// Creates every trainable parameter from our own seeded generator and keeps
/// the list the optimizer walks, in creation order (which is part of the format).
pub struct ParamStore {
    pub(crate) vars: Vec<(String, Var)>,
    rng: SplitMix64,
    dev: Device,
}

impl ParamStore {
    /// A store whose initial values are fully determined by `seed`.
    pub fn new(seed: u64, dev: &Device) -> Self {
        Self {
            vars: Vec::new(),
            rng: SplitMix64::new(seed),
            dev: dev.clone(),
        }
    }

    fn make(
        &mut self,
        name: &str,
        dims: &[usize],
        mut f: impl FnMut(&mut SplitMix64) -> f32,
    ) -> Result<Tensor> {
        let n: usize = dims.iter().product();
        let mut g = self.rng.fork(name);
        let data: Vec<f32> = (0..n).map(|_| f(&mut g)).collect();
        let var = Var::from_tensor(&Tensor::from_vec(data, dims, &self.dev)?)?;
        let t = var.as_tensor().clone();
        self.vars.push((name.to_string(), var));
        Ok(t)
    }

    /// Weights drawn from N(0, std).
    pub fn normal(&mut self, name: &str, dims: &[usize], std: f64) -> Result<Tensor> {
        self.make(name, dims, |g| g.normal(std))
    }

    /// Weights drawn uniformly from [-bound, bound).
    pub fn uniform(&mut self, name: &str, dims: &[usize], bound: f64) -> Result<Tensor> {
        self.make(name, dims, |g| g.uniform(bound))
    }

    /// Weights with the given values (one per element).
    pub fn values(&mut self, name: &str, dims: &[usize], v: &[f32]) -> Result<Tensor> {
        let mut i = 0;
        self.make(name, dims, |_| {
            i += 1;
            v[i - 1]
        })
    }

    /// Weights all equal to `v`.
    pub fn constant(&mut self, name: &str, dims: &[usize], v: f32) -> Result<Tensor> {
        self.make(name, dims, |_| v)
    }

    /// Number of trainable values.
    pub fn count(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }
}

/// y = x W + b, with W stored as (in, out) so no transpose is needed.
pub struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    /// PyTorch's default initialisation: uniform in ±1/sqrt(fan_in).
    pub fn new(ps: &mut ParamStore, name: &str, fan_in: usize, fan_out: usize) -> Result<Self> {
        let bound = 1.0 / (fan_in as f64).sqrt();
        Ok(Self {
            w: ps.uniform(&format!("{name}.w"), &[fan_in, fan_out], bound)?,
            b: ps.uniform(&format!("{name}.b"), &[fan_out], bound)?,
        })
    }

    /// N(0, std) weights and zero bias (the reference's output layer).
    pub fn new_normal(
        ps: &mut ParamStore,
        name: &str,
        fan_in: usize,
        fan_out: usize,
        std: f64,
    ) -> Result<Self> {
        Ok(Self {
            w: ps.normal(&format!("{name}.w"), &[fan_in, fan_out], std)?,
            b: ps.constant(&format!("{name}.b"), &[fan_out], 0.0)?,
        })
    }

    /// Applies the layer to a (batch, in) matrix.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        super::ops::add_bias(&super::ops::matmul(x, &self.w)?, &self.b)
    }
}

/// Layer norm over the last dimension, with learned gain and bias, built from
/// basic ops so that its gradient is computed.
pub struct LayerNorm {
    w: Tensor,
    b: Tensor,
}

impl LayerNorm {
    /// Gain 1, bias 0.
    pub fn new(ps: &mut ParamStore, name: &str, n: usize) -> Result<Self> {
        Ok(Self {
            w: ps.constant(&format!("{name}.g"), &[n], 1.0)?,
            b: ps.constant(&format!("{name}.b"), &[n], 0.0)?,
        })
    }

    /// Normalises the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if super::fused_kernels(x.device()) {
            let dims = x.dims().to_vec();
            let ln = super::ops::LayerNorm { eps: 1e-5 };
            return x
                .contiguous()?
                .reshape(((), self.w.elem_count()))?
                .apply_op3(&self.w, &self.b, ln)?
                .reshape(dims);
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        xn.broadcast_mul(&self.w)?.broadcast_add(&self.b)
    }
}

/// GeGLU: one linear layer to 2h features, then a * gelu(b).
pub struct GeGlu {
    proj: Linear,
    hidden: usize,
}

impl GeGlu {
    /// in -> hidden.
    pub fn new(ps: &mut ParamStore, name: &str, fan_in: usize, hidden: usize) -> Result<Self> {
        Ok(Self {
            proj: Linear::new(ps, name, fan_in, 2 * hidden)?,
            hidden,
        })
    }

    /// Applies the unit to a (batch, in) matrix.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if super::fused_kernels(x.device()) {
            let xw = super::ops::matmul(x, &self.proj.w)?;
            return xw.apply_op2(&self.proj.b, super::ops::GeGlu);
        }
        let y = self.proj.forward(x)?;
        let a = y.narrow(1, 0, self.hidden)?;
        let g = y.narrow(1, self.hidden, self.hidden)?;
        a * gelu(&g)?
    }
}

/// Exact GELU: the fused kernel on the CPU, candle's op elsewhere.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if super::fused_kernels(x.device()) {
        x.contiguous()?.apply_op1(super::ops::Gelu)
    } else {
        x.gelu_erf()
    }
}

/// Depthwise 1-D convolution over the T positions of a (B, T, C) tensor,
/// kernel 3, zero padding 1: three shifted slices times per-channel weights.
/// Correct gradients and several times faster than candle's grouped conv1d.
pub struct DepthwiseConv3 {
    w: Tensor,
    b: Tensor,
}

impl DepthwiseConv3 {
    /// Uniform ±1/sqrt(3) weights, as PyTorch's Conv1d with one input channel per group.
    pub fn new(ps: &mut ParamStore, name: &str, channels: usize) -> Result<Self> {
        let bound = 1.0 / 3f64.sqrt();
        Ok(Self {
            w: ps.uniform(&format!("{name}.w"), &[3, channels], bound)?,
            b: ps.uniform(&format!("{name}.b"), &[channels], bound)?,
        })
    }

    /// Convolves along dimension 1.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let zero = Tensor::zeros((b, 1, c), x.dtype(), x.device())?;
        let xp = Tensor::cat(&[&zero, x, &zero], 1)?;
        let _ = b;
        let mut y = super::ops::add_bias(
            &super::ops::row_scale(&xp.narrow(1, 0, t)?, &self.w.get(0)?)?,
            &self.b,
        )?;
        for k in 1..3 {
            y = (y + super::ops::row_scale(&xp.narrow(1, k, t)?, &self.w.get(k)?)?)?;
        }
        Ok(y)
    }
}
