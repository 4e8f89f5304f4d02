use crate::ops::OpError;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    /// bit 0: add bias; bit 1: accumulate into c; bit 2: the vec4 path (set by `matmul`).
    pub flags: u32,
    pub a_rs: u32,
    pub a_cs: u32,
    pub b_rs: u32,
    pub b_cs: u32,
}

impl MatmulParams {
    /// `a` is `[m,k]` (or `[k,m]` when `trans_a`), `b` is `[k,n]` (or `[n,k]` when `trans_b`).
    pub fn new(a: &[usize], b: &[usize], trans_a: bool, trans_b: bool) -> Result<Self, OpError> {
        if a.len() != 2 || b.len() != 2 {
            return Err(OpError::Shape { op: "matmul", detail: format!("operands must be 2-D, got {a:?} and {b:?}") });
        }
        let (m, ka) = if trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
        let (kb, n) = if trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
        if ka != kb {
            return Err(OpError::Shape {
                op: "matmul",
                detail: format!("inner dimensions differ: a {a:?} (trans {trans_a}) x b {b:?} (trans {trans_b})"),
            });
        }
        let (a_rs, a_cs) = if trans_a { (1, m) } else { (ka, 1) };
        let (b_rs, b_cs) = if trans_b { (1, kb) } else { (n, 1) };
        Ok(Self {
            m: m as u32,
            n: n as u32,
            k: ka as u32,
            flags: 0,
            a_rs: a_rs as u32,
            a_cs: a_cs as u32,
            b_rs: b_rs as u32,
            b_cs: b_cs as u32,
        })
    }

    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

/// `MatmulParams::flags` bits (matmul.wgsl's FLAGS).
pub mod flag {
    /// Add `bias[j]` to every row.
    pub const BIAS: u32 = 1;
    /// Add to `c` instead of overwriting it.
    pub const ACCUMULATE: u32 = 2;
    /// Untransposed operands with k and n multiples of 4: the vec4 path.
    pub const VEC4: u32 = 4;
}
