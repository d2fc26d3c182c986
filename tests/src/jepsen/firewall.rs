//! The network nemesis's tool: iptables rules in a chain of our own.
//!
//! ```text
//!  INPUT  ─► -j RAFTOR-NEMESIS-<pid> ─► -s A -d B -p tcp --ports <raft ports> [-m statistic] -j DROP
//!  OUTPUT ─► -j RAFTOR-NEMESIS-<pid> ─┘   (a packet on lo passes OUTPUT, then INPUT)
//! ```
//!
//! Rules match the nodes' addresses *and* the cluster's raft ports, so they cut raft traffic
//! between two nodes of this run and nothing else: the test's clients (which talk HTTP and
//! reach every node, as Jepsen's clients do) and anyone else's traffic on 127/8 pass. The chain's
//! name carries this process's id, so two runs on one machine do not flush each other's rules;
//! at install, chains left by runs whose process is gone are removed. [`Firewall`]'s `Drop`
//! removes the jumps and the chain, on success and on panic alike.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{bail, Context};

/// The prefix of every chain the harness creates.
pub const CHAIN_PREFIX: &str = "RAFTOR-NEMESIS";

/// The built-in chains the harness's chain is jumped to from.
const HOOKS: [&str; 2] = ["INPUT", "OUTPUT"];

/// Runs `iptables -w ARGS`; the error says what failed and what iptables said.
pub fn iptables(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .context("run iptables (is it installed and on PATH?)")?;
    if !output.status.success() {
        bail!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// This run's iptables chain; dropped, it removes every rule it added.
pub struct Firewall {
    /// `RAFTOR-NEMESIS-<pid>`.
    chain: String,
    /// The raft ports every rule is limited to (iptables' multiport takes at most 15).
    ports: String,
}

impl Firewall {
    /// Removes stale chains, then creates this run's chain, jumped to from INPUT and OUTPUT.
    pub fn install(raft_ports: &[u16]) -> anyhow::Result<Firewall> {
        if raft_ports.is_empty() || raft_ports.len() > 15 {
            bail!("between 1 and 15 raft ports, not {}", raft_ports.len());
        }
        remove_stale_chains()?;
        let chain = format!("{CHAIN_PREFIX}-{}", std::process::id());
        remove_chain(&chain);
        iptables(&["-N", &chain])?;
        let firewall = Firewall {
            chain,
            ports: raft_ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(","),
        };
        for hook in HOOKS {
            iptables(&["-I", hook, "-j", &firewall.chain])?;
        }
        Ok(firewall)
    }

    /// Drops raft packets from `from` to `to` (one direction), each with `probability`
    /// (`None`: all of them).
    pub fn cut(
        &self,
        from: Ipv4Addr,
        to: Ipv4Addr,
        probability: Option<f64>,
    ) -> anyhow::Result<()> {
        let (from, to) = (from.to_string(), to.to_string());
        let mut args = vec![
            "-A",
            &self.chain,
            "-s",
            &from,
            "-d",
            &to,
            "-p",
            "tcp",
            "-m",
            "multiport",
            "--ports",
            &self.ports,
        ];
        let probability = probability.map(|p| format!("{p:.3}"));
        if let Some(probability) = &probability {
            args.extend(["-m", "statistic", "--mode", "random", "--probability"]);
            args.push(probability);
        }
        args.extend(["-j", "DROP"]);
        iptables(&args).map(drop)
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut_both(&self, a: Ipv4Addr, b: Ipv4Addr) -> anyhow::Result<()> {
        self.cut(a, b, None)?;
        self.cut(b, a, None)
    }

    /// Removes every rule (the chain and its jumps stay).
    pub fn heal(&self) -> anyhow::Result<()> {
        iptables(&["-F", &self.chain]).map(drop)
    }

    /// How many rules the chain holds.
    pub fn rule_count(&self) -> anyhow::Result<usize> {
        let listing = iptables(&["-S", &self.chain])?;
        Ok(listing.lines().filter(|l| l.starts_with("-A")).count())
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        remove_chain(&self.chain);
    }
}

/// Removes a chain's jumps, rules and the chain itself, ignoring what is already gone.
fn remove_chain(chain: &str) {
    for hook in HOOKS {
        while iptables(&["-D", hook, "-j", chain]).is_ok() {}
    }
    let _ = iptables(&["-F", chain]);
    let _ = iptables(&["-X", chain]);
}

/// Removes the chains of runs whose process no longer exists (a run killed before its `Drop`).
fn remove_stale_chains() -> anyhow::Result<()> {
    let listing = iptables(&["-S"])?;
    for line in listing.lines() {
        let Some(chain) = line.strip_prefix("-N ") else {
            continue;
        };
        let Some(owner) = chain.strip_prefix(CHAIN_PREFIX) else {
            continue;
        };
        let pid = owner
            .strip_prefix('-')
            .and_then(|pid| pid.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            eprintln!("removing the stale iptables chain {chain} (its run is gone)");
            remove_chain(chain);
        }
    }
    Ok(())
}
