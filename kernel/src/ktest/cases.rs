//! The in-kernel test cases of the core services: frame allocator, page tables, traps, heap.
use super::Case;
use crate::arch::extable::{self, Fault};
use crate::arch::frames::{self, KernelTables};
use crate::arch::paging::{MapError, Perms, kernel_space};
use crate::arch::{cpu, heap};
use crate::ensure;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use bootinfo::MemoryKind;
use core::sync::atomic::Ordering;

/// Every case, in the order `test=all` runs them.
pub const CASES: &[Case] = &[
    Case {
        name: "frames_exhaust_and_free",
        run: frames_exhaust_and_free,
        min_cpus: 1,
    },
    Case {
        name: "frames_refuse_bad_free",
        run: frames_refuse_bad_free,
        min_cpus: 1,
    },
    Case {
        name: "paging_map_write_read_unmap",
        run: paging_map_write_read_unmap,
        min_cpus: 1,
    },
    Case {
        name: "paging_protect_and_errors",
        run: paging_protect_and_errors,
        min_cpus: 1,
    },
    Case {
        name: "breakpoint_returns",
        run: breakpoint_returns,
        min_cpus: 1,
    },
    Case {
        name: "crc32c_instruction_matches_portable_code",
        run: crc32c_instruction_matches_portable_code,
        min_cpus: 1,
    },
    Case {
        name: "heap_stress",
        run: heap_stress,
        min_cpus: 1,
    },
    Case {
        name: "process_loaded_modules_are_kept_by_fingerprint",
        run: super::process_cases::loaded_modules_are_kept_by_fingerprint,
        min_cpus: 1,
    },
    Case {
        name: "process_exit_code",
        run: super::process_cases::exit_code_is_reported,
        min_cpus: 1,
    },
    Case {
        name: "process_fault_reports",
        run: super::process_cases::each_fault_kind_is_reported,
        min_cpus: 1,
    },
    Case {
        name: "process_panic_report",
        run: super::process_cases::panic_is_reported,
        min_cpus: 1,
    },
    Case {
        name: "process_bad_pointers",
        run: super::process_cases::bad_pointers_get_bad_address,
        min_cpus: 1,
    },
    Case {
        name: "process_sse_state_per_thread",
        run: super::process_cases::sse_state_is_per_thread,
        min_cpus: 1,
    },
    Case {
        name: "process_spawn_errors",
        run: super::process_cases::spawn_errors_are_clean,
        min_cpus: 1,
    },
    Case {
        name: "process_1000_spawn_exit_cycles",
        run: super::process_cases::spawn_exit_cycles_return_every_frame,
        min_cpus: 1,
    },
    Case {
        name: "process_malformed_modules",
        run: super::process_cases::malformed_modules_are_refused_with_their_message,
        min_cpus: 1,
    },
    Case {
        name: "channel_exchange_and_exit_report",
        run: super::channel_cases::exchange_both_ways_then_exit_report,
        min_cpus: 1,
    },
    Case {
        name: "channel_fault_and_panic_reports",
        run: super::channel_cases::fault_and_panic_reports_on_parent_channel,
        min_cpus: 1,
    },
    Case {
        name: "channel_hostile_handles",
        run: super::channel_cases::hostile_handles_get_their_errors,
        min_cpus: 1,
    },
    Case {
        name: "channel_send_recv",
        run: super::channel_cases::send_recv_contract,
        min_cpus: 1,
    },
    Case {
        name: "channel_backpressure",
        run: super::channel_cases::backpressure_full_then_writable_exactly_once_in_order,
        min_cpus: 1,
    },
    Case {
        name: "channel_parent_dies_first",
        run: super::channel_cases::parent_dies_first_child_channel_is_inert,
        min_cpus: 1,
    },
    Case {
        name: "channel_buffer_ledger",
        run: super::channel_cases::buffer_bytes_are_charged_to_the_sender,
        min_cpus: 1,
    },
    Case {
        name: "process_kill_reported",
        run: super::channel_cases::kill_through_process_handle_is_reported,
        min_cpus: 1,
    },
    Case {
        name: "process_arena_ceiling",
        run: super::channel_cases::arena_grows_on_demand_up_to_its_ceiling,
        min_cpus: 1,
    },
    Case {
        name: "device_scan_and_exclusive_claims",
        run: super::device_cases::scan_finds_the_disk_and_claims_are_exclusive,
        min_cpus: 1,
    },
    Case {
        name: "device_hostile_calls",
        run: super::device_cases::hostile_device_calls_get_their_errors,
        min_cpus: 1,
    },
    Case {
        name: "device_close_unmaps_bars",
        run: super::device_cases::closing_the_handle_unmaps_the_bars,
        min_cpus: 1,
    },
    Case {
        name: "device_killed_driver_gives_all_back",
        run: super::device_cases::killed_driver_gives_everything_back,
        min_cpus: 1,
    },
    Case {
        name: "blk_read_write_flush_capacity_errors",
        run: super::blk_cases::read_write_flush_capacity_and_errors,
        min_cpus: 1,
    },
    Case {
        name: "blk_killed_driver_closed_and_restart",
        run: super::blk_cases::killed_driver_client_sees_closed_and_restart_works,
        min_cpus: 1,
    },
    Case {
        name: "process_allocator_reuses_memory",
        run: super::system_cases::allocator_reuses_freed_memory,
        min_cpus: 1,
    },
    Case {
        name: "system_handle_calls_and_refusals",
        run: super::system_cases::system_handle_calls_and_refusals,
        min_cpus: 1,
    },
    Case {
        name: "sched_alone_no_timer_interrupts",
        run: super::sched_cases::one_busy_thread_takes_no_timer_interrupts,
        min_cpus: 1,
    },
    Case {
        name: "sched_quanta_and_waits_bounded",
        run: super::sched_cases::quanta_and_waits_within_bounds,
        min_cpus: 1,
    },
    Case {
        name: "sched_sleep_and_receive_deadlines",
        run: super::sched_cases::sleep_and_receive_deadlines,
        min_cpus: 1,
    },
    Case {
        name: "sched_tighter_deadline_preempts",
        run: super::sched_cases::tighter_deadline_preempts_within_one_quantum,
        min_cpus: 1,
    },
    Case {
        name: "sched_block_hands_over_at_once",
        run: super::sched_cases::blocking_mid_quantum_hands_over_at_once,
        min_cpus: 1,
    },
    Case {
        name: "threads_share_space_and_last_exit_ends_process",
        run: super::thread_cases::threads_share_space_and_last_exit_ends_process,
        min_cpus: 1,
    },
    Case {
        name: "thread_create_refusals_roll_back",
        run: super::thread_cases::thread_create_refusals_roll_back,
        min_cpus: 1,
    },
    Case {
        name: "thread_join_rules",
        run: super::thread_cases::thread_join_rules,
        min_cpus: 1,
    },
    Case {
        name: "park_wait_wake_and_timeout",
        run: super::thread_cases::park_wait_wake_and_timeout,
        min_cpus: 1,
    },
    Case {
        name: "process_exit_cleans_up_waiting_threads",
        run: super::thread_cases::process_exit_cleans_up_waiting_threads,
        min_cpus: 1,
    },
    Case {
        name: "fault_in_a_thread_ends_the_process",
        run: super::thread_cases::fault_in_a_thread_ends_the_process,
        min_cpus: 1,
    },
    Case {
        name: "stale_thread_refs_do_not_reach_a_reused_slot",
        run: super::thread_cases::stale_thread_refs_do_not_reach_a_reused_slot,
        min_cpus: 1,
    },
    Case {
        name: "smp_threads_run_in_parallel",
        run: super::thread_cases::smp_threads_run_in_parallel,
        min_cpus: 2,
    },
    Case {
        name: "portal_call_return_identity_transfer_revoke",
        run: super::portal_cases::portal_call_return_identity_transfer_revoke,
        min_cpus: 1,
    },
    Case {
        name: "portal_server_cannot_read_caller_stack",
        run: super::portal_cases::portal_server_cannot_read_caller_stack,
        min_cpus: 1,
    },
    Case {
        name: "portal_server_death_mid_call_returns_closed",
        run: super::portal_cases::portal_server_death_mid_call_returns_closed,
        min_cpus: 1,
    },
    Case {
        name: "portal_smp_two_visitors_inside_at_once",
        run: super::portal_cases::portal_smp_two_visitors_inside_at_once,
        min_cpus: 2,
    },
    Case {
        name: "portal_nested_calls_unwind",
        run: super::portal_cases::portal_nested_calls_unwind,
        min_cpus: 1,
    },
    Case {
        name: "portal_blocked_in_c_unwinds_when_b_dies",
        run: super::portal_cases::portal_blocked_in_c_unwinds_when_b_dies,
        min_cpus: 1,
    },
    Case {
        name: "portal_vector_registers_do_not_cross",
        run: super::portal_cases::portal_vector_registers_do_not_cross,
        min_cpus: 1,
    },
    Case {
        name: "portal_repeated_calls_follow_every_change",
        run: super::portal_cases::portal_repeated_calls_follow_every_change,
        min_cpus: 1,
    },
    Case {
        name: "portal_suspend_rule",
        run: super::portal_cases::portal_suspend_rule,
        min_cpus: 1,
    },
    Case {
        name: "portal_of_a_retired_server_is_closed",
        run: super::portal_cases::portal_of_a_retired_server_is_closed,
        min_cpus: 1,
    },
    Case {
        name: "smp_cross_core_pingpong_100k",
        run: super::smp_cases::cross_core_pingpong_100k_in_order,
        min_cpus: 2,
    },
    Case {
        name: "smp_cross_core_wake_stress",
        run: super::smp_cases::cross_core_wake_stress,
        min_cpus: 2,
    },
    Case {
        name: "smp_kill_a_thread_in_flux_on_another_core",
        run: super::smp_cases::kill_a_thread_in_flux_on_another_core,
        min_cpus: 2,
    },
    Case {
        name: "smp_busy_processes_in_parallel",
        run: super::smp_cases::busy_processes_run_in_parallel,
        min_cpus: 2,
    },
    // Last: they mount the FAT volume the harness attaches after the scratch disk, and end
    // its drivers again.
    Case {
        name: "rootfs_no_root_filesystem",
        run: super::rootfs_cases::no_root_filesystem,
        min_cpus: 2,
    },
    Case {
        name: "rootfs_write_read_back",
        run: super::rootfs_cases::write_read_back,
        min_cpus: 2,
    },
    Case {
        name: "rootfs_pieces_without_a_buffer",
        run: super::rootfs_cases::pieces_without_a_buffer,
        min_cpus: 2,
    },
    Case {
        name: "rootfs_list_dir_pages_and_sizes",
        run: super::rootfs_cases::list_dir_pages_and_sizes,
        min_cpus: 2,
    },
    Case {
        name: "rootfs_remove_then_not_found",
        run: super::rootfs_cases::remove_then_not_found,
        min_cpus: 2,
    },
    Case {
        name: "rootfs_mkdir_all_nested_and_idempotent",
        run: super::rootfs_cases::mkdir_all_nested_and_idempotent,
        min_cpus: 2,
    },
    Case {
        name: "rootfs_errors_are_clear",
        run: super::rootfs_cases::errors_are_clear,
        min_cpus: 2,
    },
    Case {
        name: "rootfs_synced_changes_survive_a_driver_crash",
        run: super::rootfs_cases::synced_changes_survive_a_driver_crash,
        min_cpus: 2,
    },
    Case {
        name: "rootfs_two_threads_at_once",
        run: super::rootfs_cases::two_threads_at_once,
        min_cpus: 2,
    },
    // After the rootfs_ cases: they mount the same FAT volume. Both groups run on the 2-CPU
    // boot only (hence `min_cpus: 2`): it is the one not under -icount, whose clock jumps over
    // the guest's idle waits for host disk I/O and fires the filesystem's reply deadlines.
    Case {
        name: "suspend_counter_keeps_messages_and_count",
        run: super::suspend_cases::suspend_counter_keeps_messages_and_count,
        min_cpus: 2,
    },
    Case {
        name: "suspend_resume_from_image_alone",
        run: super::suspend_cases::suspend_resume_from_image_alone,
        min_cpus: 2,
    },
    Case {
        name: "suspend_tree_resumes_as_a_unit",
        run: super::suspend_cases::suspend_tree_resumes_as_a_unit,
        min_cpus: 2,
    },
    Case {
        name: "suspend_threads_all_resume",
        run: super::suspend_cases::suspend_threads_all_resume,
        min_cpus: 2,
    },
    Case {
        name: "suspend_refuses_damaged_images",
        run: super::suspend_cases::suspend_refuses_damaged_images,
        min_cpus: 2,
    },
    Case {
        name: "suspend_errors_and_discard",
        run: super::suspend_cases::suspend_errors_and_discard,
        min_cpus: 2,
    },
    Case {
        name: "suspend_migrate_to_another_core",
        run: super::suspend_cases::suspend_migrate_to_another_core,
        min_cpus: 2,
    },
];

