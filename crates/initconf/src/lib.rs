//! init's configuration: a plain-text list of services (`docs/init.md`), parsed without the
//! standard library so that init and the host tests share one parser; the restart back-off;
//! and the two messages a child exchanges with init to reach a service (`service_request`,
//! `ServiceReply`).
//!
//! Guarantees: [`parse`] accepts exactly the documented format and names the line and the
//! problem otherwise; a parsed [`Config`] has unique service names, and every name in a
//! `handles=` list is `system`, `console` or a service defined on an earlier line, so init
//! can start services in file order.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

/// What init does when a service dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Start it again whatever the cause.
    Always,
    /// Start it again unless it exited with code 0.
    OnFailure,
    /// Leave it dead.
    Never,
}

impl Restart {
    /// Whether a service with this policy is started again after a death; `clean` is an
    /// `exit(0)`.
    pub fn restarts(self, clean: bool) -> bool {
        match self {
            Restart::Always => true,
            Restart::OnFailure => !clean,
            Restart::Never => false,
        }
    }
}

/// What a service is given, in order, as its handles 1, 2, ...
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gift<'a> {
    /// A copy of init's system handle.
    System,
    /// A copy of init's console handle.
    Console,
    /// A new channel to the named service (whose other end init hands that service with the
    /// service's connect message).
    Service(&'a str),
}

/// Most handles a service can be given.
pub const MAX_GIFTS: usize = 7;
/// Default arena ceiling, MiB.
pub const DEFAULT_CEILING_MIB: u64 = 16;
/// Largest arena ceiling a line may ask for, MiB.
pub const MAX_CEILING_MIB: u64 = 4096;

/// One `service` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service<'a> {
    /// Its name (letters, digits, `-`, `_`).
    pub name: &'a str,
    /// The module to spawn, e.g. `bin/fs`.
    pub module: &'a str,
    /// The spawn argument.
    pub arg: u64,
    /// The restart policy (default `always`).
    pub restart: Restart,
    /// The bytes of the message by which the service accepts new client channels, if it does.
    pub connect: Option<&'a str>,
    /// Its handles 1, 2, ...
    pub gifts: Vec<Gift<'a>>,
    /// Arena ceiling in MiB.
    pub ceiling_mib: u64,
    /// The line it was defined on (1-based).
    pub line: usize,
}

/// A parsed configuration: the services in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config<'a> {
    /// The services.
    pub services: Vec<Service<'a>>,
}

