//! `cargo xtask image` as a user runs it: the built binary's output and exit status for a
//! sample image, a copy with a flipped byte, a truncated copy and a wrong-version copy.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("runs xtask")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/xtask-image-cli");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn verify_and_inspect_exit_status() {
    let dir = scratch();
    let sample = dir.join("sample.img");
    let s = sample.to_str().unwrap();
    let out = xtask(&["image", "make-sample", s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let len = std::fs::metadata(&sample).unwrap().len();

    let out = xtask(&["image", "verify", s]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("{s}: ok (19 sections, {len} bytes)\n")
    );

    let out = xtask(&["image", "inspect", s]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("process 2: worker-b"));
    let out = xtask(&["image", "inspect", "--json", s]);
    assert_eq!(out.status.code(), Some(0));
    let json = text(&out.stdout);
    assert!(json.contains("\"ok\": true"), "{json}");
    assert!(json.contains("\"name\": \"supervisor\""), "{json}");
    assert!(json.contains("\"kind\": \"ended\""), "{json}");
    assert!(
        text(&xtask(&["image", "inspect", s]).stdout).contains("thread tid 11, rights 0x0, live")
    );

    let bytes = std::fs::read(&sample).unwrap();
    let broken = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        f(&mut b);
        let p = dir.join(name);
        std::fs::write(&p, b).unwrap();
        p.to_str().unwrap().to_string()
    };
    // A byte in the last section (process 2's ARENA page).
    let flipped = broken("flipped.img", &|b| {
        let n = b.len();
        b[n - 100] ^= 0x40;
    });
    let out = xtask(&["image", "verify", &flipped]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "{flipped}: section 18 (ARENA of process 2): CRC mismatch: stored 0x"
        )),
        "{err}"
    );
    let out = xtask(&["image", "inspect", &flipped]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains(" BAD\n"));

    let truncated = broken("truncated.img", &|b| b.truncate(5000));
    let out = xtask(&["image", "verify", &truncated]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("{truncated}: truncated: header says {len} bytes, file has 5000\n")
    );

    let version = broken("version.img", &|b| b[8] = 2);
    let out = xtask(&["image", "verify", &version]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("{version}: unsupported version 2 (this build reads 1)\n")
    );

    // A missing file is an error too.
    let out = xtask(&["image", "verify", dir.join("nope.img").to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
}
