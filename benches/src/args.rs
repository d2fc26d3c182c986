//! The cluster benchmark's command line: `-m MEMBERS -c CLIENTS -n WRITES [-b BATCH]
//! [-t PLACEMENT]`, parsed by hand (no argument-parsing dependency for four numbers and a word).

use std::fmt;

/// The usage text printed with `-h` and after a bad flag.
pub const USAGE: &str = "\
usage: cluster [-m MEMBERS] [-c CLIENTS] [-n WRITES] [-b BATCH] [-t PLACEMENT]
  -m MEMBERS    cluster size, nodes in this process (default 3)
  -c CLIENTS    concurrent clients, each writing back to back (default 256)
  -n WRITES     total writes over all clients (default 200000)
  -b BATCH      writes carried by each client call, as one command (default 1);
                WRITES must be a multiple of BATCH, and WRITES / BATCH at least CLIENTS
  -t PLACEMENT  where the members run: `shared`, all on one NodeThread (default);
                `per-node`, each on an actix thread of its own; `local`, the members and
                the clients on one NodeThread; `split`, the clients and the leader on one
                NodeThread, the followers on another";

/// Where the benchmark's members run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// All members on one shared `raftor::NodeThread`.
    #[default]
    Shared,
    /// Each member on a private node thread of its own (what `Raft::bootstrap` does outside
    /// actix).
    PerNode,
    /// The members and the clients on one `NodeThread`: no write crosses a thread (an
    /// application whose request handlers share the nodes' actix thread, as `raftor-kv serve
    /// --threads 1` does).
    Local,
    /// The first member and the clients on one `NodeThread`, the other members on a second: the
    /// first member is made leader, so writes cross no thread and replication crosses once per
    /// message.
    Split,
}

impl Placement {
    /// The placement named `word` on the command line.
    pub fn from_flag(word: &str) -> Option<Placement> {
        match word {
            "shared" => Some(Placement::Shared),
            "per-node" => Some(Placement::PerNode),
            "local" => Some(Placement::Local),
            "split" => Some(Placement::Split),
            _ => None,
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Placement::Shared => "shared",
            Placement::PerNode => "per-node",
            Placement::Local => "local",
            Placement::Split => "split",
        })
    }
}

/// One benchmark run's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args {
    /// Cluster members, all in this process.
    pub members: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// Total writes (empty requests) over all clients.
    pub writes: u64,
    /// Writes per `client_write` call.
    pub batch: u64,
    /// Where the members run.
    pub placement: Placement,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            members: 3,
            clients: 256,
            writes: 200_000,
            batch: 1,
            placement: Placement::Shared,
        }
    }
}

/// Why the command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// `-h` or `--help`: not an error, but the caller prints the usage and stops.
    Help,
    /// A flag the benchmark does not know.
    UnknownFlag(String),
    /// A flag without its value.
    MissingValue(String),
    /// A value that is not a positive whole number.
    BadNumber {
        /// The flag.
        flag: String,
        /// What followed it.
        value: String,
    },
    /// `-t` followed by something other than `shared` or `per-node`.
    BadPlacement(String),
    /// The numbers do not fit together.
    Inconsistent(String),
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgsError::Help => write!(f, "help requested"),
            ArgsError::UnknownFlag(flag) => write!(f, "unknown flag {flag:?}"),
            ArgsError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            ArgsError::BadNumber { flag, value } => {
                write!(f, "{flag} takes a positive whole number, not {value:?}")
            }
            ArgsError::BadPlacement(value) => {
                write!(
                    f,
                    "-t takes shared, per-node, local or split, not {value:?}"
                )
            }
            ArgsError::Inconsistent(why) => f.write_str(why),
        }
    }
}