/// A virtual window for test mappings: above the heap, in the kernel half, never used otherwise.
const TEST_WINDOW: u64 = abi::layout::KERNEL_HEAP_END + (1 << 30);

fn frames_exhaust_and_free() -> Result<(), String> {
    let start = frames::free_frames();
    ensure!(start > 1000, "only {start} frames free at boot");
    let mut got: Vec<u64> = Vec::with_capacity(start as usize);
    while let Some(f) = frames::alloc() {
        got.push(f.into_phys());
    }
    ensure!(frames::free_frames() == 0, "frames left after exhaustion");
    ensure!(
        got.len() as u64 == start,
        "handed out {} of {start} frames",
        got.len()
    );
    got.sort_unstable();
    if let Some(w) = got.windows(2).find(|w| w[0] == w[1]) {
        return Err(alloc::format!("frame {:#x} handed out twice", w[0]));
    }
    for &f in &got {
        let kind = frames::kind_at(f);
        ensure!(
            kind == Some(MemoryKind::Usable),
            "frame {f:#x} lies in a region of kind {kind:?}, not usable RAM"
        );
        ensure!(f >= 1 << 20, "frame {f:#x} is below 1 MiB");
    }
    for &f in &got {
        frames::free_phys(f).map_err(|e| alloc::format!("free {f:#x}: {e:?}"))?;
    }
    ensure!(
        frames::free_frames() == start,
        "free count {} after freeing all, {start} before",
        frames::free_frames()
    );
    Ok(())
}

