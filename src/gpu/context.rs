use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::pipeline::{DiskCache, PipelineCache};
use super::{GpuError, Platform};

/// What `facegpu info` prints about the chosen adapter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_storage_buffers_per_shader_stage: u32,
    /// The adapter's subgroup sizes (0 where it has no subgroups).
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    /// Lanes the kernels share operand loads across, or `None` where they use no subgroup operations.
    pub kernel_lanes: Option<u32>,
    /// The shape of kernels recorded where two exist (`FACEGPU_KERNELS`, else by adapter type).
    pub kernel_shape: KernelShape,
    /// Whether the adapter offers f16 in shaders (`SHADER_F16`).
    pub shader_f16: bool,
    /// Whether inference computes in f16 (see [`GpuContext::f16`]).
    pub f16_inference: bool,
}

/// The device, queue and caches every kernel call goes through. Create it once and pass it in.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::Adapter,
    pub(crate) pipelines: PipelineCache,
    /// The driver's compiled pipelines on disk, where the adapter supports it.
    pub(crate) disk_cache: Option<DiskCache>,
    /// Uniform buffer holding every dispatch's `Params` of one submission; grown, never shrunk.
    pub(crate) params: Mutex<Option<wgpu::Buffer>>,
    /// A 16-byte storage buffer bound where an optional operand is absent.
    pub(crate) dummy: wgpu::Buffer,
    /// A second one for absent writable operands: one buffer may not be bound read-only and writable in
    /// the same dispatch.
    pub(crate) dummy_rw: wgpu::Buffer,
    pub(crate) uniform_align: u64,
    /// Lanes that share one weight fetch through subgroup shuffles (the adapter's largest subgroup), or
    /// `None` where kernels load every operand themselves. See [`GpuContext::subgroup_lanes`].
    pub(crate) subgroup_lanes: Option<u32>,
    /// Which shape of kernels to record where both exist (see [`KernelShape`]).
    kernel_shape: KernelShape,
    /// Whether inference may stage and multiply in f16 (see [`GpuContext::f16`]).
    f16: bool,
    /// Milliseconds and calls per kernel entry point when `FACEGPU_PROFILE=1` (each dispatch then runs
    /// alone and is waited for; see [`GpuContext::profile_table`]).
    pub(crate) profile: Option<Mutex<std::collections::BTreeMap<String, (f64, u64)>>>,
    /// Split-K partial sums of conv2d (and the batch-norm kernels' block sums), grown as needed and reused:
    /// a submission's dispatches run in order (wgpu puts a barrier between a write and the next use), so
    /// one region serves every layer.
    pub(crate) splitk: Mutex<Option<wgpu::Buffer>>,
    /// The texture the convs, their gradients and max_pool read their input through (see
    /// [`GpuContext::staging_texture`]), grown as needed and reused like `splitk`: each kernel's copy into
    /// it comes right before the kernel in the same command buffer.
    pub(crate) staging: Mutex<Option<(wgpu::Texture, wgpu::TextureView)>>,
    /// A 1x1 texture bound where a kernel's texture operand is absent (a conv whose input channels are
    /// not a multiple of 4 reads its input from the buffer).
    pub(crate) dummy_texture: wgpu::TextureView,
    /// log2 of the staging texture's width in texels.
    pub(crate) texture_row_shift: u32,
    /// The first GPU error that no error scope caught (a buffer that could not be made, say), kept for
    /// the next [`GpuContext::check`] instead of wgpu's default of panicking.
    uncaptured: Arc<Mutex<Option<String>>>,
    /// Set by the device-lost callback, with its message.
    lost: Arc<(AtomicBool, Mutex<String>)>,
}

/// log2 of the staging texture's widest row (16384 texels), lower where the adapter's textures are
/// narrower.
const STAGING_ROW_SHIFT: u32 = 14;

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// The subgroup size kernels can rely on, if subgroups are usable (see [`GpuContext::subgroup_lanes`]).
fn subgroup_lanes(adapter: &wgpu::Adapter) -> Option<u32> {
    let info = adapter.get_info();
    subgroup_lanes_for(adapter.features().contains(wgpu::Features::SUBGROUP), info.subgroup_min_size, info.subgroup_max_size)
}

