//! In-kernel tests of the virtio-blk driver (`user/blk`) over the block protocol, with the
//! kernel as its client: known sectors of the scratch disk read back exactly, writes read back
//! and stay in place, flush, capacity, out-of-range and malformed requests, several requests in
//! flight, completions noticed through the device's interrupt, and a driver killed mid-way.
use crate::arch::pci;
use crate::device::{self, BlockDriver, irq};
use crate::ensure;
use crate::ipc::{Endpoint, Msg};
use crate::process::{self, Death};
use abi::qemu::{SCRATCH_DISK_BYTES, SCRATCH_WRITE_AT, scratch_disk_byte, scratch_written_byte};
use abi::syscall::{DEADLINE_NEVER, DEATH_KILLED, DeathReport};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use blkproto::{Error, Reply, Request, SECTOR_SIZE};
use core::sync::atomic::Ordering;

const SECTORS: u64 = SCRATCH_DISK_BYTES / SECTOR_SIZE as u64;

/// Ends a driver the case started if the case returns early (a failed check), so the next case
/// can claim the device; after a normal end it finds nothing to do.
struct Stop(process::Pid);

impl Drop for Stop {
    fn drop(&mut self) {
        process::die(self.0, Death::Killed);
        process::wait(self.0);
    }
}

fn send(c: &Endpoint, req: &Request<'_>) -> Result<(), String> {
    let mut buf = alloc::vec![0u8; blkproto::MAX_MESSAGE];
    let n = req.encode(&mut buf).map_err(|e| format!("encode: {e:?}"))?;
    buf.truncate(n);
    send_raw(c, buf)
}

fn send_raw(c: &Endpoint, bytes: Vec<u8>) -> Result<(), String> {
    c.send(Msg::new(bytes, Vec::new()))
        .map_err(|e| format!("send: {}", e.error()))
}

/// The next reply. No deadline: under `-icount` guest time runs ahead of the host's disk I/O
/// while the guest idles, so any deadline would be arbitrary; a hang is caught by the
/// harness's timeout.
fn recv(c: &Endpoint) -> Result<Vec<u8>, abi::Error> {
    c.recv_blocking(DEADLINE_NEVER).map(|m| m.bytes.to_vec())
}

/// Sends `req` and returns the raw reply.
fn call(c: &Endpoint, req: &Request<'_>) -> Result<Vec<u8>, String> {
    send(c, req)?;
    recv(c).map_err(|e| format!("no reply to {req:?}: {e}"))
}

fn decode(bytes: &[u8]) -> Result<Reply<'_>, String> {
    Reply::decode(bytes).map_err(|e| format!("reply does not decode: {e:?}"))
}

/// Sector `s` of a fresh scratch disk.
fn pristine(s: u64) -> [u8; SECTOR_SIZE] {
    core::array::from_fn(|i| scratch_disk_byte(s, i))
}

fn read(c: &Endpoint, id: u32, sector: u64, count: u32) -> Result<Vec<u8>, String> {
    let bytes = call(c, &Request::Read { id, sector, count })?;
    match decode(&bytes)? {
        Reply::Read { id: got, result } if got == id => result
            .map(<[u8]>::to_vec)
            .map_err(|e| format!("read {sector}+{count}: {e:?}")),
        other => Err(format!("read {sector}+{count} answered by {other:?}")),
    }
}

/// Reads `count` sectors from `sector` on and compares them with the pristine disk.
fn expect_pristine(c: &Endpoint, id: u32, sector: u64, count: u32) -> Result<(), String> {
    let data = read(c, id, sector, count)?;
    ensure!(
        data.len() == count as usize * SECTOR_SIZE,
        "read {sector}+{count} gave {} bytes",
        data.len()
    );
    for (i, chunk) in data.chunks(SECTOR_SIZE).enumerate() {
        let s = sector + i as u64;
        ensure!(
            chunk == pristine(s),
            "sector {s} differs from the scratch image (starts {:02x?})",
            &chunk[..16]
        );
    }
    Ok(())
}

fn expect_error(bytes: &[u8], want: Error) -> Result<(), String> {
    let got = match decode(bytes)? {
        Reply::Read { result, .. } => result.err(),
        Reply::Write { result, .. } | Reply::Flush { result, .. } => result.err(),
        Reply::Capacity { result, .. } => result.err(),
        Reply::Rejected { error, .. } => Some(error),
    };
    ensure!(
        got == Some(want),
        "expected {want:?}, got {:?}",
        decode(bytes)
    );
    Ok(())
}

