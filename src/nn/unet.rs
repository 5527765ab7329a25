//! A configurable U-Net score network (DDPM-style, NCHW): noise-level embedding, residual
//! blocks with the embedding added after the first convolution, self-attention at chosen
//! resolutions, skip connections by channel concatenation, optional class conditioning with a
//! null label for classifier-free guidance. The W2 network of docs/workloads.md is
//! `UNetConfig::w2()`.

use super::{attention_block, conv2d, cross_attention_block, group_norm, linear, sinusoidal, Builder};
use crate::error::{Error, Result};
use crate::graph::Var;
use crate::ops::elementwise::Unary;

/// U-Net hyper-parameters (defaults: W2).
#[derive(Clone, Debug, PartialEq)]
pub struct UNetConfig {
    /// Channels of the input images.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Channels of the first level.
    pub base_channels: usize,
    /// Channel multipliers per level (each level after the first halves the resolution).
    pub channel_mults: Vec<usize>,
    /// Residual blocks per level on the way down (the way up has one more).
    pub res_blocks: usize,
    /// Resolutions (height) with self-attention after each residual block.
    pub attn_resolutions: Vec<usize>,
    /// Self-attention in the middle.
    pub mid_attention: bool,
    /// Group-norm groups.
    pub groups: usize,
    /// Noise-level embedding width.
    pub emb_dim: usize,
    /// Number of classes for conditioning (a learned table with one extra row: the null label).
    pub num_classes: Option<usize>,
    /// Width of context tokens attended to by cross-attention wherever self-attention runs
    /// (retrieval neighbours, text); None: no cross-attention.
    pub context_dim: Option<usize>,
    /// Dropout before each residual block's second convolution (training graphs only).
    pub dropout: f32,
}

impl UNetConfig {
    /// W2's U-Net (docs/workloads.md): 1,074,785 parameters.
    pub fn w2() -> Self {
        UNetConfig {
            in_channels: 1,
            out_channels: 1,
            base_channels: 32,
            channel_mults: vec![1, 2, 2],
            res_blocks: 1,
            attn_resolutions: vec![],
            mid_attention: true,
            groups: 8,
            emb_dim: 128,
            num_classes: None,
            context_dim: None,
            dropout: 0.0,
        }
    }

