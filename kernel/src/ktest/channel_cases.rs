//! In-kernel tests of channels between processes: message exchange both ways, death reports on
//! the parent channel, the hostile-handle suite, backpressure, the parent-dies-first rule, kill.
use crate::ensure;
use crate::ipc::{Endpoint, Msg, Object};
use crate::process::{self, Death, SpawnOptions};
use abi::Rights;
use abi::syscall::{DEADLINE_NEVER, DEATH_FAULT, DEATH_PANIC, DeathReport, fault};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

const PROBE: &str = "bin/probe";

fn spawn(arg: u64, gifts: Vec<(Object, Rights)>) -> Result<(u64, Endpoint), String> {
    process::spawn_watched(PROBE, arg, SpawnOptions::default(), gifts)
        .map_err(|(e, _)| format!("spawn: {e}"))
}

fn recv(end: &Endpoint) -> Result<Msg, String> {
    end.recv_blocking(DEADLINE_NEVER)
        .map_err(|e| format!("recv: {e}"))
}

fn report(end: &Endpoint) -> Result<DeathReport, String> {
    let m = recv(end)?;
    DeathReport::from_bytes(&m.bytes).ok_or_else(|| format!("not a death report: {:?}", m.bytes))
}

pub fn exchange_both_ways_then_exit_report() -> Result<(), String> {
    let (pid, end) = spawn(11, Vec::new())?;
    for i in 0..50 {
        let text = format!("ping {i}");
        end.send(Msg::new(text.clone().into_bytes(), Vec::new()))
            .map_err(|e| format!("send: {:?}", e.error()))?;
        let back = recv(&end)?;
        ensure!(
            back.bytes[..] == format!("echo:{text}").into_bytes()[..],
            "message {i} came back as {:?}",
            core::str::from_utf8(&back.bytes)
        );
    }
    end.send(Msg::new(b"exit".to_vec(), Vec::new()))
        .map_err(|e| format!("send: {:?}", e.error()))?;
    let r = report(&end)?;
    ensure!(
        r.kind == abi::syscall::DEATH_EXIT && r.code == 0 && r.pid == pid,
        "death report {r:?}"
    );
    ensure!(
        matches!(end.recv_blocking(DEADLINE_NEVER), Err(abi::Error::Closed)),
        "the parent channel is not closed after the report"
    );
    ensure!(process::wait(pid) == Some(Death::Exit(0)), "wait disagrees");
    Ok(())
}

pub fn fault_and_panic_reports_on_parent_channel() -> Result<(), String> {
    let (pid, end) = spawn(1, Vec::new())?;
    let r = report(&end)?;
    ensure!(
        r.kind == DEATH_FAULT && r.code == fault::PAGE_FAULT && r.addr == 8,
        "null dereference reported as {r:?}"
    );
    process::wait(pid);
    let (pid, end) = spawn(6, Vec::new())?;
    let r = report(&end)?;
    ensure!(
        r.kind == DEATH_PANIC && r.text().contains("probe panics on purpose"),
        "panic reported as kind {} text {:?}",
        r.kind,
        r.text()
    );
    process::wait(pid);
    Ok(())
}

pub fn hostile_handles_get_their_errors() -> Result<(), String> {
    let (pid, _end) = spawn(12, Vec::new())?;
    let d = process::wait(pid);
    ensure!(
        d == Some(Death::Exit(0)),
        "hostile probe ended with {d:?} (Exit(n): check n misbehaved; see user/probe)"
    );
    Ok(())
}

pub fn send_recv_contract() -> Result<(), String> {
    let before = crate::sched::stats().hand_offs;
    let written_before = crate::ipc::direct_deliveries();
    let (pid, _end) = spawn(33, Vec::new())?;
    let d = process::wait(pid);
    ensure!(
        d == Some(Death::Exit(0)),
        "send_recv probe ended with {d:?} (Exit(n): check n failed; see user/probe)"
    );
    // On one CPU both sides of the 300 calls share the core: each call and each answer must
    // have passed the core straight across (with more CPUs the child may live elsewhere), and
    // each must have been written straight into the buffer its receiver waited with
    // (single-copy delivery: the peer is always parked when the message is sent). On more
    // CPUs the peer is parked at least for the calls that find it waiting.
    let hand_offs = crate::sched::stats().hand_offs - before;
    let written = crate::ipc::direct_deliveries() - written_before;
    if crate::sched::cores() == 1 {
        ensure!(
            hand_offs >= 600,
            "only {hand_offs} hand-offs for 300 calls and their answers"
        );
        ensure!(
            written >= 600,
            "only {written} of 300 calls and their answers written straight into the receiver"
        );
    }
    Ok(())
}

