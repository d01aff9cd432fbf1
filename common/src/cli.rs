//! Command-line errors for flags parsed with [`lexopt`]: each names the argument it is about,
//! so `--ws-port` without its value says so instead of being ignored.

use std::ffi::OsString;

/// Exit code for an unusable command line or configuration (`EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;

/// A flag, argument or environment variable that could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{name}: {message}")]
pub struct ArgError {
    /// The flag, argument or variable, as given (`--ws-port`, `SHELLY_WS_PORT`).
    pub name: String,
    /// What was wrong and what to do.
    pub message: String,
}

impl ArgError {
    /// An error about `name`.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> ArgError {
        ArgError {
            name: name.into(),
            message: message.into(),
        }
    }
}

impl From<lexopt::Error> for ArgError {
    fn from(error: lexopt::Error) -> ArgError {
        use lexopt::Error as E;
        match error {
            E::MissingValue { option } => ArgError::new(
                option.unwrap_or_else(|| "argument".to_string()),
                "needs a value; see --help",
            ),
            E::UnexpectedOption(option) => ArgError::new(option, "unknown option; see --help"),
            E::UnexpectedArgument(value) => {
                ArgError::new(value.to_string_lossy(), "unexpected argument; see --help")
            }
            E::UnexpectedValue { option, value } => ArgError::new(
                option,
                format!("takes no value, got `{}`", value.to_string_lossy()),
            ),
            E::NonUnicodeValue(value) => {
                ArgError::new(value.to_string_lossy(), "is not valid UTF-8")
            }
            E::ParsingFailed { value, error } => ArgError::new(value, error.to_string()),
            E::Custom(error) => ArgError::new("argument", error.to_string()),
        }
    }
}

/// The value of the option `parser` returned last, as UTF-8 text. A missing value is an
/// error naming the option, even when the option is the last argument.
pub fn value(parser: &mut lexopt::Parser) -> Result<String, ArgError> {
    let raw: OsString = parser.value()?;
    raw.into_string()
        .map_err(|raw| ArgError::new(raw.to_string_lossy(), "is not valid UTF-8"))
}

/// The argument as written on the command line, for error messages: `--name`, `-n` or the
/// positional value.
pub fn shown(arg: &lexopt::Arg<'_>) -> String {
    match arg {
        lexopt::Arg::Long(name) => format!("--{name}"),
        lexopt::Arg::Short(c) => format!("-{c}"),
        lexopt::Arg::Value(v) => v.to_string_lossy().into_owned(),
    }
}

/// What a daemon's first argument decides before its own flags are read.
#[derive(Debug, PartialEq, Eq)]
pub enum Front {
    /// Run `subcommand` (the default when none is named) with the remaining arguments.
    Run {
        /// One of the subcommands the daemon offered, or its default.
        subcommand: &'static str,
        /// The arguments after the subcommand.
        args: Vec<OsString>,
    },
    /// Help or version was asked for and printed: exit 0.
    Done,
}

/// A daemon's command-line front door, shared so every binary answers `--help`, `--version`
/// and its subcommands the same way.
#[derive(Debug, Clone, Copy)]
pub struct FrontDoor<'a> {
    /// The program's name, as `--version` prints it.
    pub name: &'a str,
    /// The text `--help` prints.
    pub usage: &'a str,
    /// The version and git revision (from the build script, `scripts/build-version.rs`).
    pub version: (&'a str, &'a str),
    /// Subcommands that may come first; the first one is the default.
    pub subcommands: &'static [&'static str],
}

