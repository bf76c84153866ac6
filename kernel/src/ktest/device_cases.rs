//! In-kernel tests of what a driver gets: the PCI scan and claims, every misuse of the device
//! system calls (`user/probe`'s device behaviours), a BAR unmapped when its handle closes, and
//! a killed driver giving back its DMA frames, its interrupt vector, its claim and bus mastering.
use crate::arch::pci;
use crate::device::{self, ClaimError, irq};
use crate::ensure;
use crate::ipc::Object;
use crate::process::{self, Death, FaultKind, SpawnOptions};
use abi::Rights;
use abi::device::BarKind;
use abi::syscall::DEADLINE_NEVER;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

const PROBE: &str = "bin/probe";

fn blk() -> Result<pci::Function, String> {
    device::find(device::VIRTIO_BLK.0, device::VIRTIO_BLK.1)
        .ok_or_else(|| String::from("no virtio-blk function (is the scratch disk attached?)"))
}

/// Runs one short process first: the first process of a boot leaves kernel bookkeeping (page
/// tables of the kernel-stack area) that later ones reuse, which is not a leak to count.
fn warm_up() -> Result<(), String> {
    let pid = process::spawn(PROBE, 0, SpawnOptions::default()).map_err(|e| format!("{e}"))?;
    ensure!(
        process::wait(pid) == Some(Death::Exit(42)),
        "warm-up probe failed"
    );
    Ok(())
}

/// Kills a process the case started when the case returns early; after a normal end it
/// finds nothing to do.
struct Stop(process::Pid);

impl Drop for Stop {
    fn drop(&mut self) {
        process::die(self.0, Death::Killed);
        process::wait(self.0);
    }
}

/// Device objects, bound vectors and free frames once the dust of a death has settled.
fn settled(frames: u64) -> (usize, usize, u64) {
    let f = super::settled_free_frames(frames);
    (device::claimed(), irq::bound(), f)
}

pub fn scan_finds_the_disk_and_claims_are_exclusive() -> Result<(), String> {
    let f = blk()?;
    let d = device::claim(f).map_err(|e| format!("claim: {e:?}"))?;
    let info = d.info();
    ensure!(
        info.bars[4].kind == BarKind::Memory64 && info.bars[5].kind == BarKind::Upper,
        "virtio-blk BARs {:?}",
        info.bars
    );
    ensure!(
        info.msix_vectors >= 2,
        "MSI-X entries {}",
        info.msix_vectors
    );
    ensure!(
        matches!(device::claim(f), Err(ClaimError::Busy)),
        "a second claim of {f} succeeded"
    );
    drop(d);
    ensure!(device::claimed() == 0, "the claim outlived its object");
    let again = device::claim(f).map_err(|e| format!("claim after release: {e:?}"))?;
    drop(again);
    let nowhere = pci::Function::new(0xfe, 31, 7).ok_or("function")?;
    ensure!(
        matches!(device::claim(nowhere), Err(ClaimError::NotFound)),
        "claimed a function that does not exist"
    );
    Ok(())
}

pub fn hostile_device_calls_get_their_errors() -> Result<(), String> {
    warm_up()?;
    let before = super::steady_free_frames();
    let claim = |f: Option<pci::Function>, what: &str| {
        f.ok_or_else(|| format!("no {what}"))
            .and_then(|f| device::claim(f).map_err(|e| format!("claim {what}: {e:?}")))
    };
    let gifts: Vec<(Object, Rights)> = alloc::vec![
        (
            Object::Device(claim(Some(blk()?), "virtio-blk")?),
            Rights::DEVICE_ALL
        ),
        (
            Object::Device(claim(device::find_class(1, 6), "AHCI")?),
            Rights::CONFIG.union(Rights::MMIO)
        ),
        (
            Object::Device(claim(device::find_class(6, 0), "host bridge")?),
            Rights::NONE
        ),
    ];
    let (pid, _end) = process::spawn_watched(PROBE, 36, SpawnOptions::default(), gifts)
        .map_err(|(e, _)| format!("spawn: {e}"))?;
    let d = process::wait(pid);
    ensure!(
        d == Some(Death::Exit(0)),
        "device probe ended with {d:?} (Exit(n): check n misbehaved; see user/probe/src/device.rs)"
    );
    let (claimed, bound, after) = settled(before);
    ensure!(claimed == 0, "{claimed} device objects outlived the probe");
    ensure!(bound == 0, "{bound} interrupt vectors still bound");
    ensure!(
        after == before,
        "frames leaked: {before} free before, {after} after"
    );
    Ok(())
}

pub fn closing_the_handle_unmaps_the_bars() -> Result<(), String> {
    let d = device::claim(blk()?).map_err(|e| format!("claim: {e:?}"))?;
    let (pid, _end) = process::spawn_watched(
        PROBE,
        37,
        SpawnOptions::default(),
        alloc::vec![(Object::Device(d), Rights::DEVICE_ALL)],
    )
    .map_err(|(e, _)| format!("spawn: {e}"))?;
    let window = abi::layout::DEVICE_MMIO_BASE..abi::layout::DEVICE_MMIO_BASE + (1 << 30);
    match process::wait(pid) {
        Some(Death::Fault {
            kind: FaultKind::PageFault,
            addr,
            ..
        }) if window.contains(&addr) => {}
        other => {
            return Err(format!(
                "touching a closed device's BAR ended with {other:?}"
            ));
        }
    }
    ensure!(device::claimed() == 0, "the claim outlived the handle");
    Ok(())
}

pub fn killed_driver_gives_everything_back() -> Result<(), String> {
    warm_up()?;
    let before = super::steady_free_frames();
    let f = blk()?;
    let d = device::claim(f).map_err(|e| format!("claim: {e:?}"))?;
    let (pid, end) = process::spawn_watched(
        PROBE,
        38,
        SpawnOptions::default(),
        alloc::vec![(Object::Device(d), Rights::DEVICE_ALL)],
    )
    .map_err(|(e, _)| format!("spawn: {e}"))?;
    // Should a check below fail, the holder must not keep the device from the next case.
    let _stop = Stop(pid);
    let m = end
        .recv_blocking(DEADLINE_NEVER)
        .map_err(|e| format!("recv: {e}"))?;
    ensure!(
        m.bytes[..] == b"holding"[..],
        "the holder says {:?}",
        core::str::from_utf8(&m.bytes)
    );
    ensure!(irq::bound() == 1, "{} vectors bound", irq::bound());
    ensure!(
        pci::read32(f, 4) & u32::from(pci::COMMAND_BUS_MASTER) != 0,
        "bus mastering was not on"
    );
    let held = before - crate::arch::frames::free_frames();
    ensure!(
        held >= 256,
        "only {held} frames in use while holding 1 MiB of DMA"
    );
    process::die(pid, Death::Killed);
    ensure!(
        process::wait(pid) == Some(Death::Killed),
        "the holder was not killed"
    );
    let (claimed, bound, after) = settled(before);
    ensure!(
        claimed == 0 && bound == 0,
        "claims {claimed}, vectors {bound}"
    );
    ensure!(
        after == before,
        "frames leaked: {before} free before, {after} after"
    );
    ensure!(
        pci::read32(f, 4) & u32::from(pci::COMMAND_BUS_MASTER) == 0,
        "bus mastering still on after the driver died"
    );
    Ok(())
}
