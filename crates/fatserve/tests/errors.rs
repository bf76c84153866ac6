//! Every error a client or the device can cause, each answered with its protocol error and
//! leaving the volume unchanged and consistent (`fsck.fat -n`).
mod common;

use common::*;
use fsproto::path::MAX_NAME;
use fsproto::{Error, HEADER_LEN, Kind, Reply, Request};

fn fresh(test: &str) -> (std::path::PathBuf, Client<FileDevice>) {
    let dir = scratch(test);
    let img = dir.join("e.img");
    mkfs(&img, 64 * 1024, 32);
    let mut c = mount(&img);
    c.mkdir("/dir").unwrap();
    c.put("/dir/file", b"contents").unwrap();
    c.mkdir("/empty").unwrap();
    (img, c)
}

#[test]
fn not_found() {
    if !have_tools() {
        return;
    }
    let (_, mut c) = fresh("not_found");
    assert_eq!(c.lookup("/nothing"), Err(Error::NotFound));
    assert_eq!(c.stat("/dir/nothing").err(), Some(Error::NotFound));
    assert_eq!(c.read("/nothing", 0, 10).err(), Some(Error::NotFound));
    assert_eq!(c.write("/nothing", 0, b"x").err(), Some(Error::NotFound));
    assert_eq!(c.create("/no dir/file", 0), Err(Error::NotFound));
    assert_eq!(c.mkdir("/no dir/sub"), Err(Error::NotFound));
    assert_eq!(c.ls("/nothing").err(), Some(Error::NotFound));
    assert_eq!(c.remove("/nothing"), Err(Error::NotFound));
    assert_eq!(c.rename("/nothing", "/else"), Err(Error::NotFound));
    assert_eq!(c.rename("/dir/file", "/no dir/file"), Err(Error::NotFound));
    assert_eq!(c.truncate("/nothing", 0), Err(Error::NotFound));
}

#[test]
fn exists() {
    if !have_tools() {
        return;
    }
    let (_, mut c) = fresh("exists");
    assert_eq!(c.create("/dir/file", 0), Err(Error::Exists));
    // Names match without case, as FAT does.
    assert_eq!(c.create("/DIR/FILE", 0), Err(Error::Exists));
    assert_eq!(c.mkdir("/dir"), Err(Error::Exists));
    assert_eq!(c.mkdir("/dir/file"), Err(Error::Exists));
    assert_eq!(c.create("/empty", 0), Err(Error::Exists));
    c.put("/other", b"o").unwrap();
    assert_eq!(c.rename("/other", "/dir/file"), Err(Error::Exists));
    assert_eq!(c.rename("/other", "/empty"), Err(Error::Exists));
    // Nothing was overwritten.
    assert_eq!(c.read_all("/dir/file").unwrap(), b"contents");
    assert_eq!(c.read_all("/other").unwrap(), b"o");
}

#[test]
fn not_a_directory_and_is_a_directory() {
    if !have_tools() {
        return;
    }
    let (_, mut c) = fresh("kinds");
    assert_eq!(c.lookup("/dir/file/below"), Err(Error::NotADirectory));
    assert_eq!(c.create("/dir/file/new", 0), Err(Error::NotADirectory));
    assert_eq!(c.mkdir("/dir/file/new"), Err(Error::NotADirectory));
    assert_eq!(c.ls("/dir/file").err(), Some(Error::NotADirectory));
    assert_eq!(c.read("/dir", 0, 1).err(), Some(Error::IsADirectory));
    assert_eq!(c.read("/", 0, 1).err(), Some(Error::IsADirectory));
    assert_eq!(c.write("/dir", 0, b"x").err(), Some(Error::IsADirectory));
    assert_eq!(c.truncate("/dir", 0), Err(Error::IsADirectory));
    assert_eq!(
        c.create("/dir", fsproto::create::TRUNCATE),
        Err(Error::IsADirectory)
    );
    assert_eq!(c.lookup("/dir"), Ok(Kind::Dir));
}