impl FrontDoor<'_> {
    /// Reads the first argument: a subcommand, `help`/`-h`/`--help` (help anywhere wins, even
    /// after a flag that is wrong) or `-V`/`--version` first. Prints help or the version itself.
    pub fn read(&self, mut args: Vec<OsString>) -> Front {
        let first = args.first().and_then(|a| a.to_str()).map(str::to_owned);
        let named = first
            .as_deref()
            .and_then(|f| self.subcommands.iter().find(|s| **s == f));
        let subcommand = match (named, first.as_deref()) {
            (Some(sub), _) => {
                args.remove(0);
                *sub
            }
            (None, Some("help")) => {
                print!("{}", self.usage);
                return Front::Done;
            }
            (None, Some("-V" | "--version")) => {
                println!(
                    "{} {} (revision {})",
                    self.name, self.version.0, self.version.1
                );
                return Front::Done;
            }
            (None, _) => self.subcommands[0],
        };
        if args.iter().any(|a| a == "-h" || a == "--help") {
            print!("{}", self.usage);
            return Front::Done;
        }
        Front::Run { subcommand, args }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Vec<(String, String)>, ArgError> {
        let mut parser = lexopt::Parser::from_args(args.iter().copied());
        let mut out = Vec::new();
        while let Some(arg) = parser.next()? {
            match arg {
                lexopt::Arg::Long("port") => out.push(("port".into(), value(&mut parser)?)),
                lexopt::Arg::Long("quiet") => out.push(("quiet".into(), String::new())),
                other => return Err(other.unexpected().into()),
            }
        }
        Ok(out)
    }

    #[test]
    fn values_in_both_spellings_and_dashes_as_values() {
        assert_eq!(
            parse(&["--port", "1", "--port=2", "--port", "-3"]).unwrap(),
            [("port", "1"), ("port", "2"), ("port", "-3")].map(|(k, v)| (k.into(), v.into()))
        );
    }

    #[test]
    fn a_flag_without_its_value_is_named() {
        let e = parse(&["--quiet", "--port"]).unwrap_err();
        assert_eq!(e, ArgError::new("--port", "needs a value; see --help"));
        assert_eq!(e.to_string(), "--port: needs a value; see --help");
    }

    #[test]
    fn unknown_options_arguments_and_stray_values_are_named() {
        assert_eq!(parse(&["--wat"]).unwrap_err().name, "--wat");
        assert_eq!(parse(&["-x"]).unwrap_err().name, "-x");
        let e = parse(&["serve"]).unwrap_err();
        assert_eq!(
            (e.name.as_str(), e.message.as_str()),
            ("serve", "unexpected argument; see --help")
        );
        let e = parse(&["--quiet=yes"]).unwrap_err();
        assert_eq!(e.to_string(), "--quiet: takes no value, got `yes`");
    }

    #[test]
    fn shown_spells_arguments_as_typed() {
        assert_eq!(shown(&lexopt::Arg::Long("url")), "--url");
        assert_eq!(shown(&lexopt::Arg::Short('c')), "-c");
        assert_eq!(shown(&lexopt::Arg::Value("x".into())), "x");
    }

    fn door() -> FrontDoor<'static> {
        FrontDoor {
            name: "daemon",
            usage: "usage\n",
            version: ("0.1.0", "abc"),
            subcommands: &["serve", "healthcheck"],
        }
    }

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_front_door_picks_the_subcommand_or_the_default() {
        assert_eq!(
            door().read(args(&["healthcheck", "--port", "1"])),
            Front::Run {
                subcommand: "healthcheck",
                args: args(&["--port", "1"])
            }
        );
        assert_eq!(
            door().read(args(&["--port", "1"])),
            Front::Run {
                subcommand: "serve",
                args: args(&["--port", "1"])
            }
        );
        assert_eq!(
            door().read(Vec::new()),
            Front::Run {
                subcommand: "serve",
                args: Vec::new()
            }
        );
    }

    #[test]
    fn help_anywhere_and_version_first_end_the_run() {
        assert_eq!(door().read(args(&["--port", "--help"])), Front::Done);
        assert_eq!(door().read(args(&["serve", "-h"])), Front::Done);
        assert_eq!(door().read(args(&["help"])), Front::Done);
        assert_eq!(door().read(args(&["--version"])), Front::Done);
        // A version flag after a subcommand is that subcommand's to judge.
        assert!(matches!(
            door().read(args(&["serve", "--version"])),
            Front::Run {
                subcommand: "serve",
                ..
            }
        ));
    }
}