pub fn backpressure_full_then_writable_exactly_once_in_order() -> Result<(), String> {
    let (pid, end) = spawn(13, Vec::new())?;
    // Let the sender fill the buffer before draining anything (it may run on another core:
    // wait, up to a second, until the peer's buffer is full).
    let give_up = crate::arch::apic::now_ns() + 1_000_000_000;
    while end.queued_messages() < abi::limits::CHANNEL_MAX_MESSAGES
        && crate::arch::apic::now_ns() < give_up
    {
        crate::sched::block_until(crate::arch::apic::now_ns() + 1_000_000);
    }
    let mut next = 0u32;
    loop {
        let m = recv(&end)?;
        if m.bytes.starts_with(b"done") {
            let fulls = u32::from_le_bytes([m.bytes[4], m.bytes[5], m.bytes[6], m.bytes[7]]);
            ensure!(fulls > 0, "the sender never saw Full");
            break;
        }
        let n = u32::from_le_bytes(
            m.bytes[..4]
                .try_into()
                .map_err(|_| String::from("short message"))?,
        );
        ensure!(n == next, "message {n} arrived where {next} was due");
        next += 1;
    }
    ensure!(next == 200, "{next} messages of 200 arrived");
    let d = process::wait(pid);
    ensure!(d == Some(Death::Exit(0)), "sender ended with {d:?}");
    Ok(())
}

pub fn parent_dies_first_child_channel_is_inert() -> Result<(), String> {
    let (mine, theirs) = Endpoint::pair();
    let (pid, _end) = spawn(
        14,
        alloc::vec![(Object::Endpoint(theirs), Rights::CHANNEL_ALL)],
    )?;
    ensure!(
        process::wait(pid) == Some(Death::Exit(0)),
        "parent probe failed"
    );
    let m = recv(&mine)?;
    ensure!(
        m.bytes[..] == b"orphan ok"[..],
        "the orphan says {:?}",
        core::str::from_utf8(&m.bytes)
    );
    Ok(())
}

pub fn kill_through_process_handle_is_reported() -> Result<(), String> {
    let (pid, _end) = spawn(16, Vec::new())?;
    let d = process::wait(pid);
    ensure!(d == Some(Death::Exit(0)), "killer probe ended with {d:?}");
    Ok(())
}

pub fn arena_grows_on_demand_up_to_its_ceiling() -> Result<(), String> {
    let opts = SpawnOptions {
        arena_ceiling: 4 << 20,
        ..SpawnOptions::default()
    };
    // One spawn first: the first of a boot (or of a core) keeps frames for good (a kernel
    // stack slot's page table), which is not what this case measures.
    let warm = process::spawn(PROBE, 0, opts).map_err(|e| format!("{e}"))?;
    process::wait(warm);
    let before = super::steady_free_frames();
    let pid = process::spawn(PROBE, 18 | (2 << 8), opts).map_err(|e| format!("{e}"))?;
    ensure!(
        process::wait(pid) == Some(Death::Exit(0)),
        "2 MiB under a 4 MiB ceiling failed"
    );
    let pid = process::spawn(PROBE, 18 | (8 << 8), opts).map_err(|e| format!("{e}"))?;
    match process::wait(pid) {
        Some(Death::Fault {
            kind: process::FaultKind::ArenaCeiling,
            addr,
            ..
        }) if addr >= abi::layout::ARENA_BASE + (4 << 20) => {}
        other => return Err(format!("8 MiB under a 4 MiB ceiling ended with {other:?}")),
    }
    let after = super::settled_free_frames(before);
    ensure!(
        after == before,
        "arena frames not freed: {before} before, {after} after"
    );
    Ok(())
}

pub fn buffer_bytes_are_charged_to_the_sender() -> Result<(), String> {
    let (pid, _end) = spawn(22, Vec::new())?;
    let d = process::wait(pid);
    ensure!(
        d == Some(Death::Exit(0)),
        "ledger probe ended with {d:?} (Exit(n): step n misbehaved; see user/probe)"
    );
    Ok(())
}