    /// Whether this U-Net can be built for inputs of `shape` [B, C, H, W]; the message names
    /// the field at fault. (A group count that does not divide some block's channels is
    /// reported by that block's group norm when the graph is built.)
    pub fn check(&self, shape: &[usize]) -> std::result::Result<(), String> {
        let levels = self.channel_mults.len();
        if self.base_channels == 0 {
            return Err("base_channels = 0: a U-Net needs at least one channel".into());
        }
        if levels == 0 || levels > 16 || self.channel_mults.contains(&0) {
            return Err(format!(
                "channel_mults = {:?}: one to 16 levels, each multiplier at least 1",
                self.channel_mults
            ));
        }
        if self.emb_dim < 2 || !self.emb_dim.is_multiple_of(2) {
            return Err(format!(
                "emb_dim = {}: the sinusoidal embedding needs an even width of 2 or more",
                self.emb_dim
            ));
        }
        if self.groups == 0 {
            return Err("groups = 0: group norm needs at least one group".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout = {} must be in [0, 1)", self.dropout));
        }
        let f = 1usize << (levels - 1);
        if shape.len() != 4
            || shape[1] != self.in_channels
            || !shape[2].is_multiple_of(f)
            || !shape[3].is_multiple_of(f)
        {
            return Err(format!(
                "input {shape:?} must be [B, {}, H, W] with H and W divisible by {f} (channel_mults = {:?} \
                 halves the resolution {} times)",
                self.in_channels,
                self.channel_mults,
                levels - 1
            ));
        }
        let res: Vec<usize> = (0..levels).map(|l| shape[2] >> l).collect();
        if let Some(r) = self.attn_resolutions.iter().find(|r| !res.contains(r)) {
            return Err(format!(
                "attn_resolutions = {:?}: {r} is not one of this U-Net's resolutions {res:?} for {}x{} inputs",
                self.attn_resolutions, shape[2], shape[3]
            ));
        }
        Ok(())
    }
}

/// Residual block: GN -> SiLU -> conv3x3 -> (+ Linear(emb)) -> GN -> SiLU -> conv3x3, plus
/// the input (through a 1x1 conv when the channel count changes).
pub fn res_block(b: &mut Builder, x: Var, emb: Var, c_in: usize, c_out: usize, cfg: &UNetConfig) -> Result<Var> {
    let bs = b.g.shape(x)[0];
    let h = b.scope("norm1", |b| group_norm(b, x, c_in, cfg.groups, 1e-5))?;
    let h = b.g.unary(Unary::Silu, h);
    let h = b.scope("conv1", |b| conv2d(b, h, c_in, c_out, 3, 1, 1))?;
    let e = b.g.unary(Unary::Silu, emb);
    let e = b.scope("emb_proj", |b| linear(b, e, cfg.emb_dim, c_out, true))?;
    let e = b.g.reshape(e, &[bs, c_out, 1, 1])?;
    let h = b.g.add(h, e)?;
    let h = b.scope("norm2", |b| group_norm(b, h, c_out, cfg.groups, 1e-5))?;
    let h = b.g.unary(Unary::Silu, h);
    let h = super::dropout(b, h, cfg.dropout)?;
    let h = b.scope("conv2", |b| conv2d(b, h, c_out, c_out, 3, 1, 1))?;
    let skip = if c_in != c_out { b.scope("skip", |b| conv2d(b, x, c_in, c_out, 1, 1, 0))? } else { x };
    b.g.add(skip, h)
}

/// Self-attention, then cross-attention to the context tokens when the model has them.
fn attend(b: &mut Builder, h: Var, ch: usize, context: Option<Var>, cfg: &UNetConfig) -> Result<Var> {
    let h = attention_block(b, h, ch, cfg.groups)?;
    match (context, cfg.context_dim) {
        (Some(c), Some(_)) => b.scope("cross", |b| cross_attention_block(b, h, c, ch, cfg.groups)),
        _ => Ok(h),
    }
}

/// The noise-level embedding [B, emb_dim]: sinusoidal(t) -> Linear -> SiLU -> Linear, plus the
/// class embedding of the one-hot label when the model has classes.
fn embedding(b: &mut Builder, t: Var, label: Option<Var>, cfg: &UNetConfig) -> Result<Var> {
    let e = sinusoidal(b.g, t, cfg.emb_dim)?;
    let e = b.scope("emb.0", |b| linear(b, e, cfg.emb_dim, cfg.emb_dim, true))?;
    let e = b.g.unary(Unary::Silu, e);
    let mut emb = b.scope("emb.2", |b| linear(b, e, cfg.emb_dim, cfg.emb_dim, true))?;
    if let (Some(n), Some(l)) = (cfg.num_classes, label) {
        let table = b.param("label_emb.weight", &[n + 1, cfg.emb_dim], super::Init::Uniform(1.0));
        let le = b.g.matmul(l, table, false, false)?;
        emb = b.g.add(emb, le)?;
    }
    Ok(emb)
}

/// Where the way down ends: the features, their channels and resolution, and the skips.
struct Down {
    h: Var,
    ch: usize,
    res: usize,
    skips: Vec<(Var, usize)>,
}

/// The way down: conv_in, then per level the residual blocks (with attention where asked) and a
/// strided convolution between levels.
fn down(b: &mut Builder, x: Var, emb: Var, context: Option<Var>, cfg: &UNetConfig) -> Result<Down> {
    let s = b.g.shape(x).to_vec();
    let levels = cfg.channel_mults.len();
    let c0 = cfg.base_channels;
    let mut h = b.scope("conv_in", |b| conv2d(b, x, cfg.in_channels, c0, 3, 1, 1))?;
    let mut skips = vec![(h, c0)];
    let mut ch = c0;
    let mut res = s[2];
    for (lvl, m) in cfg.channel_mults.iter().enumerate() {
        let c_out = cfg.base_channels * m;
        for r in 0..cfg.res_blocks {
            h = b.scope(&format!("down.{lvl}.res.{r}"), |b| res_block(b, h, emb, ch, c_out, cfg))?;
            ch = c_out;
            if cfg.attn_resolutions.contains(&res) {
                h = b.scope(&format!("down.{lvl}.attn.{r}"), |b| attend(b, h, ch, context, cfg))?;
            }
            skips.push((h, ch));
        }
        if lvl + 1 < levels {
            h = b.scope(&format!("down.{lvl}.downsample"), |b| conv2d(b, h, ch, ch, 3, 2, 1))?;
            res /= 2;
            skips.push((h, ch));
        }
    }
    Ok(Down { h, ch, res, skips })
}

/// The encoder half as a classifier (guided-diffusion's): the way down and the first middle
/// block, then GroupNorm, SiLU, the mean over positions and a linear layer: x [B, C, H, W],
/// `t` [B] as for `unet` -> logits [B, outputs].
pub fn encoder(b: &mut Builder, x: Var, t: Var, cfg: &UNetConfig, outputs: usize) -> Result<Var> {
    let s = b.g.shape(x).to_vec();
    cfg.check(&s).map_err(|e| Error::Shape(format!("unet encoder: {e}")))?;
    let emb = embedding(b, t, None, cfg)?;
    let Down { h, ch, .. } = down(b, x, emb, None, cfg)?;
    let h = b.scope("mid.res.0", |b| res_block(b, h, emb, ch, ch, cfg))?;
    let h = b.scope("norm_out", |b| group_norm(b, h, ch, cfg.groups, 1e-5))?;
    let h = b.g.unary(Unary::Silu, h);
    let hs = b.g.shape(h).to_vec();
    let h = b.g.reshape(h, &[hs[0], ch, hs[2] * hs[3]])?;
    let pooled = b.g.mean(h, 2)?;
    b.scope("head", |b| linear(b, pooled, ch, outputs, true))
}

/// The network: x [B, C, H, W], the embedding input `t` [B] (e.g. log sigma / 4), an optional
/// one-hot label [B, num_classes + 1] (the last class is the null label) and optional context
/// tokens [B, T, context_dim]; returns [B, out_channels, H, W].
pub fn unet(
    b: &mut Builder,
    x: Var,
    t: Var,
    label: Option<Var>,
    context: Option<Var>,
    cfg: &UNetConfig,
) -> Result<Var> {
    let s = b.g.shape(x).to_vec();
    cfg.check(&s).map_err(|e| Error::Shape(format!("unet: {e}")))?;
    let emb = embedding(b, t, label, cfg)?;
    let Down { mut h, mut ch, mut res, mut skips } = down(b, x, emb, context, cfg)?;
    h = b.scope("mid.res.0", |b| res_block(b, h, emb, ch, ch, cfg))?;
    if cfg.mid_attention {
        h = b.scope("mid.attn", |b| attend(b, h, ch, context, cfg))?;
    }
    h = b.scope("mid.res.1", |b| res_block(b, h, emb, ch, ch, cfg))?;
    for (lvl, m) in cfg.channel_mults.iter().enumerate().rev() {
        let c_out = cfg.base_channels * m;
        for r in 0..cfg.res_blocks + 1 {
            let (sk, sc) = skips.pop().ok_or_else(|| Error::Invalid("unet: skip connections out of balance".into()))?;
            let cat = b.g.concat(h, sk, 1)?;
            h = b.scope(&format!("up.{lvl}.res.{r}"), |b| res_block(b, cat, emb, ch + sc, c_out, cfg))?;
            ch = c_out;
            if cfg.attn_resolutions.contains(&res) {
                h = b.scope(&format!("up.{lvl}.attn.{r}"), |b| attend(b, h, ch, context, cfg))?;
            }
        }
        if lvl > 0 {
            let u = b.g.upsample2x(h)?;
            h = b.scope(&format!("up.{lvl}.upsample"), |b| conv2d(b, u, ch, ch, 3, 1, 1))?;
            res *= 2;
        }
    }
    let h = b.scope("norm_out", |b| group_norm(b, h, ch, cfg.groups, 1e-5))?;
    let h = b.g.unary(Unary::Silu, h);
    b.scope("conv_out", |b| conv2d(b, h, ch, cfg.out_channels, 3, 1, 1))
}

impl UNetConfig {
    /// The config as JSON (stored in a checkpoint's `__metadata__`).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "arch": "unet",
            "in_channels": self.in_channels, "out_channels": self.out_channels,
            "base_channels": self.base_channels, "channel_mults": self.channel_mults,
            "res_blocks": self.res_blocks, "attn_resolutions": self.attn_resolutions,
            "mid_attention": self.mid_attention, "groups": self.groups, "emb_dim": self.emb_dim,
            "num_classes": self.num_classes, "context_dim": self.context_dim, "dropout": self.dropout,
        })
        .to_string()
    }

    /// Parse `to_json`'s output; names the first bad or unknown key.
    pub fn from_json(s: &str) -> Result<UNetConfig> {
        let v: serde_json::Value =
            serde_json::from_str(s).map_err(|e| Error::Invalid(format!("model config is not JSON: {e}")))?;
        let o = v.as_object().ok_or_else(|| Error::Invalid("model config is not a JSON object".into()))?;
        let known = [
            "arch",
            "in_channels",
            "out_channels",
            "base_channels",
            "channel_mults",
            "res_blocks",
            "attn_resolutions",
            "mid_attention",
            "groups",
            "emb_dim",
            "num_classes",
            "context_dim",
            "dropout",
        ];
        if let Some(k) = o.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Error::Invalid(format!("unknown model config key '{k}'")));
        }
        let num = |k: &str| -> Result<usize> {
            o.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| Error::Invalid(format!("model config key '{k}' missing or not a count")))
        };
        let list = |k: &str| -> Result<Vec<usize>> {
            o.get(k)
                .and_then(|x| x.as_array())
                .and_then(|a| a.iter().map(|x| x.as_u64().map(|y| y as usize)).collect())
                .ok_or_else(|| Error::Invalid(format!("model config key '{k}' missing or not a list of counts")))
        };
        let opt = |k: &str| o.get(k).and_then(|x| x.as_u64()).map(|x| x as usize);
        Ok(UNetConfig {
            in_channels: num("in_channels")?,
            out_channels: num("out_channels")?,
            base_channels: num("base_channels")?,
            channel_mults: list("channel_mults")?,
            res_blocks: num("res_blocks")?,
            attn_resolutions: list("attn_resolutions")?,
            mid_attention: o
                .get("mid_attention")
                .and_then(|x| x.as_bool())
                .ok_or_else(|| Error::Invalid("model config key 'mid_attention' missing".into()))?,
            groups: num("groups")?,
            emb_dim: num("emb_dim")?,
            num_classes: opt("num_classes"),
            context_dim: opt("context_dim"),
            dropout: o.get("dropout").and_then(|x| x.as_f64()).unwrap_or(0.0) as f32,
        })
    }
}