fn frames_refuse_bad_free() -> Result<(), String> {
    let f = frames::alloc().ok_or("no frame")?;
    let phys = f.into_phys();
    frames::free_phys(phys).map_err(|e| alloc::format!("{e:?}"))?;
    let before = frames::free_frames();
    ensure!(
        frames::free_phys(phys) == Err(::frames::FrameError::AlreadyFree(phys)),
        "double free was accepted"
    );
    ensure!(
        frames::free_phys(phys + 1) == Err(::frames::FrameError::Unaligned(phys + 1)),
        "unaligned free was accepted"
    );
    ensure!(
        frames::free_frames() == before,
        "a refused free changed the count"
    );
    Ok(())
}

fn paging_map_write_read_unmap() -> Result<(), String> {
    let before = frames::free_frames();
    let mut frame = frames::alloc_zeroed().ok_or("no frame")?;
    frame.bytes_mut()[8..16].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
    let phys = frame.into_phys();
    let va = TEST_WINDOW;
    kernel_space()
        .map(va, phys, Perms::ReadWrite, false, &mut KernelTables)
        .map_err(|e| alloc::format!("map: {e:?}"))?;
    ensure!(
        kernel_space().translate(va + 8) == Some((phys + 8, Perms::ReadWrite)),
        "translate disagrees: {:?}",
        kernel_space().translate(va + 8)
    );
    // What was written through the direct map is visible through the new mapping...
    let v = extable::probe_read_u64(va + 8).map_err(|f| alloc::format!("read: {f:?}"))?;
    ensure!(
        v == 0x1122_3344_5566_7788,
        "read {v:#x} through the mapping"
    );
    // ...and the reverse.
    extable::probe_write_u64(va + 16, 0xfeed_face).map_err(|f| alloc::format!("write: {f:?}"))?;
    let through_direct =
        crate::arch::extable::probe_read_u64(crate::arch::phys::to_virt(phys) + 16)
            .map_err(|f| alloc::format!("direct-map read: {f:?}"))?;
    ensure!(
        through_direct == 0xfeed_face,
        "direct map shows {through_direct:#x}"
    );
    let unmapped = kernel_space()
        .unmap(va)
        .map_err(|e| alloc::format!("unmap: {e:?}"))?;
    ensure!(
        unmapped == phys,
        "unmap returned {unmapped:#x}, mapped {phys:#x}"
    );
    let fixups = crate::trap::FIXUPS.load(Ordering::Relaxed);
    match extable::probe_read_u64(va + 0x123 * 8) {
        Err(Fault { addr, vector: 14 }) if addr == va + 0x123 * 8 => {}
        other => return Err(alloc::format!("touching the unmapped page gave {other:?}")),
    }
    ensure!(
        crate::trap::FIXUPS.load(Ordering::Relaxed) == fixups + 1,
        "the page fault did not go through the trap handler"
    );
    frames::free_phys(unmapped).map_err(|e| alloc::format!("{e:?}"))?;
    // The intermediate tables stay (they serve the window for later mappings): at most 3.
    let lost = before - frames::free_frames();
    ensure!(lost <= 3, "{lost} frames not returned");
    Ok(())
}

