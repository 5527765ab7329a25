//! The parameter block of every WGSL kernel as a `#[repr(C)]` struct, field for field the
//! shader's `struct Params` (the uniform at binding 0). Launchers fill these by name; no
//! parameter travels as an untyped array or at a hand-computed byte offset.
//! `tests/shaders_naga.rs` reads every shader and checks that its `Params` has these fields, in
//! this order.

use bytemuck::{Pod, Zeroable};

macro_rules! kernel_params {
    ($(#[$m:meta])* $name:ident for [$($shader:literal),+] { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
        #[allow(missing_docs)] // the fields are the shader's, documented there
        pub struct $name { $($(#[$fm])* pub $f: $t),* }
        impl $name {
            /// The shaders (shaders/NAME.wgsl) whose `Params` this is.
            pub const SHADERS: &'static [&'static str] = &[$($shader),+];
            /// Its fields in order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($f)),*];
        }
    };
}

kernel_params!(
    /// attention.wgsl / attention_io.wgsl (and the kernels that follow attention_io).
    AttentionParams for ["attention", "attention_io"] {
        bh: u32, nq: u32, nk: u32, scale: f32, q_blocks: u32, groups_x: u32,
        /// Queries per chunk of the few-keys kernel.
        q_chunk: u32,
        pad: u32,
    }
);

kernel_params!(
    /// conv2d.wgsl: the direct kernels and the im2col / col2im patch kernels.
    ConvParams for ["conv2d"] {
        batch: u32, c_in: u32, h: u32, w: u32, c_out: u32, kh: u32, kw: u32, stride: u32,
        pad: u32, h_out: u32, w_out: u32,
        /// Workgroups along x of the direct kernel's folded grid.
        groups_x: u32,
        /// First image of a patch kernel's chunk.
        img0: u32,
        p0: u32, p1: u32, p2: u32,
    }
);

kernel_params!(
    /// conv_gemm.wgsl: the implicit GEMM.
    ConvGemmParams for ["conv_gemm"] {
        m: u32, n: u32, k: u32, c_img0: u32, a_bstride: u32, img0: u32, c_bstride: u32, groups_x: u32,
    }
);

kernel_params!(
    /// elementwise_ops.wgsl: element-wise ops with broadcasting (rank <= 8).
    ElementwiseParams for ["elementwise_ops"] {
        n: u32, rank: u32, s0: f32, s1: f32, shape: [u32; 8], a_stride: [u32; 8], b_stride: [u32; 8],
    }
);

kernel_params!(
    /// embedding.wgsl: sinusoidal embeddings.
    EmbeddingParams for ["embedding"] { n: u32, dim: u32, max_period: f32, p0: u32 }
);

kernel_params!(
    /// groupnorm.wgsl.
    GroupNormParams for ["groupnorm"] {
        batch: u32, c: u32, s: u32, groups: u32, eps: f32,
        /// Workgroups (statistics), rows (coefficients) or elements (apply) of the entry point.
        count: u32,
        p1: u32, p2: u32,
    }
);

kernel_params!(
    /// layout.wgsl: copies that move axes.
    LayoutParams for ["layout"] {
        n: u32, d0: u32, d1: u32, d2: u32, d3: u32,
        /// Element offsets into x and y (swap_outer).
        x_at: u32, y_at: u32,
        /// Padded row width (swap_outer_crop).
        wpad: u32,
    }
);

kernel_params!(
    /// The tuned matmul families.
    MatmulParams for ["matmul", "matmul_narrow", "matmul_sg", "matmul_vec4"] {
        m: u32, n: u32, k: u32, batch: u32, a_bstride: u32, b_bstride: u32, c_bstride: u32, groups_x: u32,
    }
);

kernel_params!(
    /// matmul_naive.wgsl: the baseline of the GEMM bench.
    NaiveMatmulParams for ["matmul_naive"] { m: u32, n: u32, k: u32, pad: u32 }
);

kernel_params!(
    /// optim.wgsl: Adam, clipping, EMA.
    OptimParams for ["optim"] {
        n: u32, warmup: f32, total: f32, lr_max: f32, lr_min: f32, beta1: f32, beta2: f32, eps: f32,
        weight_decay: f32, max_norm: f32, decay: f32, p0: f32,
    }
);

kernel_params!(
    /// random.wgsl: Philox draws keyed by (seed, stream, counter).
    RandomParams for ["random"] {
        n: u32, seed_lo: u32, seed_hi: u32, stream_lo: u32, stream_hi: u32, ctr_lo: u32, ctr_hi: u32, mode: u32,
    }
);

kernel_params!(
    /// knn.wgsl: the top-k selection of one chunk's scores.
    KnnParams for ["knn"] { m: u32, nc: u32, k: u32, base: u32, first: u32, p0: u32, p1: u32, p2: u32 }
);

kernel_params!(
    /// present.wgsl: samples into an application's texture (images by pixel, points splatted).
    PresentParams for ["present"] {
        n: u32, c: u32, h: u32, w: u32, cols: u32, width: u32, height: u32, raw: u32, lim: f32, p0: u32, p1: u32, p2: u32
    }
);

kernel_params!(
    /// reduce.wgsl.
    ReduceParams for ["reduce"] { outer: u32, len: u32, inner: u32, n_out: u32 }
);

kernel_params!(
    /// sampler_common.wgsl, the block of sampler.wgsl (fused sampler updates) and mcmc.wgsl
    /// (Metropolis-adjusted steps).
    SamplerParams for ["sampler_common"] {
        n: u32, d: u32, b: u32,
        /// First chain of the batch (written between submissions: `chain0_offset`).
        chain0: u32,
        seed_lo: u32, seed_hi: u32, stream_hi: u32, groups_x: u32,
    }
);

impl SamplerParams {
    /// Byte offset of `chain0`, which the runner rewrites in place between batches.
    pub const CHAIN0_OFFSET: u64 = std::mem::offset_of!(SamplerParams, chain0) as u64;
}

kernel_params!(
    /// softmax.wgsl.
    SoftmaxParams for ["softmax"] { rows: u32, len: u32, p0: u32, p1: u32 }
);

/// Every parameter block: (its shaders, its fields).
pub const ALL: &[(&[&str], &[&str])] = &[
    (AttentionParams::SHADERS, AttentionParams::FIELDS),
    (ConvParams::SHADERS, ConvParams::FIELDS),
    (ConvGemmParams::SHADERS, ConvGemmParams::FIELDS),
    (ElementwiseParams::SHADERS, ElementwiseParams::FIELDS),
    (EmbeddingParams::SHADERS, EmbeddingParams::FIELDS),
    (GroupNormParams::SHADERS, GroupNormParams::FIELDS),
    (LayoutParams::SHADERS, LayoutParams::FIELDS),
    (MatmulParams::SHADERS, MatmulParams::FIELDS),
    (NaiveMatmulParams::SHADERS, NaiveMatmulParams::FIELDS),
    (OptimParams::SHADERS, OptimParams::FIELDS),
    (RandomParams::SHADERS, RandomParams::FIELDS),
    (KnnParams::SHADERS, KnnParams::FIELDS),
    (PresentParams::SHADERS, PresentParams::FIELDS),
    (ReduceParams::SHADERS, ReduceParams::FIELDS),
    (SamplerParams::SHADERS, SamplerParams::FIELDS),
    (SoftmaxParams::SHADERS, SoftmaxParams::FIELDS),
];

/// Binding slots by name, per shader file: `slots::sampler::SCHED` is binding 1 of
/// shaders/sampler.wgsl. Names are the shader's variable names (entry points of one file may
/// bind one slot under different names); binding 0 is always the parameter block.
/// `tests/shaders_naga.rs` checks every name and number against the WGSL.
pub mod slots {
    macro_rules! kernel_slots {
        ($shader:ident { $($name:ident = $n:literal),* $(,)? }) => {
            #[allow(missing_docs)]
            pub mod $shader {
                $(pub const $name: u32 = $n;)*
                /// (variable name, binding) of every storage binding of the shader.
                pub const ALL: &[(&str, u32)] = &[$((stringify!($name), $n)),*];
            }
        };
    }

    kernel_slots!(attention { Q = 1, K = 2, V = 3, OUT = 4, LSE = 5 });
    kernel_slots!(attention_io { Q = 1, K = 2, V = 3, OUT = 4, LSE = 5 });
    kernel_slots!(conv2d { X = 1, WT = 2, BIAS = 3, Y = 4, GY = 1, OTHER = 2, RES = 4, COLS4 = 4 });
    kernel_slots!(conv_gemm { A = 1, X = 2, C = 3 });
    kernel_slots!(elementwise { A = 1, B = 2, OUT = 3 });
    kernel_slots!(elementwise4 { A = 1, B = 2, OUT = 3 });
    kernel_slots!(embedding { T = 1, W = 2, OUT = 3 });
    kernel_slots!(groupnorm {
        X = 1, GAMMA = 2, BETA = 3, Y = 4, STATS = 5, GY_IN = 3, COEF = 4, X4 = 1, COEF_R = 2, GY4 = 3, OUT4 = 5
    });
    kernel_slots!(layout { A = 1, B = 2, Y = 3, A4 = 1, B4 = 2, Y4 = 3 });
    kernel_slots!(matmul { A = 1, B = 2, C = 3 });
    kernel_slots!(matmul_naive { A = 1, B = 2, C = 3 });
    kernel_slots!(matmul_narrow { A = 1, B = 2, C = 3, BIAS = 4 });
    kernel_slots!(matmul_sg { A = 1, B = 2, C = 3, BIAS = 4 });
    kernel_slots!(matmul_vec4 { A = 1, B = 2, C = 3, BIAS = 4 });
    kernel_slots!(optim { STATE = 1, W = 2, G = 3, M = 4, V = 5, E = 6 });
    kernel_slots!(random { OUT = 1, STEPS = 2 });
    kernel_slots!(reduce { X = 1, OUT = 2, X4 = 1 });
    kernel_slots!(sampler { SCHED = 1, CTR = 2, X = 3, S = 4, U = 5, V = 6, SIGMA = 7 });
    kernel_slots!(knn { S = 1, NORMS = 2, TOP_V = 3, TOP_I = 4 });
    kernel_slots!(mcmc { SCHED = 1, CTR = 2, X = 3, S = 4, E = 5, STATE = 6, CHAIN = 7, MOM = 8, XP = 9, U = 10 });
    kernel_slots!(softmax { X = 1, Y = 2 });
    kernel_slots!(present { X = 1, COUNTS = 2, DST = 3 });

    /// Every shader's slots: (file stem, slots).
    pub const ALL: &[(&str, &[(&str, u32)])] = &[
        ("attention", attention::ALL),
        ("attention_io", attention_io::ALL),
        ("conv2d", conv2d::ALL),
        ("conv_gemm", conv_gemm::ALL),
        ("elementwise", elementwise::ALL),
        ("elementwise4", elementwise4::ALL),
        ("embedding", embedding::ALL),
        ("groupnorm", groupnorm::ALL),
        ("layout", layout::ALL),
        ("matmul", matmul::ALL),
        ("matmul_naive", matmul_naive::ALL),
        ("matmul_narrow", matmul_narrow::ALL),
        ("matmul_sg", matmul_sg::ALL),
        ("matmul_vec4", matmul_vec4::ALL),
        ("knn", knn::ALL),
        ("mcmc", mcmc::ALL),
        ("optim", optim::ALL),
        ("present", present::ALL),
        ("random", random::ALL),
        ("reduce", reduce::ALL),
        ("sampler", sampler::ALL),
        ("softmax", softmax::ALL),
    ];
}
