//! Console logging with levels, on COM1 through the `log` crate's macros.
//!
//! Lines look like `[info ] message`. The level comes from `log=` on the command line.
use crate::arch::serial;
use bootinfo::LogLevel;

struct Console;

impl log::Log for Console {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let level = match r.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warn ",
                log::Level::Info => "info ",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            serial::write_fmt(format_args!("[{level}] {}\n", r.args()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Console = Console;

/// Installs the console logger at `level`.
pub fn init(level: LogLevel) {
    let _ = log::set_logger(&LOGGER);
    set_level(level);
}

/// Changes the console level.
pub fn set_level(level: LogLevel) {
    log::set_max_level(match level {
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Trace => log::LevelFilter::Trace,
    });
}

/// Prints a line without a level prefix (test and benchmark reports the harness parses).
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::arch::serial::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}
