//! `egressor flowlogs s3://BUCKET/PREFIX` against a local S3 (moto's server, installed by
//! scripts/setup.sh), through the standard AWS_* environment: the objects under the prefix
//! inside `--since`/`--until` (by AWS's key layout) give the same report as the same files
//! read from disk; a missing bucket is a clear error naming it. And through a profile of the
//! shared config and credentials files, against a moto that checks every request's
//! signature with the access keys of its IAM users.

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
        Self::start_with(&[])
    }

    /// As [`Moto::start`], with `env` in moto's environment.
    fn start_with(env: &[(&str, &str)]) -> Option<Self> {
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
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        // Up once it answers, whatever the status (a moto checking signatures refuses an
        // unsigned request).
        while let Err(e) = ureq::get(&moto.url("/")).call()
            && !matches!(e, ureq::Error::StatusCode(_))
        {
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

    /// An IAM query API call (unsigned: moto routes it by the service named in the
    /// credential scope and lets it through while it still admits unauthenticated
    /// requests); the response's XML.
    fn iam(&self, form: &[(&str, &str)]) -> String {
        let scope = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251201/us-east-1/iam/aws4_request, \
                     SignedHeaders=host, Signature=0";
        let form = form.iter().copied().chain([("Version", "2010-05-08")]);
        let mut response = ureq::post(&self.url("/"))
            .header("Authorization", scope)
            .send_form(form)
            .unwrap_or_else(|e| panic!("IAM call: {e}"));
        response.body_mut().read_to_string().unwrap()
    }
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn xml_text<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("no <{tag}> in {xml}")) + open.len();
    &xml[start..start + xml[start..].find('<').unwrap()]
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn flowlogs(moto: &Moto, args: &[&str]) -> (Option<i32>, Value, String) {
    let endpoint = moto.url("");
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    flowlogs_in(&env, args)
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

/// `egressor flowlogs` with only `env` and `PATH` in its environment (none of the test
/// machine's AWS settings, and no instance metadata: `AWS_EC2_METADATA_DISABLED`).
fn flowlogs_in(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(egressor_bin())
        .arg("flowlogs")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_profile_of_the_shared_files_gives_keys_region_and_endpoint_that_moto_verifies() {
    let Some(ranges) = shared_data("cloud-ranges/aws-ip-ranges.json") else { return };
    // Requests beyond the first 100 must be signed with an IAM user's keys (moto's
    // INITIAL_NO_AUTH_ACTION_COUNT); the set-up below spends fewer.
    let Some(moto) = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "100")]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    flowlog_gen::generate(dir.path(), 1 << 20, 11, 1, &ranges).unwrap();
    let files: Vec<PathBuf> =
        std::fs::read_dir(dir.path().join("logs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    moto.iam(&[("Action", "CreateUser"), ("UserName", "analyst")]);
    let policy =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    moto.iam(&[
        ("Action", "PutUserPolicy"),
        ("UserName", "analyst"),
        ("PolicyName", "all"),
        ("PolicyDocument", policy),
    ]);
    let key = moto.iam(&[("Action", "CreateAccessKey"), ("UserName", "analyst")]);
    let (id, secret) = (xml_text(&key, "AccessKeyId"), xml_text(&key, "SecretAccessKey"));
    moto.put("/flow-logs", b"");
    moto.put("/flow-logs/AWSLogs/one.log.gz", &std::fs::read(&files[0]).unwrap());
    // Spend what is left of the unauthenticated requests: from here on, moto checks
    // signatures (an unsigned request fails).
    let authenticated =
        (0..200).any(|_| ureq::get(&moto.url("/flow-logs?list-type=2")).call().is_err());
    assert!(authenticated, "moto still admits unsigned requests");

    // The shared files, as `aws configure` writes them; endpoint_url in the profile.
    let credentials = dir.path().join("credentials");
    let process = format!(
        r#"/bin/sh -c 'echo "{{\"Version\": 1, \"AccessKeyId\": \"{id}\", \"SecretAccessKey\": \"{secret}\"}}"'"#
    );
    std::fs::write(
        &credentials,
        format!(
            "[analyst]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n\
             [scoped]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n\
             [stale]\naws_access_key_id = {id}\naws_secret_access_key = {}\n",
            "x".repeat(40)
        ),
    )
    .unwrap();
    let config = dir.path().join("config");
    let endpoint = moto.url("");
    // Nothing listens on port 9 (discard) of loopback here: an endpoint that must not be used.
    let nowhere = "http://127.0.0.1:9";
    std::fs::write(
        &config,
        format!(
            "[profile analyst]\nregion = us-east-1\nendpoint_url = {endpoint}\n\
             [profile stale]\nregion = us-east-1\nendpoint_url = {endpoint}\n\
             [profile process]\nregion = us-east-1\nendpoint_url = {endpoint}\n\
             credential_process = {process}\n\
             [profile scoped]\nregion = us-east-1\nendpoint_url = {nowhere}\n\
             services = local-s3\n\
             [services local-s3]\ns3 =\n  endpoint_url = {endpoint}\n"
        ),
    )
    .unwrap();
    let (credentials, config) = (credentials.to_str().unwrap(), config.to_str().unwrap());
    let home = dir.path().to_str().unwrap();
    let run_with = |profile: &str, more: &[(&str, &str)]| {
        let mut env = vec![
            ("HOME", home),
            ("AWS_SHARED_CREDENTIALS_FILE", credentials),
            ("AWS_CONFIG_FILE", config),
            ("AWS_PROFILE", profile),
            ("AWS_ALLOW_HTTP", "true"),
        ];
        env.extend_from_slice(more);
        let cfg = dir.path().join("egressor.yaml");
        let args = ["--json", "--config.file", cfg.to_str().unwrap(), "s3://flow-logs/AWSLogs/"];
        flowlogs_in(&env, &args)
    };
    let run = |profile: &str| run_with(profile, &[]);
    let cfg = dir.path().join("egressor.yaml");
    let (code, disk, stderr) = flowlogs_in(
        &[],
        &["--json", "--config.file", cfg.to_str().unwrap(), files[0].to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(disk["input"]["records"].as_u64().unwrap() > 100);

    // Static keys, and keys from a credential_process: the same report as the file on disk.
    // So with S3's own endpoint where the general one leads nowhere: in the profile's
    // `services` section, and in AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL.
    let s3_env = [("AWS_ENDPOINT_URL", nowhere), ("AWS_ENDPOINT_URL_S3", endpoint.as_str())];
    let cases: [(&str, &[(&str, &str)]); 4] =
        [("analyst", &[]), ("process", &[]), ("scoped", &[]), ("analyst", &s3_env)];
    for (profile, more) in cases {
        let (code, s3, stderr) = run_with(profile, more);
        assert_eq!(code, Some(0), "profile {profile}: {stderr}");
        assert_eq!(s3["input"]["files"], 1, "profile {profile}");
        for k in ["records", "text_bytes", "stored_bytes"] {
            assert_eq!(s3["input"][k], disk["input"][k], "profile {profile}: input.{k}");
        }
        assert_eq!(s3["totals"], disk["totals"], "profile {profile}");
    }
    // A wrong secret: moto refuses the signature; exit 2, naming the URL.
    let (code, _, stderr) = run("stale");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("s3://flow-logs/AWSLogs/"), "{stderr}");
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");
    // A profile the files lack: the error names it and the files looked in.
    let (code, _, stderr) = run("nosuch");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(r#"profile "nosuch""#) && stderr.contains(credentials), "{stderr}");
}
