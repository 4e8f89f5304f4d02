use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{GpuContext, GpuError};

macro_rules! shaders {
    ($($variant:ident => $file:literal $(+ $shared:literal)*),* $(,)?) => {
        /// Every WGSL source of the crate, entering through one `include_str!` table. `+ "x.wgsl"` appends
        /// files of declarations shared by several shaders (after the shader's own, so that its line numbers
        /// in errors stay right; WGSL declarations may come in any order).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Shader { $($variant),* }

        impl Shader {
            pub const ALL: &'static [Shader] = &[$(Shader::$variant),*];
            pub fn file(self) -> &'static str {
                match self { $(Shader::$variant => $file),* }
            }
            pub fn source(self) -> &'static str {
                match self {
                    $(Shader::$variant => concat!(
                        include_str!(concat!("../../shaders/", $file))
                        $(, "\n", include_str!(concat!("../../shaders/", $shared)))*
                    )),*
                }
            }
        }
    };
}

shaders! {
    Conv2d => "conv2d.wgsl" + "conv2d_common.wgsl" + "tile.wgsl",
    Conv2dMtcnn => "conv2d_mtcnn.wgsl" + "conv2d_common.wgsl" + "tile.wgsl",
    Conv2dEpilogueBackward => "conv2d_epilogue_backward.wgsl" + "conv2d_backward_common.wgsl" + "tile.wgsl" + "index.wgsl",
    Conv2dGradInput => "conv2d_grad_input.wgsl" + "conv2d_backward_common.wgsl" + "tile.wgsl" + "index.wgsl",
    Conv2dGradWeight => "conv2d_grad_weight.wgsl" + "conv2d_backward_common.wgsl" + "tile.wgsl" + "index.wgsl",
    Matmul => "matmul.wgsl" + "matmul_common.wgsl",
    MatmulTiled => "matmul_tiled.wgsl" + "matmul_common.wgsl" + "gemm_tiles.wgsl" + "stage_f32.wgsl",
    Conv2dTiled => "conv2d_tiled.wgsl" + "conv2d_common.wgsl" + "tile.wgsl" + "gemm_tiles.wgsl" + "stage_f32.wgsl" + "conv2d_weights_f32.wgsl",
    Conv2dTiledF16 => "stage_f16.wgsl" + "conv2d_tiled.wgsl" + "conv2d_common.wgsl" + "tile.wgsl" + "gemm_tiles.wgsl" + "conv2d_weights_f16.wgsl",
    Conv2dBackwardTiled => "conv2d_backward_tiled.wgsl" + "conv2d_backward_common.wgsl" + "gemm_tiles.wgsl" + "stage_f32.wgsl",
    BatchNorm => "batch_norm.wgsl" + "row_blocks.wgsl",
    BatchNormStats => "batch_norm_stats.wgsl" + "row_blocks.wgsl" + "workgroup_reduce.wgsl",
    BatchNormBackward => "batch_norm_backward.wgsl" + "row_blocks.wgsl" + "workgroup_reduce.wgsl",
    Pool => "pool.wgsl",
    Softmax => "softmax.wgsl",
    CenterLoss => "center_loss.wgsl",
    Elementwise => "elementwise.wgsl",
    Concat => "concat.wgsl",
    L2Normalize => "l2_normalize.wgsl",
    Reduce => "reduce.wgsl",
    Image => "image.wgsl" + "index.wgsl",
    Optimizer => "optimizer.wgsl" + "index.wgsl",
    Triplet => "triplet.wgsl",
}

