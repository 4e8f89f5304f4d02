//! What this machine needs for a GPU adapter, in one line: the fix named in
//! [`GpuError::NoAdapter`](super::GpuError::NoAdapter) when wgpu finds none, and the warning when an
//! NVIDIA GPU is present but no Vulkan driver reaches it. The decision is a pure function of [`Platform`] so tests can feed it
//! any machine.

/// The facts about a machine that decide the fix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Platform {
    /// `std::env::consts::OS`: "linux", "macos", "windows", ...
    pub os: String,
    /// The `ID` and `ID_LIKE` words of `/etc/os-release` (Linux), e.g. `["ubuntu", "debian"]`.
    pub distro: Vec<String>,
    /// An NVIDIA device node (`/dev/nvidia0`) or `nvidia-smi` exists.
    pub nvidia_device: bool,
    /// An NVIDIA Vulkan ICD manifest (`nvidia_icd.json`) exists in a Vulkan ICD folder.
    pub nvidia_vulkan_icd: bool,
}

const ICD_DIRS: [&str; 3] = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"];

impl Platform {
    /// Reads the facts of the machine this process runs on.
    pub fn detect() -> Self {
        let distro = std::fs::read_to_string("/etc/os-release").map(|t| os_release_ids(&t)).unwrap_or_default();
        let on_path = |name: &str| std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()));
        let nvidia_device = std::path::Path::new("/dev/nvidia0").exists() || on_path("nvidia-smi");
        let nvidia_vulkan_icd = ICD_DIRS.iter().any(|d| {
            std::fs::read_dir(d)
                .is_ok_and(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().to_lowercase().starts_with("nvidia")))
        });
        Self { os: std::env::consts::OS.to_string(), distro, nvidia_device, nvidia_vulkan_icd }
    }

    /// The one-line fix for "no adapter found" on this platform.
    pub fn no_adapter_fix(&self) -> String {
        if let Some(fix) = self.nvidia_fix() {
            return fix;
        }
        match self.os.as_str() {
            "macos" => "Metal needs no driver: check that this Mac supports Metal (macOS 10.13 or later)".into(),
            "windows" => "DX12 or Vulkan comes with the graphics driver: update it, or install Mesa's lavapipe for a CPU driver".into(),
            "linux" => match self.package_command() {
                Some(cmd) => format!("install Mesa's CPU Vulkan driver (lavapipe): {cmd}"),
                None => "install your distribution's Mesa Vulkan drivers (lavapipe) and the Vulkan loader".into(),
            },
            _ => "install a Vulkan driver (Mesa's lavapipe runs on the CPU)".into(),
        }
    }

    /// Where an NVIDIA GPU exists but no Vulkan ICD reaches it: the fix, else `None`.
    pub fn nvidia_fix(&self) -> Option<String> {
        (self.os == "linux" && self.nvidia_device && !self.nvidia_vulkan_icd).then(|| {
            "an NVIDIA GPU is present but no NVIDIA Vulkan driver reaches it: in a container, start it with \
             NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics (or 'all'); on a host, install the NVIDIA \
             driver's Vulkan ICD (nvidia_icd.json)"
                .into()
        })
    }

    /// The command that installs lavapipe and the loader with this distribution's package manager.
    fn package_command(&self) -> Option<&'static str> {
        let is = |id: &str| self.distro.iter().any(|d| d == id);
        if is("debian") || is("ubuntu") {
            Some("apt-get install mesa-vulkan-drivers libvulkan1")
        } else if is("fedora") || is("rhel") || is("centos") {
            Some("dnf install mesa-vulkan-drivers vulkan-loader")
        } else if is("arch") {
            Some("pacman -S vulkan-swrast vulkan-icd-loader")
        } else if is("opensuse") || is("suse") {
            Some("zypper install libvulkan_lvp libvulkan1")
        } else if is("alpine") {
            Some("apk add mesa-vulkan-swrast vulkan-loader")
        } else {
            None
        }
    }
}

/// The words of `ID=` and `ID_LIKE=` in an os-release file, unquoted and lower-case.
pub fn os_release_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("ID=").or_else(|| l.strip_prefix("ID_LIKE=")))
        .flat_map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
        .collect()
}

/// Gives the process a private `XDG_RUNTIME_DIR` when none is set, so Mesa's window-system probes do not
/// print `XDG_RUNTIME_DIR is invalid or not set` on a headless machine. It sets an environment variable,
/// so like [`super::lavapipe::choose_width`] it must run while the process has one thread, before
/// the first [`super::GpuContext`]: the `facegpu` binary calls it first thing in `main`.
pub fn ensure_runtime_dir() {
    #[cfg(unix)]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none_or(|v| v.is_empty()) {
        use std::os::unix::fs::PermissionsExt;
        let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("facegpu-xdg-{uid}"));
        if std::fs::create_dir_all(&dir).is_ok() && std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).is_ok() {
            std::env::set_var("XDG_RUNTIME_DIR", dir);
        }
    }
}

/// facegpu's folder for what it keeps between runs (llvmpipe's measured width, compiled pipelines):
/// `$FACEGPU_CACHE_DIR`, else `$XDG_CACHE_HOME/facegpu`, else `~/.cache/facegpu`.
pub fn cache_dir() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("FACEGPU_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("facegpu")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/facegpu")))
}
