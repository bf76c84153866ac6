//! In-kernel tests of portals (migrating-thread calls): the probe's portal client (48) runs
//! one scenario against probe servers (47) and the outcome is checked here, with the
//! kernel's view of who is inside whom and the suspend rule checked directly.
use crate::ensure;
use crate::ipc::Msg;
use crate::portal;
use crate::process::{self, Death, SpawnOptions};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

const PROBE: &str = "bin/probe";

fn scenario(n: u64, what: &str) -> Result<(), String> {
    let pid = process::spawn(PROBE, 48 | n << 8, SpawnOptions::default())
        .map_err(|e| format!("spawn: {e}"))?;
    let d = process::wait(pid).ok_or_else(|| format!("process {pid} vanished"))?;
    ensure!(
        d == Death::Exit(0),
        "{what}: the probe ended with {d:?} (a non-zero exit is the number of the failed check)"
    );
    ensure!(
        portal::presence(pid) == (0, 0),
        "{what}: threads still inside or away"
    );
    Ok(())
}

/// Call and return with arguments and results, the caller's identity and the badge, the
/// visitor stack, every refusal, transfer and duplication, revocation, a dead server.
pub fn portal_call_return_identity_transfer_revoke() -> Result<(), String> {
    scenario(0, "basics")
}

/// The server reading the caller's stack faults: the server dies, the call returns `Closed`.
pub fn portal_server_cannot_read_caller_stack() -> Result<(), String> {
    scenario(1, "caller stack")
}

/// A fault in the server, and the server killed while a visitor sleeps in it and while one
/// spins in it: every call returns `Closed`, the parent gets the death report.
pub fn portal_server_death_mid_call_returns_closed() -> Result<(), String> {
    scenario(2, "server death")
}

/// Two callers inside one server at the same time, on two cores.
pub fn portal_smp_two_visitors_inside_at_once() -> Result<(), String> {
    scenario(3, "together")
}

/// A -> B -> C: C dies (B's call fails, B goes on), then B dies while the thread is in C.
pub fn portal_nested_calls_unwind() -> Result<(), String> {
    scenario(4, "nested")
}

/// A -> B -> C with the thread blocked in a channel receive in C: B dies, A's call returns
/// `Closed`, C lives on.
pub fn portal_blocked_in_c_unwinds_when_b_dies() -> Result<(), String> {
    scenario(7, "blocked in C")
}

/// Vector registers do not cross a call in either direction.
pub fn portal_vector_registers_do_not_cross() -> Result<(), String> {
    scenario(8, "vector registers")
}

/// The same call repeated (the fast path) follows closes, FS bases, moves, revocation and
/// death.
pub fn portal_repeated_calls_follow_every_change() -> Result<(), String> {
    scenario(9, "repeated calls")
}

/// The suspend rule: refused while a thread of the process is inside a server, and for the
/// server while a visitor is inside; allowed once the call is over.
pub fn portal_suspend_rule() -> Result<(), String> {
    let (client, ch) =
        process::spawn_watched(PROBE, 48 | 5 << 8, SpawnOptions::default(), Vec::new())
            .map_err(|(e, _)| format!("spawn: {e}"))?;
    let msg = ch
        .recv_blocking(abi::syscall::DEADLINE_NEVER)
        .map_err(|e| format!("recv: {e}"))?;
    ensure!(&msg.bytes[..] == b"in", "unexpected message");
    let server = process::list()
        .into_iter()
        .find(|p| p.parent == client && p.state != abi::system::STATE_DEAD)
        .map(|p| p.pid)
        .ok_or("no server")?;
    ensure!(
        portal::presence(server) == (1, 0) && portal::presence(client) == (0, 1),
        "presence: server {:?}, client {:?}",
        portal::presence(server),
        portal::presence(client)
    );
    ensure!(
        portal::can_suspend(client) == Err(abi::Error::Failed),
        "suspend allowed while a thread is away"
    );
    ensure!(
        portal::can_suspend(server) == Err(abi::Error::Failed),
        "suspend allowed while a visitor is inside"
    );
    let _ = ch.send(Msg::new(b"ok".to_vec(), Vec::new()));
    let msg = ch
        .recv_blocking(abi::syscall::DEADLINE_NEVER)
        .map_err(|e| format!("recv: {e}"))?;
    ensure!(&msg.bytes[..] == b"out", "unexpected message");
    ensure!(
        portal::can_suspend(client).is_ok(),
        "suspend refused after the call"
    );
    let _ = ch.send(Msg::new(b"ok".to_vec(), Vec::new()));
    let d = process::wait(client).ok_or("client vanished")?;
    ensure!(d == Death::Exit(0), "client ended with {d:?}");
    Ok(())
}

/// A process leaving the table without dying (a suspend retires it) closes its portals like a
/// death: a portal whose handle went elsewhere must not lead into the torn-down space.
pub fn portal_of_a_retired_server_is_closed() -> Result<(), String> {
    use crate::ipc::Object;
    let (server, ch) = process::spawn_watched(PROBE, 47, SpawnOptions::default(), Vec::new())
        .map_err(|(e, _)| format!("spawn: {e}"))?;
    let mut msg = ch
        .recv_blocking(abi::syscall::DEADLINE_NEVER)
        .map_err(|e| format!("recv: {e}"))?;
    ensure!(&msg.bytes[..] == b"portal", "unexpected message");
    let Some(Object::Portal(p)) = msg.handles.pop() else {
        return Err("no portal in the server's message".into());
    };
    ensure!(!p.is_dead(), "the portal is closed before the server left");
    drop(process::retire(server));
    ensure!(
        p.is_dead(),
        "the retired server's portal still leads into it"
    );
    Ok(())
}
