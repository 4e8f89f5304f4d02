#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReduceParams {
    pub n: u32,
    pub scale: f32,
    pub cols: u32,
    /// bit 0: accumulate (col_sum); bit 1: square the terms (sum_scaled).
    pub flags: u32,
}

/// `ReduceParams::flags` bits (reduce.wgsl's).
pub mod flag {
    /// col_sum adds into its output.
    pub const ACCUMULATE: u32 = 1;
    /// sum_scaled squares each term.
    pub const SQUARE: u32 = 2;
}
