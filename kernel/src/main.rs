//! The moxie kernel core: the minimum resident image.
//!
//! Boot order: console and logging, GDT/TSS/IDT, the direct map and the frame allocator from the
//! boot memory map, the page-table API (dropping the stub's identity mapping), the heap. Then the
//! command line decides: run in-kernel tests (`test=`), benchmarks (`bench=`), a deliberate crash
//! (`crash=`), or report that the core is up and start user space: the block and filesystem
//! drivers for the root device, then init from the root filesystem (`docs/boot.md`).
//!
//! Only `arch` may use `unsafe`; every other module is safe Rust over its API.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

pub mod arch;
mod bench;
mod bundle;
mod console;
mod device;
mod ipc;
mod ktest;
mod loader;
mod log;
mod mm;
mod park;
mod portal;
mod process;
mod rootfs;
mod sched;
mod suspend;
mod syscall;
mod system;
mod thread;
mod trap;

use abi::qemu::ExitCode;
use bootinfo::{BootInfo, BootProtocol, Cmdline, LogLevel};

/// The core's version, printed in its first log line.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The core's main, entered once from `arch::entry` on the boot CPU.
pub fn kmain(bi: &'static BootInfo, entry_tsc: u64) -> ! {
    arch::serial::init();
    let parsed = Cmdline::parse(bi.cmdline());
    log::init(parsed.map_or(LogLevel::Info, |c| c.log));
    ::log::info!("moxie core {VERSION}: starting");
    ::log::info!(
        "booted via {}; command line \"{}\"",
        match bi.protocol {
            BootProtocol::Multiboot1 => "multiboot",
            BootProtocol::Multiboot2 => "multiboot2",
        },
        bi.cmdline()
    );
    let cmdline = match parsed {
        Ok(c) => c,
        Err(e) => {
            ::log::error!("bad command line: {e}; using the defaults");
            Cmdline::parse("").unwrap_or_else(|_| unreachable!())
        }
    };
    if bi.cmdline_truncated {
        ::log::warn!(
            "the command line was longer than {} bytes and was cut",
            bootinfo::CMDLINE_LEN
        );
    }
    for word in cmdline.unknown() {
        ::log::warn!("ignoring unknown command-line word \"{word}\"");
    }

    arch::percpu::init(0);
    let selectors = arch::gdt::init(0);
    arch::idt::init();
    arch::cpu::disable_legacy_pic();
    arch::syscall::init(&selectors);
    arch::context::init_fpu();
    arch::usermem::init(bi.protections.smap);
    arch::phys::init(bi.phys_map_base, bi.phys_map_end);
    if let Err(e) = arch::frames::init(&bi.memory) {
        panic!("cannot build the frame allocator: {e:?}");
    }
    if let Err(e) = arch::paging::init(bi.pml4_phys, &mut arch::frames::KernelTables) {
        panic!("cannot take over the page tables: {e:?}");
    }
    let reclaimed = arch::frames::reclaim_boot_memory();
    if let Err(e) = mm::heap::init() {
        panic!("cannot map the kernel heap: {e:?}");
    }
    ::log::info!(
        "memory: {} MiB usable, {} frames free ({} reclaimed from the stub); protections: NX {} SMEP {} SMAP {} UMIP {}",
        bi.memory.total(bootinfo::MemoryKind::Usable) >> 20,
        arch::frames::free_frames(),
        reclaimed,
        bi.protections.nx,
        bi.protections.smep,
        bi.protections.smap,
        bi.protections.umip
    );
    for m in bi.modules() {
        ::log::info!(
            "module \"{}\": {} bytes at {:#x}",
            m.name(),
            m.len,
            m.phys_start
        );
    }
    match bi
        .modules()
        .first()
        .and_then(|m| arch::phys::reserved_bytes(m.phys_start, m.len))
    {
        Some(bytes) => bundle::init(bytes),
        None => ::log::error!("no boot bundle module: nothing can be spawned"),
    }
    device::init();
    let timer = arch::apic::init();
    ::log::info!(
        "timer: {} mode, TSC {}.{:03} MHz (calibrated against the PIT){}; {}",
        if timer.deadline_mode {
            "TSC-deadline"
        } else {
            "APIC one-shot"
        },
        timer.tsc_hz / 1_000_000,
        (timer.tsc_hz / 1_000) % 1_000,
        if timer.deadline_mode {
            alloc::string::String::new()
        } else {
            alloc::format!(", APIC timer {} Hz", timer.apic_hz)
        },
        if timer.x2apic { "x2APIC" } else { "xAPIC" }
    );
    match arch::acpi::topology(bi.rsdp, arch::apic::id()) {
        Ok(t) => {
            ::log::info!(
                "cpus: {} (local APIC ids {:?}){}; I/O APIC at {:#x}",
                t.cpus,
                &t.apic_ids[..t.cpus],
                if t.ignored > 0 {
                    alloc::format!(", {} more ignored", t.ignored)
                } else {
                    alloc::string::String::new()
                },
                t.ioapic
            );
            arch::acpi::set_topology(t);
        }
        Err(e) => ::log::warn!("no ACPI processor table ({e:?}); running on the boot CPU only"),
    }
    if let Err(e) = sched::init() {
        panic!("cannot start the scheduler: {e:?}");
    }
    let online = arch::smp::start_aps();
    ::log::info!("{online} CPU{} online", if online == 1 { "" } else { "s" });
    ::log::info!("root={} init={}", cmdline.root, cmdline.init);

    if let Some(what) = cmdline.crash {
        crash(what);
    }
    if let Some(filter) = cmdline.test {
        ktest::run(filter, cmdline.test_skip, cmdline.host_cpus);
    }
    if let Some(which) = cmdline.bench {
        bench::run(which, bi, entry_tsc);
    }
    ::log::info!("moxie core: up");
    start_userland(&cmdline)
}