impl Args {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, ArgsError> {
        let mut parsed = Args::default();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "-h" | "--help" => return Err(ArgsError::Help),
                "-m" => &mut parsed.members,
                "-c" => &mut parsed.clients,
                "-n" => &mut parsed.writes,
                "-b" => &mut parsed.batch,
                "-t" => {
                    let value = args.next().ok_or(ArgsError::MissingValue(flag))?;
                    parsed.placement =
                        Placement::from_flag(&value).ok_or(ArgsError::BadPlacement(value))?;
                    continue;
                }
                _ => return Err(ArgsError::UnknownFlag(flag)),
            };
            let value = args
                .next()
                .ok_or_else(|| ArgsError::MissingValue(flag.clone()))?;
            *slot = match value.replace('_', "").parse::<u64>() {
                Ok(number) if number > 0 => number,
                _ => return Err(ArgsError::BadNumber { flag, value }),
            };
        }
        parsed.check()
    }

    /// Client calls in the whole run.
    pub fn calls(&self) -> u64 {
        self.writes / self.batch
    }

    fn check(self) -> Result<Args, ArgsError> {
        if self.calls() * self.batch != self.writes {
            return Err(ArgsError::Inconsistent(format!(
                "-n {} is not a multiple of -b {}",
                self.writes, self.batch
            )));
        }
        if self.calls() < self.clients {
            return Err(ArgsError::Inconsistent(format!(
                "-n {} / -b {} gives {} calls, fewer than the {} clients",
                self.writes,
                self.batch,
                self.calls(),
                self.clients
            )));
        }
        if self.batch > u64::from(u32::MAX) || self.members > 1000 {
            return Err(ArgsError::Inconsistent(
                "-b must fit in 32 bits and -m be at most 1000".into(),
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, ArgsError> {
        Args::parse(line.split_whitespace().map(String::from))
    }

    #[test]
    fn flags_set_the_numbers() {
        let args = parse("-m 5 -c 64 -n 3_000_000 -b 4").expect("valid");
        assert_eq!(
            args,
            Args {
                members: 5,
                clients: 64,
                writes: 3_000_000,
                batch: 4,
                placement: Placement::Shared,
            }
        );
        assert_eq!(args.calls(), 750_000);
    }

    #[test]
    fn placement_is_shared_unless_asked_otherwise() {
        assert_eq!(parse("").map(|a| a.placement), Ok(Placement::Shared));
        assert_eq!(
            parse("-t shared").map(|a| a.placement),
            Ok(Placement::Shared)
        );
        let args = parse("-m 5 -t per-node -c 8").expect("valid");
        assert_eq!((args.members, args.clients), (5, 8));
        assert_eq!(args.placement, Placement::PerNode);
        assert_eq!(
            parse("-t shared -t per-node").map(|a| a.placement),
            Ok(Placement::PerNode),
            "the last -t wins, as for the numbers"
        );
        assert_eq!(Placement::PerNode.to_string(), "per-node");
        for word in ["shared", "per-node", "local", "split"] {
            let placement = Placement::from_flag(word).expect("a placement");
            assert_eq!(placement.to_string(), word, "round trip");
        }
        assert_eq!(Placement::Shared.to_string(), "shared");
    }

    #[test]
    fn bad_placement_is_refused() {
        assert_eq!(parse("-t"), Err(ArgsError::MissingValue("-t".into())));
        assert_eq!(
            parse("-t pernode"),
            Err(ArgsError::BadPlacement("pernode".into()))
        );
        assert_eq!(parse("-t 3"), Err(ArgsError::BadPlacement("3".into())));
        assert!(USAGE.contains("-t PLACEMENT"));
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(parse("-x 1"), Err(ArgsError::UnknownFlag("-x".into())));
        assert_eq!(parse("-m"), Err(ArgsError::MissingValue("-m".into())));
        assert!(matches!(parse("-c 0"), Err(ArgsError::BadNumber { .. })));
        assert!(matches!(parse("-c lots"), Err(ArgsError::BadNumber { .. })));
        assert!(matches!(
            parse("-n 10 -b 3"),
            Err(ArgsError::Inconsistent(_))
        ));
        assert!(matches!(
            parse("-n 10 -c 20"),
            Err(ArgsError::Inconsistent(_))
        ));
    }
}