/// Subgroup sizes the kernels' shared loads have been tested with (llvmpipe at 256, 512 and 1024 bits in
/// `./run test`): any other (4, 64, a range whose smallest is below 8) takes the no-subgroup path.
pub const TESTED_SUBGROUP_SIZES: [u32; 3] = [8, 16, 32];

/// The lanes kernels share loads across for an adapter with `subgroups` of `min..=max` lanes, or `None`.
pub fn subgroup_lanes_for(subgroups: bool, min: u32, max: u32) -> Option<u32> {
    (subgroups && min >= 8 && TESTED_SUBGROUP_SIZES.contains(&max)).then_some(max)
}

/// Kernels exist in two shapes where it matters: register tiles per invocation, loads shared across
/// subgroups and operands through textures, for CPU drivers (each invocation a SIMD lane); and
/// workgroup tiles staged in shared memory with a few outputs per invocation, for GPUs (no register
/// spills, any subgroup size). So far matmul has both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelShape {
    CpuDriver,
    Gpu,
}

impl KernelShape {
    /// `FACEGPU_KERNELS=gpu|cpu-driver`, else by the adapter's type.
    fn choose(adapter: &wgpu::Adapter) -> Self {
        match std::env::var("FACEGPU_KERNELS").ok().as_deref() {
            Some("gpu") => KernelShape::Gpu,
            Some("cpu-driver") => KernelShape::CpuDriver,
            _ if adapter.get_info().device_type == wgpu::DeviceType::Cpu => KernelShape::CpuDriver,
            _ => KernelShape::Gpu,
        }
    }
}

impl GpuContext {
    /// The kernel shape this context records by default (see [`KernelShape`]).
    pub fn kernel_shape(&self) -> KernelShape {
        self.kernel_shape
    }

    /// Whether inference models load their conv weights as f16, which makes their convs (GPU kernel
    /// shape) stage operands and multiply in f16, accumulating in f32: `FACEGPU_F16=1` on an adapter
    /// with `SHADER_F16`. Off by default: facenet's embeddings are f32 and the parity tests hold them to
    /// 1e-5. Training never uses it.
    pub fn f16(&self) -> bool {
        self.f16 && self.kernel_shape == KernelShape::Gpu
    }

    /// This context with f16 inference on or off (on only where the adapter has `SHADER_F16`).
    pub fn with_f16(mut self, on: bool) -> Self {
        self.f16 = on && self.adapter.features().contains(wgpu::Features::SHADER_F16);
        self
    }

    /// This context recording kernels of `shape` where two exist, whatever the adapter (the tests run the
    /// GPU shape on CPU drivers for correctness; `FACEGPU_KERNELS` does the same for a whole run).
    pub fn with_kernel_shape(mut self, shape: KernelShape) -> Self {
        self.kernel_shape = shape;
        self
    }

    /// Picks a discrete GPU, then an integrated one, then anything (lavapipe included).
    /// `FACEGPU_ADAPTER` (substring of the adapter name, case-insensitive) and `WGPU_BACKEND` override it.
    pub fn new() -> Result<Self, GpuError> {
        Self::with_subgroups(!std::env::var("FACEGPU_SUBGROUPS").is_ok_and(|v| v == "0"))
    }

    /// Like [`GpuContext::new`], with subgroup operations used only if `allow` and the adapter has them
    /// (the tests run the kernels both ways).
    pub fn with_subgroups(allow: bool) -> Result<Self, GpuError> {
        pollster::block_on(Self::new_async(allow))
    }

