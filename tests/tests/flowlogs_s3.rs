//! `egressor flowlogs s3://BUCKET/PREFIX` against a local S3 (moto's server, installed by
//! scripts/setup.sh), through the standard AWS_* environment: the objects under the prefix
//! inside `--since`/`--until` (by AWS's key layout) give the same report as the same files
//! read from disk; a missing bucket is a clear error naming it.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use egressor_tests::{egressor_bin, flowlog_gen, free_port, shared_data};
use serde_json::Value;

/// moto's S3 server on a free port, stopped on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Option<Self> {
        let bin =
            std::env::var_os("EGRESSOR_MOTO_SERVER").map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/egressor/venv/bin/moto_server")
            });
        if !bin.exists() {
            let why = format!("{} missing (scripts/setup.sh installs moto)", bin.display());
            assert!(
                std::env::var("EGRESSOR_REQUIRE_BPF").as_deref() != Ok("1"),
                "{why}, and EGRESSOR_REQUIRE_BPF=1 forbids skipping"
            );
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&moto.url("/")).call().is_err() {
            assert!(Instant::now() < deadline, "moto_server did not answer");
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(moto)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// PUT (moto does not check signatures): a bucket, or an object.
    fn put(&self, path: &str, body: &[u8]) {
        ureq::put(&self.url(path)).send(body).unwrap_or_else(|e| panic!("PUT {path}: {e}"));
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn flowlogs(moto: &Moto, args: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(egressor_bin())
        .arg("flowlogs")
        .args(args)
        .env("AWS_ENDPOINT_URL", moto.url(""))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn s3_objects_inside_the_dates_give_the_report_of_the_same_files_on_disk() {
    let Some(ranges) = shared_data("cloud-ranges/aws-ip-ranges.json") else { return };
    let Some(moto) = Moto::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    // One gzip file of the generated VPC (4 MiB of text).
    flowlog_gen::generate(dir.path(), 4 << 20, 9, 1, &ranges).unwrap();
    let files: Vec<PathBuf> =
        std::fs::read_dir(dir.path().join("logs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    let one = std::fs::read(&files[0]).unwrap();
    // The day before, the two days asked for, and the day after.
    let day = |d: &str, name: &str| {
        format!("/flow-logs/AWSLogs/123456789012/vpcflowlogs/us-east-1/{d}/{name}")
    };
    moto.put("/flow-logs", b"");
    moto.put(&day("2025/11/30", "early.log.gz"), &one);
    moto.put(&day("2025/12/01", "a.log.gz"), &one);
    moto.put(&day("2025/12/02", "b.log.gz"), &one);
    moto.put(&day("2025/12/03", "late.log.gz"), &one);
    moto.put("/flow-logs/other/unrelated.log", b"not a flow log\n");
    // The same bytes twice on disk.
    let local = dir.path().join("local");
    std::fs::create_dir(&local).unwrap();
    std::fs::write(local.join("a.log.gz"), &one).unwrap();
    std::fs::write(local.join("b.log.gz"), &one).unwrap();

    let cfg = dir.path().join("egressor.yaml");
    let cfg = cfg.to_str().unwrap();
    let nat = flowlog_gen::NAT_GATEWAY;
    let (code, s3, stderr) = flowlogs(
        &moto,
        &[
            "--json",
            "--config.file",
            cfg,
            "--nat-gateway",
            nat,
            "--since",
            "2025-12-01",
            "--until",
            "2025-12-02",
            "s3://flow-logs/AWSLogs/123456789012/vpcflowlogs/",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, disk, stderr) = flowlogs(
        &moto,
        &["--json", "--config.file", cfg, "--nat-gateway", nat, local.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(s3["input"]["files"], 2, "two of the four days: {}", s3["input"]);
    assert!(s3["input"]["records"].as_u64().unwrap() > 1000);
    for k in ["records", "nodata", "skipdata", "bad_lines", "text_bytes", "stored_bytes"] {
        assert_eq!(s3["input"][k], disk["input"][k], "input.{k}");
    }
    for k in [
        "totals",
        "by_class",
        "by_source",
        "top_destinations",
        "avoidable",
        "rejected",
        "duplicates",
    ] {
        assert_eq!(s3[k], disk[k], "{k}");
    }
    let examples = s3["input"]["bad_line_examples"][0].as_str().unwrap_or_default().to_owned();
    assert!(
        examples.starts_with(
            "s3://flow-logs/AWSLogs/123456789012/vpcflowlogs/us-east-1/2025/12/01/a.log.gz:"
        ),
        "{examples}"
    );

    // A bucket that does not exist: exit 2, naming it.
    let (code, _, stderr) =
        flowlogs(&moto, &["--config.file", cfg, "s3://no-such-bucket/AWSLogs/"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("s3://no-such-bucket/AWSLogs/"), "{stderr}");
}
