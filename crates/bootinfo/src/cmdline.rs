//! The kernel command line: space-separated `key=value` words.
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `root=` | the device holding the root filesystem, e.g. `virtio-blk0` | `virtio-blk0` |
//! | `init=` | path of the first process, spawned from the root filesystem | `/sbin/init` |
//! | `log=`  | console log level: `error`, `warn`, `info`, `debug`, `trace` | `info` |
//! | `test=` | run in-kernel test cases instead of booting on (`all`, or names joined by `,`) | none |
//! | `test-skip=` | with `test=all`: skip the first N cases (the harness resumes after a crash) | 0 |
//! | `bench=` | run in-kernel benchmarks (`all`, or names joined by `,`) and power off | none |
//! | `crash=` | deliberately fault at boot (`pagefault`, `panic`): used to test the exception report | none |
//! | `host-cpus=` | with `test=`: how many host CPUs run the emulator (bounds the parallelism a test may expect) | none |
//!
//! Unknown words are kept so the core can warn about them; a bad value is an error naming it.

/// Console verbosity, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// The default.
    Info,
    /// Details for developers.
    Debug,
    /// Everything.
    Trace,
}

/// A parse error naming the offending word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    /// `log=` with a value that is not a level.
    BadLogLevel(&'a str),
    /// `test-skip=` or `host-cpus=` with a value that is not a number.
    BadNumber(&'a str),
    /// A known key with an empty value (`root=`).
    EmptyValue(&'a str),
}

impl core::fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CmdlineError::BadLogLevel(v) => write!(
                f,
                "log={v}: not a level (use error, warn, info, debug or trace)"
            ),
            CmdlineError::BadNumber(v) => write!(f, "{v}: not a number"),
            CmdlineError::EmptyValue(k) => write!(f, "{k}= needs a value"),
        }
    }
}

/// The parsed command line; borrows the text it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cmdline<'a> {
    /// `root=`.
    pub root: &'a str,
    /// `init=`.
    pub init: &'a str,
    /// `log=`.
    pub log: LogLevel,
    /// `test=`, if present.
    pub test: Option<&'a str>,
    /// `test-skip=`.
    pub test_skip: usize,
    /// `bench=`, if present.
    pub bench: Option<&'a str>,
    /// `crash=`, if present.
    pub crash: Option<&'a str>,
    /// `host-cpus=`, if present.
    pub host_cpus: Option<usize>,
    text: &'a str,
}

/// The default root device.
pub const DEFAULT_ROOT: &str = "virtio-blk0";
/// The default first process.
pub const DEFAULT_INIT: &str = "/sbin/init";

impl<'a> Cmdline<'a> {
    /// Parses `text`; the first bad value is an error.
    pub fn parse(text: &'a str) -> Result<Cmdline<'a>, CmdlineError<'a>> {
        let mut c = Cmdline {
            root: DEFAULT_ROOT,
            init: DEFAULT_INIT,
            log: LogLevel::Info,
            test: None,
            test_skip: 0,
            bench: None,
            crash: None,
            host_cpus: None,
            text,
        };
        for (key, value) in words(text) {
            let Some(value) = value else { continue };
            let nonempty = |v: &'a str| {
                if v.is_empty() {
                    Err(CmdlineError::EmptyValue(key))
                } else {
                    Ok(v)
                }
            };
            match key {
                "root" => c.root = nonempty(value)?,
                "init" => c.init = nonempty(value)?,
                "log" => c.log = parse_level(value)?,
                "test" => c.test = Some(nonempty(value)?),
                "test-skip" => {
                    c.test_skip = value.parse().map_err(|_| CmdlineError::BadNumber(value))?
                }
                "bench" => c.bench = Some(nonempty(value)?),
                "crash" => c.crash = Some(nonempty(value)?),
                "host-cpus" => {
                    c.host_cpus = Some(value.parse().map_err(|_| CmdlineError::BadNumber(value))?)
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// Words this parser does not know, for a warning at boot.
    pub fn unknown(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.text.split_ascii_whitespace().filter(|w| {
            let key = w.split_once('=').map_or(*w, |(k, _)| k);
            !matches!(
                key,
                "root" | "init" | "log" | "test" | "test-skip" | "bench" | "crash" | "host-cpus"
            )
        })
    }
}

fn words(text: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    text.split_ascii_whitespace()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (w, None),
        })
}

fn parse_level(v: &str) -> Result<LogLevel, CmdlineError<'_>> {
    Ok(match v {
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        _ => return Err(CmdlineError::BadLogLevel(v)),
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn defaults() {
        let c = Cmdline::parse("").unwrap();
        assert_eq!(c.root, DEFAULT_ROOT);
        assert_eq!(c.init, DEFAULT_INIT);
        assert_eq!(c.log, LogLevel::Info);
        assert_eq!(c.test, None);
    }

    #[test]
    fn known_keys() {
        let c = Cmdline::parse(
            "root=virtio-blk1  init=/bin/sh log=debug test=all test-skip=3 bench=boot",
        )
        .unwrap();
        assert_eq!(c.root, "virtio-blk1");
        assert_eq!(c.init, "/bin/sh");
        assert_eq!(c.log, LogLevel::Debug);
        assert_eq!(c.test, Some("all"));
        assert_eq!(c.test_skip, 3);
        assert_eq!(c.bench, Some("boot"));
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(
            Cmdline::parse("log=loud"),
            Err(CmdlineError::BadLogLevel("loud"))
        );
        assert_eq!(
            Cmdline::parse("root="),
            Err(CmdlineError::EmptyValue("root"))
        );
        assert_eq!(
            Cmdline::parse("test-skip=x"),
            Err(CmdlineError::BadNumber("x"))
        );
        let msg = std::format!("{}", CmdlineError::BadLogLevel("loud"));
        assert!(msg.contains("log=loud"));
    }

    #[test]
    fn unknown_words_are_reported() {
        let c = Cmdline::parse("quiet log=warn foo=bar").unwrap();
        let u: Vec<_> = c.unknown().collect();
        assert_eq!(u, ["quiet", "foo=bar"]);
    }
}
