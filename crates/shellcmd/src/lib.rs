//! The shell's command language (`user/shell`, `docs/system.md`): a line becomes a
//! [`Command`] or a [`ParseError`] that says what is wrong and how the command is used; the
//! line editor that turns console bytes into lines; and what the suspend commands print
//! ([`suspend`]). No standard library, so the shell and the host tests share the code.
//!
//! Guarantees: [`parse`] never panics; every command's usage line is in [`HELP`]; a
//! [`LineEditor`] never holds more than [`MAX_LINE`] bytes and hands out only UTF-8 lines.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod suspend;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// An empty line (or only a comment).
    Nothing,
    /// `help`: the command list.
    Help,
    /// `ps`: the processes.
    Ps,
    /// `spawn MODULE [ARG]`: start a program (`/bin/MODULE` on the root filesystem when the
    /// name has no `/`; a path with a `/` as given: absolute on the root filesystem, else a
    /// file of the boot bundle).
    Spawn {
        /// The module path in the boot bundle.
        module: String,
        /// The spawn argument.
        arg: u64,
    },
    /// `kill PID`.
    Kill {
        /// The process.
        pid: u64,
    },
    /// `ls [DIR]`.
    Ls {
        /// Absolute path.
        path: String,
    },
    /// `cat FILE`.
    Cat {
        /// Absolute path.
        path: String,
    },
    /// `write FILE TEXT`: the file holds TEXT and a newline afterwards.
    Write {
        /// Absolute path.
        path: String,
        /// The rest of the line, spaces kept.
        text: &'a str,
    },
    /// `crc FILE`: the file's size and CRC-32 (to compare with a host's checksum).
    Crc {
        /// Absolute path.
        path: String,
    },
    /// `fill FILE BYTES`: the file holds BYTES bytes of [`fill_byte`]'s pattern.
    Fill {
        /// Absolute path.
        path: String,
        /// How many bytes.
        bytes: u64,
    },
    /// `rm PATH`: a file or an empty directory.
    Rm {
        /// Absolute path.
        path: String,
    },
    /// `mkdir DIR`.
    Mkdir {
        /// Absolute path.
        path: String,
    },
    /// `diskbench FILE`: timed sequential write + fsync and read of 16 MiB, and random 4 KiB
    /// reads, printed as `bench:` lines.
    DiskBench {
        /// Absolute path of the scratch file.
        path: String,
    },
    /// `suspend PID`: suspend a process and its live descendants into one image.
    Suspend {
        /// The root of the tree.
        pid: u64,
    },
    /// `resume ID [CPU]`: resume an image, on CPU (`None`: each thread on its own core).
    Resume {
        /// The image's id (`/sys/suspended/ID.img`).
        id: u64,
        /// The core to run on.
        cpu: Option<u32>,
    },
    /// `images`: the suspended images.
    Images,
    /// `inspect ID`: a summary of an image, read through the filesystem.
    Inspect {
        /// The image's id.
        id: u64,
    },
    /// `discard ID`: remove an image.
    Discard {
        /// The image's id.
        id: u64,
    },
    /// `migrate PID CPU`: move a process tree to another core through the disk.
    Migrate {
        /// The root of the tree.
        pid: u64,
        /// The core it goes to.
        cpu: u32,
    },
    /// `mem`: frames, heap, ledgers.
    Mem,
    /// `uptime`.
    Uptime,
    /// `poweroff`.
    PowerOff,
}

/// What is wrong with a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError<'a> {
    /// No such command.
    Unknown(&'a str),
    /// Wrong arguments; the usage line.
    Usage(&'static str),
    /// Not a number.
    BadNumber(&'a str),
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unknown(w) => write!(f, "unknown command \"{w}\" (try help)"),
            ParseError::Usage(u) => write!(f, "usage: {u}"),
            ParseError::BadNumber(w) => write!(f, "\"{w}\" is not a number"),
        }
    }
}

