#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReduceParams {
    pub n: u32,
    pub scale: f32,
    pub cols: u32,
    /// bit 0: accumulate (col_sum); bit 1: square the terms (sum_scaled).
    pub flags: u32,
}
