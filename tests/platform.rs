//! The one-line fix printed when no adapter is found, decided from a fake machine's facts.

use facegpu::gpu::{os_release_ids, Platform};

fn linux(distro: &str) -> Platform {
    Platform { os: "linux".into(), distro: os_release_ids(distro), ..Default::default() }
}

#[test]
fn os_release_ids_reads_id_and_id_like_unquoted() {
    let text = "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=\"debian\"\nVERSION_ID=\"24.04\"\n";
    assert_eq!(os_release_ids(text), ["ubuntu", "debian"]);
    assert_eq!(os_release_ids("ID=\"rhel\"\nID_LIKE='centos fedora'\n"), ["rhel", "centos", "fedora"]);
}

#[test]
fn no_adapter_fix_names_each_distributions_package() {
    let cases = [
        ("ID=debian\n", "apt-get install mesa-vulkan-drivers libvulkan1"),
        ("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n", "apt-get install mesa-vulkan-drivers"),
        ("ID=fedora\n", "dnf install mesa-vulkan-drivers vulkan-loader"),
        ("ID=rocky\nID_LIKE=\"rhel centos fedora\"\n", "dnf install"),
        ("ID=arch\n", "pacman -S vulkan-swrast"),
        ("ID=alpine\n", "apk add mesa-vulkan-swrast"),
        ("ID=nixos\n", "your distribution's Mesa Vulkan drivers"),
    ];
    for (os_release, want) in cases {
        let fix = linux(os_release).no_adapter_fix();
        assert!(fix.contains(want), "{os_release:?}: {fix}");
        assert!(!fix.contains("gl"), "suggests a backend the binary lacks: {fix}");
    }
}

#[test]
fn an_nvidia_gpu_without_a_vulkan_icd_gets_the_container_setting() {
    let mut p = linux("ID=ubuntu\n");
    p.nvidia_device = true;
    let fix = p.no_adapter_fix();
    assert!(fix.contains("NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics"), "{fix}");
    assert_eq!(p.nvidia_fix(), Some(fix));
    // With NVIDIA's ICD present the GPU is reachable: the usual package fix, and no NVIDIA warning.
    p.nvidia_vulkan_icd = true;
    assert!(p.nvidia_fix().is_none());
    assert!(p.no_adapter_fix().contains("apt-get install"));
    // No NVIDIA device: no warning either.
    assert!(linux("ID=ubuntu\n").nvidia_fix().is_none());
}

#[test]
fn macos_and_windows_need_no_package() {
    let mac = Platform { os: "macos".into(), ..Default::default() };
    assert!(mac.no_adapter_fix().contains("Metal"));
    let win = Platform { os: "windows".into(), nvidia_device: true, ..Default::default() };
    assert!(win.no_adapter_fix().contains("DX12"));
    assert!(win.nvidia_fix().is_none(), "the container setting is Linux-only");
}

#[test]
fn subgroup_sizes_the_kernels_were_not_tested_with_take_the_plain_path() {
    use facegpu::gpu::subgroup_lanes_for;
    // llvmpipe at 256, 512 and 1024 bits: 8, 16 and 32 lanes, each tested by ./run test.
    for lanes in [8, 16, 32] {
        assert_eq!(subgroup_lanes_for(true, lanes, lanes), Some(lanes));
    }
    // 4 lanes (llvmpipe at 128 bits), 64 (AMD wave64), a range starting below 8, or no subgroups at all.
    assert_eq!(subgroup_lanes_for(true, 4, 4), None);
    assert_eq!(subgroup_lanes_for(true, 64, 64), None);
    assert_eq!(subgroup_lanes_for(true, 4, 32), None);
    assert_eq!(subgroup_lanes_for(false, 16, 16), None);
}

/// The lanes the kernels use in this run, checked against `FACEGPU_EXPECT_LANES` ("none" or a count)
/// where the test command sets it: ./run test runs the kernel tests once per llvmpipe width and says
/// which lane count each must have used.
#[test]
fn the_kernels_use_the_lane_count_this_run_expects() {
    let Ok(want) = std::env::var("FACEGPU_EXPECT_LANES") else {
        eprintln!("lane count not checked: FACEGPU_EXPECT_LANES is set by ./run test's per-width runs");
        return;
    };
    let ctx = facegpu::gpu::GpuContext::new().expect("an adapter");
    let got = ctx.subgroup_lanes().map_or("none".to_string(), |l| l.to_string());
    println!("adapter {}, kernel lanes {got}", ctx.adapter_name());
    assert_eq!(got, want);
}
