//! Chat templates rendered in worker processes, for `ward serve`. A template comes with the
//! model file, and a hostile one can build values that double at every step: fuel bounds the
//! steps, not their size, so in-process a few dozen steps would take all memory or abort the
//! server. A worker runs under an address-space limit and a deadline instead: a runaway
//! render kills the worker, fails that request alone, and a fresh worker takes the next one.
//!
//! The worker is the `ward` binary (`ward template-worker`, see [`run_worker`]). It reads one
//! JSON line with the template, answers `{"ready": true}` once it compiles (or an error),
//! then answers each request line (a conversation and its inputs) with one line: the
//! generation prompt or the error.

use std::io::{BufRead, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::THINKING_FORMATS;
use super::{ChatInputs, ChatMessage, ChatTemplate, GenerationPrompt, TemplateError};

/// Memory a worker may map beyond what it has at start.
const WORKER_MEMORY: u64 = 1 << 30;
/// Longest a render may take (fuel stops loops long before; this stops steps on huge values).
const DEADLINE: Duration = Duration::from_secs(10);

/// Workers for one template.
pub(super) struct Apart {
    exe: PathBuf,
    setup: String,
    /// Workers waiting for a request.
    idle: Mutex<Vec<Worker>>,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// What was read past the last answer's newline.
    pending: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Setup {
    source: String,
    bos: String,
    eos: String,
}

#[derive(Serialize, Deserialize)]
struct Request {
    messages: Vec<ChatMessage>,
    tools: Option<Value>,
    kwargs: Option<Map<String, Value>>,
    now: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Answer {
    text: Option<String>,
    /// The index in [`THINKING_FORMATS`] of the thinking the prompt leaves open.
    thinking: Option<usize>,
    error: Option<String>,
}

impl Apart {
    /// Workers running `exe template-worker` for this template; the first is started now, so
    /// that a template that does not compile is refused at load.
    pub fn new(exe: &Path, source: &str, bos: &str, eos: &str) -> Result<Apart, TemplateError> {
        let setup = Setup {
            source: source.into(),
            bos: bos.into(),
            eos: eos.into(),
        };
        let apart = Apart {
            exe: exe.to_path_buf(),
            setup: serde_json::to_string(&setup).expect("strings serialize"),
            idle: Mutex::new(Vec::new()),
        };
        let first = apart.start()?;
        apart
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(first);
        Ok(apart)
    }

    fn start(&self) -> Result<Worker, TemplateError> {
        let failed = |e: std::io::Error| {
            TemplateError::Render(format!("cannot start a template worker: {e}"))
        };
        let mut child = Command::new(&self.exe)
            .arg("template-worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(failed)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            unreachable!("both are piped");
        };
        let mut worker = Worker {
            child,
            stdin,
            stdout,
            pending: Vec::new(),
        };
        match worker
            .ask(&self.setup)
            .and_then(|line| parse::<Answer>(&line))
        {
            Ok(Answer { error: None, .. }) => Ok(worker),
            Ok(Answer { error: Some(e), .. }) => Err(TemplateError::Compile(e)),
            Err(e) => Err(TemplateError::Render(format!("template worker: {e}"))),
        }
    }

    pub fn generation_prompt(
        &self,
        messages: &[ChatMessage],
        inputs: &ChatInputs,
    ) -> Result<GenerationPrompt, TemplateError> {
        let request = Request {
            messages: messages.to_vec(),
            tools: inputs.tools.cloned(),
            kwargs: inputs.kwargs.cloned(),
            now: inputs.now,
        };
        let line = serde_json::to_string(&request).expect("JSON values serialize");
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut worker = match idle {
            Some(w) => w,
            None => self.start()?,
        };
        let answer = match worker.ask(&line).and_then(|line| parse::<Answer>(&line)) {
            Ok(answer) => answer,
            Err(_) => {
                // Out of memory or time (or killed): this worker is done for.
                let _ = worker.child.kill();
                let _ = worker.child.wait();
                return Err(TemplateError::Render(
                    "the chat template needed more memory or time than a prompt may take".into(),
                ));
            }
        };
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(worker);
        match answer {
            Answer {
                text: Some(text),
                thinking,
                ..
            } => Ok(GenerationPrompt {
                text,
                thinking: thinking.and_then(|i| THINKING_FORMATS.get(i).copied()),
            }),
            Answer { error, .. } => Err(TemplateError::Render(error.unwrap_or_default())),
        }
    }
}

impl Drop for Apart {
    fn drop(&mut self) {
        for mut w in self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

impl Worker {
    /// Send one line and read the answer line, within [`DEADLINE`].
    fn ask(&mut self, line: &str) -> std::io::Result<String> {
        self.stdin.write_all(line.as_bytes())?;
        self.stdin.write_all(b"\n")?;
        self.stdin.flush()?;
        let deadline = Instant::now() + DEADLINE;
        let mut buf = [0u8; 1 << 16];
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let rest = self.pending.split_off(end + 1);
                let mut answer = std::mem::replace(&mut self.pending, rest);
                answer.pop();
                return String::from_utf8(answer)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !readable_within(&self.stdout, left)? {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            match self.stdout.read(&mut buf)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => self.pending.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// Whether `fd` has data (or its end) within `wait`.
fn readable_within(fd: &impl AsRawFd, wait: Duration) -> std::io::Result<bool> {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd, for the duration of the call.
    match unsafe { libc::poll(&mut poll, 1, ms) } {
        -1 => Err(std::io::Error::last_os_error()),
        n => Ok(n > 0),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(line: &str) -> std::io::Result<T> {
    serde_json::from_str(line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The worker's side (`ward template-worker`): under its memory limit, render each request
/// from `input` onto `output` until `input` ends.
pub fn run_worker(input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    limit_memory();
    let mut lines = input.lines();
    let Some(setup) = lines.next() else {
        return Ok(());
    };
    let setup: Setup = parse(&setup?)?;
    let mut answer = |a: Answer| -> std::io::Result<()> {
        let line = serde_json::to_string(&a).expect("strings serialize");
        writeln!(output, "{line}")?;
        output.flush()
    };
    let template = match ChatTemplate::new(&setup.source, &setup.bos, &setup.eos) {
        Ok(t) => t,
        Err(e) => {
            return answer(Answer {
                text: None,
                thinking: None,
                error: Some(reason(e)),
            })
        }
    };
    answer(Answer {
        text: None,
        thinking: None,
        error: None,
    })?;
    for line in lines {
        let request: Request = parse(&line?)?;
        let inputs = ChatInputs {
            tools: request.tools.as_ref(),
            kwargs: request.kwargs.as_ref(),
            now: request.now,
        };
        answer(
            match template.generation_prompt(&request.messages, &inputs) {
                Ok(p) => Answer {
                    text: Some(p.text),
                    thinking: p
                        .thinking
                        .and_then(|f| THINKING_FORMATS.iter().position(|&t| t == f)),
                    error: None,
                },
                Err(e) => Answer {
                    text: None,
                    thinking: None,
                    error: Some(reason(e)),
                },
            },
        )?;
    }
    Ok(())
}

/// What went wrong, without the kind the server's side adds again.
fn reason(e: TemplateError) -> String {
    match e {
        TemplateError::Compile(m) | TemplateError::Render(m) => m,
        TemplateError::Missing => e.to_string(),
    }
}

/// Cap this process's address space at what it maps now plus [`WORKER_MEMORY`]: past it an
/// allocation fails and the worker aborts, which its server sees as the end of its output.
fn limit_memory() {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let limit = pages * page + WORKER_MEMORY;
    let rlimit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit reads one valid struct.
    unsafe {
        libc::setrlimit(libc::RLIMIT_AS, &rlimit);
    }
}
