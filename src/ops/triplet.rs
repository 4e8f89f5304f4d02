use crate::ops::OpError;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TripletParams {
    pub k: u32,
    pub d: u32,
    pub alpha: f32,
    pub scale: f32,
}

impl TripletParams {
    pub fn new(e: &[usize], alpha: f32, weight: f32) -> Result<Self, OpError> {
        match e {
            [rows, d] if rows % 3 == 0 && *rows > 0 => {
                Ok(Self { k: (rows / 3) as u32, d: *d as u32, alpha, scale: weight / (rows / 3) as f32 })
            }
            _ => Err(OpError::Shape {
                op: "triplet_loss",
                detail: format!("embeddings {e:?} must be [3k, d]: (anchor, positive, negative) rows"),
            }),
        }
    }
}
