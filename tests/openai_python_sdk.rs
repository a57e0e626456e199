//! Runs `tests/python/test_openai_sdk.py` (pytest + the official `openai`
//! package) against the real `quorum serve` binary, then stops it with
//! SIGTERM and checks the graceful shutdown exits 0.
//!
//! The Python environment lives in `target/pyenv` and is created on first
//! run (`python3 -m venv` + `pip install openai pytest`, needs PyPI). Set
//! `QUORUM_SKIP_PYTHON_TESTS=1` to skip on machines without Python or PyPI.

mod server_common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the server if the test panics before the orderly shutdown.
struct ServerProcess(Option<Child>);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run(cmd: &mut Command) -> bool {
    cmd.status().map(|s| s.success()).unwrap_or(false)
}

/// `target/pyenv/bin/python` with `openai` and `pytest` importable.
fn python_env() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/pyenv");
    let python = venv.join("bin/python");
    let ready = |py: &Path| run(Command::new(py).args(["-c", "import openai, pytest"]));
    if python.exists() && ready(&python) {
        return python;
    }
    assert!(
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv)),
        "python3 -m venv {} failed (set QUORUM_SKIP_PYTHON_TESTS=1 to skip)",
        venv.display()
    );
    assert!(
        run(Command::new(&python).args(["-m", "pip", "install", "--quiet", "openai", "pytest"])),
        "pip install openai pytest failed (needs PyPI; set QUORUM_SKIP_PYTHON_TESTS=1 to skip)"
    );
    assert!(ready(&python), "openai/pytest not importable after install");
    python
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Status code of `GET path`, or `None` if nothing answers yet.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split(' ').nth(1)?.parse().ok()
}

#[test]
fn official_python_sdk_passes() {
    if std::env::var_os("QUORUM_SKIP_PYTHON_TESTS").is_some() {
        eprintln!("skipped: QUORUM_SKIP_PYTHON_TESTS is set");
        return;
    }
    let python = python_env();
    let model = server_common::tiny_model_dir();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_quorum"))
        .arg("serve")
        .arg("--model")
        .arg(format!("tiny={}", model.display()))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--shutdown-grace-secs", "5"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start quorum serve");
    let mut server = ServerProcess(Some(child));

    let deadline = Instant::now() + Duration::from_secs(60);
    while http_status(port, "/health") != Some(200) {
        if let Some(c) = server.0.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("server exited early: {status}");
            }
        }
        assert!(Instant::now() < deadline, "server not healthy after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ok = run(Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root.join("tests/python/test_openai_sdk.py"))
        .env("QUORUM_BASE_URL", format!("http://127.0.0.1:{port}"))
        .env("QUORUM_MODEL_ID", "tiny"));
    assert!(ok, "pytest failed (output above)");

    // Graceful shutdown on SIGTERM: exit code 0.
    let mut child = server.0.take().expect("child");
    assert!(run(
        Command::new("kill").args(["-TERM", &child.id().to_string()])
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server did not exit within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "server exit status after SIGTERM: {status}"
    );
}
