//! The `facegpu` binary: the command line lives in `cli/`; the work in the library.

mod cli;

use clap::Parser;

fn main() {
    // Before anything else runs: they set environment variables for the driver.
    facegpu::gpu::ensure_runtime_dir();
    facegpu::gpu::lavapipe::choose_width();
    if let Err(e) = cli::run(cli::Cli::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