    async fn new_async(allow_subgroups: bool) -> Result<Self, GpuError> {
        let adapter = pick_adapter().await?;
        let limits = adapter.limits();
        let subgroup_lanes = subgroup_lanes(&adapter).filter(|_| allow_subgroups);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("facegpu"),
                required_features: DiskCache::feature(&adapter)
                    | (adapter.features() & wgpu::Features::SHADER_F16)
                    | if subgroup_lanes.is_some() { wgpu::Features::SUBGROUP } else { wgpu::Features::empty() },
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|source| GpuError::RequestDevice { adapter: adapter.get_info().name, source })?;
        let (uncaptured, lost) = watch_errors(&device);
        let storage = |label| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 16,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        };
        let (dummy, dummy_rw) = (storage("absent operand"), storage("absent writable operand"));
        let format = wgpu::TextureFormat::Rgba32Float;
        if !adapter.get_texture_format_features(format).flags.contains(wgpu::TextureFormatFeatureFlags::STORAGE_READ_ONLY) {
            return Err(GpuError::Unsupported {
                adapter: adapter.get_info().name,
                what: "read-only rgba32float storage textures (conv2d reads its input through one)".into(),
            });
        }
        let dummy_texture = device
            .create_texture(&wgpu::TextureDescriptor {
                label: Some("absent texture operand"),
                size: wgpu::Extent3d { width: 1, height: 1, depth_or_array_layers: 1 },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage: wgpu::TextureUsages::STORAGE_BINDING,
                view_formats: &[],
            })
            .create_view(&Default::default());
        let disk_cache = DiskCache::open(&adapter, &device);
        let kernel_shape = KernelShape::choose(&adapter);
        let f16 = std::env::var("FACEGPU_F16").is_ok_and(|v| v == "1") && adapter.features().contains(wgpu::Features::SHADER_F16);
        Ok(Self {
            texture_row_shift: STAGING_ROW_SHIFT.min(limits.max_texture_dimension_2d.ilog2()),
            staging: Mutex::new(None),
            dummy_texture,
            uniform_align: limits.min_uniform_buffer_offset_alignment as u64,
            device,
            queue,
            adapter,
            pipelines: PipelineCache::default(),
            disk_cache,
            params: Mutex::new(None),
            dummy,
            dummy_rw,
            subgroup_lanes,
            kernel_shape,
            f16,
            profile: std::env::var("FACEGPU_PROFILE").is_ok_and(|v| v == "1").then(Default::default),
            splitk: Mutex::new(None),
            uncaptured,
            lost,
        })
    }

    /// The error that ended work since the last check: the device lost, or a GPU error no scope caught
    /// (taken, so the next check starts clean). A lost device stays lost.
    pub fn check(&self) -> Result<(), GpuError> {
        if self.lost.0.load(Ordering::SeqCst) {
            return Err(GpuError::DeviceLost(self.lost.1.lock().unwrap_or_else(|p| p.into_inner()).clone()));
        }
        match self.uncaptured.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(message) => Err(GpuError::Submit(message)),
            None => Ok(()),
        }
    }

    /// Destroys the device, as a driver reset would: every later use fails with
    /// [`GpuError::DeviceLost`]. For tests of recovery.
    pub fn simulate_device_loss(&self) {
        self.device.destroy();
        // The callback runs on a later poll; make the loss visible at once.
        *self.lost.1.lock().unwrap_or_else(|p| p.into_inner()) = "destroyed by simulate_device_loss".into();
        self.lost.0.store(true, Ordering::SeqCst);
    }

    /// A storage buffer of at least `bytes` for conv2d's split-K partial sums (see `splitk`).
    pub(crate) fn splitk_scratch(&self, bytes: u64) -> wgpu::Buffer {
        let mut guard = self.splitk.lock().unwrap_or_else(|e| e.into_inner());
        if guard.as_ref().is_none_or(|b| b.size() < bytes) {
            *guard = Some(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("conv2d split-K partial sums"),
                size: bytes.next_power_of_two().max(16),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            }));
        }
        guard.as_ref().expect("just made").clone()
    }

    /// A texture of at least `texels` rgba32float texels, `1 << texture_row_shift` to a row, that a
    /// kernel reads a tensor through (texel `i` at `(i & (width - 1), i >> shift)`), and the shift.
    ///
    /// On llvmpipe a load from a read-only storage texture costs about half a storage-buffer load (a
    /// branch-free gather instead of a loop over the lanes with a bounds check per lane and component), and
    /// conv2d's input loads are half its time (docs/KERNELS.md).
    pub(crate) fn staging_texture(&self, texels: u64) -> Result<(wgpu::Texture, wgpu::TextureView, u32), GpuError> {
        let rows = self.texture_rows("staging texture", texels)?;
        let mut guard = self.staging.lock().unwrap_or_else(|e| e.into_inner());
        if guard.as_ref().is_none_or(|(t, _)| (t.height() as u64) < rows) {
            *guard = Some(self.row_texture("kernel input staging", wgpu::TextureFormat::Rgba32Float, rows));
        }
        let (texture, view) = guard.as_ref().expect("just made");
        Ok((texture.clone(), view.clone(), self.texture_row_shift))
    }

    /// Rows of `1 << texture_row_shift` texels that `texels` texels fill (at least one), refused for `op`
    /// above the adapter's largest texture.
    pub(crate) fn texture_rows(&self, op: &'static str, texels: u64) -> Result<u64, GpuError> {
        let width = 1u64 << self.texture_row_shift;
        let rows = texels.div_ceil(width).max(1);
        let max = self.device.limits().max_texture_dimension_2d as u64;
        if rows > max {
            return Err(GpuError::Invalid {
                op,
                detail: format!("{texels} texels need {rows} rows of {width}, above the adapter's {max}"),
            });
        }
        Ok(rows)
    }

    /// A storage texture of `format`, `1 << texture_row_shift` texels wide and at least `rows` rows (rounded
    /// up to 16 so that growing tensors reuse it), copied into and read by kernels in the row layout
    /// (texel `i` at `(i & (width - 1), i >> shift)`).
    pub(crate) fn row_texture(&self, label: &str, format: wgpu::TextureFormat, rows: u64) -> (wgpu::Texture, wgpu::TextureView) {
        let max = self.device.limits().max_texture_dimension_2d as u64;
        let texture = self.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d {
                width: 1 << self.texture_row_shift,
                height: rows.next_multiple_of(16).min(max) as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&Default::default());
        (texture, view)
    }

    /// Bytes of the scratch shared by all kernels: split-K partial sums and the staging texture.
    pub fn scratch_bytes(&self) -> usize {
        let splitk = self.splitk.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |b| b.size());
        let staging =
            self.staging.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |(t, _)| t.width() as u64 * t.height() as u64 * 16);
        (splitk + staging) as usize
    }

    /// With `FACEGPU_PROFILE=1`: forgets the times so far (a benchmark's warm-up, whose first dispatches
    /// of each pipeline include the driver's compilation).
    pub fn reset_profile(&self) {
        if let Some(p) = &self.profile {
            p.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// With `FACEGPU_PROFILE=1`: the time spent in each kernel so far, slowest first, as a table.
    pub fn profile_table(&self) -> Option<String> {
        let profile = self.profile.as_ref()?.lock().ok()?;
        let total: f64 = profile.values().map(|v| v.0).sum();
        let mut rows: Vec<_> = profile.iter().collect();
        rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
        let mut out = format!("kernel time with FACEGPU_PROFILE=1 (each dispatch alone): {total:.1} ms\n");
        for (name, (ms, calls)) in rows {
            out += &format!("{ms:10.1} ms {:5.1}% {calls:7} calls  {name}\n", 100.0 * ms / total.max(1e-9));
        }
        Some(out)
    }

    /// Invocations per subgroup when the kernels share operand loads through subgroup shuffles.
    ///
    /// On llvmpipe a storage-buffer load is a loop over the 8 lanes with a branch per lane and component,
    /// so one lane loading a weight and the others reading it by shuffle is cheaper than each lane loading
    /// it. Kernels map the lanes of one subgroup to the same output channels; they need every subgroup to
    /// hold 8 to 64 invocations. `FACEGPU_SUBGROUPS=0` turns this off (the kernels then load everything).
    pub fn subgroup_lanes(&self) -> Option<u32> {
        self.subgroup_lanes
    }

    /// The fewest lanes a subgroup may have, where the kernels use subgroups.
    pub fn subgroup_min_lanes(&self) -> Option<u32> {
        self.subgroup_lanes.map(|_| self.adapter.get_info().subgroup_min_size)
    }

    pub fn summary(&self) -> AdapterSummary {
        let info = self.adapter.get_info();
        let l = self.device.limits();
        AdapterSummary {
            name: info.name,
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver,
            driver_info: info.driver_info,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_buffer_size: l.max_buffer_size,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
            kernel_lanes: self.subgroup_lanes,
            kernel_shape: self.kernel_shape,
            shader_f16: self.adapter.features().contains(wgpu::Features::SHADER_F16),
            f16_inference: self.f16(),
        }
    }

    /// The largest buffer one binding may use, in bytes: the storage-binding and buffer-size limits.
    /// Every pass whose buffers grow with its input is cut to fit it.
    pub fn binding_limit(&self) -> u64 {
        let l = self.device.limits();
        l.max_storage_buffer_binding_size.min(l.max_buffer_size)
    }

    /// Whether the adapter is a CPU driver (lavapipe/llvmpipe, SwiftShader, WARP).
    pub fn is_cpu_driver(&self) -> bool {
        self.adapter.get_info().device_type == wgpu::DeviceType::Cpu
    }

    /// One line for the user when the adapter is a CPU driver: that it is, and, where an NVIDIA GPU sits
    /// unused because no Vulkan driver reaches it, how to reach it. `None` on a real GPU.
    pub fn cpu_driver_notice(&self) -> Option<String> {
        self.is_cpu_driver().then(|| {
            let name = self.adapter_name();
            match Platform::detect().nvidia_fix() {
                Some(fix) => format!("running on the CPU driver '{name}': {fix}"),
                None => format!("running on the CPU driver '{name}' (no hardware GPU adapter found)"),
            }
        })
    }

    /// The adapter's name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub fn adapter_name(&self) -> String {
        self.adapter.get_info().name
    }

    /// Blocks until all submitted work has finished.
    pub fn sync(&self) -> Result<(), GpuError> {
        self.check()?;
        self.device.poll(wgpu::PollType::wait_indefinitely()).map(|_| ()).map_err(|e| GpuError::Submit(e.to_string()))?;
        self.check()
    }
}