fn paging_protect_and_errors() -> Result<(), String> {
    let space = kernel_space();
    let frame = frames::alloc_zeroed().ok_or("no frame")?;
    let phys = frame.into_phys();
    let va = TEST_WINDOW + 0x1000;
    space
        .map(va, phys, Perms::Read, false, &mut KernelTables)
        .map_err(|e| alloc::format!("map: {e:?}"))?;
    // CR0.WP: a read-only page is read-only for the kernel too.
    match extable::probe_write_u64(va, 1) {
        Err(Fault { addr, vector: 14 }) if addr == va => {}
        other => return Err(alloc::format!("write to a read-only page gave {other:?}")),
    }
    space
        .protect(va, Perms::ReadWrite, false)
        .map_err(|e| alloc::format!("protect: {e:?}"))?;
    extable::probe_write_u64(va, 7).map_err(|f| alloc::format!("write after protect: {f:?}"))?;
    ensure!(
        space.map(va, phys, Perms::Read, false, &mut KernelTables) == Err(MapError::AlreadyMapped),
        "double map accepted"
    );
    ensure!(
        space.map(va + 1, phys, Perms::Read, false, &mut KernelTables) == Err(MapError::BadAddress),
        "unaligned map accepted"
    );
    ensure!(
        space.map(
            0x0000_8000_0000_0000,
            phys,
            Perms::Read,
            false,
            &mut KernelTables
        ) == Err(MapError::BadAddress),
        "non-canonical map accepted"
    );
    ensure!(
        space.map(
            crate::arch::phys::to_virt(0x20_0000),
            phys,
            Perms::Read,
            false,
            &mut KernelTables
        ) == Err(MapError::HugePage),
        "mapping inside the direct map's 2 MiB pages accepted"
    );
    let back = space
        .unmap(va)
        .map_err(|e| alloc::format!("unmap: {e:?}"))?;
    ensure!(
        space.unmap(va) == Err(MapError::NotMapped),
        "double unmap accepted"
    );
    ensure!(
        space.protect(va, Perms::Read, false) == Err(MapError::NotMapped),
        "protect of an unmapped page accepted"
    );
    frames::free_phys(back).map_err(|e| alloc::format!("{e:?}"))?;
    Ok(())
}

