//! Server resource samples from /proc: resident memory and CPU time.

/// Resident set size in bytes (VmRSS), None when the process is not readable.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// User + system CPU time in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    cpu_split(pid).map(|c| c.user + c.system)
}

/// CPU time in seconds, split: `system` is the kernel's work on the process's behalf (on
/// loopback that includes the TCP receive path of the bench's sockets).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    pub user: f64,
    pub system: f64,
}

impl Cpu {
    pub fn since(self, before: Cpu) -> Cpu {
        Cpu {
            user: self.user - before.user,
            system: self.system - before.system,
        }
    }

    pub fn total(self) -> f64 {
        self.user + self.system
    }
}

pub fn cpu_split(pid: u32) -> Option<Cpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Cpu {
        user: utime / 100.0,
        system: stime / 100.0,
    })
}

/// Summed over several processes (a cluster).
pub fn total_cpu_split(pids: &[u32]) -> Option<Cpu> {
    pids.iter()
        .map(|p| cpu_split(*p))
        .try_fold(Cpu::default(), |acc, c| {
            let c = c?;
            Some(Cpu {
                user: acc.user + c.user,
                system: acc.system + c.system,
            })
        })
}

/// Summed over several processes (a cluster).
pub fn total_rss(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|p| rss_bytes(*p)).sum()
}

pub fn total_cpu(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|p| cpu_secs(*p)).sum()
}

/// The kernel's `TcpExt` counters `ListenOverflows` and `ListenDrops` (whole host: on a quiet
/// loopback machine, the server's listen queue overflowing during a connection storm).
pub fn listen_drops() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let get = |name: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i)?.parse().ok()
    };
    Some((get("ListenOverflows")?, get("ListenDrops")?))
}
