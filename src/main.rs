//! The `facegpu` command line: argument parsing only; the work lives in the library.

use clap::{Parser, Subcommand};
use facegpu::gpu::GpuContext;

#[derive(Parser)]
#[command(name = "facegpu", version, about = "FaceNet face recognition on hand-written WGSL kernels (wgpu)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the chosen GPU adapter, backend, driver and limits.
    Info {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks with medians over repeated runs (GPU sync included).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// conv2d at Inception-ResNet-v1 layer shapes and a 1024^3 matmul: ms and GFLOP/s.
    Kernels {
        /// Batch size of the conv2d shapes.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Timed repetitions per kernel (after one warm-up); the median is reported.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Info { json } => {
            let ctx = GpuContext::new()?;
            let s = ctx.summary();
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!("adapter: {}\nbackend: {}\ntype: {}\ndriver: {} {}", s.name, s.backend, s.device_type, s.driver, s.driver_info);
                println!("max storage buffer binding: {} bytes", s.max_storage_buffer_binding_size);
                println!("max buffer: {} bytes", s.max_buffer_size);
                println!("max workgroups per dimension: {}", s.max_compute_workgroups_per_dimension);
                println!("max invocations per workgroup: {}", s.max_compute_invocations_per_workgroup);
                println!("max storage buffers per stage: {}", s.max_storage_buffers_per_shader_stage);
            }
        }
        Command::Bench(BenchCommand::Kernels { batch_size, reps, json }) => {
            let ctx = GpuContext::new()?;
            let rows = facegpu::bench::kernels(&ctx, batch_size, reps)?;
            let adapter = ctx.adapter_name();
            if json {
                println!("{}", serde_json::json!({ "adapter": adapter, "batch_size": batch_size, "kernels": rows }));
            } else {
                println!("adapter: {adapter}  (batch {batch_size}, median of {reps})");
                println!("{:<42} {:>10} {:>10}  shape", "kernel", "ms", "GFLOP/s");
                for r in &rows {
                    println!("{:<42} {:>10.2} {:>10.2}  {}", r.name, r.ms, r.gflops, r.shape);
                }
                let convs: Vec<f64> = rows.iter().filter(|r| r.name.starts_with("conv2d")).map(|r| r.gflops).collect();
                println!("conv2d mean GFLOP/s: {:.2}", convs.iter().sum::<f64>() / convs.len().max(1) as f64);
            }
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