/// The commands, one per line: usage and what it does.
pub const HELP: &[(&str, &str)] = &[
    ("help", "this list"),
    (
        "ps",
        "processes: pid, parent, state, threads, arena, CPU time, module",
    ),
    (
        "spawn MODULE [ARG]",
        "start /bin/MODULE (or the path MODULE) with a numeric argument",
    ),
    ("kill PID", "end a process"),
    ("ls [DIR]", "list a directory (default /)"),
    ("cat FILE", "print a file"),
    ("write FILE TEXT", "make FILE hold TEXT (and a newline)"),
    ("crc FILE", "size and CRC-32 of a file"),
    (
        "fill FILE BYTES",
        "make FILE hold BYTES bytes of a fixed pattern",
    ),
    ("rm PATH", "remove a file or an empty directory"),
    ("mkdir DIR", "make a directory"),
    (
        "diskbench FILE",
        "time writing (+fsync) and reading 16 MiB, and 4 KiB random reads",
    ),
    (
        "suspend PID",
        "suspend a process and its children to /sys/suspended/ID.img",
    ),
    (
        "resume ID [CPU]",
        "resume an image (on CPU, else each thread on its own core)",
    ),
    ("images", "the suspended images: id and size"),
    (
        "inspect ID",
        "an image's processes, modules, threads, handles and sections",
    ),
    (
        "discard ID",
        "delete an image (its channels' peers see closed)",
    ),
    (
        "migrate PID CPU",
        "move a process and its children to another core",
    ),
    ("mem", "free frames, kernel heap, queued channel bytes"),
    ("uptime", "time since boot"),
    ("poweroff", "stop the machine"),
];

fn usage(cmd: &str) -> &'static str {
    HELP.iter()
        .find(|(u, _)| u.split(' ').next() == Some(cmd))
        .map_or("help", |(u, _)| u)
}

/// A path from the command line made absolute (the working directory is always `/`), with
/// a trailing `/` dropped.
pub fn absolute(p: &str) -> String {
    let mut s = String::new();
    if !p.starts_with('/') {
        s.push('/');
    }
    s.push_str(p);
    while s.len() > 1 && s.ends_with('/') {
        s.pop();
    }
    s
}

fn number(w: &str) -> Result<u64, ParseError<'_>> {
    let v = match w.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => w.parse(),
    };
    v.map_err(|_| ParseError::BadNumber(w))
}

/// A core number (a `u32`).
fn cpu(w: &str) -> Result<u32, ParseError<'_>> {
    u32::try_from(number(w)?).map_err(|_| ParseError::BadNumber(w))
}

/// Parses one line.
pub fn parse(line: &str) -> Result<Command<'_>, ParseError<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Command::Nothing);
    }
    let (cmd, rest) = match line.split_once(char::is_whitespace) {
        Some((c, r)) => (c, r.trim_start()),
        None => (line, ""),
    };
    let args: Vec<&str> = rest.split_whitespace().collect();
    let want = |n: core::ops::RangeInclusive<usize>| {
        if n.contains(&args.len()) {
            Ok(())
        } else {
            Err(ParseError::Usage(usage(cmd)))
        }
    };
    Ok(match cmd {
        "help" => {
            want(0..=0)?;
            Command::Help
        }
        "ps" => {
            want(0..=0)?;
            Command::Ps
        }
        "mem" => {
            want(0..=0)?;
            Command::Mem
        }
        "diskbench" => {
            want(1..=1)?;
            Command::DiskBench {
                path: absolute(args[0]),
            }
        }
        "uptime" => {
            want(0..=0)?;
            Command::Uptime
        }
        "poweroff" => {
            want(0..=0)?;
            Command::PowerOff
        }
        "spawn" => {
            want(1..=2)?;
            let module = if args[0].contains('/') {
                String::from(args[0])
            } else {
                let mut m = String::from("/bin/");
                m.push_str(args[0]);
                m
            };
            let arg = match args.get(1) {
                Some(a) => number(a)?,
                None => 0,
            };
            Command::Spawn { module, arg }
        }
        "suspend" => {
            want(1..=1)?;
            Command::Suspend {
                pid: number(args[0])?,
            }
        }
        "resume" => {
            want(1..=2)?;
            Command::Resume {
                id: number(args[0])?,
                cpu: args.get(1).map(|c| cpu(c)).transpose()?,
            }
        }
        "images" => {
            want(0..=0)?;
            Command::Images
        }
        "inspect" => {
            want(1..=1)?;
            Command::Inspect {
                id: number(args[0])?,
            }
        }
        "discard" => {
            want(1..=1)?;
            Command::Discard {
                id: number(args[0])?,
            }
        }
        "migrate" => {
            want(2..=2)?;
            Command::Migrate {
                pid: number(args[0])?,
                cpu: cpu(args[1])?,
            }
        }
        "kill" => {
            want(1..=1)?;
            Command::Kill {
                pid: number(args[0])?,
            }
        }
        "ls" => {
            want(0..=1)?;
            Command::Ls {
                path: absolute(args.first().copied().unwrap_or("/")),
            }
        }
        "cat" => {
            want(1..=1)?;
            Command::Cat {
                path: absolute(args[0]),
            }
        }
        "crc" => {
            want(1..=1)?;
            Command::Crc {
                path: absolute(args[0]),
            }
        }
        "fill" => {
            want(2..=2)?;
            Command::Fill {
                path: absolute(args[0]),
                bytes: number(args[1])?,
            }
        }
        "rm" => {
            want(1..=1)?;
            Command::Rm {
                path: absolute(args[0]),
            }
        }
        "mkdir" => {
            want(1..=1)?;
            Command::Mkdir {
                path: absolute(args[0]),
            }
        }
        "write" => {
            let Some((file, text)) = rest.split_once(char::is_whitespace) else {
                return Err(ParseError::Usage(usage(cmd)));
            };
            Command::Write {
                path: absolute(file),
                text: text.trim_start(),
            }
        }
        other => return Err(ParseError::Unknown(other)),
    })
}

