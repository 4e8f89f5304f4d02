use crate::ops::OpError;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CenterLossParams {
    pub b: u32,
    pub d: u32,
    pub classes: u32,
    pub alfa: f32,
}

impl CenterLossParams {
    pub fn new(x: &[usize], centers: &[usize], alfa: f32) -> Result<Self, OpError> {
        if x.len() != 2 || centers.len() != 2 || x[1] != centers[1] {
            return Err(OpError::Shape {
                op: "center_loss",
                detail: format!("features {x:?} and centers {centers:?} must be [b, d] and [classes, d]"),
            });
        }
        Ok(Self { b: x[0] as u32, d: x[1] as u32, classes: centers[0] as u32, alfa })
    }
}
