//! Links this program as a moxie module: a position-independent shared object whose entry is
//! `_start` and whose `moxie_sys_*` imports stay undefined for the kernel's loader to bind.
fn main() {
    for arg in [
        "-no-pie",
        "-shared",
        "-e_start",
        "-znow",
        "-zmax-page-size=4096",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