/// The death report of a driver on its parent channel.
fn report(d: &BlockDriver) -> Result<DeathReport, String> {
    let m = d
        .parent
        .recv_blocking(DEADLINE_NEVER)
        .map_err(|e| format!("no death report: {e}"))?;
    DeathReport::from_bytes(&m.bytes).ok_or_else(|| format!("not a death report: {:?}", m.bytes))
}

/// No claims, no bound vectors and every frame back once a driver is gone.
fn all_back(before: u64) -> Result<(), String> {
    let after = super::settled_free_frames(before);
    ensure!(
        device::claimed() == 0 && irq::bound() == 0,
        "claims {}, vectors {} after the driver ended",
        device::claimed(),
        irq::bound()
    );
    ensure!(
        after == before,
        "frames leaked: {before} free before, {after} after"
    );
    Ok(())
}

fn warm_up() -> Result<(), String> {
    let pid = process::spawn("bin/probe", 0, process::SpawnOptions::default())
        .map_err(|e| format!("{e}"))?;
    ensure!(
        process::wait(pid) == Some(Death::Exit(42)),
        "warm-up probe failed"
    );
    Ok(())
}

pub fn read_write_flush_capacity_and_errors() -> Result<(), String> {
    warm_up()?;
    let before = super::steady_free_frames();
    let interrupts = irq::TAKEN.load(Ordering::Relaxed);
    let d = device::start_block(true)?;
    let _stop = Stop(d.pid);
    let c = &d.client;

    let bytes = call(c, &Request::Capacity { id: 1 })?;
    ensure!(
        decode(&bytes)?
            == Reply::Capacity {
                id: 1,
                result: Ok(SECTORS)
            },
        "capacity: {:?}",
        decode(&bytes)
    );
    // Known sectors: the first, a read of the most sectors a request takes, the last.
    expect_pristine(c, 2, 0, 1)?;
    expect_pristine(c, 3, 100, blkproto::MAX_SECTORS)?;
    expect_pristine(c, 4, SECTORS - 1, 1)?;

    // A write reads back, and its neighbours are untouched.
    let (at, count) = SCRATCH_WRITE_AT;
    let data: Vec<u8> = (0..count as usize * SECTOR_SIZE)
        .map(scratch_written_byte)
        .collect();
    let bytes = call(
        c,
        &Request::Write {
            id: 5,
            sector: at,
            data: &data,
        },
    )?;
    ensure!(
        decode(&bytes)?
            == Reply::Write {
                id: 5,
                result: Ok(())
            },
        "write: {:?}",
        decode(&bytes)
    );
    ensure!(
        read(c, 6, at, count as u32)? == data,
        "sectors {at}..{} do not read back as written",
        at + count
    );
    expect_pristine(c, 7, at - 1, 1)?;
    expect_pristine(c, 8, at + count, 1)?;
    let bytes = call(c, &Request::Flush { id: 9 })?;
    ensure!(
        decode(&bytes)?
            == Reply::Flush {
                id: 9,
                result: Ok(())
            },
        "flush: {:?}",
        decode(&bytes)
    );

    // Out of range: the last sector and one past it, far past, a write at the end.
    let r = call(
        c,
        &Request::Read {
            id: 10,
            sector: SECTORS - 1,
            count: 2,
        },
    )?;
    expect_error(&r, Error::OutOfRange)?;
    let r = call(
        c,
        &Request::Read {
            id: 11,
            sector: u64::MAX,
            count: 1,
        },
    )?;
    expect_error(&r, Error::OutOfRange)?;
    let r = call(
        c,
        &Request::Write {
            id: 12,
            sector: SECTORS,
            data: &data[..SECTOR_SIZE],
        },
    )?;
    expect_error(&r, Error::OutOfRange)?;
    // Malformed: not a message at all, a read of 0 sectors and of one more than a request takes.
    send_raw(c, b"not a block request".to_vec())?;
    expect_error(
        &recv(c).map_err(|e| format!("garbage: {e}"))?,
        Error::BadRequest,
    )?;
    let mut header = alloc::vec![0u8; blkproto::HEADER_LEN];
    Request::Read {
        id: 13,
        sector: 0,
        count: 1,
    }
    .encode(&mut header)
    .map_err(|e| format!("{e:?}"))?;
    let over = blkproto::MAX_SECTORS + 1;
    for (count, want) in [(0u32, Error::BadRequest), (over, Error::TooBig)] {
        header[16..20].copy_from_slice(&count.to_le_bytes());
        send_raw(c, header.clone())?;
        let r = recv(c).map_err(|e| format!("count {count}: {e}"))?;
        expect_error(&r, want)?;
        ensure!(
            decode(&r)?.id() == 13,
            "the error reply lost the request id"
        );
    }

    // Several requests in flight: each answered once, under its id.
    for i in 0..8u32 {
        send(
            c,
            &Request::Read {
                id: 100 + i,
                sector: 300 + u64::from(i),
                count: 1,
            },
        )?;
    }
    let mut seen = [false; 8];
    for _ in 0..8 {
        let bytes = recv(c).map_err(|e| format!("in flight: {e}"))?;
        let Reply::Read {
            id,
            result: Ok(data),
        } = decode(&bytes)?
        else {
            return Err(format!("in flight: {:?}", decode(&bytes)));
        };
        let i = id.wrapping_sub(100) as usize;
        ensure!(i < 8 && !seen[i], "reply id {id} unexpected or repeated");
        seen[i] = true;
        ensure!(
            data == pristine(300 + i as u64),
            "in-flight read {id} has the wrong data"
        );
    }
    ensure!(
        irq::TAKEN.load(Ordering::Relaxed) > interrupts,
        "the driver completed requests without a single device interrupt"
    );

    // Closing the service channel ends the driver cleanly.
    let BlockDriver {
        pid,
        parent,
        client,
    } = d;
    drop(client);
    let report = parent
        .recv_blocking(DEADLINE_NEVER)
        .map_err(|e| format!("no death report: {e}"))?;
    let r = DeathReport::from_bytes(&report.bytes).ok_or("not a death report")?;
    ensure!(
        r.kind == abi::syscall::DEATH_EXIT && r.code == 0,
        "driver ended with {r:?}"
    );
    process::wait(pid);
    all_back(before)
}

