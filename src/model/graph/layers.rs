//! The graph's parameters and layers.
//!
//! Only ops whose gradients candle really computes are used (some of its fused
//! ops have none, and a parameter behind one would silently never learn): layer
//! norm is written out from basic ops instead of candle's fused one, softmax is
//! `candle_nn::ops::softmax`, and the depthwise convolution is three shifted
//! slices instead of candle's conv1d.

use super::ops;
use crate::model::init::Param;
use candle_core::{Device, Result, Tensor, Var};

/// The graph's trainable variables, made from the parameter list
/// ([`crate::model::init::parameters`]) and kept in its order, which AdamW walks.
pub struct ParamStore {
    pub(crate) vars: Vec<(String, Var)>,
}

impl ParamStore {
    /// Variables on `dev` with the initial values `params` draw from `seed`.
    pub(crate) fn new(params: &[Param], seed: u64, dev: &Device) -> Result<Self> {
        let mut vars = Vec::with_capacity(params.len());
        for p in params {
            let t = Tensor::from_vec(p.values(seed), p.shape.as_slice(), dev)?;
            vars.push((p.name.clone(), Var::from_tensor(&t)?));
        }
        Ok(Self { vars })
    }

    /// The variable called `name`.
    pub fn get(&self, name: &str) -> Result<Tensor> {
        match self.vars.iter().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("no parameter {name}"),
        }
    }
}

/// y = x W + b, with W stored as (in, out) so no transpose is needed.
pub struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    /// The layer `name` (its `name.w` and `name.b`).
    pub fn load(ps: &ParamStore, name: &str) -> Result<Self> {
        Ok(Self {
            w: ps.get(&format!("{name}.w"))?,
            b: ps.get(&format!("{name}.b"))?,
        })
    }

    /// Applies the layer to a (batch, in) matrix.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::add_bias(&ops::matmul(x, &self.w)?, &self.b)
    }
}

/// Layer norm over the last dimension, with learned gain and bias, built from
/// basic ops so that its gradient is computed.
pub struct LayerNorm {
    w: Tensor,
    b: Tensor,
}

impl LayerNorm {
    /// The norm `name` (its gain `name.g` and bias `name.b`).
    pub fn load(ps: &ParamStore, name: &str) -> Result<Self> {
        Ok(Self {
            w: ps.get(&format!("{name}.g"))?,
            b: ps.get(&format!("{name}.b"))?,
        })
    }

    /// Normalises the last dimension of `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::layer_norm(x, &self.w, &self.b)
    }
}

/// GeGLU: one linear layer to 2h features, then a * gelu(b).
pub struct GeGlu {
    proj: Linear,
}

impl GeGlu {
    /// The unit `name` (a linear layer to twice its hidden width).
    pub fn load(ps: &ParamStore, name: &str) -> Result<Self> {
        Ok(Self {
            proj: Linear::load(ps, name)?,
        })
    }

    /// Applies the unit to a (batch, in) matrix.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::geglu(&ops::matmul(x, &self.proj.w)?, &self.proj.b)
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
    /// The convolution `name` (weights `name.w` of 3 x channels, bias `name.b`).
    pub fn load(ps: &ParamStore, name: &str) -> Result<Self> {
        Ok(Self {
            w: ps.get(&format!("{name}.w"))?,
            b: ps.get(&format!("{name}.b"))?,
        })
    }

    /// Convolves along dimension 1.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let zero = Tensor::zeros((b, 1, c), x.dtype(), x.device())?;
        let xp = Tensor::cat(&[&zero, x, &zero], 1)?;
        let _ = b;
        let mut y = ops::add_bias(
            &ops::row_scale(&xp.narrow(1, 0, t)?, &self.w.get(0)?)?,
            &self.b,
        )?;
        for k in 1..3 {
            y = (y + ops::row_scale(&xp.narrow(1, k, t)?, &self.w.get(k)?)?)?;
        }
        Ok(y)
    }
}