/// The boot sequence from here (DESIGN §2): the block driver for the `root=` device and the
/// filesystem driver on it, both from the boot bundle; then init from `init=` on that
/// filesystem. Without a root filesystem (no such device, or no volume on it), or when init
/// cannot be started from it, the core says why and falls back to `bin/init` from the boot
/// bundle, which then runs its built-in RAM-disk configuration (`docs/boot.md`).
fn start_userland(cmdline: &Cmdline<'_>) -> ! {
    if let Err(e) = rootfs::start(cmdline.root) {
        ::log::error!("no root filesystem: {e}");
    }
    let mut init = None;
    if rootfs::mounted() {
        match spawn_init(cmdline.init) {
            Ok(pid) => init = Some(pid),
            Err(e) => ::log::error!("cannot start init {}: {e}", cmdline.init),
        }
    }
    if init.is_none() {
        ::log::warn!(
            "falling back to bin/init from the boot bundle{}",
            if rootfs::mounted() {
                ""
            } else {
                " (it runs its RAM-disk configuration)"
            }
        );
        match spawn_init("bin/init") {
            Ok(pid) => init = Some(pid),
            Err(e) => ::log::error!("cannot start bin/init: {e}"),
        }
    }
    if let Some(pid) = init {
        let death = process::wait(pid);
        ::log::info!("init (pid {pid}) ended: {death:?}");
    }
    ::log::info!("nothing more to run; waiting (leave QEMU with Ctrl-A X)");
    loop {
        sched::block();
    }
}

/// Spawns init from `path`. It gets the system handle (handle 1) and the console (handle 2),
/// which no other process receives from the core, and, when the core has a root filesystem, the
/// parent channel of its driver (handle 3; the argument is then 1): init supervises it.
fn spawn_init(path: &str) -> Result<process::Pid, process::SpawnError> {
    let mut gifts = alloc::vec![
        (
            ipc::Object::System(abi::Rights::NONE),
            abi::Rights::SYSTEM_ALL
        ),
        (
            ipc::Object::Console(abi::Rights::NONE),
            abi::Rights::CONSOLE_ALL
        ),
    ];
    let mut arg = 0;
    if let Some(fs) = rootfs::take_parent() {
        gifts.push((ipc::Object::Endpoint(fs), abi::Rights::CHANNEL_ALL));
        arg = abi::system::INIT_HAS_ROOT_FS;
    } else if rootfs::mounted() {
        ::log::error!("init gets no root filesystem: its driver's channel is gone");
    }
    let (pid, _parent_end) =
        process::spawn_watched(path, arg, process::SpawnOptions::default(), gifts).map_err(
            |(e, gifts)| {
                // The root filesystem's parent channel goes to the next init tried.
                for (obj, _) in gifts {
                    if let ipc::Object::Endpoint(fs) = obj {
                        rootfs::put_back_parent(fs);
                    }
                }
                e
            },
        )?;
    ::log::info!("started init from {path} (pid {pid})");
    Ok(pid)
}

/// `crash=`: a deliberate kernel bug, to show the exception report and the panic path.
fn crash(what: &str) -> ! {
    ::log::warn!("crash={what}: faulting on purpose");
    match what {
        "pagefault" => {
            arch::entry::deliberate_read(0xdead_0000);
        }
        "panic" => panic!("deliberate panic (crash=panic)"),
        "stackoverflow" => {
            let depth = recurse(0);
            ::log::error!("recursed {depth} levels without overflowing");
        }
        other => ::log::error!("crash={other}: unknown (use pagefault, panic or stackoverflow)"),
    }
    arch::cpu::exit_qemu(ExitCode::Failure)
}

/// Recurses until the boot stack runs into its guard page: the page fault cannot push its frame
/// there, so the CPU raises a double fault, which runs on its own IST stack and is reported.
fn recurse(depth: u64) -> u64 {
    let pad = core::hint::black_box([depth; 64]);
    if depth > 1 << 40 {
        return pad[0];
    }
    recurse(depth + 1) + core::hint::black_box(pad[1])
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    arch::serial::write_fmt_emergency(format_args!("\nmoxie: KERNEL PANIC: {info}\n"));
    trap::backtrace(0, arch::cpu::frame_pointer());
    arch::serial::write_fmt_emergency(format_args!("moxie: stopping: kernel bug (panic)\n"));
    arch::cpu::exit_qemu(ExitCode::Failure)
}