#[test]
fn not_empty() {
    if !have_tools() {
        return;
    }
    let (img, mut c) = fresh("not_empty");
    assert_eq!(c.remove("/dir"), Err(Error::NotEmpty));
    assert_eq!(c.read_all("/dir/file").unwrap(), b"contents");
    c.remove("/dir/file").unwrap();
    c.remove("/dir").unwrap();
    c.remove("/empty").unwrap();
    assert_eq!(c.ls("/").unwrap(), []);
    c.fsync().unwrap();
    drop(c);
    fsck(&img).expect("clean");
}

#[test]
fn bad_paths() {
    if !have_tools() {
        return;
    }
    let (img, mut c) = fresh("bad_paths");
    assert_eq!(c.remove("/"), Err(Error::BadPath));
    assert_eq!(c.rename("/", "/x"), Err(Error::BadPath));
    assert_eq!(c.rename("/dir", "/"), Err(Error::BadPath));
    assert_eq!(c.create("/", 0), Err(Error::BadPath));
    assert_eq!(c.mkdir("/"), Err(Error::BadPath));
    // A directory cannot move into itself or below itself.
    c.mkdir("/dir/sub").unwrap();
    assert_eq!(c.rename("/dir", "/dir/sub/dir"), Err(Error::BadPath));
    assert_eq!(c.rename("/dir", "/DIR/inside"), Err(Error::BadPath));
    // Onto itself is nothing to do.
    assert_eq!(c.rename("/dir", "/dir"), Ok(()));
    // Paths the protocol refuses arrive as raw bytes and get their operation's reply.
    for bad in ["relative", "/a//b", "/a/../b", "/trailing/", "/./x"] {
        let r = raw_lookup(&mut c, bad);
        assert_eq!(r, Some(Error::BadPath), "{bad}");
    }
    c.fsync().unwrap();
    drop(c);
    fsck(&img).expect("clean");
}

/// A lookup of `path` built by hand (the encoder refuses bad paths); the reply's error.
fn raw_lookup(c: &mut Client<FileDevice>, path: &str) -> Option<Error> {
    let mut msg = vec![0u8; 64];
    let n = Request::Lookup { id: 7, path: "/x" }
        .encode(&mut msg)
        .unwrap();
    // Keep the header, put the hand-made path after it.
    assert_eq!(n, HEADER_LEN + 2);
    msg.truncate(HEADER_LEN);
    msg[20..22].copy_from_slice(&(path.len() as u16).to_le_bytes());
    msg.extend_from_slice(path.as_bytes());
    let reply = c.raw(&msg);
    match Reply::decode(&reply).unwrap() {
        Reply::Lookup { id: 7, result } => result.err(),
        r => panic!("{r:?}"),
    }
}

#[test]
fn names_too_long_and_invalid() {
    if !have_tools() {
        return;
    }
    let (img, mut c) = fresh("names");
    let long = format!("/{}", "n".repeat(256));
    assert_eq!(c.create(&long, 0), Err(Error::NameTooLong));
    assert_eq!(c.mkdir(&long), Err(Error::NameTooLong));
    assert_eq!(c.rename("/dir/file", &long), Err(Error::NameTooLong));
    // Looking up a name no FAT entry can have says so, also as a directory on the way.
    assert_eq!(c.lookup(&long), Err(Error::NameTooLong));
    assert_eq!(c.lookup(&format!("{long}/x")), Err(Error::NameTooLong));
    let at_limit = format!("/{}", "n".repeat(255));
    c.create(&at_limit, 0).unwrap();
    assert_eq!(c.lookup(&at_limit), Ok(Kind::File));
    // Past the protocol's limit the request does not even decode; still NameTooLong.
    let huge = format!("/{}", "n".repeat(MAX_NAME + 1));
    assert_eq!(raw_lookup(&mut c, &huge), Some(Error::NameTooLong));
    for bad in [
        "/a*b",
        "/what?",
        "/x:y",
        "/pipe|",
        "/quote\"",
        "/lt<",
        "/back\\slash",
        "/tab\t",
        "/dot.",
        "/ lead",
    ] {
        assert_eq!(c.create(bad, 0), Err(Error::InvalidName), "{bad:?}");
        assert_eq!(c.mkdir(bad), Err(Error::InvalidName), "{bad:?}");
    }
    assert_eq!(c.rename("/dir/file", "/dir/f*"), Err(Error::InvalidName));
    assert_eq!(c.read_all("/dir/file").unwrap(), b"contents");
    c.fsync().unwrap();
    drop(c);
    fsck(&img).expect("clean");
}

