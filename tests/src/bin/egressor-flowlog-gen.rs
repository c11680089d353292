//! Writes VPC Flow Logs of a made-up VPC, deterministically from a seed, with the answer
//! `egressor flowlogs` must give: `egressor-flowlog-gen OUT_DIR BYTES [SEED] [GZIP_FILES]`
//! writes about BYTES of log text into `OUT_DIR/logs/` as AWS delivers it to S3 (files of
//! 128 MiB, a header line each; the first GZIP_FILES gzip-compressed), the configuration
//! describing the VPC (`OUT_DIR/egressor.yaml`) and the answer (`OUT_DIR/truth.json`, also
//! printed). See `egressor_tests::flowlog_gen` for the VPC, the traffic and the prices.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: egressor-flowlog-gen OUT_DIR BYTES [SEED] [GZIP_FILES]";
    let out = args.get(1).expect(usage);
    let bytes: u64 = args.get(2).and_then(|b| b.parse().ok()).expect(usage);
    let seed: u64 = args.get(3).map_or(Ok(1), |s| s.parse()).expect(usage);
    let gzip: usize = args.get(4).map_or(Ok(0), |s| s.parse()).expect(usage);
    let Some(ranges) = egressor_tests::shared_data("cloud-ranges/aws-ip-ranges.json") else {
        std::process::exit(2);
    };
    let truth = egressor_tests::flowlog_gen::generate(
        std::path::Path::new(out),
        bytes,
        seed,
        gzip,
        &ranges,
    )
    .unwrap_or_else(|e| panic!("writing {out}: {e}"));
    println!("{}", serde_json::to_string_pretty(&truth).expect("truth serializes"));
}