/// The adapter facegpu runs on: a discrete GPU, then an integrated one, then anything (CPU drivers
/// included), Vulkan first among equals; `FACEGPU_ADAPTER` filters by name.
async fn pick_adapter() -> Result<wgpu::Adapter, GpuError> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let instance = wgpu::Instance::new(desc);
    let mut adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
    let wanted = std::env::var("FACEGPU_ADAPTER").ok().filter(|s| !s.is_empty());
    if let Some(w) = &wanted {
        let w = w.to_lowercase();
        adapters.retain(|a| a.get_info().name.to_lowercase().contains(&w));
    }
    adapters.sort_by_key(|a| (rank(a.get_info().device_type), a.get_info().backend != wgpu::Backend::Vulkan));
    adapters.into_iter().next().ok_or_else(|| GpuError::NoAdapter {
        filter: wanted.map(|w| format!(" matching FACEGPU_ADAPTER='{w}'")).unwrap_or_default(),
        fix: Platform::detect().no_adapter_fix(),
    })
}

/// The first uncaptured validation error, and whether (and why) the device was lost.
type ErrorSlots = (Arc<Mutex<Option<String>>>, Arc<(AtomicBool, Mutex<String>)>);

/// Catches the device's uncaptured errors and its loss, for `GpuContext::check` to report.
fn watch_errors(device: &wgpu::Device) -> ErrorSlots {
    let uncaptured = Arc::new(Mutex::new(None));
    let slot = uncaptured.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        let mut first = slot.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| e.to_string());
    }));
    let lost = Arc::new((AtomicBool::new(false), Mutex::new(String::new())));
    let flag = lost.clone();
    device.set_device_lost_callback(move |reason, message| {
        *flag.1.lock().unwrap_or_else(|p| p.into_inner()) = format!("{reason:?}: {message}");
        flag.0.store(true, Ordering::SeqCst);
    });
    (uncaptured, lost)
}

impl Drop for GpuContext {
    /// Keeps the pipelines compiled in this context for the next run (see `DiskCache`).
    fn drop(&mut self) {
        if let Some(d) = &self.disk_cache {
            d.save();
        }
    }
}
