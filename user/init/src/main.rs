//! `init`: the first process. For now it greets the console and exits; it becomes the root of
//! the process tree (configuration, services, restarts) once the boot bundle reaches the disk.
#![no_std]
#![no_main]

use moxie_rt::println;

/// Entry, called by the runtime.
#[unsafe(no_mangle)]
pub extern "C" fn main(_arg: u64) -> i32 {
    println!("init: hello from ring 3");
    0
}