#[test]
fn too_big_bad_request_unsupported() {
    if !have_tools() {
        return;
    }
    let (_, mut c) = fresh("sizes");
    // FAT sizes are 32-bit.
    assert_eq!(
        c.write("/dir/file", u64::from(u32::MAX), b"x"),
        Err(Error::TooBig)
    );
    assert_eq!(c.write("/dir/file", u64::MAX, b"x"), Err(Error::TooBig));
    assert_eq!(c.truncate("/dir/file", 1 << 32), Err(Error::TooBig));
    // A read asking for more than one message carries.
    let mut msg = vec![0; 64];
    let n = Request::Read {
        id: 3,
        path: "/dir/file",
        offset: 0,
        len: 1,
    }
    .encode(&mut msg)
    .unwrap();
    msg.truncate(n);
    msg[16..20].copy_from_slice(&(fsproto::MAX_DATA as u32 + 1).to_le_bytes());
    let r = c.raw(&msg);
    assert_eq!(
        Reply::decode(&r).unwrap(),
        Reply::Read {
            id: 3,
            result: Err(Error::TooBig)
        }
    );
    // Garbage is rejected, an unknown operation is unsupported; both are answered.
    let r = c.raw(b"not a request at all, just bytes");
    assert_eq!(
        Reply::decode(&r).unwrap(),
        Reply::Rejected {
            id: 0,
            error: Error::BadRequest
        }
    );
    msg[2] = 42;
    let r = c.raw(&msg);
    assert_eq!(
        Reply::decode(&r).unwrap(),
        Reply::Rejected {
            id: 3,
            error: Error::Unsupported
        }
    );
    assert_eq!(c.read_all("/dir/file").unwrap(), b"contents");
}

#[test]
fn device_errors_are_io() {
    if !have_tools() {
        return;
    }
    let dir = scratch("io");
    let img = dir.join("io.img");
    mkfs(&img, 64 * 1024, 32);
    // A small cache, so that writes and reads reach the device within one request.
    let srv = fatserve::FatServer::mount_with_cache(FileDevice::open(&img), 16).unwrap();
    let mut c = Client::new(srv);
    let big = contents(300_000, 1);
    c.put("/f", &big).unwrap();
    c.fsync().unwrap();
    c.srv.with_device(|d| d.fail_reads = true);
    assert_eq!(c.read_all("/f"), Err(Error::Io));
    c.srv.with_device(|d| d.fail_reads = false);
    c.srv.with_device(|d| d.fail_writes = true);
    assert_eq!(c.put("/g", &big), Err(Error::Io));
    assert_eq!(c.fsync(), Err(Error::Io));
    c.srv.with_device(|d| d.fail_writes = false);
    // Once the device works again, so does the driver, and nothing was lost.
    c.fsync().unwrap();
    assert!(c.read_all("/f").unwrap() == big);
    c.put("/g", &big).unwrap();
    c.fsync().unwrap();
    drop(c);
    assert!(mcopy_out(&img, "/g", &dir) == big);
    fsck(&img).expect("clean once the device recovered");
}

#[test]
fn corrupt_volume_is_refused() {
    if !have_tools() {
        return;
    }
    let dir = scratch("corrupt");
    let img = dir.join("bad.img");
    mkfs(&img, 64 * 1024, 32);
    // Zero the boot sector's BPB.
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[11..90].fill(0);
    std::fs::write(&img, &bytes).unwrap();
    let r = fatserve::FatServer::mount(FileDevice::open(&img));
    assert_eq!(r.err(), Some(Error::Corrupt));
    // A device too small to hold what the boot sector describes.
    let img = dir.join("short.img");
    mkfs(&img, 64 * 1024, 32);
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.set_len(1 << 20).unwrap();
    let r = fatserve::FatServer::mount(FileDevice::open(&img));
    assert!(
        matches!(r.as_ref().err(), Some(Error::Corrupt)),
        "a truncated volume mounted: {:?}",
        r.err()
    );
}