/// Byte `i` of the pattern `fill` writes: not periodic at any power of two up to 64 KiB, so a
/// block written at the wrong offset shows.
pub fn fill_byte(i: u64) -> u8 {
    (i ^ (i >> 8) ^ (i >> 16).wrapping_mul(7)) as u8
}

/// Longest line the editor keeps.
pub const MAX_LINE: usize = 1024;

/// What one input byte did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing to show.
    None,
    /// Show these bytes (the typed character, or the erase of one).
    Echo(&'static [u8]),
    /// Show the typed byte itself.
    EchoByte(u8),
    /// A whole line (without its end).
    Line(String),
    /// End of input: Ctrl-D on an empty line.
    EndOfInput,
}

/// Turns console bytes into lines: printable bytes collect, Backspace/Delete erase one
/// character, Ctrl-C drops the line, CR or LF ends it (CR LF counts once), Ctrl-D on an empty
/// line ends the input. Other control bytes are ignored.
#[derive(Debug, Default)]
pub struct LineEditor {
    buf: Vec<u8>,
    last_cr: bool,
}

impl LineEditor {
    /// Feeds one byte.
    pub fn feed(&mut self, b: u8) -> Event {
        let after_cr = core::mem::replace(&mut self.last_cr, b == b'\r');
        match b {
            b'\n' if after_cr => Event::None,
            b'\r' | b'\n' => {
                let bytes = core::mem::take(&mut self.buf);
                Event::Line(String::from_utf8(bytes).unwrap_or_default())
            }
            0x08 | 0x7f => {
                if self.buf.is_empty() {
                    return Event::None;
                }
                // Drop a whole UTF-8 character.
                while let Some(c) = self.buf.pop() {
                    if c & 0xc0 != 0x80 {
                        break;
                    }
                }
                Event::Echo(b"\x08 \x08")
            }
            0x03 => {
                self.buf.clear();
                Event::Echo(b"^C\n")
            }
            0x04 if self.buf.is_empty() => Event::EndOfInput,
            b if b < 0x20 => Event::None,
            b => {
                if self.buf.len() >= MAX_LINE {
                    return Event::None;
                }
                self.buf.push(b);
                Event::EchoByte(b)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec;

    #[test]
    fn parses_each_command() {
        assert_eq!(parse("  "), Ok(Command::Nothing));
        assert_eq!(parse("# note"), Ok(Command::Nothing));
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(parse(" ps "), Ok(Command::Ps));
        assert_eq!(parse("mem"), Ok(Command::Mem));
        assert_eq!(parse("uptime"), Ok(Command::Uptime));
        assert_eq!(
            parse("diskbench /b.bin"),
            Ok(Command::DiskBench {
                path: String::from("/b.bin")
            })
        );
        assert_eq!(parse("diskbench"), Err(ParseError::Usage("diskbench FILE")));
        assert_eq!(parse("poweroff"), Ok(Command::PowerOff));
        assert_eq!(
            parse("spawn probe 17"),
            Ok(Command::Spawn {
                module: "/bin/probe".into(),
                arg: 17
            })
        );
        assert_eq!(
            parse("spawn /sbin/init"),
            Ok(Command::Spawn {
                module: "/sbin/init".into(),
                arg: 0
            })
        );
        assert_eq!(
            parse("spawn bad/wx"),
            Ok(Command::Spawn {
                module: "bad/wx".into(),
                arg: 0
            })
        );
        assert_eq!(
            parse("spawn probe 0x11"),
            Ok(Command::Spawn {
                module: "/bin/probe".into(),
                arg: 17
            })
        );
        assert_eq!(parse("kill 7"), Ok(Command::Kill { pid: 7 }));
        assert_eq!(
            parse("crc big/file.bin"),
            Ok(Command::Crc {
                path: "/big/file.bin".into()
            })
        );
        assert_eq!(
            parse("fill /f 0x100001"),
            Ok(Command::Fill {
                path: "/f".into(),
                bytes: 0x10_0001
            })
        );
        assert_eq!(parse("fill /f"), Err(ParseError::Usage("fill FILE BYTES")));
        assert_ne!(fill_byte(0), fill_byte(256));
        assert_ne!(fill_byte(0), fill_byte(65536));
        assert_eq!(parse("ls"), Ok(Command::Ls { path: "/".into() }));
        assert_eq!(
            parse("ls etc/"),
            Ok(Command::Ls {
                path: "/etc".into()
            })
        );
        assert_eq!(
            parse("cat /a/b"),
            Ok(Command::Cat {
                path: "/a/b".into()
            })
        );
        assert_eq!(parse("rm x"), Ok(Command::Rm { path: "/x".into() }));
        assert_eq!(parse("mkdir d"), Ok(Command::Mkdir { path: "/d".into() }));
        assert_eq!(
            parse("write notes.txt  hello,   world "),
            Ok(Command::Write {
                path: "/notes.txt".into(),
                text: "hello,   world"
            })
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            parse("frobnicate now"),
            Err(ParseError::Unknown("frobnicate"))
        );
        assert_eq!(parse("kill"), Err(ParseError::Usage("kill PID")));
        assert_eq!(parse("kill 1 2"), Err(ParseError::Usage("kill PID")));
        assert_eq!(parse("kill seven"), Err(ParseError::BadNumber("seven")));
        assert_eq!(parse("spawn"), Err(ParseError::Usage("spawn MODULE [ARG]")));
        assert_eq!(parse("spawn probe x"), Err(ParseError::BadNumber("x")));
        assert_eq!(parse("write f"), Err(ParseError::Usage("write FILE TEXT")));
        assert_eq!(parse("cat"), Err(ParseError::Usage("cat FILE")));
        assert_eq!(parse("ps -a"), Err(ParseError::Usage("ps")));
        assert_eq!(
            parse("nope").unwrap_err().to_string(),
            "unknown command \"nope\" (try help)"
        );
        assert_eq!(parse("rm").unwrap_err().to_string(), "usage: rm PATH");
        for (u, _) in HELP {
            let name = u.split(' ').next().unwrap();
            assert_eq!(usage(name), *u);
        }
    }

    #[test]
    fn parses_the_suspend_commands() {
        assert_eq!(parse("suspend 5"), Ok(Command::Suspend { pid: 5 }));
        assert_eq!(parse("resume 3"), Ok(Command::Resume { id: 3, cpu: None }));
        assert_eq!(
            parse(" resume  3  1 "),
            Ok(Command::Resume {
                id: 3,
                cpu: Some(1)
            })
        );
        assert_eq!(
            parse("resume 0x10 0"),
            Ok(Command::Resume {
                id: 16,
                cpu: Some(0)
            })
        );
        assert_eq!(parse("images"), Ok(Command::Images));
        assert_eq!(parse("inspect 7"), Ok(Command::Inspect { id: 7 }));
        assert_eq!(parse("discard 7"), Ok(Command::Discard { id: 7 }));
        assert_eq!(
            parse("migrate 5 1"),
            Ok(Command::Migrate { pid: 5, cpu: 1 })
        );
    }

    #[test]
    fn suspend_commands_say_how_they_are_used() {
        let usage = |l| parse(l).unwrap_err().to_string();
        assert_eq!(usage("suspend"), "usage: suspend PID");
        assert_eq!(usage("suspend 1 2"), "usage: suspend PID");
        assert_eq!(usage("resume"), "usage: resume ID [CPU]");
        assert_eq!(usage("resume 1 2 3"), "usage: resume ID [CPU]");
        assert_eq!(usage("images 1"), "usage: images");
        assert_eq!(usage("inspect"), "usage: inspect ID");
        assert_eq!(usage("inspect 1 2"), "usage: inspect ID");
        assert_eq!(usage("discard"), "usage: discard ID");
        assert_eq!(usage("migrate 5"), "usage: migrate PID CPU");
        assert_eq!(usage("migrate"), "usage: migrate PID CPU");
        assert_eq!(usage("migrate 5 1 2"), "usage: migrate PID CPU");
        assert_eq!(usage("suspend five"), "\"five\" is not a number");
        assert_eq!(usage("resume x"), "\"x\" is not a number");
        assert_eq!(usage("resume 3 one"), "\"one\" is not a number");
        assert_eq!(usage("inspect -1"), "\"-1\" is not a number");
        assert_eq!(usage("discard 0xzz"), "\"0xzz\" is not a number");
        // A core number is 32 bits.
        assert_eq!(
            usage("migrate 5 4294967296"),
            "\"4294967296\" is not a number"
        );
        assert_eq!(
            parse("migrate 5 4294967295"),
            Ok(Command::Migrate {
                pid: 5,
                cpu: u32::MAX
            })
        );
    }

    #[test]
    fn absolute_paths() {
        assert_eq!(absolute("/"), "/");
        assert_eq!(absolute("a"), "/a");
        assert_eq!(absolute("/a/b//"), "/a/b");
    }

    fn lines(input: &[u8]) -> (vec::Vec<Event>, LineEditor) {
        let mut ed = LineEditor::default();
        let ev = input
            .iter()
            .map(|&b| ed.feed(b))
            .filter(|e| matches!(e, Event::Line(_) | Event::EndOfInput))
            .collect();
        (ev, ed)
    }

    #[test]
    fn editor_makes_lines() {
        let (ev, _) = lines(b"ls\r\ncat x\nab\x7fc\r\x03junk\x03ok\nx\x04y\n\x04");
        assert_eq!(
            ev,
            [
                Event::Line("ls".into()),
                Event::Line("cat x".into()),
                Event::Line("ac".into()),
                Event::Line("ok".into()),
                Event::Line("xy".into()),
                Event::EndOfInput
            ]
        );
        let mut ed = LineEditor::default();
        assert_eq!(ed.feed(0x7f), Event::None);
        assert_eq!(ed.feed(b'a'), Event::EchoByte(b'a'));
        assert_eq!(ed.feed(0x7f), Event::Echo(b"\x08 \x08"));
        assert_eq!(ed.feed(0x1b), Event::None);
        // A multi-byte character is erased whole.
        for b in "é".bytes() {
            ed.feed(b);
        }
        ed.feed(0x7f);
        assert_eq!(ed.feed(b'\n'), Event::Line("".into()));
        // The line is bounded.
        for _ in 0..MAX_LINE + 10 {
            ed.feed(b'x');
        }
        match ed.feed(b'\n') {
            Event::Line(l) => assert_eq!(l.len(), MAX_LINE),
            e => panic!("{e:?}"),
        }
    }
}
