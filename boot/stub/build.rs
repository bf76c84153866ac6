//! Build script of the boot stub: links it at 1 MiB with its own linker script and embeds the
//! compressed core that `cargo xtask` packed (`MOXIE_CORE_IMAGE`). Without that variable (for
//! `cargo clippy`, say) an empty core is embedded and the stub refuses to boot it.
use std::{env, fs, path::PathBuf};

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    println!(
        "cargo:rustc-link-arg-bins=-T{}",
        dir.join("linker.ld").display()
    );
    // The target defaults to static PIE; the stub runs where it is linked, without relocation.
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-env-changed=MOXIE_CORE_IMAGE");

    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("core.img");
    match env::var_os("MOXIE_CORE_IMAGE") {
        Some(path) => {
            println!("cargo:rerun-if-changed={}", PathBuf::from(&path).display());
            fs::copy(&path, &out).expect("MOXIE_CORE_IMAGE names a readable file");
        }
        None => fs::write(&out, []).unwrap(),
    }
}
