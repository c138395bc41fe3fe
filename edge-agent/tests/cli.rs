//! The agent binary answers `--help` and `--version`.

use std::process::Command;

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_marketer-agent")).args(args).output().expect("run marketer-agent")
}

#[test]
fn version_and_help() {
    let version = agent(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("marketer-agent {}", env!("CARGO_PKG_VERSION"))
    );

    let help = agent(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: marketer-agent"));

    let bare = agent(&[]);
    assert!(!bare.status.success(), "without arguments it shows help and fails");
    assert!(String::from_utf8_lossy(&bare.stderr).contains("Usage: marketer-agent"));

    let wrong = agent(&["--no-such-flag"]);
    assert_eq!(wrong.status.code(), Some(2));
}
