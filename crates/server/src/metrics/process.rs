//! The standard `process_*` metrics every Prometheus client library exports (CPU time, memory,
//! start time, file descriptors), read from `/proc/self` where there is one, and
//! `ward_build_info`.

use std::fmt::Write;

use super::header;

/// `ward_build_info` and, on Linux, the `process_*` series.
pub fn render(w: &mut String) {
    header(
        w,
        "ward_build_info",
        "gauge",
        "The version of ward serving.",
    );
    let _ = writeln!(
        w,
        "ward_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(p) = Process::read() {
        p.render(w);
    }
}

/// What `/proc/self` says of this process.
struct Process {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    start_time_seconds: f64,
    open_fds: usize,
    max_fds: Option<u64>,
}

impl Process {
    #[cfg(target_os = "linux")]
    fn read() -> Option<Process> {
        // SAFETY: sysconf reads a constant of the system.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if ticks <= 0 || page <= 0 {
            return None;
        }
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: count from after it.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // Fields 14, 15, 22, 23 and 24 of proc(5), here from field 3 on.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let boot_time: u64 = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
        let ticks = ticks as f64;
        Some(Process {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            start_time_seconds: boot_time as f64 + field(22)? as f64 / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page as u64,
            open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count(),
            max_fds: std::fs::read_to_string("/proc/self/limits")
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("Max open files")?.split_whitespace().next())
                .and_then(|v| v.parse().ok()),
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn read() -> Option<Process> {
        None
    }

    fn render(&self, w: &mut String) {
        let mut series = vec![
            (
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time spent, in seconds.",
                self.cpu_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                self.resident_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                self.virtual_bytes as f64,
            ),
            (
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since the Unix epoch, in seconds.",
                self.start_time_seconds,
            ),
            (
                "process_open_fds",
                "gauge",
                "Open file descriptors.",
                self.open_fds as f64,
            ),
        ];
        if let Some(max) = self.max_fds {
            series.push((
                "process_max_fds",
                "gauge",
                "Most open file descriptors allowed.",
                max as f64,
            ));
        }
        for (name, kind, help, v) in series {
            header(w, name, kind, help);
            let _ = writeln!(w, "{name} {v}");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_running_and_using_memory() {
        let p = Process::read().expect("/proc/self is readable");
        assert!(p.resident_bytes > 0 && p.virtual_bytes >= p.resident_bytes);
        assert!(p.open_fds >= 3);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 86400.0);
        let mut text = String::new();
        render(&mut text);
        assert!(text.contains("ward_build_info{version=\""));
        assert!(text.contains("\nprocess_resident_memory_bytes "));
    }
}
