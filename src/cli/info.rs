//! `facegpu info`.

use super::common::*;
use super::BoxError;

#[derive(clap::Args)]
pub(crate) struct InfoCmd {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn info(args: InfoCmd) -> Result<(), BoxError> {
    let InfoCmd { json } = args;
    let ctx = gpu()?;
    let s = ctx.summary();
    let (device, why) = facegpu::models::Device::choose(None, &ctx);
    let simd = format!("{:?} x {} threads", facegpu::simd::gemm::Isa::detect(), facegpu::simd::threads());
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["inference_device"] = serde_json::to_value(device)?;
        v["inference_device_reason"] = why.into();
        v["cpu_backend"] = simd.into();
        v["llvmpipe_width"] = facegpu::gpu::lavapipe::width_reason().into();
        println!("{v}");
    } else {
        println!("inference: {device:?} ({why}); CPU backend: {simd}");
        println!("adapter: {}\nbackend: {}\ntype: {}\ndriver: {} {}", s.name, s.backend, s.device_type, s.driver, s.driver_info);
        if let Some(why) = facegpu::gpu::lavapipe::width_reason().filter(|_| ctx.is_cpu_driver()) {
            println!("llvmpipe vector width: {why}");
        }
        println!("max storage buffer binding: {} bytes", s.max_storage_buffer_binding_size);
        println!("max buffer: {} bytes", s.max_buffer_size);
        println!("max workgroups per dimension: {}", s.max_compute_workgroups_per_dimension);
        println!("max invocations per workgroup: {}", s.max_compute_invocations_per_workgroup);
        println!("max storage buffers per stage: {}", s.max_storage_buffers_per_shader_stage);
        println!("subgroup sizes: {}..{}", s.subgroup_min_size, s.subgroup_max_size);
        println!("kernel shape: {:?} (conv2d, its gradients and matmul; FACEGPU_KERNELS=gpu|cpu-driver forces one)", s.kernel_shape);
        println!(
            "f16: {} in shaders; inference in f16 {} (FACEGPU_F16=1 with the GPU kernel shape)",
            if s.shader_f16 { "available" } else { "not available" },
            if s.f16_inference { "on" } else { "off" }
        );
        match s.kernel_lanes {
            Some(lanes) => println!("kernel lanes: {lanes} (subgroup operations)"),
            None => println!("kernel lanes: none (no subgroup operations)"),
        }
    }
    Ok(())
}
