//! The load tool against a real `portier serve` it starts itself, on loopback.

use std::path::PathBuf;
use std::process::{Command, Output};

const LOAD: &str = env!("CARGO_BIN_EXE_portier-load");
const SHIPPED_POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies");

/// The `portier` binary of the same build, next to this tool's (the tool's own default).
/// Cargo cannot hand a package another package's binary, so this test relies on the
/// workspace build having made it: `cargo test --workspace` does (portier's own integration
/// tests need it), and so does `cargo build --bin portier`.
fn portier_bin() -> PathBuf {
    let bin = PathBuf::from(LOAD)
        .with_file_name("portier")
        .with_extension(std::env::consts::EXE_EXTENSION);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --workspace`, or `cargo build --bin portier` first",
        bin.display()
    );
    bin
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_load_tool_starts_a_server_loads_it_briefly_and_stops_it() {
    let portier = portier_bin();
    // Loopback only, bounded to half a second of load; asserts counts, never times.
    for http in ["h1", "h2"] {
        let out = Command::new(LOAD)
            .arg("--portier")
            .arg(&portier)
            .args([
                "--policies",
                SHIPPED_POLICIES,
                "--http",
                http,
                "--connections",
                "2",
                "--duration",
                "0.5",
                "--warmup",
                "0",
                "--rate",
                "200",
                "--json",
            ])
            .output()
            .unwrap();
        let text = stdout(&out);
        assert!(out.status.success(), "{text}{}", stderr(&out));
        let json: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(json["errors"], 0, "{text}");
        assert!(json["ok"].as_u64().unwrap() > 0, "{text}");
        assert!(json["rss_bytes"].as_u64().unwrap() > 0, "{text}");
    }
}