impl<'a> Config<'a> {
    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service<'a>> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// What is wrong with a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem<'a> {
    /// The first word is not `service`.
    UnknownDirective(&'a str),
    /// `service` needs a name and a module.
    MissingField,
    /// A name with characters other than letters, digits, `-`, `_`, or empty.
    BadName(&'a str),
    /// Two services with one name.
    Duplicate(&'a str),
    /// A word that is not `key=value`, or an unknown key.
    UnknownOption(&'a str),
    /// A value that does not parse for its key.
    BadValue(&'a str),
    /// A `handles=` name that is neither `system`, `console` nor an earlier service.
    UnknownService(&'a str),
    /// More than [`MAX_GIFTS`] handles.
    TooManyHandles,
}

/// A parse error: the line (1-based) and the problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError<'a> {
    /// The line.
    pub line: usize,
    /// What is wrong.
    pub problem: Problem<'a>,
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match self.problem {
            Problem::UnknownDirective(w) => write!(f, "unknown directive \"{w}\""),
            Problem::MissingField => write!(f, "service needs a name and a module"),
            Problem::BadName(n) => write!(f, "bad service name \"{n}\""),
            Problem::Duplicate(n) => write!(f, "service \"{n}\" defined twice"),
            Problem::UnknownOption(o) => write!(f, "unknown option \"{o}\""),
            Problem::BadValue(v) => write!(f, "bad value in \"{v}\""),
            Problem::UnknownService(n) => write!(
                f,
                "handles: \"{n}\" is not system, console or a service defined above"
            ),
            Problem::TooManyHandles => write!(f, "more than {MAX_GIFTS} handles"),
        }
    }
}

fn good_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn number(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Parses a configuration text.
pub fn parse(text: &str) -> Result<Config<'_>, ParseError<'_>> {
    let mut config = Config::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |problem| ParseError { line, problem };
        let content = raw.split('#').next().unwrap_or("");
        let mut words = content.split_ascii_whitespace();
        let Some(first) = words.next() else {
            continue;
        };
        if first != "service" {
            return Err(err(Problem::UnknownDirective(first)));
        }
        let (Some(name), Some(module)) = (words.next(), words.next()) else {
            return Err(err(Problem::MissingField));
        };
        if !good_name(name) {
            return Err(err(Problem::BadName(name)));
        }
        if config.service(name).is_some() {
            return Err(err(Problem::Duplicate(name)));
        }
        let mut s = Service {
            name,
            module,
            arg: 0,
            restart: Restart::Always,
            connect: None,
            gifts: Vec::new(),
            ceiling_mib: DEFAULT_CEILING_MIB,
            line,
        };
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                return Err(err(Problem::UnknownOption(word)));
            };
            match key {
                "arg" => s.arg = number(value).ok_or(err(Problem::BadValue(word)))?,
                "ceiling" => {
                    s.ceiling_mib = number(value)
                        .filter(|&m| (1..=MAX_CEILING_MIB).contains(&m))
                        .ok_or(err(Problem::BadValue(word)))?
                }
                "restart" => {
                    s.restart = match value {
                        "always" => Restart::Always,
                        "on-failure" => Restart::OnFailure,
                        "never" => Restart::Never,
                        _ => return Err(err(Problem::BadValue(word))),
                    }
                }
                "connect" => {
                    if value.is_empty() || value.len() > 64 {
                        return Err(err(Problem::BadValue(word)));
                    }
                    s.connect = Some(value);
                }
                "handles" => {
                    for n in value.split(',') {
                        let gift = match n {
                            "system" => Gift::System,
                            "console" => Gift::Console,
                            other if config.service(other).is_some() => Gift::Service(other),
                            other => return Err(err(Problem::UnknownService(other))),
                        };
                        if s.gifts.len() == MAX_GIFTS {
                            return Err(err(Problem::TooManyHandles));
                        }
                        s.gifts.push(gift);
                    }
                }
                _ => return Err(err(Problem::UnknownOption(word))),
            }
        }
        config.services.push(s);
    }
    Ok(config)
}

/// The first restart waits this long; each failure in a row doubles it.
pub const BACKOFF_FIRST_MS: u64 = 100;
/// The longest wait between restarts.
pub const BACKOFF_CAP_MS: u64 = 10_000;
/// A service that ran at least this long before dying starts its back-off afresh.
pub const BACKOFF_RESET_MS: u64 = 30_000;

/// The wait before restart number `failures` (1 for the first death in a row): 100 ms,
/// 200 ms, 400 ms, ... up to [`BACKOFF_CAP_MS`].
pub fn backoff_ms(failures: u32) -> u64 {
    let doublings = failures.saturating_sub(1).min(32);
    BACKOFF_FIRST_MS
        .saturating_mul(1u64 << doublings)
        .min(BACKOFF_CAP_MS)
}

/// The prefix of a service request: a child asks its parent (init) for a new channel to a
/// service by sending these bytes followed by the service's name.
pub const REQUEST: &[u8] = b"MXSVC?";
/// The prefix of a successful reply; the message carries the client's end of the channel.
pub const REPLY_OK: &[u8] = b"MXSVC!";
/// The prefix of a refusal; the rest is the reason, in UTF-8.
pub const REPLY_ERR: &[u8] = b"MXSVC-";

/// The request for a connection to `name`, written into `out`; returns its length, or
/// `None` when `out` is too small.
pub fn service_request(name: &str, out: &mut [u8]) -> Option<usize> {
    let n = REQUEST.len() + name.len();
    let out = out.get_mut(..n)?;
    out[..REQUEST.len()].copy_from_slice(REQUEST);
    out[REQUEST.len()..].copy_from_slice(name.as_bytes());
    Some(n)
}

/// The service a request names, if `msg` is one.
pub fn parse_request(msg: &[u8]) -> Option<&str> {
    core::str::from_utf8(msg.strip_prefix(REQUEST)?).ok()
}

/// init's answer to a service request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceReply<'a> {
    /// The channel is attached to the message.
    Connected,
    /// Why not.
    Refused(&'a str),
}

impl<'a> ServiceReply<'a> {
    /// Parses a reply; `None` for anything else.
    pub fn parse(msg: &'a [u8]) -> Option<ServiceReply<'a>> {
        if msg == REPLY_OK {
            return Some(ServiceReply::Connected);
        }
        let why = msg.strip_prefix(REPLY_ERR)?;
        Some(ServiceReply::Refused(core::str::from_utf8(why).ok()?))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    const GOOD: &str = "\
# the default
service ramblk bin/ramblk arg=40 restart=always connect=MXBKCONN ceiling=64

service fs bin/fs handles=ramblk connect=MXFSCONN   # the filesystem
service shell bin/shell restart=on-failure handles=system,console arg=0x10
service once bin/probe restart=never
";

    #[test]
    fn parses_every_option() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.services.len(), 4);
        let r = &c.services[0];
        assert_eq!((r.name, r.module, r.arg), ("ramblk", "bin/ramblk", 40));
        assert_eq!(r.restart, Restart::Always);
        assert_eq!(r.connect, Some("MXBKCONN"));
        assert_eq!(r.ceiling_mib, 64);
        assert_eq!(r.line, 2);
        let fs = c.service("fs").unwrap();
        assert_eq!(fs.gifts, [Gift::Service("ramblk")]);
        assert_eq!(fs.ceiling_mib, DEFAULT_CEILING_MIB);
        assert_eq!(fs.line, 4);
        let sh = c.service("shell").unwrap();
        assert_eq!(sh.gifts, [Gift::System, Gift::Console]);
        assert_eq!((sh.arg, sh.restart), (16, Restart::OnFailure));
        assert_eq!(c.service("once").unwrap().restart, Restart::Never);
        assert!(c.service("nope").is_none());
        assert_eq!(parse("").unwrap().services.len(), 0);
        assert_eq!(parse("  # only a comment\n\n").unwrap().services.len(), 0);
    }

    #[test]
    fn the_repository_default_parses() {
        let c = parse(include_str!("../../../rootfs/etc/init.conf")).unwrap();
        let shell = c.service("shell").expect("shell missing");
        assert_eq!(shell.module, "/bin/shell");
        assert_eq!(shell.gifts, [Gift::System, Gift::Console]);
        // init's built-in configuration for a boot without a root filesystem.
        let c = parse(include_str!("../../../user/init/ram.conf")).unwrap();
        for name in ["ramblk", "fs", "shell"] {
            assert!(c.service(name).is_some(), "{name} missing");
        }
    }

    #[test]
    fn each_problem_is_named_with_its_line() {
        let cases: &[(&str, Problem)] = &[
            ("start x bin/x", Problem::UnknownDirective("start")),
            ("service x", Problem::MissingField),
            ("service a/b bin/x", Problem::BadName("a/b")),
            ("service x bin/x\nservice x bin/y", Problem::Duplicate("x")),
            ("service x bin/x fast", Problem::UnknownOption("fast")),
            (
                "service x bin/x colour=red",
                Problem::UnknownOption("colour=red"),
            ),
            ("service x bin/x arg=ten", Problem::BadValue("arg=ten")),
            (
                "service x bin/x restart=maybe",
                Problem::BadValue("restart=maybe"),
            ),
            ("service x bin/x ceiling=0", Problem::BadValue("ceiling=0")),
            (
                "service x bin/x ceiling=99999",
                Problem::BadValue("ceiling=99999"),
            ),
            ("service x bin/x connect=", Problem::BadValue("connect=")),
            (
                "service x bin/x handles=later",
                Problem::UnknownService("later"),
            ),
            ("service x bin/x handles=x", Problem::UnknownService("x")),
            (
                "service x bin/x handles=system,system,system,system,system,system,system,console",
                Problem::TooManyHandles,
            ),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.problem, *want, "{text}");
            assert_eq!(e.line, text.lines().count(), "{text}");
            assert!(e.to_string().starts_with("line "), "{e}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff_ms(0), 100);
        assert_eq!(backoff_ms(1), 100);
        assert_eq!(backoff_ms(2), 200);
        assert_eq!(backoff_ms(4), 800);
        assert_eq!(backoff_ms(8), 10_000);
        assert_eq!(backoff_ms(u32::MAX), BACKOFF_CAP_MS);
    }

    #[test]
    fn restart_policies() {
        assert!(Restart::Always.restarts(true) && Restart::Always.restarts(false));
        assert!(!Restart::OnFailure.restarts(true) && Restart::OnFailure.restarts(false));
        assert!(!Restart::Never.restarts(true) && !Restart::Never.restarts(false));
    }

    #[test]
    fn service_messages_round_trip() {
        let mut buf = [0u8; 32];
        let n = service_request("fs", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"MXSVC?fs");
        assert_eq!(parse_request(&buf[..n]), Some("fs"));
        assert_eq!(parse_request(b"MXSVC!fs"), None);
        assert_eq!(service_request("a-long-name", &mut [0u8; 8]), None);
        assert_eq!(
            ServiceReply::parse(b"MXSVC!"),
            Some(ServiceReply::Connected)
        );
        assert_eq!(
            ServiceReply::parse(b"MXSVC-no such service"),
            Some(ServiceReply::Refused("no such service"))
        );
        assert_eq!(ServiceReply::parse(b"hello"), None);
    }
}