/// The WGSL a device compiles: a line ending in `// subgroups` is kept only where subgroup operations are
/// used, a line ending in `// no subgroups` only where they are not (WGSL has no conditional compilation,
/// and a module that names a subgroup builtin does not compile on a device without the feature).
pub fn select_lines(source: &str, subgroups: bool) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        let keep = if line.trim_end().ends_with("// no subgroups") {
            !subgroups
        } else if line.trim_end().ends_with("// subgroups") {
            subgroups
        } else {
            true
        };
        if keep {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Values of a pipeline's overridable constants (WGSL `override` declarations), by name.
pub type Constants<'c> = &'c [(&'static str, f64)];

/// A pipeline's cache key: its shader, entry point and the bits of its constants' values.
type PipelineKey = (Shader, &'static str, Vec<(&'static str, u64)>);

/// Compiled pipelines keyed by (shader, entry point, constants); each is compiled once per context.
#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<Shader, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
}

/// The driver's compiled pipelines kept on disk between runs (wgpu's `PipelineCache`), where the adapter
/// supports it: `<cache_dir>/pipelines/<wgpu's key for the adapter>`, read when the context is made and
/// written when it is dropped if it compiled new pipelines. `FACEGPU_PIPELINE_CACHE=0` turns it off.
pub(crate) struct DiskCache {
    pub(crate) cache: wgpu::PipelineCache,
    path: PathBuf,
    /// Pipelines compiled through the cache since it was read.
    pub(crate) added: AtomicUsize,
}

impl DiskCache {
    /// The feature `device` must be requested with for [`DiskCache::open`], if the adapter has it.
    pub(crate) fn feature(adapter: &wgpu::Adapter) -> wgpu::Features {
        let wanted = !std::env::var("FACEGPU_PIPELINE_CACHE").is_ok_and(|v| v == "0")
            && wgpu::util::pipeline_cache_key(&adapter.get_info()).is_some()
            && super::cache_dir().is_some();
        adapter.features() & wgpu::Features::PIPELINE_CACHE & if wanted { wgpu::Features::all() } else { wgpu::Features::empty() }
    }

    pub(crate) fn open(adapter: &wgpu::Adapter, device: &wgpu::Device) -> Option<Self> {
        if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
            return None;
        }
        let path = super::cache_dir()?.join("pipelines").join(wgpu::util::pipeline_cache_key(&adapter.get_info())?);
        let data = std::fs::read(&path).ok();
        // SAFETY: the data is what `get_data` wrote for an adapter of the same key; `fallback` makes
        // the driver start empty instead of failing where it rejects the data (another driver version),
        // and Vulkan checks the header's vendor, device and cache UUID before using it.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("facegpu pipelines"),
                data: data.as_deref(),
                fallback: true,
            })
        };
        Some(Self { cache, path, added: AtomicUsize::new(0) })
    }

    /// Writes the cache if pipelines were added (a new file renamed over the old one, so concurrent runs
    /// and failed writes never leave a torn file); best effort, as the cache only saves time.
    pub(crate) fn save(&self) {
        if self.added.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(data) = self.cache.get_data() else { return };
        let tmp = self.path.with_extension(format!("tmp{}", std::process::id()));
        let written = self.path.parent().is_some_and(|d| std::fs::create_dir_all(d).is_ok()) && std::fs::write(&tmp, data).is_ok();
        if !(written && std::fs::rename(&tmp, &self.path).is_ok()) {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

impl GpuContext {
    /// The compiled pipeline of `shader::entry`, compiled on first use and cached.
    pub fn pipeline(&self, shader: Shader, entry: &'static str) -> Result<Arc<wgpu::ComputePipeline>, GpuError> {
        self.pipeline_with(shader, entry, &[])
    }

    /// The pipeline of `shader::entry` with its overridable constants set to `constants` (the others keep
    /// their defaults), compiled on first use and cached. Kernels specialize this way rather than branch on
    /// a uniform: CPU drivers run both sides of every branch under a lane mask, so a feature a dispatch
    /// does not use costs as much as one it does unless it is compiled out.
    pub fn pipeline_with(&self, shader: Shader, entry: &'static str, constants: Constants) -> Result<Arc<wgpu::ComputePipeline>, GpuError> {
        let key: PipelineKey = (shader, entry, constants.iter().map(|&(name, v)| (name, v.to_bits())).collect());
        if let Some(p) = self.pipelines.pipelines.lock().expect("pipeline cache poisoned").get(&key) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = {
            let mut modules = self.pipelines.modules.lock().expect("pipeline cache poisoned");
            modules
                .entry(shader)
                .or_insert_with(|| {
                    Arc::new(self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(shader.file()),
                        source: wgpu::ShaderSource::Wgsl(select_lines(shader.source(), self.subgroup_lanes.is_some()).into()),
                    }))
                })
                .clone()
        };
        let label = format!("{}::{entry}", shader.file());
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
            cache: self.disk_cache.as_ref().map(|d| &d.cache),
        });
        if let Some(d) = &self.disk_cache {
            d.added.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(err) = pollster::block_on(scope.pop()) {
            // Drop the failed module so a later call reports the same error instead of a stale handle.
            self.pipelines.modules.lock().expect("pipeline cache poisoned").remove(&shader);
            return Err(GpuError::ShaderValidation { shader: shader.file(), entry, message: err.to_string() });
        }
        let pipeline = Arc::new(pipeline);
        self.pipelines.pipelines.lock().expect("pipeline cache poisoned").insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// How many pipelines have been compiled so far (for tests of the cache).
    pub fn compiled_pipelines(&self) -> usize {
        self.pipelines.pipelines.lock().expect("pipeline cache poisoned").len()
    }
}