fn breakpoint_returns() -> Result<(), String> {
    let before = crate::trap::BREAKPOINTS.load(Ordering::Relaxed);
    cpu::breakpoint();
    cpu::breakpoint();
    let after = crate::trap::BREAKPOINTS.load(Ordering::Relaxed);
    ensure!(
        after == before + 2,
        "{} breakpoints counted, 2 taken",
        after - before
    );
    Ok(())
}

/// The `crc32` instruction's CRC-32C (`arch::crc`, which images and module fingerprints use)
/// equals the portable code's on every length from 0 to 300 at every alignment to 8 bytes, and
/// on 1 MiB of varied bytes.
fn crc32c_instruction_matches_portable_code() -> Result<(), String> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..(1 << 20) + 8)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    ensure!(
        crate::arch::crc::crc32c(b"123456789") == 0xe306_9283,
        "the check value of CRC-32C"
    );
    for start in 0..8 {
        for len in 0..300 {
            let b = &bytes[start..start + len];
            let (fast, portable) = (crate::arch::crc::crc32c(b), procimage::checksum::crc32c(b));
            ensure!(
                fast == portable,
                "{len} bytes at offset {start}: {fast:#x}, the portable code {portable:#x}"
            );
        }
    }
    let b = &bytes[3..];
    ensure!(
        crate::arch::crc::crc32c(b) == procimage::checksum::crc32c(b),
        "1 MiB: the two differ"
    );
    Ok(())
}

fn heap_stress() -> Result<(), String> {
    let (used_before, _) = heap::usage();
    // A deterministic mix of sizes and lifetimes (xorshift), each block filled with its index.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut live: Vec<(usize, Box<[u8]>)> = Vec::new();
    for i in 0..20_000usize {
        let r = next();
        if r % 2 == 0 && !live.is_empty() {
            let at = (r as usize / 2) % live.len();
            let (id, block) = live.swap_remove(at);
            ensure!(
                block.iter().all(|&b| b == id as u8),
                "block {id} was overwritten"
            );
        } else {
            let size = 1 + (r as usize >> 8) % 4096;
            live.push((i, alloc::vec![i as u8; size].into_boxed_slice()));
        }
    }
    for (id, block) in &live {
        ensure!(
            block.iter().all(|&b| b == *id as u8),
            "block {id} was overwritten"
        );
    }
    drop(live);
    let (used_after, _) = heap::usage();
    ensure!(
        used_after == used_before,
        "heap use {used_after} after the stress, {used_before} before"
    );
    Ok(())
}