pub fn killed_driver_client_sees_closed_and_restart_works() -> Result<(), String> {
    warm_up()?;
    let before = super::steady_free_frames();
    let f = device::find(device::VIRTIO_BLK.0, device::VIRTIO_BLK.1).ok_or("no virtio-blk")?;
    let d = device::start_block(true)?;
    let _stop = Stop(d.pid);
    expect_pristine(&d.client, 1, 0, 1)?;
    // A burst of requests, then the driver dies while working through them.
    for i in 0..16u32 {
        send(
            &d.client,
            &Request::Read {
                id: 10 + i,
                sector: u64::from(i) * 64,
                count: blkproto::MAX_SECTORS,
            },
        )?;
    }
    recv(&d.client).map_err(|e| format!("first of the burst: {e}"))?;
    process::die(d.pid, Death::Killed);
    let r = report(&d)?;
    ensure!(r.kind == DEATH_KILLED, "death report {r:?}");
    // The client drains what was answered before the death, then sees Closed.
    let mut answered = 1;
    let end = loop {
        match recv(&d.client) {
            Ok(_) => answered += 1,
            Err(e) => break e,
        }
    };
    ensure!(
        end == abi::Error::Closed,
        "after {answered} replies the client saw {end}, not Closed"
    );
    ensure!(answered <= 16, "{answered} replies to 16 requests");
    process::wait(d.pid);
    drop(d);
    all_back(before)?;
    ensure!(
        pci::read32(f, 4) & u32::from(pci::COMMAND_BUS_MASTER) == 0,
        "bus mastering still on after the driver died"
    );
    // A new driver takes the device over and works.
    let again = device::start_block(true)?;
    let _stop_again = Stop(again.pid);
    expect_pristine(&again.client, 2, SECTORS / 2, 4)?;
    let BlockDriver { pid, client, .. } = again;
    drop(client);
    ensure!(
        process::wait(pid) == Some(Death::Exit(0)),
        "the second driver did not end cleanly"
    );
    Ok(())
}
