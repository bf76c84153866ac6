//! `fatserve::format`: a volume it makes mounts, works through the protocol, and is clean and
//! of the expected FAT type for the host's `fsck.fat`.
mod common;

use common::{Client, FileDevice};
use fatserve::FatServer;
use fsproto::Kind;

fn format_file(kib: u64, test: &str) -> std::path::PathBuf {
    let dir = common::scratch(test);
    let img = dir.join("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(kib * 1024)
        .unwrap();
    let dev = fatserve::format(FileDevice::open(&img), b"MOXIE RAM  ").unwrap();
    drop(dev);
    img
}

#[test]
fn formatted_fat32_volume_mounts_and_is_clean() {
    if !common::have_tools() {
        return;
    }
    let img = format_file(40 * 1024, "format32");
    common::fsck(&img).expect("fsck.fat clean after format");
    let boot = std::fs::read(&img).unwrap();
    assert_eq!(&boot[82..87], b"FAT32", "the boot sector names FAT32");
    let mut c = Client::new(FatServer::mount(FileDevice::open(&img)).unwrap());
    assert_eq!(c.lookup("/"), Ok(Kind::Dir));
    c.mkdir("/etc").unwrap();
    c.create("/etc/motd", 0).unwrap();
    c.write("/etc/motd", 0, b"hello").unwrap();
    c.fsync().unwrap();
    drop(c);
    common::fsck(&img).expect("fsck.fat clean after writes");
    assert_eq!(
        common::run("mtype", &["-i", img.to_str().unwrap(), "::/etc/motd"]),
        "hello"
    );
}

#[test]
fn small_device_gets_a_smaller_fat() {
    if !common::have_tools() {
        return;
    }
    let img = format_file(2048, "format-small");
    common::fsck(&img).expect("fsck.fat clean after format");
    let boot = std::fs::read(&img).unwrap();
    assert_ne!(&boot[82..87], b"FAT32");
    let mut c = Client::new(FatServer::mount(FileDevice::open(&img)).unwrap());
    assert_eq!(c.lookup("/nothing"), Err(fsproto::Error::NotFound));
}
